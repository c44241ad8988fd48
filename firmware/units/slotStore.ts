// One CBOR value kept on flash in two slots of one sector each: a new value goes to the slot not in
// use with a higher generation, body before header, so a power cut mid-update leaves the old value
// whole and a slot with a complete header always has its whole body. Used by the blacklist and the
// reader files, each on its own partition.
//
// Slot: magic u32 | generation u32 | length u32 | CRC-32 u32 | CBOR body
import type { NorFlash } from '../../hal/flash';
import { crc32, readUint32, writeUint32 } from '../../protocol/bytes';
import { decodeCbor, encodeCbor } from '../../protocol/cbor';

const SLOT_HEADER = 16;

export class SlotStore {
  readonly #flash: NorFlash;
  readonly #magic: number;
  #generation = 0;
  #slot = -1;

  /** `magic` tells this store's slots from anything else on the partition. */
  constructor(flash: NorFlash, magic: number) {
    if (flash.byteLength < 2 * flash.sectorSize) throw new RangeError('a slot store needs two sectors');
    this.#flash = flash;
    this.#magic = magic;
  }

  get generation(): number {
    return this.#generation;
  }

  /** The slot holding the value loaded or saved last (-1: none). */
  get slot(): number {
    return this.#slot;
  }

  /** The largest body a slot holds. */
  get capacity(): number {
    return this.#flash.sectorSize - SLOT_HEADER;
  }

  /** The newest intact value, or undefined when neither slot holds one. */
  load(): unknown {
    let best: { slot: number; generation: number; value: unknown } | undefined;
    for (const slot of [0, 1]) {
      const base = slot * this.#flash.sectorSize;
      const header = this.#flash.read(base, SLOT_HEADER);
      const length = readUint32(header, 8);
      if (readUint32(header, 0) !== this.#magic || length > this.capacity) continue;
      const body = this.#flash.read(base + SLOT_HEADER, length);
      if (crc32(body) !== readUint32(header, 12)) continue;
      const generation = readUint32(header, 4);
      if (best && best.generation >= generation) continue;
      try {
        best = { slot, generation, value: decodeCbor(body) };
      } catch {
        // a slot that does not decode is ignored like a bad CRC
      }
    }
    if (!best) return undefined;
    this.#slot = best.slot;
    this.#generation = best.generation;
    return best.value;
  }

  /** Replaces the value, durably; throws RangeError when it does not fit a slot. */
  save(value: unknown): void {
    const body = encodeCbor(value);
    if (body.length > this.capacity)
      throw new RangeError(`${body.length} bytes do not fit a ${this.capacity}-byte slot`);
    const slot = this.#slot === 0 ? 1 : 0;
    const header = new Uint8Array(SLOT_HEADER);
    writeUint32(header, 0, this.#magic);
    writeUint32(header, 4, this.#generation + 1);
    writeUint32(header, 8, body.length);
    writeUint32(header, 12, crc32(body));
    this.#flash.eraseSector(slot);
    this.#flash.write(slot * this.#flash.sectorSize + SLOT_HEADER, body);
    this.#flash.write(slot * this.#flash.sectorSize, header);
    this.#slot = slot;
    this.#generation++;
  }
}
