// Storage management (411): the record log on NOR flash. Records are appended to a ring of sectors,
// each entry carrying its sequence number, its hash-chain link, a CRC-32 and a commit byte written
// last, so a write torn by a power cut is recognised and skipped at the next boot. A sector is
// erased for reuse only when every record in it has been acknowledged by the platform.
//
// Sector: magic "PLG1" | generation u32 | entries...
// Entry:  length u16 | ~length u16 | seq u32 | link[32] | record[length] | CRC-32 u32 | commit u8 (0x00)
import type { NorFlash } from '../../hal/flash';
import type { Preferences } from '../../hal/preferences';
import { bytesEqual, crc32, readUint16, readUint32, writeUint16, writeUint32 } from '../../protocol/bytes';

const SECTOR_MAGIC = 0x504c4731; // "PLG1"
const SECTOR_HEADER = 8;
const ENTRY_HEADER = 40;
const ENTRY_TRAILER = 5;
const COMMITTED = 0x00;
export const MAX_RECORD_BYTES = 1024;

export class StorageFullError extends Error {
  constructor() {
    super('record store full: unacknowledged records fill every sector');
    this.name = 'StorageFullError';
  }
}

export class StorageCorruptError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StorageCorruptError';
  }
}

export interface StoredRecord {
  seq: number;
  link: Uint8Array;
  bytes: Uint8Array;
}

interface SectorInfo {
  index: number;
  generation: number;
  firstSeq: number;
  lastSeq: number;
  /** Where the next entry would go, or sectorSize when the sector is closed. */
  end: number;
}

export interface BootReport {
  records: number;
  firstSeq: number;
  lastSeq: number;
  /** Entries found torn (no commit byte or bad CRC) and skipped. */
  tornEntries: number;
  /** Sectors with no valid header, treated as free. */
  freeSectors: number;
}

export class RecordLog {
  readonly #flash: NorFlash;
  readonly #sectorCount: number;
  /** Sectors in use, oldest first. */
  #sectors: SectorInfo[] = [];
  #lastSeq = 0;
  #lastLink: Uint8Array | undefined;
  report: BootReport;

  constructor(flash: NorFlash) {
    if (flash.byteLength / flash.sectorSize < 2)
      throw new RangeError('record log needs at least two sectors');
    this.#flash = flash;
    this.#sectorCount = flash.byteLength / flash.sectorSize;
    this.report = this.#mount();
  }

  get lastSeq(): number {
    return this.#lastSeq;
  }

  get lastLink(): Uint8Array | undefined {
    return this.#lastLink;
  }

  get firstSeq(): number {
    return this.#sectors.find((s) => s.firstSeq > 0)?.firstSeq ?? this.#lastSeq + 1;
  }

  /** Appends the next record (seq must be lastSeq + 1); durable when this returns. */
  append(seq: number, link: Uint8Array, bytes: Uint8Array, oldestUnacknowledged: number): void {
    if (seq !== this.#lastSeq + 1) throw new RangeError(`append seq ${seq} after ${this.#lastSeq}`);
    if (link.length !== 32) throw new RangeError('link must be 32 bytes');
    if (bytes.length === 0 || bytes.length > MAX_RECORD_BYTES)
      throw new RangeError('record size out of range');
    const size = ENTRY_HEADER + bytes.length + ENTRY_TRAILER;
    let sector = this.#sectors[this.#sectors.length - 1];
    if (!sector || sector.end + size > this.#flash.sectorSize) {
      sector = this.#openSector(oldestUnacknowledged);
    }
    const entry = new Uint8Array(size - 1);
    writeUint16(entry, 0, bytes.length);
    writeUint16(entry, 2, ~bytes.length & 0xffff);
    writeUint32(entry, 4, seq);
    entry.set(link, 8);
    entry.set(bytes, ENTRY_HEADER);
    writeUint32(entry, ENTRY_HEADER + bytes.length, crc32(entry.subarray(0, ENTRY_HEADER + bytes.length)));
    const offset = sector.index * this.#flash.sectorSize + sector.end;
    sector.end += size; // even if power fails below, this space is spent
    this.#flash.write(offset, entry);
    this.#flash.write(offset + size - 1, Uint8Array.of(COMMITTED));
    if (sector.firstSeq === 0) sector.firstSeq = seq;
    sector.lastSeq = seq;
    this.#lastSeq = seq;
    this.#lastLink = link.slice();
  }

  /** Reads records with from ≤ seq ≤ to, in order (records erased after acknowledgement are absent). */
  read(from: number, to = this.#lastSeq, limit = Number.POSITIVE_INFINITY): StoredRecord[] {
    const out: StoredRecord[] = [];
    for (const sector of this.#sectors) {
      if (sector.firstSeq === 0 || sector.lastSeq < from || sector.firstSeq > to) continue;
      this.#scan(sector.index, (entry) => {
        if (entry.seq >= from && entry.seq <= to && out.length < limit) out.push(entry);
        return entry.seq < to && out.length < limit;
      });
      if (out.length >= limit) break;
    }
    return out;
  }

  /** The chain link stored with record `seq`, if the record is still held. */
  linkOf(seq: number): Uint8Array | undefined {
    return this.read(seq, seq)[0]?.link;
  }

  /** Sectors holding records and sectors free, for wear and capacity reporting. */
  get usage(): { sectorsUsed: number; sectorsTotal: number } {
    return { sectorsUsed: this.#sectors.length, sectorsTotal: this.#sectorCount };
  }

  #openSector(oldestUnacknowledged: number): SectorInfo {
    const used = new Set(this.#sectors.map((s) => s.index));
    let index = -1;
    if (this.#sectors.length < this.#sectorCount) {
      const newest = this.#sectors[this.#sectors.length - 1];
      for (let step = 1; step <= this.#sectorCount; step++) {
        const candidate = ((newest?.index ?? -1) + step) % this.#sectorCount;
        if (!used.has(candidate)) {
          index = candidate;
          break;
        }
      }
    } else {
      const oldest = this.#sectors[0];
      // The oldest sector may go only if all its records are acknowledged, and it is not the newest.
      if (oldest.lastSeq >= oldestUnacknowledged || this.#sectors.length === 1) throw new StorageFullError();
      this.#sectors.shift();
      index = oldest.index;
    }
    const generation = (this.#sectors[this.#sectors.length - 1]?.generation ?? 0) + 1;
    this.#flash.eraseSector(index);
    const header = new Uint8Array(SECTOR_HEADER);
    writeUint32(header, 0, SECTOR_MAGIC);
    writeUint32(header, 4, generation);
    const sector: SectorInfo = { index, generation, firstSeq: 0, lastSeq: 0, end: this.#flash.sectorSize };
    this.#sectors.push(sector); // closed until its header is fully written
    this.#flash.write(index * this.#flash.sectorSize, header);
    sector.end = SECTOR_HEADER;
    return sector;
  }

  #mount(): BootReport {
    const found: SectorInfo[] = [];
    let freeSectors = 0;
    for (let index = 0; index < this.#sectorCount; index++) {
      const header = this.#flash.read(index * this.#flash.sectorSize, SECTOR_HEADER);
      if (readUint32(header, 0) !== SECTOR_MAGIC || readUint32(header, 4) === 0xffffffff) {
        freeSectors++;
        continue;
      }
      found.push({ index, generation: readUint32(header, 4), firstSeq: 0, lastSeq: 0, end: SECTOR_HEADER });
    }
    found.sort((a, b) => a.generation - b.generation);
    let tornEntries = 0;
    let records = 0;
    let previous: StoredRecord | undefined;
    for (const sector of found) {
      const torn = this.#scan(
        sector.index,
        (entry) => {
          if (previous && entry.seq !== previous.seq + 1) {
            throw new StorageCorruptError(
              `record ${entry.seq} follows ${previous.seq} in sector ${sector.index}`,
            );
          }
          if (sector.firstSeq === 0) sector.firstSeq = entry.seq;
          sector.lastSeq = entry.seq;
          previous = entry;
          records++;
          return true;
        },
        (end) => {
          sector.end = end;
        },
      );
      if (torn) tornEntries++;
    }
    this.#sectors = found;
    this.#lastSeq = previous?.seq ?? 0;
    this.#lastLink = previous?.link;
    return {
      records,
      firstSeq: found.find((s) => s.firstSeq > 0)?.firstSeq ?? 0,
      lastSeq: this.#lastSeq,
      tornEntries,
      freeSectors,
    };
  }

  /**
   * Walks a sector's committed entries; `visit` returns false to stop early. Returns true when the
   * walk ended at a torn entry, in which case the sector is closed (`onEnd(sectorSize)`): its
   * remaining space cannot be trusted to be erased.
   */
  #scan(index: number, visit: (entry: StoredRecord) => boolean, onEnd?: (end: number) => void): boolean {
    const size = this.#flash.sectorSize;
    const base = index * size;
    let offset = SECTOR_HEADER;
    while (offset + ENTRY_HEADER + ENTRY_TRAILER <= size) {
      const head = this.#flash.read(base + offset, ENTRY_HEADER);
      const length = readUint16(head, 0);
      if (length === 0xffff && readUint16(head, 2) === 0xffff && readUint32(head, 4) === 0xffffffff) {
        onEnd?.(offset); // erased space: the end of the written part
        return false;
      }
      const total = ENTRY_HEADER + length + ENTRY_TRAILER;
      if (readUint16(head, 2) !== (~length & 0xffff) || length > MAX_RECORD_BYTES || offset + total > size) {
        onEnd?.(size);
        return true;
      }
      const rest = this.#flash.read(base + offset + ENTRY_HEADER, length + ENTRY_TRAILER);
      const crc = readUint32(rest, length);
      const whole = new Uint8Array(ENTRY_HEADER + length);
      whole.set(head, 0);
      whole.set(rest.subarray(0, length), ENTRY_HEADER);
      if (rest[length + 4] !== COMMITTED || crc32(whole) !== crc) {
        onEnd?.(size);
        return true;
      }
      offset += total;
      const entry = { seq: readUint32(head, 4), link: head.slice(8, 40), bytes: rest.slice(0, length) };
      if (!visit(entry)) return false;
    }
    onEnd?.(size);
    return false;
  }
}

/** Checks that a stored link equals the one expected (used when the platform acknowledges). */
export function sameLink(a: Uint8Array | undefined, b: Uint8Array): boolean {
  return a !== undefined && bytesEqual(a, b);
}

/** What the platform has acknowledged, in one preference value (seq u32 | link[32]) so a power cut
 * never pairs a sequence number with the wrong link. */
export class UploadLedger {
  readonly #preferences: Preferences;
  #seq = 0;
  #link: Uint8Array | undefined;

  constructor(preferences: Preferences) {
    this.#preferences = preferences;
    const saved = preferences.get('upload', 'ack');
    if (saved instanceof ArrayBuffer && saved.byteLength === 36) {
      const bytes = new Uint8Array(saved);
      this.#seq = readUint32(bytes, 0);
      this.#link = bytes.slice(4);
    }
  }

  /** The highest sequence number the platform holds (0: none yet). */
  get acknowledgedSeq(): number {
    return this.#seq;
  }

  /** The chain link of that record (the `previous` of the next upload set). */
  get acknowledgedLink(): Uint8Array | undefined {
    return this.#link;
  }

  acknowledge(seq: number, link: Uint8Array): void {
    if (seq <= this.#seq) return;
    const bytes = new Uint8Array(36);
    writeUint32(bytes, 0, seq);
    bytes.set(link, 4);
    this.#preferences.set('upload', 'ack', bytes.buffer);
    this.#seq = seq;
    this.#link = link.slice();
  }
}
