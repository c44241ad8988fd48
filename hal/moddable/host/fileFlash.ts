// A NOR flash partition kept in a file through the SDK's `file` module, for the host build: the
// same rules as the chip (erase sets a 4 KB sector to 0xFF, programming only clears bits), so the
// stores run on the real runtime exactly as on the ESP32's partitions and survive a restart.
import { File } from 'file';
import { checkFlashRange, FlashRangeError, type NorFlash } from '../../flash';

const SECTOR_SIZE = 4096;

export class FileFlash implements NorFlash {
  readonly byteLength: number;
  readonly sectorSize = SECTOR_SIZE;
  readonly #file: File;
  readonly #erased = new Uint8Array(SECTOR_SIZE).fill(0xff);

  /** Opens the partition's file, creating it erased (all 0xFF) when missing or of another size. */
  constructor(path: string, byteLength: number) {
    if (byteLength <= 0 || byteLength % SECTOR_SIZE !== 0) {
      throw new FlashRangeError(`partition size ${byteLength} is not a whole number of sectors`);
    }
    this.byteLength = byteLength;
    const fresh = !File.exists(path);
    this.#file = new File(path, true);
    if (fresh || this.#file.length !== byteLength) {
      this.#file.position = 0;
      for (let sector = 0; sector < byteLength / SECTOR_SIZE; sector++) this.#file.write(this.#erased.buffer);
    }
  }

  read(offset: number, byteLength: number): Uint8Array {
    checkFlashRange(this, offset, byteLength);
    if (byteLength === 0) return new Uint8Array(0);
    this.#file.position = offset;
    return new Uint8Array(this.#file.read(ArrayBuffer, byteLength));
  }

  write(offset: number, data: Uint8Array): void {
    checkFlashRange(this, offset, data.byteLength);
    if (data.byteLength === 0) return;
    const cells = this.read(offset, data.byteLength);
    for (let i = 0; i < cells.length; i++) cells[i] &= data[i];
    this.#file.position = offset;
    this.#file.write(cells.buffer as ArrayBuffer);
  }

  eraseSector(sector: number): void {
    if (!Number.isInteger(sector) || sector < 0 || (sector + 1) * SECTOR_SIZE > this.byteLength) {
      throw new FlashRangeError(`bad flash sector ${sector}`);
    }
    this.#file.position = sector * SECTOR_SIZE;
    this.#file.write(this.#erased.buffer);
  }

  close(): void {
    this.#file.close();
  }
}
