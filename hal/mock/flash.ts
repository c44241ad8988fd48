// Virtual NOR flash: erase to 0xFF by sector, programming clears bits only, and power can be cut
// after any byte of a write or an erase (the cut byte and everything after it is left as it was).
import { checkFlashRange, type NorFlash } from '../flash';

export class PowerLoss extends Error {
  override readonly name: string = 'PowerLoss';
  constructor() {
    super('power lost');
  }
}

export interface VirtualFlashOptions {
  byteLength?: number;
  sectorSize?: number;
  /** Starting contents (a power cycle keeps the array: pass it to the next instance). */
  cells?: Uint8Array;
}

export class VirtualNorFlash implements NorFlash {
  readonly byteLength: number;
  readonly sectorSize: number;
  readonly cells: Uint8Array;
  readonly eraseCounts: Uint32Array;
  bytesProgrammed = 0;
  #budget = Number.POSITIVE_INFINITY;

  constructor(options: VirtualFlashOptions = {}) {
    this.sectorSize = options.sectorSize ?? 4096;
    this.byteLength = options.cells?.length ?? options.byteLength ?? 64 * 1024;
    if (this.byteLength % this.sectorSize !== 0) throw new RangeError('flash size must be whole sectors');
    this.cells = options.cells ?? new Uint8Array(this.byteLength).fill(0xff);
    this.eraseCounts = new Uint32Array(this.byteLength / this.sectorSize);
  }

  /** Power fails after `bytes` more bytes are programmed or erased; the next one throws PowerLoss. */
  cutPowerAfter(bytes: number): void {
    this.#budget = bytes;
  }

  /** Power stays on (cancels a pending cut). */
  restorePower(): void {
    this.#budget = Number.POSITIVE_INFINITY;
  }

  get powered(): boolean {
    return this.#budget > 0;
  }

  read(offset: number, byteLength: number): Uint8Array {
    checkFlashRange(this, offset, byteLength);
    return this.cells.slice(offset, offset + byteLength);
  }

  write(offset: number, data: Uint8Array): void {
    checkFlashRange(this, offset, data.length);
    for (let i = 0; i < data.length; i++) {
      this.#spend();
      this.cells[offset + i] &= data[i];
      this.bytesProgrammed++;
    }
  }

  eraseSector(sector: number): void {
    if (!Number.isInteger(sector) || sector < 0 || sector >= this.eraseCounts.length) {
      throw new RangeError(`no sector ${sector}`);
    }
    const start = sector * this.sectorSize;
    for (let i = 0; i < this.sectorSize; i++) {
      this.#spend();
      this.cells[start + i] = 0xff;
    }
    this.eraseCounts[sector]++;
  }

  /** Flips one bit, as radiation, wear or a bad cell would. */
  flipBit(offset: number, bit: number): void {
    this.cells[offset] ^= 1 << bit;
  }

  #spend(): void {
    if (this.#budget <= 0) throw new PowerLoss();
    this.#budget--;
  }
}
