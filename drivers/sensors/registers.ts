// Register access over an ECMA-419 I2C instance: write the register pointer, then read or write
// its bytes. The SDK's sensor drivers use embedded:io/smbus for this; the HAL offers I2C only
// (hal/io.ts), so each driver keeps one of these with its buffers allocated once.
import type { I2C } from '../../hal/io';

export class I2cRegisters {
  readonly #io: I2C;
  readonly #pointer = new Uint8Array(1);
  readonly #write2 = new Uint8Array(2);
  readonly #write3 = new Uint8Array(3);

  constructor(io: I2C) {
    this.#io = io;
  }

  readUint8(register: number): number {
    this.#pointer[0] = register;
    this.#io.write(this.#pointer, false);
    return new Uint8Array(this.#io.read(1))[0];
  }

  /** Two bytes from `register` on: little-endian (`true`) or big-endian. */
  readUint16(register: number, littleEndian: boolean): number {
    this.#pointer[0] = register;
    this.#io.write(this.#pointer, false);
    const b = new Uint8Array(this.#io.read(2));
    return littleEndian ? b[0] | (b[1] << 8) : (b[0] << 8) | b[1];
  }

  /** Fills `into` with the bytes from `register` on (the chip's auto-increment). */
  readBlock(register: number, into: Uint8Array): Uint8Array {
    this.#pointer[0] = register;
    this.#io.write(this.#pointer, false);
    into.set(new Uint8Array(this.#io.read(into.length)));
    return into;
  }

  writeUint8(register: number, value: number): void {
    this.#write2[0] = register;
    this.#write2[1] = value & 0xff;
    this.#io.write(this.#write2);
  }

  writeUint16(register: number, value: number, littleEndian: boolean): void {
    const b = this.#write3;
    b[0] = register;
    b[1] = littleEndian ? value & 0xff : (value >> 8) & 0xff;
    b[2] = littleEndian ? (value >> 8) & 0xff : value & 0xff;
    this.#io.write(b);
  }

  close(): void {
    this.#io.close();
  }
}

/** A sensor's bus as the app hands it over: the I2C class and its options (`device.I2C.default`). */
export interface I2cSensorBus {
  io: new (options: { address: number; hz?: number; port?: number; data?: number; clock?: number }) => I2C;
  address?: number;
  hz?: number;
  port?: number;
  data?: number;
  clock?: number;
}

/** The chip at the address did not identify as the driver's chip. */
export class SensorIdentityError extends Error {
  override readonly name: string = 'SensorIdentityError';
  readonly found: number;
  constructor(chip: string, found: number) {
    super(`${chip} not found: identity 0x${found.toString(16)}`);
    this.found = found;
  }
}

/** Opens the bus with the driver's defaults first and the caller's options last, as the SDK does. */
export function openBus(sensor: I2cSensorBus, defaults: { address: number; hz: number }): I2C {
  const { io, ...options } = sensor;
  return new io({ ...defaults, ...stripUndefined(options) });
}

function stripUndefined<T extends object>(options: T): Partial<T> {
  const out: Partial<T> = {};
  for (const key of Object.keys(options) as (keyof T)[])
    if (options[key] !== undefined) out[key] = options[key];
  return out;
}
