// The HAL's Serial on ECMA-419 `embedded:io/serial` (the SAM's ISO 7816 line through a UART).
import ModdableSerial from 'embedded:io/serial';
import { bytesOf, type IOBuffer, type Serial, type SerialOptions } from '../io';

export class BoardSerial implements Serial {
  readonly #serial: ModdableSerial;

  constructor(options: SerialOptions) {
    const onReadable = options.onReadable;
    this.#serial = new ModdableSerial({
      baud: options.baud,
      port: options.port ?? 2,
      receive: options.receive ?? 16,
      transmit: options.transmit ?? 17,
      format: 'buffer',
      onReadable: onReadable
        ? (count: number) => {
            onReadable.call(this, count);
          }
        : undefined,
    });
  }

  read(byteLength?: number): ArrayBuffer | undefined {
    const data = byteLength === undefined ? this.#serial.read() : this.#serial.read(byteLength);
    return typeof data === 'number' ? Uint8Array.of(data).buffer : data;
  }

  write(buffer: IOBuffer): void {
    const bytes = bytesOf(buffer);
    this.#serial.write(
      bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength
        ? (bytes.buffer as ArrayBuffer)
        : bytes.slice().buffer,
    );
  }

  close(): void {
    this.#serial.close();
  }
}
