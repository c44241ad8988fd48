// A NOR flash partition through Moddable's `flash` module (modules/files/flash/esp32/flash.c):
// the partition is found by name in partitions.csv; erase takes a sector index; blockSize is the
// 4096-byte SPI flash sector.
import Flash from 'flash';
import { checkFlashRange, FlashRangeError, type NorFlash } from '../flash';

export class ModdableFlash implements NorFlash {
  readonly #flash: Flash;
  readonly byteLength: number;
  readonly sectorSize: number;

  /** Throws when partitions.csv has no data partition of that name. */
  constructor(partition: string) {
    this.#flash = new Flash(partition);
    this.byteLength = this.#flash.byteLength;
    this.sectorSize = this.#flash.blockSize;
  }

  read(offset: number, byteLength: number): Uint8Array {
    checkFlashRange(this, offset, byteLength);
    if (byteLength === 0) return new Uint8Array(0);
    // Without useHostBuffer the module returns an ArrayBuffer copy in RAM.
    return new Uint8Array(this.#flash.read(offset, byteLength) as ArrayBuffer);
  }

  write(offset: number, data: Uint8Array): void {
    checkFlashRange(this, offset, data.byteLength);
    if (data.byteLength === 0) return; // the native write rejects a zero length
    this.#flash.write(offset, data.byteLength, data);
  }

  eraseSector(sector: number): void {
    if (!Number.isInteger(sector) || sector < 0 || (sector + 1) * this.sectorSize > this.byteLength) {
      throw new FlashRangeError(`bad flash sector ${sector}`);
    }
    this.#flash.erase(sector);
  }
}
