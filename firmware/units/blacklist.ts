// Blacklist management (45): cards refused at the meter (bad debt, stolen, cloned, expired), kept
// in its own flash partition. Two slots, each a whole sector: a new list goes to the slot not in
// use, with a higher generation, so a power cut mid-update leaves the old list intact.
//
// Slot: magic "PLB1" | generation u32 | length u32 | CRC-32 u32 | CBOR [[card number, reason], ...]
import type { NorFlash } from '../../hal/flash';
import { crc32, readUint32, writeUint32 } from '../../protocol/bytes';
import { decodeCbor, encodeCbor } from '../../protocol/cbor';

const SLOT_MAGIC = 0x504c4231; // "PLB1"
const SLOT_HEADER = 16;

export interface BlacklistEntry {
  cardNumber: string;
  reason: string;
}

export class BlacklistUnit {
  readonly #flash: NorFlash;
  #entries = new Map<string, string>();
  #generation = 0;
  #slot = -1;

  constructor(flash: NorFlash) {
    if (flash.byteLength < 2 * flash.sectorSize) throw new RangeError('blacklist needs two sectors');
    this.#flash = flash;
    this.#load();
  }

  get size(): number {
    return this.#entries.size;
  }

  get generation(): number {
    return this.#generation;
  }

  /** The reason a card is refused, or undefined when it may pay. */
  check(cardNumber: string): string | undefined {
    return this.#entries.get(cardNumber);
  }

  /** Replaces the whole list, durably. */
  replace(entries: readonly BlacklistEntry[]): void {
    const body = encodeCbor(entries.map((e) => [e.cardNumber, e.reason]));
    if (SLOT_HEADER + body.length > this.#flash.sectorSize)
      throw new RangeError('blacklist too large for one slot');
    const slot = this.#slot === 0 ? 1 : 0;
    const header = new Uint8Array(SLOT_HEADER);
    writeUint32(header, 0, SLOT_MAGIC);
    writeUint32(header, 4, this.#generation + 1);
    writeUint32(header, 8, body.length);
    writeUint32(header, 12, crc32(body));
    this.#flash.eraseSector(slot);
    // Body before header: a slot whose header is complete always has its whole body.
    this.#flash.write(slot * this.#flash.sectorSize + SLOT_HEADER, body);
    this.#flash.write(slot * this.#flash.sectorSize, header);
    this.#slot = slot;
    this.#generation++;
    this.#entries = new Map(entries.map((e) => [e.cardNumber, e.reason]));
  }

  #load(): void {
    let best: { slot: number; generation: number; entries: Map<string, string> } | undefined;
    for (const slot of [0, 1]) {
      const base = slot * this.#flash.sectorSize;
      const header = this.#flash.read(base, SLOT_HEADER);
      const length = readUint32(header, 8);
      if (readUint32(header, 0) !== SLOT_MAGIC || length > this.#flash.sectorSize - SLOT_HEADER) continue;
      const body = this.#flash.read(base + SLOT_HEADER, length);
      if (crc32(body) !== readUint32(header, 12)) continue;
      const generation = readUint32(header, 4);
      if (best && best.generation >= generation) continue;
      try {
        const list = decodeCbor(body);
        if (!Array.isArray(list)) continue;
        const entries = new Map<string, string>();
        for (const item of list) {
          if (Array.isArray(item) && typeof item[0] === 'string' && typeof item[1] === 'string')
            entries.set(item[0], item[1]);
        }
        best = { slot, generation, entries };
      } catch {
        // a slot that does not decode is ignored like a bad CRC
      }
    }
    if (best) {
      this.#slot = best.slot;
      this.#generation = best.generation;
      this.#entries = best.entries;
    }
  }
}
