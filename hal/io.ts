// IO shapes after ECMA-419 (the Embedded Systems API, 2nd edition), the subset the meter uses.
// A driver receives the *class* (`io`) with its options and builds its own instance, as the
// Moddable SDK's drivers do: `new io({ hz: 400_000, address: 0x18, ...options.sensor })`.

export type IOBuffer = ArrayBuffer | ArrayBufferView;

export interface IOBase {
  close(): void;
}

/** ECMA-419 §10 Digital. */
export interface Digital extends IOBase {
  read(): 0 | 1;
  write(value: 0 | 1): void;
}

export interface DigitalOptions {
  pin: number;
  mode: 'input' | 'inputPullUp' | 'inputPullDown' | 'output' | 'outputOpenDrain';
  /** Edge(s) that call onReadable: 1 rising, 2 falling, 3 both (ECMA-419 Digital.Rising/Falling). */
  edge?: number;
  onReadable?: (this: Digital) => void;
}

/** ECMA-419 §12 I2C. A missing acknowledge throws. */
export interface I2C extends IOBase {
  read(byteLength: number, stop?: boolean): ArrayBuffer;
  write(buffer: IOBuffer, stop?: boolean): void;
}

export interface I2COptions {
  address: number;
  hz?: number;
  data?: number;
  clock?: number;
  port?: number;
}

/** ECMA-419 §16 SPI. `transfer` is full duplex in place; `flush(true)` ends the transaction (deselects). */
export interface SPI extends IOBase {
  read(byteLength: number): ArrayBuffer;
  write(buffer: IOBuffer): void;
  transfer(buffer: IOBuffer): void;
  flush(deselect?: boolean): void;
}

export interface SPIOptions {
  select: number;
  hz?: number;
  mode?: number;
  out?: number;
  in?: number;
  clock?: number;
  port?: number;
}

/** ECMA-419 §14 Serial. */
export interface Serial extends IOBase {
  read(byteLength?: number): ArrayBuffer | undefined;
  write(buffer: IOBuffer): void;
}

export interface SerialOptions {
  baud: number;
  port?: number;
  transmit?: number;
  receive?: number;
  onReadable?: (this: Serial, count: number) => void;
}

/** An IO class as handed to a driver: `new io(options)`. */
export type IOClass<Instance, Options> = new (options: Options) => Instance;

/** Copies any IO buffer into a fresh Uint8Array view over the same bytes (no copy when possible). */
export function bytesOf(buffer: IOBuffer): Uint8Array {
  if (buffer instanceof Uint8Array) return buffer;
  if (ArrayBuffer.isView(buffer)) return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  return new Uint8Array(buffer);
}
