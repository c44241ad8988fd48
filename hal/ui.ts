// What the driver sees and hears: a text display, a buzzer, lights (digital outputs).

export interface TextDisplay {
  readonly rows: number;
  readonly columns: number;
  /** Replaces the whole screen; longer lines are cut at `columns`. */
  show(lines: readonly string[]): void;
  /** Backlight and controller power, switched off in sleep. */
  power(on: boolean): void;
}

export interface Buzzer {
  /** Plays a tone; a new tone replaces the one playing. */
  tone(frequencyHz: number, durationMs: number): void;
  stop(): void;
}
