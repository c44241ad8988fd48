// The handheld service's transport: messages (CBOR maps, or a sealed frame the meter hands over as
// is) cut into chunks that fit one BLE write or notification (ATT MTU − 3 bytes), each with a
// one-byte header; the Wi-Fi port sends the same chunks, each behind a 2-byte length. See
// docs/handheld.md for the GATT service and the messages.
//
//   chunk  = header u8 | data[1 .. MTU − 4]
//   header = FINAL (0x80, last chunk of the message) | FIRST (0x40, first chunk) | counter (6 bits)
// The counter starts at 0 with each message and counts chunks modulo 64; a chunk out of order, a
// message without its FIRST chunk or longer than MAX_MESSAGE_BYTES is a HandheldChunkError, and
// the receiver drops what it had gathered of that message.
export const CHUNK_FINAL = 0x80;
export const CHUNK_FIRST = 0x40;
const COUNTER = 0x3f;
/** Bytes a write or notification loses to the ATT header (opcode u8, handle u16). */
export const ATT_OVERHEAD = 3;
/** Largest message either side accepts: a full upload set (2 KiB of records) sealed, with room. */
export const MAX_MESSAGE_BYTES = 8192;

export class HandheldChunkError extends Error {
  override readonly name: string = 'HandheldChunkError';
  constructor(detail: string) {
    super(`bad chunk: ${detail}`);
  }
}

/** Cuts `message` into chunks of at most `chunkBytes` bytes (header included). */
export function chunkMessage(message: Uint8Array, chunkBytes: number): Uint8Array[] {
  if (!Number.isInteger(chunkBytes) || chunkBytes < 2)
    throw new RangeError(`a chunk of ${chunkBytes} bytes has no room for data`);
  if (message.length === 0 || message.length > MAX_MESSAGE_BYTES)
    throw new RangeError(`a message is 1 to ${MAX_MESSAGE_BYTES} bytes, not ${message.length}`);
  const room = chunkBytes - 1;
  const chunks: Uint8Array[] = [];
  for (let at = 0, n = 0; at < message.length; at += room, n++) {
    const data = message.subarray(at, Math.min(at + room, message.length));
    const chunk = new Uint8Array(1 + data.length);
    chunk[0] = (n & COUNTER) | (n === 0 ? CHUNK_FIRST : 0) | (at + room >= message.length ? CHUNK_FINAL : 0);
    chunk.set(data, 1);
    chunks.push(chunk);
  }
  return chunks;
}

/** Gathers chunks back into messages, one message at a time. */
export class ChunkAssembler {
  #parts: Uint8Array[] = [];
  #length = 0;
  #next = -1;

  /** Adds a chunk; returns the message it completes, or undefined while more are to come. */
  push(chunk: Uint8Array): Uint8Array | undefined {
    if (chunk.length < 2) return this.#fail(`chunk of ${chunk.length} bytes`);
    const header = chunk[0];
    const counter = header & COUNTER;
    if (header & CHUNK_FIRST) {
      if (counter !== 0) return this.#fail(`first chunk with counter ${counter}`);
      this.reset();
    } else if (this.#next < 0) {
      return this.#fail('chunk without the first of its message');
    } else if (counter !== this.#next) {
      return this.#fail(`chunk ${counter} where ${this.#next} was due`);
    }
    if (this.#length + chunk.length - 1 > MAX_MESSAGE_BYTES)
      return this.#fail(`message longer than ${MAX_MESSAGE_BYTES} bytes`);
    this.#parts.push(chunk.slice(1));
    this.#length += chunk.length - 1;
    this.#next = (counter + 1) & COUNTER;
    if (!(header & CHUNK_FINAL)) return undefined;
    const message = new Uint8Array(this.#length);
    let at = 0;
    for (const part of this.#parts) {
      message.set(part, at);
      at += part.length;
    }
    this.reset();
    return message;
  }

  /** Whether part of a message is waiting for its other chunks. */
  get pending(): boolean {
    return this.#next >= 0;
  }

  reset(): void {
    this.#parts = [];
    this.#length = 0;
    this.#next = -1;
  }

  #fail(detail: string): never {
    this.reset();
    throw new HandheldChunkError(detail);
  }
}

// ---- Service beacon -------------------------------------------------------------------------
//
// While the handheld link is off the meter is not connectable, so a passer-by's phone cannot read
// the info characteristic. It broadcasts instead a compact non-connectable advertisement
// (ADV_NONCONN_IND, Bluetooth Core Vol 6 Part B §2.3.1.3) whose one Manufacturer Specific Data AD
// (Core Supplement Part A §1.4) carries the service information in 24 bytes at most, which with the
// 3-byte Flags AD and the AD's own 4 bytes (length, type, company id) fills the 31-byte legacy
// advertising payload:
//
//   version u8 (0x01; 0x80 set: more bays than fit) | meter id u32 | tariff version u16 |
//   currency u16 (ISO 4217 numeric) | tariff tag u16 (FNV-1a of the tariff id, folded) |
//   up to 4 × [ bay u8 | state u4 · minutes left u12 (0 without a time, at most 4095) ]
//
// Big-endian. docs/handheld.md says why and at what interval.

/** The Bluetooth SIG company id the beacon's data is filed under: 0xFFFF is the one reserved for
 * tests and development; a production build replaces it with the operator's assigned id. */
export const BEACON_COMPANY_ID = 0xffff;
export const BEACON_VERSION = 0x01;
export const BEACON_MORE_BAYS = 0x80;
/** Legacy advertising payload (31) less the Flags AD (3) and the manufacturer AD's header (4). */
export const BEACON_MAX_BYTES = 24;
export const BEACON_MAX_BAYS = 4;
/** Bay states in the beacon (docs/handheld.md "Service information"); 0 is a state this version does not know. */
export const BEACON_STATES: readonly string[] = Object.freeze([
  'unknown',
  'paid',
  'grace',
  'overtime',
  'expired',
  'free',
  'restricted',
  'no-sale',
  'unavailable',
]);

export interface ServiceBeacon {
  meterId: number;
  tariff: { version: number; currency: number; tag: number };
  bays: { bay: number; state: string; minutesLeft: number }[];
  /** The meter has more bays than the beacon carries (the info characteristic has them all). */
  moreBays: boolean;
}

export class BeaconError extends Error {
  override readonly name: string = 'BeaconError';
}

/** A 16-bit tag of a tariff id (FNV-1a over its UTF-16 code units, folded): tells tariffs apart, not a secret. */
export function tariffTag(id: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) {
    h ^= id.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return ((h >>> 16) ^ h) & 0xffff;
}

/**
 * The beacon's data for the service information at `nowS` (epoch seconds): the first four bays that
 * fit (bay ids up to 255), minutes left rounded up.
 */
export function encodeServiceBeacon(
  info: {
    meterId: number;
    bays: readonly { bay: number; state: string; until?: number }[];
    tariff: { id: string; version: number; currency: number };
  },
  nowS: number,
): Uint8Array {
  if (!Number.isInteger(info.meterId) || info.meterId < 0 || info.meterId > 0xffffffff)
    throw new RangeError(`meter id ${info.meterId} does not fit 32 bits`);
  const out = [
    BEACON_VERSION,
    (info.meterId >>> 24) & 0xff,
    (info.meterId >>> 16) & 0xff,
    (info.meterId >>> 8) & 0xff,
    info.meterId & 0xff,
  ];
  const u16 = (v: number) => {
    const n = Math.max(0, Math.min(0xffff, Math.floor(v)));
    out.push(n >> 8, n & 0xff);
  };
  u16(info.tariff.version);
  u16(info.tariff.currency);
  u16(tariffTag(info.tariff.id));
  let carried = 0;
  for (const b of info.bays) {
    if (carried === BEACON_MAX_BAYS || !Number.isInteger(b.bay) || b.bay < 0 || b.bay > 0xff) {
      out[0] |= BEACON_MORE_BAYS;
      continue;
    }
    const code = Math.max(0, BEACON_STATES.indexOf(b.state));
    const minutes =
      b.until === undefined ? 0 : Math.min(0xfff, Math.max(0, Math.ceil((b.until - nowS) / 60)));
    out.push(b.bay, (code << 4) | (minutes >> 8), minutes & 0xff);
    carried++;
  }
  return Uint8Array.from(out);
}

/** Reads a beacon's data (a phone's side); BeaconError for anything that is not one. */
export function decodeServiceBeacon(data: Uint8Array): ServiceBeacon {
  if (data.length < 11 || data.length > BEACON_MAX_BYTES || (data.length - 11) % 3 !== 0)
    throw new BeaconError(`a service beacon is 11 + 3 × bays bytes, not ${data.length}`);
  if ((data[0] & 0x7f) !== BEACON_VERSION) throw new BeaconError(`beacon version ${data[0] & 0x7f}`);
  const u16 = (i: number) => (data[i] << 8) | data[i + 1];
  const bays: ServiceBeacon['bays'] = [];
  for (let i = 11; i < data.length; i += 3) {
    const code = data[i + 1] >> 4;
    bays.push({
      bay: data[i],
      state: BEACON_STATES[code] ?? 'unknown',
      minutesLeft: ((data[i + 1] & 0x0f) << 8) | data[i + 2],
    });
  }
  return {
    meterId: ((data[1] << 24) | (data[2] << 16) | (data[3] << 8) | data[4]) >>> 0,
    tariff: { version: u16(5), currency: u16(7), tag: u16(9) },
    bays,
    moreBays: (data[0] & BEACON_MORE_BAYS) !== 0,
  };
}
