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

/**
 * An LCD that is missing at boot does not stop the board being built: it is opened on first use,
 * and show() and power() throw while it does not answer (the meter's GuardedDisplay reports that
 * to the monitor, whose repair calls them again). A write the backpack did not acknowledge closes
 * the driver, so the next call initialises the controller afresh.
 */
export class LcdTextDisplay implements TextDisplay {
  readonly #options: LcdOptions;
  #lcd: HD44780 | undefined;
  /** The first write error since the last call, from the driver's onError. */
  #failure: string | undefined;
  readonly #shown: string[];
  readonly rows: number;
  readonly columns: number;

  constructor(options: LcdOptions) {
    this.#options = options;
    this.rows = options.rows ?? 4;
    this.columns = options.columns ?? 20;
    this.#shown = new Array<string>(this.rows).fill('');
    try {
      this.#open();
    } catch {
      // absent at boot: the first show() or power() tries again and throws while it stays absent
    }
  }

  show(lines: readonly string[]): void {
    const lcd = this.#open();
    for (let row = 0; row < this.rows; row++) {
      const text = (lines[row] ?? '').slice(0, this.columns);
      if (text === this.#shown[row]) continue; // an I2C row write takes ~8 ms: skip unchanged rows
      lcd.writeRow(row, text);
      this.#shown[row] = text;
    }
    this.#check();
  }

  power(on: boolean): void {
    this.#open().configure({ display: on, backlight: on });
    this.#check();
  }

  close(): void {
    this.#lcd?.close();
    this.#lcd = undefined;
  }

  #open(): HD44780 {
    if (this.#lcd) return this.#lcd;
    const options = this.#options;
    const display: { io: IOClass<I2C, I2COptions>; address?: number } = { io: options.io };
    if (options.address !== undefined) display.address = options.address;
    this.#failure = undefined;
    const lcd = new HD44780({
      display,
      columns: this.columns,
      rows: this.rows,
      delay: (ms) => Timer.delay(ms),
      onError: (message) => {
        this.#failure ??= message;
        options.onError?.(message);
      },
    });
    this.#lcd = lcd;
    this.#shown.fill(''); // a fresh controller shows nothing yet
    return lcd;
  }

  #check(): void {
    const failure = this.#failure;
    if (failure === undefined) return;
    this.#failure = undefined;
    this.close();
    throw new Error(failure);
  }
}
