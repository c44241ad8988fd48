// Virtual display, buzzer and lights that remember what they showed, played and lit.
import type { Buzzer, TextDisplay } from '../ui';

export class VirtualDisplay implements TextDisplay {
  readonly rows: number;
  readonly columns: number;
  lines: string[] = [];
  on = true;
  readonly history: string[][] = [];
  /** While set, the display does not answer: show and power throw this message (a missing LCD backpack). */
  fault: string | undefined;

  constructor(rows = 4, columns = 20) {
    this.rows = rows;
    this.columns = columns;
  }

  show(lines: readonly string[]): void {
    if (this.fault !== undefined) throw new Error(this.fault);
    this.lines = lines.slice(0, this.rows).map((line) => line.slice(0, this.columns));
    this.history.push(this.lines);
  }

  power(on: boolean): void {
    if (this.fault !== undefined) throw new Error(this.fault);
    this.on = on;
  }

  get text(): string {
    return this.lines.join('\n');
  }
}

export interface Tone {
  frequencyHz: number;
  durationMs: number;
}

export class VirtualBuzzer implements Buzzer {
  readonly tones: Tone[] = [];

  tone(frequencyHz: number, durationMs: number): void {
    this.tones.push({ frequencyHz, durationMs });
  }

  stop(): void {}
}
