// Virtual buses and pins. Virtual chips attach to a bus (SPI by chip-select pin, I2C by address);
// drivers receive the bus's `io` class exactly as they would receive `device.io.SPI` on a board.
import {
  bytesOf,
  type Digital,
  type DigitalOptions,
  type I2C,
  type I2COptions,
  type IOBuffer,
  type SPI,
  type SPIOptions,
} from '../io';

/** A chip on an SPI bus: selected, then one byte in for each byte out, then deselected. */
export interface VirtualSpiChip {
  select(): void;
  exchange(mosi: number): number;
  deselect(): void;
}

export class VirtualSpiBus {
  readonly #chips = new Map<number, VirtualSpiChip>();
  readonly io: new (
    options: SPIOptions,
  ) => SPI;

  constructor() {
    const chips = this.#chips;
    this.io = class VirtualSPI implements SPI {
      readonly #chip: VirtualSpiChip;
      #selected = false;
      #closed = false;

      constructor(options: SPIOptions) {
        const chip = chips.get(options.select);
        if (!chip) throw new Error(`no SPI device on select pin ${options.select}`);
        this.#chip = chip;
      }

      read(byteLength: number): ArrayBuffer {
        const buffer = new Uint8Array(byteLength);
        this.transfer(buffer);
        return buffer.buffer;
      }

      write(buffer: IOBuffer): void {
        const bytes = bytesOf(buffer);
        this.#begin();
        for (const b of bytes) this.#chip.exchange(b);
      }

      transfer(buffer: IOBuffer): void {
        const bytes = bytesOf(buffer);
        this.#begin();
        for (let i = 0; i < bytes.length; i++) bytes[i] = this.#chip.exchange(bytes[i]);
      }

      flush(deselect = false): void {
        if (deselect && this.#selected) {
          this.#selected = false;
          this.#chip.deselect();
        }
      }

      close(): void {
        this.flush(true);
        this.#closed = true;
      }

      #begin(): void {
        if (this.#closed) throw new Error('SPI closed');
        if (!this.#selected) {
          this.#selected = true;
          this.#chip.select();
        }
      }
    };
  }

  attach(selectPin: number, chip: VirtualSpiChip): void {
    this.#chips.set(selectPin, chip);
  }
}

/** A chip on an I2C bus. Returning false from `acknowledge` makes the transfer fail as a missing ACK. */
export interface VirtualI2cChip {
  acknowledge?(): boolean;
  /** A write transaction (register pointer and data). */
  receive(bytes: Uint8Array, stop: boolean): void;
  /** A read transaction of `byteLength` bytes. */
  transmit(byteLength: number, stop: boolean): Uint8Array;
}

export class I2cNoAcknowledge extends Error {
  override readonly name: string = 'I2cNoAcknowledge';
  constructor(address: number) {
    super(`I2C device 0x${address.toString(16)} did not acknowledge`);
  }
}

export class VirtualI2cBus {
  readonly #chips = new Map<number, VirtualI2cChip>();
  readonly io: new (
    options: I2COptions,
  ) => I2C;

  constructor() {
    const chips = this.#chips;
    this.io = class VirtualI2C implements I2C {
      readonly #address: number;
      #closed = false;

      constructor(options: I2COptions) {
        this.#address = options.address;
      }

      read(byteLength: number, stop = true): ArrayBuffer {
        const chip = this.#chip();
        const bytes = chip.transmit(byteLength, stop);
        const out = new Uint8Array(byteLength);
        out.set(bytes.subarray(0, byteLength));
        return out.buffer;
      }

      write(buffer: IOBuffer, stop = true): void {
        this.#chip().receive(bytesOf(buffer).slice(), stop);
      }

      close(): void {
        this.#closed = true;
      }

      #chip(): VirtualI2cChip {
        if (this.#closed) throw new Error('I2C closed');
        const chip = chips.get(this.#address);
        if (!chip || (chip.acknowledge && !chip.acknowledge())) throw new I2cNoAcknowledge(this.#address);
        return chip;
      }
    };
  }

  attach(address: number, chip: VirtualI2cChip): void {
    this.#chips.set(address, chip);
  }

  detach(address: number): void {
    this.#chips.delete(address);
  }
}

/** GPIO pins: outputs remember their level; inputs are driven by the test (a button press). */
export class VirtualPins {
  readonly levels = new Map<number, 0 | 1>();
  readonly #observers = new Map<number, ((level: 0 | 1) => void)[]>();
  readonly #watchers = new Map<
    number,
    { edge: number; pin: Digital; onReadable: (this: Digital) => void }[]
  >();
  readonly io: new (
    options: DigitalOptions,
  ) => Digital;

  constructor() {
    const pins = this;
    this.io = class VirtualDigital implements Digital {
      readonly #pin: number;
      #closed = false;

      constructor(options: DigitalOptions) {
        this.#pin = options.pin;
        if (!pins.levels.has(options.pin)) {
          pins.levels.set(options.pin, options.mode === 'inputPullUp' ? 1 : 0);
        }
        if (options.onReadable) pins.#watch(options.pin, options.edge ?? 3, this, options.onReadable);
      }

      read(): 0 | 1 {
        return pins.levels.get(this.#pin) ?? 0;
      }

      write(value: 0 | 1): void {
        if (this.#closed) throw new Error('pin closed');
        pins.levels.set(this.#pin, value);
        for (const observer of pins.#observers.get(this.#pin) ?? []) observer(value);
      }

      close(): void {
        this.#closed = true;
        pins.#unwatch(this.#pin, this);
      }
    };
  }

  level(pin: number): 0 | 1 {
    return this.levels.get(pin) ?? 0;
  }

  /** Calls `observer` on every level the host writes to `pin` (a part watching its input line). */
  observe(pin: number, observer: (level: 0 | 1) => void): void {
    const list = this.#observers.get(pin) ?? [];
    list.push(observer);
    this.#observers.set(pin, list);
  }

  /** Drives an input pin from outside (a button, a sensor's interrupt line). */
  drive(pin: number, value: 0 | 1): void {
    const before = this.levels.get(pin) ?? 0;
    this.levels.set(pin, value);
    if (before === value) return;
    const edge = value ? 1 : 2;
    for (const w of this.#watchers.get(pin) ?? []) if (w.edge & edge) w.onReadable.call(w.pin);
  }

  #watch(pin: number, edge: number, digital: Digital, onReadable: (this: Digital) => void): void {
    const list = this.#watchers.get(pin) ?? [];
    list.push({ edge, pin: digital, onReadable });
    this.#watchers.set(pin, list);
  }

  #unwatch(pin: number, digital: Digital): void {
    this.#watchers.set(
      pin,
      (this.#watchers.get(pin) ?? []).filter((w) => w.pin !== digital),
    );
  }
}
