// Reader files (management service 414d): the card reader's update documents, settings and
// firmware, offered by the platform (or a handheld carrying its sealed frames) as downlink 0x8B and
// sent in chunks at the offset the meter asks for; the meter reports with uplink 0x0B where a
// download stands and every file it holds, so a dropped link or a power cut resumes at the meter's
// flash, as firmware images do (protocol/firmware.ts). CBOR maps with short keys:
//   0x8B { k: "offer", n: name, kind, v: version, len, sha: SHA-256, sig?: Ed25519 (reader firmware only) }
//   0x8B { k: "chunk", n, v, off, d: bytes }     0x8B { k: "report" }   asks for a 0x0B
//   0x0B { st, n?, v?, off, why?, held: [[name, kind, version]] }
// Reader firmware is signed by the vendor's release key (the one pinned for meter firmware) over
//   "ParkLink reader firmware v1" || version u32 || length u32 || name length u8 || name || SHA-256(file)
// so a file signed for one name or version cannot pass as another, nor as a meter image.
import { concatBytes, utf8, writeUint32 } from './bytes';
import { decodeCbor, encodeCbor } from './cbor';
import { ProtocolError } from './errors';

export const READER_FILES_DOWNLINK = 0x8b;
export const READER_FILES_UPLINK = 0x0b;
/** Largest chunk a downlink carries, as for firmware images. */
export const READER_FILE_CHUNK = 1024;
/** Largest file the protocol describes; a meter refuses what its flash does not hold ('too-large'). */
export const MAX_READER_FILE = 1024 * 1024;

export const READER_FILE_KINDS = ['document', 'settings', 'reader-firmware'] as const;
export type ReaderFileKind = (typeof READER_FILE_KINDS)[number];

/** Where the meter's download of a file stands. */
export const READER_FILE_STATES = ['idle', 'downloading', 'held', 'refused'] as const;
export type ReaderFileState = (typeof READER_FILE_STATES)[number];

/** Why a meter refused a file; the file it held before stays in force. */
export const READER_FILE_REFUSALS = [
  'malformed',
  'stale',
  'too-large',
  'hash',
  'bad-signature',
  'no-pinned-key',
  'bad-settings',
  'unsupported',
  'apply-failed',
] as const;
export type ReaderFileRefusal = (typeof READER_FILE_REFUSALS)[number];

const NAME = /^[a-z0-9][a-z0-9._-]{0,31}$/;

export function isReaderFileName(name: unknown): name is string {
  return typeof name === 'string' && NAME.test(name);
}

export interface ReaderFileOffer {
  name: string;
  kind: ReaderFileKind;
  version: number;
  length: number;
  sha256: Uint8Array;
  /** Ed25519 by the release key: present exactly when kind is reader-firmware. */
  signature?: Uint8Array;
}

export type ReaderFilesDownlink =
  | ({ k: 'offer' } & ReaderFileOffer)
  | { k: 'chunk'; name: string; version: number; offset: number; data: Uint8Array }
  | { k: 'report' };

export interface HeldReaderFile {
  name: string;
  kind: ReaderFileKind;
  version: number;
}

export interface ReaderFilesReport {
  state: ReaderFileState;
  /** The file this report is about (absent when idle). */
  name?: string;
  version?: number;
  /** Next byte wanted while downloading, else 0. */
  offset: number;
  reason?: ReaderFileRefusal;
  held: HeldReaderFile[];
}

const SIGNED_TAG = 'ParkLink reader firmware v1';

/** What the release key signs about a reader firmware file. */
export function readerFirmwareMessage(m: {
  name: string;
  version: number;
  length: number;
  sha256: Uint8Array;
}): Uint8Array {
  if (!isReaderFileName(m.name)) throw new ProtocolError('bad-field', 'n is not a reader file name');
  const head = new Uint8Array(9);
  writeUint32(head, 0, m.version);
  writeUint32(head, 4, m.length);
  head[8] = m.name.length;
  return concatBytes(utf8(SIGNED_TAG), head, utf8(m.name), m.sha256);
}

/** Settings the reader unit takes (rfid.ts CardReaderPort.configure): a CBOR map. */
export interface ReaderSettings {
  /** MFRC522 receiver gain, RFCfgReg RxGain 0–7 (§9.3.3.6). */
  antennaGain?: number;
}

/** Decodes and checks a settings file whole; throws ProtocolError 'bad-field' naming the value. */
export function decodeReaderSettings(bytes: Uint8Array): ReaderSettings {
  const m = asMap(decodeCbor(bytes));
  const out: ReaderSettings = {};
  for (const key of Object.keys(m)) {
    if (key !== 'antennaGain') throw new ProtocolError('bad-field', `${key} is not a reader setting`);
    const gain = m[key];
    if (typeof gain !== 'number' || !Number.isInteger(gain) || gain < 0 || gain > 7)
      throw new ProtocolError('bad-field', 'antennaGain is not a whole number from 0 to 7');
    out.antennaGain = gain;
  }
  return out;
}

export function encodeReaderSettings(settings: ReaderSettings): Uint8Array {
  return encodeCbor(settings);
}

export function encodeReaderFilesDownlink(m: ReaderFilesDownlink): Uint8Array {
  switch (m.k) {
    case 'offer':
      return encodeCbor({
        k: 'offer',
        n: m.name,
        kind: m.kind,
        v: m.version,
        len: m.length,
        sha: m.sha256,
        ...(m.signature === undefined ? {} : { sig: m.signature }),
      });
    case 'chunk':
      return encodeCbor({ k: 'chunk', n: m.name, v: m.version, off: m.offset, d: m.data });
    default:
      return encodeCbor({ k: 'report' });
  }
}

export function decodeReaderFilesDownlink(body: Uint8Array): ReaderFilesDownlink {
  const m = asMap(decodeCbor(body));
  switch (m.k) {
    case 'offer': {
      const kind = readerFileKind(m.kind);
      const length = u32(m.len, 'len');
      if (length < 1 || length > MAX_READER_FILE)
        throw new ProtocolError('bad-field', `len is not 1-${MAX_READER_FILE}`);
      const offer: { k: 'offer' } & ReaderFileOffer = {
        k: 'offer',
        name: fileName(m.n),
        kind,
        version: version(m.v),
        length,
        sha256: bstr(m.sha, 'sha', 32, 32),
      };
      if (kind === 'reader-firmware') offer.signature = bstr(m.sig, 'sig', 64, 64);
      else if (m.sig !== undefined) throw new ProtocolError('bad-field', 'sig is for reader firmware only');
      return offer;
    }
    case 'chunk':
      return {
        k: 'chunk',
        name: fileName(m.n),
        version: version(m.v),
        offset: u32(m.off, 'off'),
        data: bstr(m.d, 'd', 1, READER_FILE_CHUNK),
      };
    case 'report':
      return { k: 'report' };
    default:
      throw new ProtocolError('bad-field', `k ${String(m.k)} is not a reader files message`);
  }
}

export function encodeReaderFilesReport(r: ReaderFilesReport): Uint8Array {
  return encodeCbor({
    st: r.state,
    off: r.offset,
    held: r.held.map((f) => [f.name, f.kind, f.version]),
    ...(r.name === undefined ? {} : { n: r.name }),
    ...(r.version === undefined ? {} : { v: r.version }),
    ...(r.reason === undefined ? {} : { why: r.reason }),
  });
}

export function decodeReaderFilesReport(body: Uint8Array): ReaderFilesReport {
  const m = asMap(decodeCbor(body));
  if (typeof m.st !== 'string' || !(READER_FILE_STATES as readonly string[]).includes(m.st))
    throw new ProtocolError('bad-field', 'st is not a reader file state');
  if (!Array.isArray(m.held)) throw new ProtocolError('bad-field', 'held is not an array');
  const held = m.held.map((item, i): HeldReaderFile => {
    if (!Array.isArray(item) || item.length !== 3)
      throw new ProtocolError('bad-field', `held[${i}] is not [name, kind, version]`);
    return { name: fileName(item[0]), kind: readerFileKind(item[1]), version: version(item[2]) };
  });
  const report: ReaderFilesReport = { state: m.st as ReaderFileState, offset: u32(m.off, 'off'), held };
  if (m.n !== undefined) report.name = fileName(m.n);
  if (m.v !== undefined) report.version = version(m.v);
  if (m.why !== undefined) {
    if (typeof m.why !== 'string' || !(READER_FILE_REFUSALS as readonly string[]).includes(m.why))
      throw new ProtocolError('bad-field', 'why is not a reader file refusal');
    report.reason = m.why as ReaderFileRefusal;
  }
  return report;
}

export function readerFileKind(value: unknown): ReaderFileKind {
  if (typeof value !== 'string' || !(READER_FILE_KINDS as readonly string[]).includes(value))
    throw new ProtocolError('bad-field', 'kind is not document, settings or reader-firmware');
  return value as ReaderFileKind;
}

function fileName(value: unknown): string {
  if (!isReaderFileName(value)) throw new ProtocolError('bad-field', 'n is not a reader file name');
  return value;
}

function asMap(value: unknown): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Uint8Array)
    throw new ProtocolError('bad-field', 'message is not a map');
  return value as Record<string, unknown>;
}

function u32(value: unknown, name: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 0xffffffff)
    throw new ProtocolError('bad-field', `${name} is not a 32-bit unsigned integer`);
  return value;
}

function version(value: unknown): number {
  const v = u32(value, 'v');
  if (v < 1) throw new ProtocolError('bad-field', 'v is not a version from 1');
  return v;
}

function bstr(value: unknown, name: string, min: number, max: number): Uint8Array {
  if (!(value instanceof Uint8Array) || value.length < min || value.length > max)
    throw new ProtocolError('bad-field', `${name} is not ${min}-${max} bytes`);
  return value;
}
