// The reader files store (the seed's fourth store): the files the card reader works from — card
// application profiles, SAM key versions, reader parameters — each named and versioned, downloaded
// by the management service and kept on their own partition in a two-slot store. A file is only
// ever replaced by a newer version, and the whole set is written at once, so a power cut leaves
// either the old set or the new one.
import type { NorFlash } from '../../hal/flash';
import { encodeCbor } from '../../protocol/cbor';
import { READER_FILE_KINDS, type ReaderFileKind } from '../../protocol/readerFiles';
import { SlotStore } from './slotStore';

const SLOT_MAGIC = 0x504c5231; // "PLR1"

export interface ReaderFile {
  version: number;
  bytes: Uint8Array;
  /** What the file is for (protocol/readerFiles.ts); files stored before kinds count as documents. */
  kind: ReaderFileKind;
}

export class StaleReaderFileError extends Error {
  override readonly name: string = 'StaleReaderFileError';
  constructor(name: string, version: number, held: number) {
    super(`reader file ${name} version ${version} is not newer than the ${held} held`);
  }
}

export class ReaderFilesStore {
  readonly #store: SlotStore;
  #files = new Map<string, ReaderFile>();

  constructor(flash: NorFlash) {
    this.#store = new SlotStore(flash, SLOT_MAGIC);
    const saved = this.#store.load();
    if (!Array.isArray(saved)) return;
    for (const item of saved) {
      if (
        Array.isArray(item) &&
        typeof item[0] === 'string' &&
        Number.isSafeInteger(item[1]) &&
        item[2] instanceof Uint8Array
      ) {
        const kind = (READER_FILE_KINDS as readonly unknown[]).includes(item[3])
          ? (item[3] as ReaderFileKind)
          : 'document';
        this.#files.set(item[0], { version: item[1], bytes: item[2], kind });
      }
    }
  }

  get(name: string): ReaderFile | undefined {
    const file = this.#files.get(name);
    return file && { version: file.version, bytes: file.bytes.slice(), kind: file.kind };
  }

  /** Names, kinds and versions of the files held. */
  list(): { name: string; kind: ReaderFileKind; version: number }[] {
    return [...this.#files].map(([name, file]) => ({ name, kind: file.kind, version: file.version }));
  }

  /** The largest body the store's slot holds, for every file together (CBOR framing included). */
  get capacity(): number {
    return this.#store.capacity;
  }

  /** Whether the set would still fit the slot with `name` replaced by a file of `length` bytes. */
  fits(name: string, length: number, kind: ReaderFileKind = 'document'): boolean {
    if (length > this.capacity) return false;
    const next = new Map(this.#files).set(name, { version: 1, bytes: new Uint8Array(length), kind });
    const sized = [...next].map(([n, f]) => [n, 0xffffffff, f.bytes, f.kind]);
    return encodeCbor(sized).length <= this.capacity;
  }

  /**
   * Stores a newer version of a file, durably; an older or equal version is refused
   * (StaleReaderFileError), and a set that does not fit the slot (RangeError), nothing changed.
   */
  put(name: string, version: number, bytes: Uint8Array, kind: ReaderFileKind = 'document'): void {
    if (!/^[a-z0-9][a-z0-9._-]{0,31}$/.test(name)) throw new RangeError(`bad reader file name ${name}`);
    if (!Number.isSafeInteger(version) || version < 1) throw new RangeError(`bad version ${version}`);
    const held = this.#files.get(name)?.version ?? 0;
    if (version <= held) throw new StaleReaderFileError(name, version, held);
    const next = new Map(this.#files).set(name, { version, bytes: bytes.slice(), kind });
    this.#store.save([...next].map(([n, f]) => [n, f.version, f.bytes, f.kind]));
    this.#files = next;
  }

  remove(name: string): void {
    if (!this.#files.has(name)) return;
    const next = new Map(this.#files);
    next.delete(name);
    this.#store.save([...next].map(([n, f]) => [n, f.version, f.bytes, f.kind]));
    this.#files = next;
  }
}
