// NOR flash partition: erase sets a whole sector to 0xFF; programming can only clear bits (1→0).
// Shaped after Moddable's `flash` module (read/write/erase by sector, blockSize = sector size).

export interface NorFlash {
  readonly byteLength: number;
  /** Erase unit in bytes (4096 on ESP32 SPI flash). */
  readonly sectorSize: number;
  read(offset: number, byteLength: number): Uint8Array;
  /** Programs bytes; a bit already 0 stays 0 whatever is written. */
  write(offset: number, data: Uint8Array): void;
  eraseSector(sector: number): void;
}

export class FlashRangeError extends Error {
  override readonly name: string = 'FlashRangeError';
  constructor(message: string) {
    super(message);
  }
}

export function checkFlashRange(flash: NorFlash, offset: number, byteLength: number): void {
  if (!Number.isInteger(offset) || !Number.isInteger(byteLength) || offset < 0 || byteLength < 0) {
    throw new FlashRangeError(`bad flash range ${offset}+${byteLength}`);
  }
  if (offset + byteLength > flash.byteLength) {
    throw new FlashRangeError(`flash range ${offset}+${byteLength} exceeds ${flash.byteLength} bytes`);
  }
}
