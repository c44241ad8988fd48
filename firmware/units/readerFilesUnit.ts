// Reader files (management service 414d), meter side: the card reader's update documents, settings
// and firmware, offered as 0x8B (by the platform, or a handheld carrying its sealed frames through
// comms) and sent in chunks at the offset the meter asks for. Chunks are staged on the reader
// partition after the store's two slots; the download's offer and offset are one preferences
// entry, saved after every chunk, so a power cut or a dropped link resumes at the last chunk written.
// A complete file is hashed from flash and, for reader firmware, its release-key signature checked
// again (it was checked on the offer, before any byte came); then it is applied and stored:
//   - settings (a CBOR map, protocol/readerFiles.ts ReaderSettings): stored, then handed to the
//     reader unit (rfid.ts CardReaderPort.configure), and handed again at every start;
//   - reader firmware: streamed to the reader module (hal/readerFirmware.ts), then stored as its
//     SHA-256 (the module holds the image; the store's slot could not);
//   - documents: stored and reported; no unit reads them yet.
// Every step is reported as 0x0B with the files held. Anything refused gets a typed reason
// (ReaderFileRefused) and leaves the files held untouched.
import type { Crypto } from '../../hal/crypto';
import type { NorFlash } from '../../hal/flash';
import type { Preferences } from '../../hal/preferences';
import type { ReaderFirmwarePort } from '../../hal/readerFirmware';
import type { SignatureVerifier } from '../../hal/signatures';
import { bytesEqual } from '../../protocol/bytes';
import { decodeCbor, encodeCbor } from '../../protocol/cbor';
import { ProtocolError } from '../../protocol/errors';
import {
  decodeReaderFilesDownlink,
  decodeReaderSettings,
  encodeReaderFilesReport,
  READER_FILE_CHUNK,
  READER_FILE_KINDS,
  READER_FILES_DOWNLINK,
  READER_FILES_UPLINK,
  type ReaderFileKind,
  type ReaderFileOffer,
  type ReaderFileRefusal,
  type ReaderFilesReport,
  type ReaderSettings,
} from '../../protocol/readerFiles';
import type { EventBus } from '../bus';
import type { MeterEvents } from '../events';
import { checkReaderFirmwareSignature, ReaderFileRefused } from './readerFileVerify';
import { type ReaderFilesStore, StaleReaderFileError } from './readerFiles';

export { ReaderFileRefused };

const DOMAIN = 'readerFiles';
const KEY = 'download';
/** Sectors at the start of the reader partition that hold the store's two slots. */
export const STORE_SECTORS = 2;

interface Download {
  n: string;
  kind: ReaderFileKind;
  v: number;
  len: number;
  sha: Uint8Array;
  sig?: Uint8Array;
  /** Next byte wanted. */
  off: number;
  /** 'verified': hashed and checked, being applied (a cut here applies it again at start). */
  st: 'downloading' | 'verified';
}

export interface ReaderFilesOptions {
  store: ReaderFilesStore;
  /** The reader partition (the store's slots in its first two sectors, the staging area after). */
  partition: NorFlash;
  preferences: Preferences;
  crypto: Pick<Crypto, 'sha256'>;
  /** The board's Ed25519 check; without one, reader firmware is refused ('unsupported'). */
  signatures?: SignatureVerifier;
  /** Sends the 0x0B report (CommsUnit.send); false when the link is down. */
  send?: (type: number, body: Uint8Array) => boolean;
  bus?: EventBus<MeterEvents>;
  /** The release key pinned at provisioning (security.ts pinnedFirmwareKey), read when needed. */
  pinnedKey: () => Uint8Array | undefined;
  /** The reader unit, which takes settings files. */
  reader?: { configure?(settings: ReaderSettings): void };
  /** The reader module's firmware loader, on readers with firmware of their own. */
  readerFirmware?: ReaderFirmwarePort;
}

/** The reader partition after the store's slots, addressed from 0. */
class StagingArea implements NorFlash {
  readonly byteLength: number;
  readonly sectorSize: number;
  readonly #flash: NorFlash;
  readonly #base: number;

  constructor(flash: NorFlash, firstSector: number) {
    this.#flash = flash;
    this.sectorSize = flash.sectorSize;
    this.#base = firstSector * flash.sectorSize;
    this.byteLength = Math.max(0, flash.byteLength - this.#base);
  }

  read(offset: number, byteLength: number): Uint8Array {
    return this.#flash.read(this.#base + offset, byteLength);
  }

  write(offset: number, data: Uint8Array): void {
    this.#flash.write(this.#base + offset, data);
  }

  eraseSector(sector: number): void {
    this.#flash.eraseSector(this.#base / this.sectorSize + sector);
  }
}

export class ReaderFilesUnit {
  readonly #o: ReaderFilesOptions;
  readonly #staging: StagingArea;
  #download: Download | undefined;
  /** The outcome of the last file finished or refused, for reports until the next download. */
  #last:
    | { state: 'held' | 'refused'; name?: string; version?: number; reason?: ReaderFileRefusal }
    | undefined;

  constructor(options: ReaderFilesOptions) {
    this.#o = options;
    this.#staging = new StagingArea(options.partition, STORE_SECTORS);
    this.#download = this.#load();
    const bus = options.bus;
    if (bus) {
      bus.on('downlink', ({ type, body }) => {
        if (type !== READER_FILES_DOWNLINK) return;
        try {
          this.handle(body);
        } catch (error) {
          if (!(error instanceof ReaderFileRefused)) throw error; // refusals are reported, not faults
        }
      });
      const first = bus.on('upload-acknowledged', () => {
        first.cancel();
        this.report();
      });
    }
  }

  /** Bytes of a file the staging area holds. */
  get stagingCapacity(): number {
    return this.#staging.byteLength;
  }

  /** The download in progress: its file and the next byte wanted. */
  get download(): { name: string; version: number; offset: number; length: number } | undefined {
    const d = this.#download;
    return d && { name: d.n, version: d.v, offset: d.off, length: d.len };
  }

  /**
   * At start: hands the settings held to the reader (its chip starts from its defaults), and
   * finishes a file whose last chunk was written before a power cut.
   */
  start(): void {
    for (const file of this.#o.store.list()) {
      if (file.kind !== 'settings') continue;
      const held = this.#o.store.get(file.name);
      if (!held) continue;
      try {
        this.#o.reader?.configure?.(decodeReaderSettings(held.bytes));
      } catch {
        // a reader out of service keeps the settings and takes them when it is re-initialised
      }
    }
    const d = this.#download;
    if (d && (d.st === 'verified' || d.off >= d.len)) {
      try {
        this.#complete();
      } catch (error) {
        if (!(error instanceof ReaderFileRefused)) throw error;
      }
    }
  }

  /**
   * A 0x8B body. Returns the report sent; throws ReaderFileRefused (after reporting it) when the
   * message or the file is refused, with the files held and a download in progress untouched
   * unless the refusal is about that download.
   */
  handle(body: Uint8Array): ReaderFilesReport {
    let m: ReturnType<typeof decodeReaderFilesDownlink>;
    try {
      m = decodeReaderFilesDownlink(body);
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      return this.#refuse('malformed', error.message);
    }
    if (m.k === 'offer') return this.#offer(m);
    if (m.k === 'chunk') return this.#chunk(m.name, m.version, m.offset, m.data);
    return this.report();
  }

  /** Sends (and returns) the report of where the download stands and the files held. */
  report(): ReaderFilesReport {
    const d = this.#download;
    const held = this.#o.store.list();
    const r: ReaderFilesReport = d
      ? { state: 'downloading', name: d.n, version: d.v, offset: d.off, held }
      : this.#last
        ? { ...this.#last, offset: 0, held }
        : { state: 'idle', offset: 0, held };
    try {
      this.#o.send?.(READER_FILES_UPLINK, encodeReaderFilesReport(r));
    } catch {
      // the link's fault is the comms unit's to report
    }
    return r;
  }

  #offer(offer: ReaderFileOffer): ReaderFilesReport {
    const d = this.#download;
    if (d && d.n === offer.name && d.v === offer.version && bytesEqual(d.sha, offer.sha256))
      return this.report(); // the same offer again (a lost report, a resumed push): say where it stands
    const about = { name: offer.name, version: offer.version };
    const held = this.#o.store.get(offer.name);
    if (held && offer.version <= held.version)
      return this.#refuse(
        'stale',
        `${offer.name} v${offer.version} is not newer than v${held.version}`,
        about,
      );
    if (offer.kind === 'reader-firmware') {
      if (!this.#o.readerFirmware) return this.#refuse('unsupported', 'this reader takes no firmware', about);
      try {
        checkReaderFirmwareSignature(this.#o.signatures, this.#pinnedKey(), offer, offer.signature);
      } catch (error) {
        if (!(error instanceof ReaderFileRefused)) throw error;
        return this.#refuse(error.reason, error.message, about);
      }
    }
    // Documents and settings live in the store's slot, beside the files held; reader firmware only
    // passes through staging (the store keeps its SHA-256).
    const stored = offer.kind === 'reader-firmware' ? 32 : offer.length;
    if (offer.length > this.stagingCapacity || !this.#o.store.fits(offer.name, stored, offer.kind))
      return this.#refuse('too-large', `${offer.length} bytes do not fit beside the files held`, about);
    this.#last = undefined;
    this.#save({
      n: offer.name,
      kind: offer.kind,
      v: offer.version,
      len: offer.length,
      sha: offer.sha256,
      ...(offer.signature ? { sig: offer.signature } : {}),
      off: 0,
      st: 'downloading',
    });
    return this.report();
  }

  #chunk(name: string, version: number, offset: number, data: Uint8Array): ReaderFilesReport {
    const d = this.#download;
    // Not the file or not the chunk wanted: the report names the offset to resume at.
    if (d?.st !== 'downloading' || d.n !== name || d.v !== version) return this.report();
    if (offset !== d.off || offset + data.length > d.len) return this.report();
    const size = this.#staging.sectorSize;
    // erase each sector this chunk enters at its start (a chunk written again erases it again)
    for (let sector = Math.ceil(offset / size); sector * size < offset + data.length; sector++)
      this.#staging.eraseSector(sector);
    this.#staging.write(offset, data);
    this.#save({ ...d, off: offset + data.length });
    if (offset + data.length < d.len) return this.report();
    return this.#complete();
  }

  /** Hashes the staged file, checks it again, applies and stores it. */
  #complete(): ReaderFilesReport {
    const d = this.#download;
    if (!d) return this.report();
    const about = { name: d.n, version: d.v };
    // One read of the whole file: the board's SHA-256 takes it at once (and a file for the store is
    // held whole anyway).
    const bytes = this.#staging.read(0, d.len);
    const digest = this.#o.crypto.sha256(bytes);
    if (!bytesEqual(digest, d.sha))
      return this.#refuse('hash', `${d.n} v${d.v} does not match its SHA-256`, about, true);
    try {
      if (d.kind === 'reader-firmware')
        checkReaderFirmwareSignature(
          this.#o.signatures,
          this.#pinnedKey(),
          { name: d.n, version: d.v, length: d.len, sha256: digest },
          d.sig,
        );
    } catch (error) {
      if (!(error instanceof ReaderFileRefused)) throw error;
      return this.#refuse(error.reason, error.message, about, true);
    }
    const { store } = this.#o;
    if (store.get(d.n)?.version === d.v) {
      // stored before a power cut cut short the end of this download: it is held
      this.#save(undefined);
      this.#last = { state: 'held', ...about };
      return this.report();
    }
    if (d.st !== 'verified') this.#save({ ...d, st: 'verified' });
    try {
      if (d.kind === 'reader-firmware') {
        this.#installReaderFirmware(d, bytes);
        store.put(d.n, d.v, digest, d.kind);
      } else {
        let settings: ReaderSettings | undefined;
        if (d.kind === 'settings') {
          try {
            settings = decodeReaderSettings(bytes);
          } catch (error) {
            if (!(error instanceof ProtocolError)) throw error;
            return this.#refuse('bad-settings', error.message, about, true);
          }
        }
        store.put(d.n, d.v, bytes, d.kind); // kept before the reader takes it
        if (settings) {
          try {
            this.#o.reader?.configure?.(settings);
          } catch {
            // a reader out of service takes the settings kept when it is re-initialised
          }
        }
      }
    } catch (error) {
      if (error instanceof StaleReaderFileError) return this.#refuse('stale', error.message, about, true);
      if (error instanceof RangeError) return this.#refuse('too-large', error.message, about, true);
      if (error instanceof ReaderFileRefused) return this.#refuse(error.reason, error.message, about, true);
      throw error;
    }
    this.#save(undefined);
    this.#last = { state: 'held', ...about };
    return this.report();
  }

  #installReaderFirmware(d: Download, image: Uint8Array): void {
    const port = this.#o.readerFirmware;
    if (!port) throw new ReaderFileRefused('unsupported', 'this reader takes no firmware');
    try {
      port.begin(d.v, d.len);
      for (let at = 0; at < d.len; at += READER_FILE_CHUNK)
        port.write(at, image.subarray(at, at + READER_FILE_CHUNK));
      port.finish();
    } catch (error) {
      throw new ReaderFileRefused(
        'apply-failed',
        `the reader refused the firmware: ${(error as Error).message}`,
      );
    }
  }

  /**
   * Reports a refusal and throws it. `ends` says it is about the download in progress, which is
   * dropped; any other refusal leaves that download going (and reports it after the refusal).
   */
  #refuse(
    reason: ReaderFileRefusal,
    message: string,
    about: { name?: string; version?: number } = {},
    ends = false,
  ): never {
    if (ends) this.#save(undefined);
    const going = this.#download;
    this.#download = undefined; // the refusal's own report first
    this.#last = { state: 'refused', ...about, reason };
    this.report();
    if (going) {
      this.#download = going;
      this.report();
    }
    throw new ReaderFileRefused(reason, message);
  }

  #pinnedKey(): Uint8Array | undefined {
    try {
      return this.#o.pinnedKey();
    } catch {
      return undefined; // secure parts out of service: no key to check against
    }
  }

  #save(next: Download | undefined): void {
    const { preferences } = this.#o;
    if (next) preferences.set(DOMAIN, KEY, toArrayBuffer(encodeCbor(next)));
    else preferences.delete(DOMAIN, KEY);
    this.#download = next;
  }

  #load(): Download | undefined {
    const raw = this.#o.preferences.get(DOMAIN, KEY);
    if (!(raw instanceof ArrayBuffer)) return undefined;
    try {
      const v = decodeCbor(new Uint8Array(raw)) as Download;
      if (
        typeof v !== 'object' ||
        v === null ||
        typeof v.n !== 'string' ||
        !(READER_FILE_KINDS as readonly string[]).includes(v.kind) ||
        !(v.sha instanceof Uint8Array) ||
        !Number.isSafeInteger(v.off) ||
        !Number.isSafeInteger(v.len) ||
        !Number.isSafeInteger(v.v)
      )
        return undefined;
      return v;
    } catch {
      return undefined; // an unreadable entry: no download in progress (the platform offers again)
    }
  }
}

/** A copy in its own ArrayBuffer (the encoder may hand back a view into a larger one). */
function toArrayBuffer(bytes: Uint8Array): ArrayBuffer {
  const copy = new Uint8Array(bytes.length);
  copy.set(bytes);
  return copy.buffer;
}
