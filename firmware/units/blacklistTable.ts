// The blacklist on flash as a table sorted by card token, never held in RAM: a lookup is a binary
// search reading only the entries it probes; a change is merged with the held table into the other
// slot as a stream, sector by sector, and takes effect when that slot's header is written, last.
//
// The partition is two slots of half its sectors each. Slot:
//   0..31    header: magic u32 | format u32 | generation u32 | list version u32 | count u32 |
//            texts length u32 | CRC-32 u32 (over the texts, then the table) | 0xFF
//   32..511  texts: CBOR array of the reasons set locally as text (entry reason 0x80 + index)
//   512..    table: `count` entries of 17 bytes (token 16 | reason u8), strictly ascending by token
// The header is written after everything it covers, so a power cut mid-write leaves the slot without
// a valid header and the other slot in force. With a 256 KiB partition a slot holds 7,680 cards.
import type { NorFlash } from '../../hal/flash';
import { crc32, readUint32, writeUint32 } from '../../protocol/bytes';
import { CARD_TOKEN_LENGTH } from '../../protocol/cardToken';
import { decodeCbor, encodeCbor } from '../../protocol/cbor';

export const TABLE_MAGIC = 0x504c4232; // "PLB2"
const FORMAT = 2;
const HEADER = 32;
const TEXTS_OFFSET = HEADER;
const TABLE_OFFSET = 512;
export const ENTRY_BYTES = CARD_TOKEN_LENGTH + 1;
/** Reason bytes from here on name a local text: TEXT_CODE + its index in the slot's texts. */
export const TEXT_CODE = 0x80;
/** Entries read at once when streaming a table (bounded RAM whatever the list's length). */
const READ_CHUNK_ENTRIES = 32;

/** Orders two tokens byte by byte. */
export function compareTokens(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < CARD_TOKEN_LENGTH; i++) {
    if (a[i] !== b[i]) return a[i] - b[i];
  }
  return 0;
}

export interface HeldTable {
  slot: number;
  generation: number;
  version: number;
  count: number;
  texts: string[];
}

/** Streams a slot's entries in order, READ_CHUNK_ENTRIES at a time. */
export class TableReader {
  readonly #flash: NorFlash;
  readonly #base: number;
  readonly #count: number;
  #index = 0;
  #chunk: Uint8Array = new Uint8Array(0);
  #chunkStart = 0;

  constructor(flash: NorFlash, tableBase: number, count: number) {
    this.#flash = flash;
    this.#base = tableBase;
    this.#count = count;
  }

  /** The current entry's token (one buffer, overwritten by next). */
  readonly token = new Uint8Array(CARD_TOKEN_LENGTH);
  /** The current entry's reason byte. */
  reason = 0;

  /** Moves to the next entry (token and reason); false past the last. Allocates only per chunk. */
  next(): boolean {
    if (this.#index >= this.#count) return false;
    const inChunk = this.#index - this.#chunkStart;
    if (inChunk * ENTRY_BYTES >= this.#chunk.length) {
      const n = Math.min(READ_CHUNK_ENTRIES, this.#count - this.#index);
      this.#chunk = this.#flash.read(this.#base + this.#index * ENTRY_BYTES, n * ENTRY_BYTES);
      this.#chunkStart = this.#index;
    }
    const at = (this.#index - this.#chunkStart) * ENTRY_BYTES;
    this.#index++;
    for (let i = 0; i < CARD_TOKEN_LENGTH; i++) this.token[i] = this.#chunk[at + i];
    this.reason = this.#chunk[at + CARD_TOKEN_LENGTH];
    return true;
  }
}

/**
 * Writes one slot front to back through a one-sector buffer: each sector is erased when the table
 * reaches it, the texts and header go last (finish). Throws RangeError past the slot's capacity.
 */
export class TableWriter {
  readonly #flash: NorFlash;
  readonly #firstSector: number;
  readonly #sectors: number;
  readonly #buffer: Uint8Array;
  #sector = 0;
  #from = TABLE_OFFSET;
  #fill = TABLE_OFFSET;
  #crc: number;
  readonly #last = new Uint8Array(CARD_TOKEN_LENGTH);
  count = 0;
  readonly capacity: number;
  readonly texts: Uint8Array;

  constructor(flash: NorFlash, firstSector: number, sectors: number, capacity: number, texts: Uint8Array) {
    this.capacity = capacity;
    this.#flash = flash;
    this.#firstSector = firstSector;
    this.#sectors = sectors;
    this.#buffer = new Uint8Array(flash.sectorSize).fill(0xff);
    this.#crc = crc32(texts);
    this.texts = texts;
    flash.eraseSector(firstSector); // the header first: from here this slot is not in force
  }

  /** Appends an entry; tokens must come strictly ascending. */
  put(token: Uint8Array, reason: number): void {
    if (this.count >= this.capacity)
      throw new RangeError(`more than ${this.capacity} cards do not fit a blacklist slot`);
    if (this.count > 0 && compareTokens(this.#last, token) >= 0)
      throw new RangeError('blacklist entries out of order');
    this.#last.set(token.subarray(0, CARD_TOKEN_LENGTH));
    if (this.#fill + ENTRY_BYTES <= this.#buffer.length) {
      this.#buffer.set(this.#last, this.#fill);
      this.#buffer[this.#fill + CARD_TOKEN_LENGTH] = reason;
      this.#fill += ENTRY_BYTES;
    } else {
      // The entry straddles two sectors: byte by byte.
      for (let i = 0; i < ENTRY_BYTES; i++) {
        if (this.#fill === this.#buffer.length) this.#nextSector();
        this.#buffer[this.#fill++] = i < CARD_TOKEN_LENGTH ? this.#last[i] : reason;
      }
    }
    this.count++;
  }

  #flush(): void {
    if (this.#fill === this.#from) return;
    const bytes = this.#buffer.subarray(this.#from, this.#fill);
    this.#flash.write((this.#firstSector + this.#sector) * this.#flash.sectorSize + this.#from, bytes);
    this.#crc = crc32(bytes, this.#crc);
    this.#from = this.#fill;
  }

  #nextSector(): void {
    this.#flush();
    this.#sector++;
    if (this.#sector >= this.#sectors) throw new RangeError('blacklist slot full');
    this.#flash.eraseSector(this.#firstSector + this.#sector);
    this.#buffer.fill(0xff);
    this.#from = 0;
    this.#fill = 0;
  }

  /** Writes what is buffered, the texts, then the header: the slot is in force from here. */
  finish(generation: number, version: number): void {
    this.#flush();
    const base = this.#firstSector * this.#flash.sectorSize;
    if (this.texts.length > 0) this.#flash.write(base + TEXTS_OFFSET, this.texts);
    const header = new Uint8Array(HEADER).fill(0xff);
    writeUint32(header, 0, TABLE_MAGIC);
    writeUint32(header, 4, FORMAT);
    writeUint32(header, 8, generation);
    writeUint32(header, 12, version);
    writeUint32(header, 16, this.count);
    writeUint32(header, 20, this.texts.length);
    writeUint32(header, 24, this.#crc);
    this.#flash.write(base, header);
  }
}

/** The two-slot table store on one partition. */
export class BlacklistTable {
  readonly flash: NorFlash;
  readonly sectorsPerSlot: number;
  /** Cards one slot holds. */
  readonly capacity: number;
  held: HeldTable | undefined;
  /** The slot the next write goes to when set (a conversion from the former format picks it). */
  nextSlot: number | undefined;
  /** Flash reads made by lookups (a figure for the bench). */
  lookupReads = 0;

  constructor(flash: NorFlash) {
    const sectors = Math.floor(flash.byteLength / flash.sectorSize);
    if (sectors < 2) throw new RangeError('a blacklist table needs two sectors');
    this.flash = flash;
    this.sectorsPerSlot = Math.floor(sectors / 2);
    this.capacity = Math.floor((this.sectorsPerSlot * flash.sectorSize - TABLE_OFFSET) / ENTRY_BYTES);
    this.held = this.#load();
  }

  /** The largest CBOR of local texts a slot holds. */
  static get textsCapacity(): number {
    return TABLE_OFFSET - TEXTS_OFFSET;
  }

  slotBase(slot: number): number {
    return slot * this.sectorsPerSlot * this.flash.sectorSize;
  }

  tableBase(slot: number): number {
    return this.slotBase(slot) + TABLE_OFFSET;
  }

  /** The slot a new table goes to: the one not in force. */
  get spareSlot(): number {
    if (this.nextSlot !== undefined) return this.nextSlot;
    return this.held?.slot === 0 ? 1 : 0;
  }

  #load(): HeldTable | undefined {
    let best: HeldTable | undefined;
    for (const slot of [0, 1]) {
      const base = this.slotBase(slot);
      const header = this.flash.read(base, HEADER);
      if (readUint32(header, 0) !== TABLE_MAGIC || readUint32(header, 4) !== FORMAT) continue;
      const count = readUint32(header, 16);
      const textsLength = readUint32(header, 20);
      if (count > this.capacity || textsLength > BlacklistTable.textsCapacity) continue;
      const textBytes = this.flash.read(base + TEXTS_OFFSET, textsLength);
      let crc = crc32(textBytes);
      const total = count * ENTRY_BYTES;
      for (let at = 0; at < total; at += this.flash.sectorSize) {
        crc = crc32(
          this.flash.read(base + TABLE_OFFSET + at, Math.min(this.flash.sectorSize, total - at)),
          crc,
        );
      }
      if (crc !== readUint32(header, 24)) continue;
      const generation = readUint32(header, 8);
      if (best && best.generation >= generation) continue;
      let texts: string[] = [];
      if (textsLength > 0) {
        try {
          const decoded = decodeCbor(textBytes);
          if (Array.isArray(decoded)) texts = decoded.map((t) => String(t));
        } catch {
          continue;
        }
      }
      best = { slot, generation, version: readUint32(header, 12), count, texts };
    }
    return best;
  }

  /** The reason byte listed for `token`, or undefined; reads only the entries probed. */
  find(token: Uint8Array): number | undefined {
    const held = this.held;
    if (!held) return undefined;
    const base = this.tableBase(held.slot);
    let lo = 0;
    let hi = held.count - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const entry = this.flash.read(base + mid * ENTRY_BYTES, ENTRY_BYTES);
      this.lookupReads++;
      const order = compareTokens(entry, token);
      if (order === 0) return entry[CARD_TOKEN_LENGTH];
      if (order < 0) lo = mid + 1;
      else hi = mid - 1;
    }
    return undefined;
  }

  /** A writer into the spare slot (erases its header sector at once). */
  writer(texts: readonly string[]): TableWriter {
    const bytes = texts.length > 0 ? encodeCbor(texts) : new Uint8Array(0);
    if (bytes.length > BlacklistTable.textsCapacity)
      throw new RangeError(
        `local reason texts take ${bytes.length} bytes, a slot keeps ${BlacklistTable.textsCapacity}`,
      );
    return new TableWriter(
      this.flash,
      this.spareSlot * this.sectorsPerSlot,
      this.sectorsPerSlot,
      this.capacity,
      bytes,
    );
  }

  /** Ends a write: the header goes last, and the new slot is the one in force. */
  commit(writer: TableWriter, version: number, texts: string[]): void {
    const generation = (this.held?.generation ?? 0) + 1;
    const slot = this.spareSlot;
    writer.finish(generation, version);
    this.nextSlot = undefined;
    this.held = { slot, generation, version, count: writer.count, texts };
  }

  /** The held entries in order (for merges). */
  reader(): TableReader {
    const held = this.held;
    return new TableReader(this.flash, held ? this.tableBase(held.slot) : 0, held?.count ?? 0);
  }

  /**
   * Stages one page of a full list (entries ascending, `first` its index in the whole list) into
   * the spare slot at its place, erasing a sector the first time a page reaches it (`erased` marks
   * the sectors erased for this list). The header sector is erased with the first page staged.
   */
  stage(first: number, entries: readonly { token: Uint8Array; reason: number }[], erased: Uint8Array): void {
    if (entries.length === 0) return;
    const firstSector = this.spareSlot * this.sectorsPerSlot;
    const start = TABLE_OFFSET + first * ENTRY_BYTES;
    const end = start + entries.length * ENTRY_BYTES;
    for (let s = 0; s <= Math.floor((end - 1) / this.flash.sectorSize); s++) {
      if (s > 0 && s < Math.floor(start / this.flash.sectorSize)) continue;
      if (erased[s]) continue;
      this.flash.eraseSector(firstSector + s);
      erased[s] = 1;
    }
    const bytes = new Uint8Array(end - start);
    entries.forEach((e, i) => {
      bytes.set(e.token, i * ENTRY_BYTES);
      bytes[i * ENTRY_BYTES + CARD_TOKEN_LENGTH] = e.reason;
    });
    this.flash.write(this.slotBase(this.spareSlot) + start, bytes);
  }

  /** Reads entry `index` of the spare slot (a staged list). */
  staged(index: number): Uint8Array {
    return this.flash.read(this.tableBase(this.spareSlot) + index * ENTRY_BYTES, ENTRY_BYTES);
  }

  /** Puts a staged list of `count` entries in force: its CRC read back from flash, then the header. */
  commitStaged(count: number, version: number, erased: Uint8Array): void {
    const slot = this.spareSlot;
    if (!erased[0]) {
      this.flash.eraseSector(slot * this.sectorsPerSlot);
      erased[0] = 1;
    }
    const base = this.tableBase(slot);
    const total = count * ENTRY_BYTES;
    let crc = crc32(new Uint8Array(0));
    for (let at = 0; at < total; at += this.flash.sectorSize)
      crc = crc32(this.flash.read(base + at, Math.min(this.flash.sectorSize, total - at)), crc);
    const generation = (this.held?.generation ?? 0) + 1;
    const header = new Uint8Array(HEADER).fill(0xff);
    writeUint32(header, 0, TABLE_MAGIC);
    writeUint32(header, 4, FORMAT);
    writeUint32(header, 8, generation);
    writeUint32(header, 12, version);
    writeUint32(header, 16, count);
    writeUint32(header, 20, 0);
    writeUint32(header, 24, crc);
    this.flash.write(this.slotBase(slot), header);
    this.nextSlot = undefined;
    this.held = { slot, generation, version, count, texts: [] };
  }
}
