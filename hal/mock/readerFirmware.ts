// A simulated reader module's firmware loader (the twin of hal/readerFirmware.ts) for tests and the
// virtual fleet: it keeps the image streamed to it and runs it on finish, and can be told to refuse
// the next install the way a module with a full or faulty flash would.
import type { ReaderFirmwarePort } from '../readerFirmware';

export class ReaderFirmwareRefused extends Error {
  override readonly name: string = 'ReaderFirmwareRefused';
}

export class VirtualReaderFirmware implements ReaderFirmwarePort {
  /** The version running and its image (empty before any install). */
  version = 0;
  image: Uint8Array = new Uint8Array(0);
  /** Installs finished. */
  installs = 0;
  /** When set, the next finish() throws with this message and the image running is kept. */
  refuseNext: string | undefined;
  #pending: { version: number; bytes: Uint8Array; written: number } | undefined;

  running(): number {
    return this.version;
  }

  begin(version: number, length: number): void {
    this.#pending = { version, bytes: new Uint8Array(length), written: 0 };
  }

  write(offset: number, bytes: Uint8Array): void {
    const p = this.#pending;
    if (!p) throw new ReaderFirmwareRefused('no install begun');
    if (offset !== p.written || offset + bytes.length > p.bytes.length)
      throw new ReaderFirmwareRefused(`write at ${offset}, expected ${p.written}`);
    p.bytes.set(bytes, offset);
    p.written += bytes.length;
  }

  finish(): void {
    const p = this.#pending;
    this.#pending = undefined;
    if (!p || p.written !== p.bytes.length) throw new ReaderFirmwareRefused('image incomplete');
    const refusal = this.refuseNext;
    if (refusal !== undefined) {
      this.refuseNext = undefined;
      throw new ReaderFirmwareRefused(refusal);
    }
    this.version = p.version;
    this.image = p.bytes;
    this.installs++;
  }
}
