// The Zigbee relay: a meter without its own connection (the slave) hands its sealed frames to a
// neighbour (the master) over Zigbee; the master publishes them on the slave's uplink topic over its
// own connection and carries the slave's downlinks back. The frames stay sealed end to end (the
// master never holds the slave's keys), so the master can neither read nor alter them; the
// platform checks every frame's seal as it does for any other uplink.
//
// Relay messages (one Zigbee payload each, multi-byte fields big endian):
//   0x01 UP       kind | slave meter id u32 | message id u16 | index u8 | count u8 | data
//   0x02 DOWN     same layout, master → slave
//   0x03 HELLO    kind | slave meter id u32 | session u16          slave → master, every few seconds
//   0x04 READY    kind | slave meter id u32 | up u8 | session u16  master → slave: 1 = its connection is up
// A session is a random number drawn at each start: a new one tells the other side that the sender
// restarted, so message ids it remembers from before (to drop repeats) no longer apply.
// A frame larger than one payload is cut into `count` fragments (at most 255); the receiver puts
// them back together by (sender, kind, meter id, message id) and drops an assembly that does not
// complete in time. An UP message is only ever published on uplinkTopic(slave meter id).
import { readUint16, readUint32, writeUint16, writeUint32 } from './bytes';
import { ProtocolError } from './errors';
import { downlinkTopic, TOPIC_ROOT, uplinkTopic } from './topics';

export const RelayKind = Object.freeze({ UP: 0x01, DOWN: 0x02, HELLO: 0x03, READY: 0x04 } as const);
export type RelayKindValue = (typeof RelayKind)[keyof typeof RelayKind];

/** Bytes of a fragment's header. */
export const FRAGMENT_HEADER = 9;
/** Largest relayed frame: a 2 KiB record set plus its seal, with room to spare. */
export const MAX_RELAY_MESSAGE = 8 * 1024;

export interface Fragment {
  kind: typeof RelayKind.UP | typeof RelayKind.DOWN;
  meterId: number;
  messageId: number;
  index: number;
  count: number;
  data: Uint8Array;
}

export type RelayMessage =
  | ({ kind: typeof RelayKind.UP | typeof RelayKind.DOWN } & Fragment)
  | { kind: typeof RelayKind.HELLO; meterId: number; session: number }
  | { kind: typeof RelayKind.READY; meterId: number; up: boolean; session: number };

function checkMeterId(meterId: number): void {
  if (!Number.isInteger(meterId) || meterId < 1 || meterId > 0xffffffff)
    throw new RangeError(`meter id ${meterId} is not a u32 above 0`);
}

/** Cuts `frame` into fragments of at most `payload` bytes each (header included). */
export function fragment(
  kind: typeof RelayKind.UP | typeof RelayKind.DOWN,
  meterId: number,
  messageId: number,
  frame: Uint8Array,
  payload: number,
): Uint8Array[] {
  checkMeterId(meterId);
  const room = payload - FRAGMENT_HEADER;
  if (!(room >= 1)) throw new RangeError(`a ${payload}-byte payload leaves no room for data`);
  if (frame.length === 0) throw new RangeError('nothing to relay');
  if (frame.length > MAX_RELAY_MESSAGE)
    throw new RangeError(`${frame.length} bytes exceed the relay's ${MAX_RELAY_MESSAGE}`);
  const count = Math.ceil(frame.length / room);
  if (count > 255) throw new RangeError(`${count} fragments exceed 255 at a ${payload}-byte payload`);
  const out: Uint8Array[] = [];
  for (let index = 0; index < count; index++) {
    const data = frame.subarray(index * room, Math.min(frame.length, (index + 1) * room));
    const bytes = new Uint8Array(FRAGMENT_HEADER + data.length);
    bytes[0] = kind;
    writeUint32(bytes, 1, meterId);
    writeUint16(bytes, 5, messageId & 0xffff);
    bytes[7] = index;
    bytes[8] = count;
    bytes.set(data, FRAGMENT_HEADER);
    out.push(bytes);
  }
  return out;
}

export function encodeHello(meterId: number, session: number): Uint8Array {
  checkMeterId(meterId);
  const bytes = new Uint8Array(7);
  bytes[0] = RelayKind.HELLO;
  writeUint32(bytes, 1, meterId);
  writeUint16(bytes, 5, session & 0xffff);
  return bytes;
}

export function encodeReady(meterId: number, up: boolean, session: number): Uint8Array {
  checkMeterId(meterId);
  const bytes = new Uint8Array(8);
  bytes[0] = RelayKind.READY;
  writeUint32(bytes, 1, meterId);
  bytes[5] = up ? 1 : 0;
  writeUint16(bytes, 6, session & 0xffff);
  return bytes;
}

/** Reads one relay message; anything malformed is a ProtocolError. */
export function decodeRelay(bytes: Uint8Array): RelayMessage {
  if (bytes.length < 5) throw new ProtocolError('truncated', `relay message of ${bytes.length} bytes`);
  const kind = bytes[0];
  const meterId = readUint32(bytes, 1);
  if (meterId === 0) throw new ProtocolError('bad-field', 'meter id 0');
  switch (kind) {
    case RelayKind.HELLO:
      if (bytes.length !== 7) throw new ProtocolError('bad-field', 'HELLO is 7 bytes');
      return { kind, meterId, session: readUint16(bytes, 5) };
    case RelayKind.READY:
      if (bytes.length !== 8 || bytes[5] > 1)
        throw new ProtocolError('bad-field', 'READY is 8 bytes, up 0 or 1');
      return { kind, meterId, up: bytes[5] === 1, session: readUint16(bytes, 6) };
    case RelayKind.UP:
    case RelayKind.DOWN: {
      if (bytes.length <= FRAGMENT_HEADER)
        throw new ProtocolError('truncated', 'a fragment carries at least one byte');
      const index = bytes[7];
      const count = bytes[8];
      if (count === 0 || index >= count)
        throw new ProtocolError('bad-field', `fragment ${index} of ${count}`);
      return {
        kind,
        meterId,
        messageId: readUint16(bytes, 5),
        index,
        count,
        data: bytes.slice(FRAGMENT_HEADER),
      };
    }
    default:
      throw new ProtocolError('bad-type', `relay message kind 0x${kind.toString(16)}`);
  }
}

interface Assembly {
  count: number;
  parts: (Uint8Array | undefined)[];
  have: number;
  bytes: number;
  expires: number;
}

export interface ReassemblerOptions {
  /** How long an incomplete message is kept, ms. */
  timeoutMs?: number;
  /** Incomplete messages held at once; the oldest is dropped beyond. */
  maxPending?: number;
}

/**
 * Puts fragments back together. Holds only incomplete messages (dropped after `timeoutMs`) and the
 * keys of the last few completed ones, so a fragment resent after a lost acknowledgement does not
 * deliver its message twice; a completed message's bytes are handed on and not kept.
 */
export class Reassembler {
  readonly #pending = new Map<string, Assembly>();
  readonly #completed: string[] = [];
  readonly #timeoutMs: number;
  readonly #maxPending: number;
  /** Fragments dropped: malformed, conflicting, duplicates, expired assemblies. */
  readonly dropped = { conflicting: 0, duplicate: 0, expired: 0, overflow: 0 };

  constructor(options: ReassemblerOptions = {}) {
    this.#timeoutMs = options.timeoutMs ?? 30_000;
    this.#maxPending = options.maxPending ?? 8;
  }

  /** Bytes held in incomplete messages. */
  get heldBytes(): number {
    let n = 0;
    for (const a of this.#pending.values()) n += a.bytes;
    return n;
  }

  get pending(): number {
    return this.#pending.size;
  }

  /** Adds a fragment from `sender` at time `now`; returns the whole frame when it is the last one missing. */
  add(sender: string, f: Fragment, now: number): Uint8Array | undefined {
    this.expire(now);
    const key = `${sender}/${f.kind}/${f.meterId}/${f.messageId}`;
    if (this.#completed.includes(key)) {
      this.dropped.duplicate++;
      return undefined;
    }
    let a = this.#pending.get(key);
    if (a && a.count !== f.count) {
      this.#pending.delete(key);
      this.dropped.conflicting++;
      a = undefined;
    }
    if (!a) {
      if (this.#pending.size >= this.#maxPending) {
        const oldest = this.#pending.keys().next().value as string;
        this.#pending.delete(oldest);
        this.dropped.overflow++;
      }
      a = {
        count: f.count,
        parts: new Array(f.count).fill(undefined),
        have: 0,
        bytes: 0,
        expires: now + this.#timeoutMs,
      };
      this.#pending.set(key, a);
    }
    if (a.parts[f.index]) {
      this.dropped.duplicate++;
      return undefined;
    }
    if (a.bytes + f.data.length > MAX_RELAY_MESSAGE) {
      this.#pending.delete(key);
      this.dropped.conflicting++;
      return undefined;
    }
    a.parts[f.index] = f.data;
    a.have++;
    a.bytes += f.data.length;
    if (a.have < a.count) return undefined;
    this.#pending.delete(key);
    this.#completed.push(key);
    if (this.#completed.length > 32) this.#completed.shift();
    const whole = new Uint8Array(a.bytes);
    let offset = 0;
    for (const part of a.parts as Uint8Array[]) {
      whole.set(part, offset);
      offset += part.length;
    }
    return whole;
  }

  /** Drops incomplete messages older than the timeout. */
  expire(now: number): void {
    for (const [key, a] of this.#pending) {
      if (a.expires <= now) {
        this.#pending.delete(key);
        this.dropped.expired++;
      }
    }
  }

  /** Forgets what came from `sender` (it restarted): its incomplete messages and the ids it used. */
  forget(sender: string): void {
    const prefix = `${sender}/`;
    for (const key of [...this.#pending.keys()]) if (key.startsWith(prefix)) this.#pending.delete(key);
    for (let i = this.#completed.length - 1; i >= 0; i--)
      if (this.#completed[i].startsWith(prefix)) this.#completed.splice(i, 1);
  }

  /** Forgets everything (a reboot). */
  clear(): void {
    this.#pending.clear();
    this.#completed.length = 0;
  }
}

/**
 * The broker rule for relaying masters: meter `master` may publish on `slave`'s uplink topic and
 * subscribe to its downlink topic only when the platform has assigned `slave` to it. Every other
 * topic stays as the per-meter rule has it (a meter publishes to its own uplink only).
 */
export function relayMayUse(
  master: number,
  assignedSlaves: readonly number[],
  topic: string,
  access: 'publish' | 'subscribe',
): boolean {
  if (!topic.startsWith(`${TOPIC_ROOT}/`)) return false;
  const own = access === 'publish' ? uplinkTopic(master) : downlinkTopic(master);
  if (topic === own) return true;
  return assignedSlaves.some((s) =>
    access === 'publish' ? topic === uplinkTopic(s) : topic === downlinkTopic(s),
  );
}
