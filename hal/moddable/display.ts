// The meter's text display: a 20x4 HD44780 LCD on a PCF8574 backpack (drivers/display/hd44780.ts)
// over ECMA-419 I2C, bound to the TextDisplay interface.
import Timer from 'timer';
import { HD44780 } from '../../drivers/display/hd44780';
import type { I2C, I2COptions, IOClass } from '../io';
import type { TextDisplay } from '../ui';

export interface LcdOptions {
  io: IOClass<I2C, I2COptions>;
  address?: number;
  columns?: number;
  rows?: number;
  onError?: (message: string) => void;
}

export class LcdTextDisplay implements TextDisplay {
  readonly #lcd: HD44780;
  readonly #shown: string[];
  readonly rows: number;
  readonly columns: number;

  constructor(options: LcdOptions) {
    const display: { io: IOClass<I2C, I2COptions>; address?: number } = { io: options.io };
    if (options.address !== undefined) display.address = options.address;
    this.#lcd = new HD44780({
      display,
      columns: options.columns ?? 20,
      rows: options.rows ?? 4,
      delay: (ms) => Timer.delay(ms),
      onError: options.onError,
    });
    this.rows = this.#lcd.rows;
    this.columns = this.#lcd.columns;
    this.#shown = new Array<string>(this.rows).fill('');
  }

  show(lines: readonly string[]): void {
    for (let row = 0; row < this.rows; row++) {
      const text = (lines[row] ?? '').slice(0, this.columns);
      if (text === this.#shown[row]) continue; // an I2C row write takes ~8 ms: skip unchanged rows
      this.#lcd.writeRow(row, text);
      this.#shown[row] = text;
    }
  }

  power(on: boolean): void {
    this.#lcd.configure({ display: on, backlight: on });
  }

  close(): void {
    this.#lcd.close();
  }
}
