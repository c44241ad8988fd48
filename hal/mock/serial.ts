// A virtual serial port (UART): the HAL's Serial as an `io` class, with a device on the other end
// that receives what the driver writes and answers into the port's receive buffer (a SAM's
// contacts behind an ISO 7816 UART, in hal/mock/secure/sam.ts). Runs under Node and XS.
import { bytesOf, type IOBuffer, type Serial, type SerialOptions } from '../io';

/** What sits on the far end of the line. */
export interface VirtualSerialDevice {
  /** Bytes from the host; answer with `line.send(bytes)`. */
  receive(bytes: Uint8Array, line: { send(bytes: Uint8Array): void }): void;
  /** The host opened the port: `line.send` may answer at any time from now on (a radio's receive). */
  opened?(line: { send(bytes: Uint8Array): void; readonly open: boolean }): void;
}

export class VirtualSerialPort {
  readonly #devices = new Map<number, VirtualSerialDevice>();
  readonly io: new (
    options: SerialOptions,
  ) => Serial;
  /** Bytes the host wrote, per port (tests). */
  readonly written = new Map<number, number>();

  constructor() {
    const devices = this.#devices;
    const written = this.written;
    this.io = class VirtualSerial implements Serial {
      readonly #port: number;
      readonly #onReadable: SerialOptions['onReadable'];
      #buffer: number[] = [];
      #closed = false;

      constructor(options: SerialOptions) {
        this.#port = options.port ?? 0;
        if (!devices.has(this.#port)) throw new Error(`no serial device on port ${this.#port}`);
        this.#onReadable = options.onReadable;
        const port = this;
        devices.get(this.#port)?.opened?.({
          send: (bytes) => port.#deliver(bytes),
          get open() {
            return !port.#closed;
          },
        });
      }

      #deliver(bytes: Uint8Array): void {
        if (this.#closed) return;
        for (const b of bytes) this.#buffer.push(b);
        this.#onReadable?.call(this, this.#buffer.length);
      }

      read(byteLength?: number): ArrayBuffer | undefined {
        if (this.#closed) throw new Error('serial closed');
        if (this.#buffer.length === 0) return undefined;
        const n = Math.min(byteLength ?? this.#buffer.length, this.#buffer.length);
        return Uint8Array.from(this.#buffer.splice(0, n)).buffer;
      }

      write(buffer: IOBuffer): void {
        if (this.#closed) throw new Error('serial closed');
        const bytes = bytesOf(buffer).slice();
        written.set(this.#port, (written.get(this.#port) ?? 0) + bytes.length);
        devices.get(this.#port)?.receive(bytes, { send: (answer) => this.#deliver(answer) });
      }

      close(): void {
        this.#closed = true;
      }
    };
  }

  attach(port: number, device: VirtualSerialDevice): void {
    this.#devices.set(port, device);
  }
}
