// Storage management (411): the record stores on NOR flash.
//
// RecordLog is one partition: records appended to a ring of sectors, each entry carrying its
// sequence number, its hash-chain link, a CRC-32 and a commit byte written last, so a write torn by
// a power cut is recognised and rolled back at the next boot. A damaged entry (a flipped bit, an
// erased or unreadable sector) does not end the readable log: the scan resynchronises after it and
// the missing sequence numbers are reported as holes. A sector is erased for reuse only when every
// record in it has been acknowledged by the platform; sectors are used in rotation, so wear spreads.
//
// RecordStore is the storage unit proper: the main record store and the real-time comprehensive
// backup written in step (main first, then backup), the whole-set upload backup (UploadBackup) and
// the acknowledgement ledger. At boot it compares the two stores; a store that is damaged or behind
// is restored from the other (and from the upload set), and every repair is reported in
// `report.findings` for a maintenance record and a fault event: damage is never silently accepted.
//
// Sector: magic "PLG1" | generation u32 | entries...
// Entry:  length u16 | ~length u16 | seq u32 | link[32] | record[length] | CRC-32 u32 | commit u8 (0x00)
import type { Crypto } from '../../hal/crypto';
import type { NorFlash } from '../../hal/flash';
import type { Preferences } from '../../hal/preferences';
import {
  bytesEqual,
  crc32,
  ownBuffer,
  readUint16,
  readUint32,
  writeUint16,
  writeUint32,
} from '../../protocol/bytes';

const SECTOR_MAGIC = 0x504c4731; // "PLG1"
const SECTOR_HEADER = 8;
const ENTRY_HEADER = 40;
const ENTRY_TRAILER = 5;
const COMMITTED = 0x00;
export const MAX_RECORD_BYTES = 1024;
/** Bytes an entry takes on flash around its record. */
export const ENTRY_OVERHEAD = ENTRY_HEADER + ENTRY_TRAILER;

export class StorageFullError extends Error {
  override readonly name: string = 'StorageFullError';
  constructor(message = 'record store full: unacknowledged records fill every sector') {
    super(message);
  }
}

export class StorageCorruptError extends Error {
  override readonly name: string = 'StorageCorruptError';
  constructor(message: string) {
    super(message);
  }
}

export interface StoredRecord {
  seq: number;
  link: Uint8Array;
  bytes: Uint8Array;
}

/** What MainRecord and the communication unit need from a record store. */
export interface RecordSource {
  readonly lastSeq: number;
  readonly lastLink: Uint8Array | undefined;
  readonly firstSeq: number;
  append(seq: number, link: Uint8Array, bytes: Uint8Array, oldestUnacknowledged: number): void;
  read(from: number, to?: number, limit?: number): StoredRecord[];
  linkOf(seq: number): Uint8Array | undefined;
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
  /** Entries found torn (no commit byte or bad CRC at the end of a sector's written part) and rolled back. */
  tornEntries: number;
  /** Bad entries with good entries after them: damage, not a power cut. */
  damagedEntries: number;
  /** Sequence numbers missing between firstSeq and lastSeq (inclusive ranges). */
  holes: [number, number][];
  /** Sectors with no valid header, treated as free. */
  freeSectors: number;
}

interface ScanResult {
  /** Where the written part ends (sectorSize when the sector must be closed). */
  end: number;
  torn: boolean;
  damaged: number;
}

export class RecordLog implements RecordSource {
  readonly #flash: NorFlash;
  readonly #sectorCount: number;
  /** Sectors in use, oldest first. */
  #sectors: SectorInfo[] = [];
  #lastSeq = 0;
  #lastLink: Uint8Array | undefined;
  #holes: [number, number][] = [];
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

  /** Sequence numbers missing between firstSeq and lastSeq. */
  get holes(): readonly [number, number][] {
    return this.#holes;
  }

  /** Whether record `seq` is held (between firstSeq and lastSeq and not in a hole). */
  has(seq: number): boolean {
    if (seq < this.firstSeq || seq > this.#lastSeq) return false;
    return !this.#holes.some(([from, to]) => seq >= from && seq <= to);
  }

  /** Appends the next record (seq must be lastSeq + 1); durable when this returns. */
  append(seq: number, link: Uint8Array, bytes: Uint8Array, oldestUnacknowledged: number): void {
    if (seq !== this.#lastSeq + 1) throw new RangeError(`append seq ${seq} after ${this.#lastSeq}`);
    this.#write(seq, link, bytes, oldestUnacknowledged);
  }

  /** Whether an entry of `recordBytes` fits without overwriting an unacknowledged record. */
  canAppend(recordBytes: number, oldestUnacknowledged: number): boolean {
    const size = ENTRY_OVERHEAD + recordBytes;
    const newest = this.#sectors[this.#sectors.length - 1];
    if (newest && newest.end + size <= this.#flash.sectorSize) return true;
    if (this.#sectors.length < this.#sectorCount) return true;
    return this.#sectors.length > 1 && this.#sectors[0].lastSeq < oldestUnacknowledged;
  }

  /**
   * Bytes still writable without overwriting an unacknowledged record: the rest of the newest
   * sector, free sectors, and the oldest sectors whose records are all acknowledged.
   */
  freeBytes(oldestUnacknowledged: number): number {
    const payload = this.#flash.sectorSize - SECTOR_HEADER;
    const newest = this.#sectors[this.#sectors.length - 1];
    let free = newest ? this.#flash.sectorSize - newest.end : 0;
    free += (this.#sectorCount - this.#sectors.length) * payload;
    for (let i = 0; i < this.#sectors.length - 1; i++) {
      if (this.#sectors[i].lastSeq >= oldestUnacknowledged) break;
      free += payload;
    }
    return free;
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

  /** Every record held from `from` on, sector by sector (keeps one sector's records in memory). */
  *entries(from = 0): Generator<StoredRecord> {
    for (const sector of this.#sectors) {
      if (sector.firstSeq === 0 || sector.lastSeq < from) continue;
      const batch: StoredRecord[] = [];
      this.#scan(sector.index, (entry) => {
        if (entry.seq >= from) batch.push(entry);
        return true;
      });
      yield* batch;
    }
  }

  /** The chain link stored with record `seq`, if the record is still held. */
  linkOf(seq: number): Uint8Array | undefined {
    return this.read(seq, seq)[0]?.link;
  }

  /** Sectors holding records and sectors free, for wear and capacity reporting. */
  get usage(): { sectorsUsed: number; sectorsTotal: number } {
    return { sectorsUsed: this.#sectors.length, sectorsTotal: this.#sectorCount };
  }

  /**
   * Replaces the whole log with `records` (ascending seq, gaps allowed): every written sector is
   * erased first, then the records are appended. A power cut half-way leaves a log with holes or a
   * short tail, which the next boot sees as damage and rebuilds again from the same source.
   */
  rebuild(records: Iterable<StoredRecord>, oldestUnacknowledged = Number.MAX_SAFE_INTEGER): void {
    for (let index = 0; index < this.#sectorCount; index++) {
      if (!this.#blank(index)) this.#flash.eraseSector(index);
    }
    this.#sectors = [];
    this.#lastSeq = 0;
    this.#lastLink = undefined;
    this.#holes = [];
    let previous = 0;
    for (const r of records) {
      if (r.seq <= previous) continue;
      if (previous > 0 && r.seq > previous + 1) this.#holes.push([previous + 1, r.seq - 1]);
      this.#write(r.seq, r.link, r.bytes, oldestUnacknowledged);
      previous = r.seq;
    }
    this.report = {
      records: 0,
      firstSeq: this.firstSeq,
      lastSeq: this.#lastSeq,
      tornEntries: 0,
      damagedEntries: 0,
      holes: this.#holes.slice(),
      freeSectors: this.#sectorCount - this.#sectors.length,
    };
  }

  #write(seq: number, link: Uint8Array, bytes: Uint8Array, oldestUnacknowledged: number): void {
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
      // Records below the new oldest sector are gone: holes among them no longer matter.
      const first = this.firstSeq;
      this.#holes = this.#holes.filter(([, to]) => to >= first);
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

  #blank(index: number): boolean {
    const data = this.#flash.read(index * this.#flash.sectorSize, this.#flash.sectorSize);
    for (let i = 0; i < data.length; i++) if (data[i] !== 0xff) return false;
    return true;
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
    let damagedEntries = 0;
    let records = 0;
    let previous: StoredRecord | undefined;
    const holes: [number, number][] = [];
    for (const sector of found) {
      const result = this.#scan(sector.index, (entry) => {
        if (previous && entry.seq <= previous.seq) {
          damagedEntries++; // out of order: not trusted
          return true;
        }
        if (previous && entry.seq > previous.seq + 1) holes.push([previous.seq + 1, entry.seq - 1]);
        if (sector.firstSeq === 0) sector.firstSeq = entry.seq;
        sector.lastSeq = entry.seq;
        previous = entry;
        records++;
        return true;
      });
      sector.end = result.end;
      if (result.torn) tornEntries++;
      damagedEntries += result.damaged;
    }
    this.#sectors = found;
    this.#lastSeq = previous?.seq ?? 0;
    this.#lastLink = previous?.link;
    this.#holes = holes;
    return {
      records,
      firstSeq: found.find((s) => s.firstSeq > 0)?.firstSeq ?? 0,
      lastSeq: this.#lastSeq,
      tornEntries,
      damagedEntries,
      holes: holes.slice(),
      freeSectors,
    };
  }

  /** The valid, committed entry at `offset` of the sector at `base`, or undefined. */
  #entryAt(base: number, offset: number): StoredRecord | undefined {
    const size = this.#flash.sectorSize;
    if (offset + ENTRY_HEADER + ENTRY_TRAILER > size) return undefined;
    const head = this.#flash.read(base + offset, ENTRY_HEADER);
    const length = readUint16(head, 0);
    if (readUint16(head, 2) !== (~length & 0xffff) || length === 0 || length > MAX_RECORD_BYTES)
      return undefined;
    if (offset + ENTRY_HEADER + length + ENTRY_TRAILER > size) return undefined;
    const rest = this.#flash.read(base + offset + ENTRY_HEADER, length + ENTRY_TRAILER);
    if (rest[length + 4] !== COMMITTED) return undefined;
    const whole = new Uint8Array(ENTRY_HEADER + length);
    whole.set(head, 0);
    whole.set(rest.subarray(0, length), ENTRY_HEADER);
    if (crc32(whole) !== readUint32(rest, length)) return undefined;
    return { seq: readUint32(head, 4), link: head.slice(8, 40), bytes: rest.slice(0, length) };
  }

  #erasedAt(base: number, offset: number): boolean {
    if (offset + 8 > this.#flash.sectorSize) return true;
    const head = this.#flash.read(base + offset, 8);
    return readUint32(head, 0) === 0xffffffff && readUint32(head, 4) === 0xffffffff;
  }

  /**
   * Walks a sector's committed entries; `visit` returns false to stop early. A bad entry is skipped:
   * by its length when that is intact and a good entry or erased space follows, else byte by byte
   * until the next good entry. A bad stretch with good entries after it is damage; one at the end
   * of the written part is a torn write, and the sector is then closed (its remaining space cannot
   * be trusted to be erased).
   */
  #scan(index: number, visit: (entry: StoredRecord) => boolean): ScanResult {
    const size = this.#flash.sectorSize;
    const base = index * size;
    let offset = SECTOR_HEADER;
    let bad = false;
    let damaged = 0;
    while (offset + ENTRY_HEADER + ENTRY_TRAILER <= size) {
      if (this.#erasedAt(base, offset)) {
        return bad ? { end: size, torn: true, damaged } : { end: offset, torn: false, damaged };
      }
      const entry = this.#entryAt(base, offset);
      if (entry) {
        if (bad) damaged++;
        bad = false;
        offset += ENTRY_OVERHEAD + entry.bytes.length;
        if (!visit(entry)) return { end: size, torn: false, damaged };
        continue;
      }
      if (!bad) {
        bad = true;
        // A damaged body under an intact header: try the entry's own length first.
        const head = this.#flash.read(base + offset, 4);
        const length = readUint16(head, 0);
        if (readUint16(head, 2) === (~length & 0xffff) && length > 0 && length <= MAX_RECORD_BYTES) {
          const next = offset + ENTRY_OVERHEAD + length;
          if (next <= size && this.#entryAt(base, next)) {
            offset = next;
            continue;
          }
        }
      }
      offset++;
    }
    return { end: size, torn: bad, damaged };
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

// ---- Whole-set upload backup -------------------------------------------------------------------
//
// The set being uploaded is copied here before it is sent and sent from here until the platform
// acknowledges it (or an operator releases it), so a resend carries exactly the same bytes. One set
// per sector, sectors used in rotation (the newest committed slot is the current set):
//
// Slot: magic "PLU1" | generation u32 | firstSeq u32 | count u32 | body length u32 | CRC-32 u32
//       | last link[32] | commit u8 @56 (0x00 once complete) | ack u8 @57 (0x00 once acknowledged)
//       | pad to 64 | body: prev[32] then (length u16 | record bytes) per record
// The CRC covers bytes 0..23 and 24..55 of the header (all but itself) and the body.

const SLOT_MAGIC = 0x504c5531; // "PLU1"
const SLOT_HEADER = 64;
const SLOT_COMMIT = 56;
const SLOT_ACK = 57;

export interface UploadSet {
  firstSeq: number;
  lastSeq: number;
  previous: Uint8Array;
  records: Uint8Array[];
  lastLink: Uint8Array;
  acknowledged: boolean;
}

export class UploadBackup {
  readonly #flash: NorFlash;
  readonly #slots: number;
  #current: (UploadSet & { index: number; generation: number }) | undefined;

  constructor(flash: NorFlash) {
    if (flash.byteLength / flash.sectorSize < 2) throw new RangeError('upload backup needs two sectors');
    this.#flash = flash;
    this.#slots = flash.byteLength / flash.sectorSize;
    this.#mount();
  }

  /** The newest set copied here, acknowledged or not. */
  get current(): UploadSet | undefined {
    return this.#current;
  }

  /** Largest body a slot holds: the chain link before the set, then 2 bytes of length per record. */
  get capacity(): number {
    return this.#flash.sectorSize - SLOT_HEADER - 32;
  }

  /** Copies a contiguous run of records (with the link before it) into the next slot; durable on return. */
  save(previous: Uint8Array, records: readonly StoredRecord[]): UploadSet {
    if (records.length === 0) throw new RangeError('an upload set holds at least one record');
    records.forEach((r, i) => {
      if (r.seq !== records[0].seq + i) throw new RangeError('an upload set is a contiguous run');
    });
    const bodyLength = 32 + records.reduce((sum, r) => sum + 2 + r.bytes.length, 0);
    if (bodyLength > this.#flash.sectorSize - SLOT_HEADER) throw new RangeError('upload set too large');
    const body = new Uint8Array(bodyLength);
    body.set(previous, 0);
    let at = 32;
    for (const r of records) {
      writeUint16(body, at, r.bytes.length);
      body.set(r.bytes, at + 2);
      at += 2 + r.bytes.length;
    }
    const last = records[records.length - 1];
    const generation = (this.#current?.generation ?? 0) + 1;
    const index = this.#current ? (this.#current.index + 1) % this.#slots : 0;
    const header = new Uint8Array(SLOT_COMMIT);
    writeUint32(header, 0, SLOT_MAGIC);
    writeUint32(header, 4, generation);
    writeUint32(header, 8, records[0].seq);
    writeUint32(header, 12, records.length);
    writeUint32(header, 16, bodyLength);
    header.set(last.link, 24);
    writeUint32(header, 20, slotCrc(header, body));
    const base = index * this.#flash.sectorSize;
    this.#flash.eraseSector(index);
    this.#flash.write(base + SLOT_HEADER, body);
    this.#flash.write(base, header);
    this.#flash.write(base + SLOT_COMMIT, Uint8Array.of(COMMITTED));
    this.#current = {
      index,
      generation,
      firstSeq: records[0].seq,
      lastSeq: last.seq,
      previous: previous.slice(),
      records: records.map((r) => r.bytes.slice()),
      lastLink: last.link.slice(),
      acknowledged: false,
    };
    return this.#current;
  }

  /** Marks the current set acknowledged (or released) on flash. */
  markAcknowledged(): void {
    const current = this.#current;
    if (!current || current.acknowledged) return;
    this.#flash.write(current.index * this.#flash.sectorSize + SLOT_ACK, Uint8Array.of(COMMITTED));
    current.acknowledged = true;
  }

  #mount(): void {
    for (let index = 0; index < this.#slots; index++) {
      const base = index * this.#flash.sectorSize;
      const header = this.#flash.read(base, SLOT_HEADER);
      if (readUint32(header, 0) !== SLOT_MAGIC || header[SLOT_COMMIT] !== COMMITTED) continue;
      const generation = readUint32(header, 4);
      if (this.#current && this.#current.generation >= generation) continue;
      const bodyLength = readUint32(header, 16);
      const count = readUint32(header, 12);
      if (bodyLength < 32 || bodyLength > this.#flash.sectorSize - SLOT_HEADER || count === 0) continue;
      const body = this.#flash.read(base + SLOT_HEADER, bodyLength);
      if (slotCrc(header.subarray(0, SLOT_COMMIT), body) !== readUint32(header, 20)) continue;
      const records: Uint8Array[] = [];
      let at = 32;
      for (let i = 0; i < count && at + 2 <= bodyLength; i++) {
        const length = readUint16(body, at);
        records.push(body.slice(at + 2, at + 2 + length));
        at += 2 + length;
      }
      if (records.length !== count || at !== bodyLength) continue;
      const firstSeq = readUint32(header, 8);
      this.#current = {
        index,
        generation,
        firstSeq,
        lastSeq: firstSeq + count - 1,
        previous: body.slice(0, 32),
        records,
        lastLink: header.slice(24, 56),
        acknowledged: header[SLOT_ACK] === COMMITTED,
      };
    }
  }
}

function slotCrc(header: Uint8Array, body: Uint8Array): number {
  return crc32(body, crc32(header.subarray(24, 56), crc32(header.subarray(0, 20))));
}

// ---- The storage unit -------------------------------------------------------------------------

export type FindingAction =
  /** A torn write was rolled back (a power cut during an append: expected, nothing lost). */
  | 'rolled-back'
  /** The backup was one step behind the main store (cut between the two writes) and caught up. */
  | 'caught-up'
  /** A store was damaged or behind and was rebuilt from the other (and the upload set). */
  | 'restored'
  /** Records held by neither store nor the upload set. */
  | 'lost'
  /** The acknowledgement noted in the upload backup was carried into the ledger. */
  | 'ack-recovered';

export interface StorageFinding {
  store: 'main' | 'backup' | 'upload';
  action: FindingAction;
  detail: string;
  from?: number;
  to?: number;
}

export interface StoreReport extends BootReport {
  findings: StorageFinding[];
}

export interface RecordStoreOptions {
  /** Main record store. */
  records: NorFlash;
  /** Real-time comprehensive backup. */
  backup: NorFlash;
  /** Whole-set upload backup. */
  upload: NorFlash;
  preferences: Preferences;
  crypto: Crypto;
  /**
   * Bytes kept back for operation and maintenance records: below this much free space the meter
   * stops selling (default: half a sector).
   */
  reserveBytes?: number;
}

export class RecordStore implements RecordSource {
  readonly main: RecordLog;
  readonly backup: RecordLog;
  readonly uploads: UploadBackup;
  readonly ledger: UploadLedger;
  readonly report: StoreReport;
  readonly #reserve: number;
  readonly #preferences: Preferences;
  readonly crypto: Crypto;

  constructor(options: RecordStoreOptions) {
    this.main = new RecordLog(options.records);
    this.backup = new RecordLog(options.backup);
    this.uploads = new UploadBackup(options.upload);
    this.ledger = new UploadLedger(options.preferences);
    this.#preferences = options.preferences;
    this.crypto = options.crypto;
    this.#reserve = options.reserveBytes ?? options.records.sectorSize / 2;
    const findings = this.#reconcile();
    const m = this.main.report;
    this.report = {
      ...m,
      records: this.main.read(this.main.firstSeq).length,
      firstSeq: this.main.firstSeq,
      lastSeq: this.main.lastSeq,
      holes: this.main.holes.slice(),
      findings,
    };
  }

  get lastSeq(): number {
    return this.main.lastSeq;
  }

  get lastLink(): Uint8Array | undefined {
    return this.main.lastLink;
  }

  get firstSeq(): number {
    return this.main.firstSeq;
  }

  get usage(): { sectorsUsed: number; sectorsTotal: number } {
    return this.main.usage;
  }

  read(from: number, to?: number, limit?: number): StoredRecord[] {
    return this.main.read(from, to, limit);
  }

  linkOf(seq: number): Uint8Array | undefined {
    return this.main.linkOf(seq) ?? this.backup.linkOf(seq);
  }

  /** Bytes free in the fuller of the two stores. */
  get freeBytes(): number {
    const oldest = this.ledger.acknowledgedSeq + 1;
    return Math.min(this.main.freeBytes(oldest), this.backup.freeBytes(oldest));
  }

  /** Below the reserve: no more sales until acknowledged uploads free space. */
  get full(): boolean {
    return this.freeBytes < this.#reserve;
  }

  /** Main store first, then the backup; both checked for room before either is written. */
  append(seq: number, link: Uint8Array, bytes: Uint8Array, oldestUnacknowledged: number): void {
    if (seq !== this.main.lastSeq + 1) throw new RangeError(`append seq ${seq} after ${this.main.lastSeq}`);
    if (
      !this.main.canAppend(bytes.length, oldestUnacknowledged) ||
      !this.backup.canAppend(bytes.length, oldestUnacknowledged)
    ) {
      throw new StorageFullError();
    }
    this.main.append(seq, link, bytes, oldestUnacknowledged);
    this.backup.append(seq, link, bytes, oldestUnacknowledged);
  }

  /** Records the platform acknowledged (or an operator released) up to `seq` with link `link`. */
  acknowledge(seq: number, link: Uint8Array): void {
    const set = this.uploads.current;
    if (set && !set.acknowledged && seq >= set.lastSeq) this.uploads.markAcknowledged();
    this.ledger.acknowledge(seq, link);
  }

  /** The release key (see protocol/release.ts), provisioned at the factory beside the meter's keys. */
  static provisionReleaseKey(preferences: Preferences, key: Uint8Array): void {
    if (key.length !== 32) throw new RangeError('release key must be 32 bytes');
    preferences.set('upload', 'releaseKey', ownBuffer(key));
  }

  get releaseKey(): Uint8Array | undefined {
    const key = this.#preferences.get('upload', 'releaseKey');
    return key instanceof ArrayBuffer && key.byteLength === 32 ? new Uint8Array(key) : undefined;
  }

  #reconcile(): StorageFinding[] {
    const findings: StorageFinding[] = [];
    const { main, backup, uploads, ledger } = this;
    const torn = main.report.tornEntries + backup.report.tornEntries;
    if (torn > 0) {
      findings.push({ store: 'main', action: 'rolled-back', detail: `${torn} torn entries rolled back` });
    }

    // An acknowledgement that reached the upload backup but not the ledger.
    const set = uploads.current;
    if (set?.acknowledged && set.lastSeq > ledger.acknowledgedSeq) {
      ledger.acknowledge(set.lastSeq, set.lastLink);
      findings.push({
        store: 'upload',
        action: 'ack-recovered',
        detail: `acknowledgement of record ${set.lastSeq} carried into the ledger`,
        to: set.lastSeq,
      });
    }
    const acked = ledger.acknowledgedSeq;
    const setRecords = this.#setRecords();
    const setLast = setRecords.length ? setRecords[setRecords.length - 1].seq : 0;
    const hi = Math.max(main.lastSeq, backup.lastSeq, setLast);

    // In step: the backup is written after the main store, so a cut between the two leaves the
    // backup one record behind. Bring it level before judging either.
    if (main.lastSeq > backup.lastSeq && backup.lastSeq >= main.firstSeq - 1 && this.#clean(backup, acked)) {
      const missing = main.read(backup.lastSeq + 1);
      const fits = missing.every((r) => backup.canAppend(r.bytes.length, acked + 1));
      if (
        fits &&
        missing.length === 1 &&
        missing.length === main.lastSeq - backup.lastSeq &&
        missing[0]?.seq === backup.lastSeq + 1
      ) {
        for (const r of missing) backup.append(r.seq, r.link, r.bytes, acked + 1);
        findings.push({
          store: 'backup',
          action: 'caught-up',
          detail: `backup caught up with ${missing.length} record(s) of the main store`,
          from: missing[0].seq,
          to: main.lastSeq,
        });
      }
    }

    const mainOk = this.#complete(main, acked, hi);
    const backupOk = this.#complete(backup, acked, hi);
    if (mainOk && backupOk) return findings;

    // Records held nowhere, whatever is rebuilt.
    const lost: [number, number][] = [];
    for (let seq = Math.max(acked + 1, 1); seq <= hi; seq++) {
      if (main.has(seq) || backup.has(seq) || setRecords.some((r) => r.seq === seq)) continue;
      const open = lost[lost.length - 1];
      if (open && open[1] === seq - 1) open[1] = seq;
      else lost.push([seq, seq]);
    }

    if (!mainOk && backupOk) {
      main.rebuild(merge(backup.entries(), setRecords), acked + 1);
      findings.push(restored('main', 'backup', main.report.lastSeq));
    } else if (mainOk && !backupOk) {
      backup.rebuild(merge(main.entries(), setRecords), acked + 1);
      findings.push(restored('backup', 'main', backup.report.lastSeq));
    } else {
      // Both damaged: what only the backup holds is kept in memory while the backup is rebuilt from
      // the main store, then the main store is rebuilt from the completed backup.
      const onlyBackup: StoredRecord[] = [];
      for (const r of backup.entries()) if (!main.has(r.seq)) onlyBackup.push(r);
      backup.rebuild(merge(merge(main.entries(), onlyBackup), setRecords), acked + 1);
      main.rebuild(backup.entries(), acked + 1);
      findings.push(restored('backup', 'main store, backup and upload set', backup.lastSeq));
      findings.push(restored('main', 'rebuilt backup', main.lastSeq));
    }
    for (const [from, to] of lost) {
      findings.push({
        store: 'main',
        action: 'lost',
        detail: `record(s) ${from}..${to} damaged in both stores and not in the upload set`,
        from,
        to,
      });
    }
    return findings;
  }

  /** Records of the upload backup's set, with their links (recomputed from the set's prev). */
  #setRecords(): StoredRecord[] {
    const set = this.uploads.current;
    if (!set) return [];
    const out: StoredRecord[] = [];
    let link = set.previous;
    set.records.forEach((bytes, i) => {
      link = this.crypto.sha256(concat(link, bytes));
      out.push({ seq: set.firstSeq + i, link, bytes });
    });
    // A set whose recomputed last link does not match its header is not trusted.
    return bytesEqual(link, set.lastLink) ? out : [];
  }

  /** No damage, and every unacknowledged record up to `hi` present. */
  #complete(log: RecordLog, acked: number, hi: number): boolean {
    if (log.report.damagedEntries > 0) return false;
    if (log.lastSeq < hi) return false;
    if (hi > acked && log.firstSeq > acked + 1 && log.lastSeq > 0) return false;
    if (hi > acked && log.lastSeq === 0) return false;
    return log.holes.every(([, to]) => to <= acked);
  }

  #clean(log: RecordLog, acked: number): boolean {
    return log.report.damagedEntries === 0 && log.holes.every(([, to]) => to <= acked);
  }
}

function restored(store: 'main' | 'backup', from: string, lastSeq: number): StorageFinding {
  return {
    store,
    action: 'restored',
    detail: `${store === 'main' ? 'main store' : 'backup'} damaged or behind: rebuilt from the ${from} (to record ${lastSeq})`,
    to: lastSeq,
  };
}

/** Merges two ascending record streams by seq, the first winning on equal seqs. */
function* merge(a: Iterable<StoredRecord>, b: Iterable<StoredRecord>): Generator<StoredRecord> {
  const ia = a[Symbol.iterator]();
  const ib = b[Symbol.iterator]();
  let x = ia.next();
  let y = ib.next();
  while (!x.done || !y.done) {
    if (y.done || (!x.done && x.value.seq <= y.value.seq)) {
      if (!y.done && !x.done && x.value.seq === y.value.seq) y = ib.next();
      yield x.value as StoredRecord;
      x = ia.next();
    } else {
      yield y.value;
      y = ib.next();
    }
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}
