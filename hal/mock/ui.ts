// Virtual display, buzzer and lights that remember what they showed, played and lit.
import type { Buzzer, TextDisplay } from '../ui';

export class VirtualDisplay implements TextDisplay {
  readonly rows: number;
  readonly columns: number;
  lines: string[] = [];
  on = true;
  readonly history: string[][] = [];

  constructor(rows = 4, columns = 20) {
    this.rows = rows;
    this.columns = columns;
  }

  show(lines: readonly string[]): void {
    this.lines = lines.slice(0, this.rows).map((line) => line.slice(0, this.columns));
    this.history.push(this.lines);
  }

  power(on: boolean): void {
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
