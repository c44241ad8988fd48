// The fleet blacklist downlink (frame type 0x8A) and the meter's acknowledgement (uplink 0x0A), as
// CBOR maps with short text keys like the tariff push (protocol/tariff/messages.ts).
//   0x8A { k: 'd', v: new version, b: base version, a: [[token bstr 16, reason uint]], r: [token] }
//        a delta: applied only on top of version `b`, giving version `v`
//   0x8A { k: 'f', v: version, p: page index, n: page count, e: [[token, reason]] }
//        one page of a full list; the meter replaces its list once it holds every page of `v`
//   0x0A { v: version held, ok: bool, why?: text }
// The version is the platform's: it grows by one with every card added or removed. A meter answers
// every 0x8A with the version it holds (and why it refused one), and reports it unasked once per
// start, so the platform knows which meters are behind.
import { decodeCbor, encodeCbor } from './cbor';
import { CARD_TOKEN_LENGTH } from './cardToken';

export const BLACKLIST_DOWNLINK = 0x8a;
export const BLACKLIST_ACK_UPLINK = 0x0a;

/**
 * Entries per 0x8A frame (a page, or the adds and removes of a delta together): 48 entries of
 * 19 bytes keep a body under 1 KiB, so a frame crosses the Zigbee relay in 13 fragments and is far
 * inside any broker's packet limit.
 */
export const BLACKLIST_PAGE_ENTRIES = 48;
/** Pages of one full list at most (the relay's own limit is per frame, this is per list). */
export const BLACKLIST_MAX_PAGES = 1024;

export const BLACKLIST_REASONS = ['bad-debt', 'stolen', 'cloned', 'expired'] as const;
export type BlacklistReason = (typeof BLACKLIST_REASONS)[number];

/** The reason's code on the wire and on the meter's flash: its index in BLACKLIST_REASONS, plus one. */
export function reasonCode(reason: BlacklistReason): number {
  return BLACKLIST_REASONS.indexOf(reason) + 1;
}

export function reasonName(code: number): BlacklistReason | undefined {
  return BLACKLIST_REASONS[code - 1];
}

export function isBlacklistReason(value: unknown): value is BlacklistReason {
  return typeof value === 'string' && (BLACKLIST_REASONS as readonly string[]).includes(value);
}

export type BlacklistErrorCode =
  /** The body is not a well-formed 0x8A (CBOR, keys, types, token lengths, page numbers). */
  | 'malformed'
  /** A delta whose base is not the version the meter holds. */
  | 'base-mismatch'
  /** The list would not fit the meter's blacklist partition. */
  | 'too-large';

/** A 0x8A refused: the list the meter holds is untouched. */
export class BlacklistError extends Error {
  override readonly name: string = 'BlacklistError';
  readonly code: BlacklistErrorCode;
  constructor(code: BlacklistErrorCode, message: string) {
    super(`${code}: ${message}`);
    this.code = code;
  }
}

export interface BlacklistWireEntry {
  token: Uint8Array;
  /** A reason code (reasonCode). */
  reason: number;
}

export type BlacklistPush =
  | {
      kind: 'delta';
      version: number;
      base: number;
      add: BlacklistWireEntry[];
      remove: Uint8Array[];
    }
  | { kind: 'page'; version: number; page: number; pages: number; entries: BlacklistWireEntry[] };

export interface BlacklistAck {
  version: number;
  ok: boolean;
  why?: string;
}

function malformed(message: string): BlacklistError {
  return new BlacklistError('malformed', message);
}

function map(value: unknown): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Uint8Array)
    throw malformed('message is not a map');
  return value as Record<string, unknown>;
}

function uint(value: unknown, name: string, max = 0xffffffff): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > max)
    throw malformed(`${name} is not an integer from 0 to ${max}`);
  return value;
}

function token(value: unknown, name: string): Uint8Array {
  if (!(value instanceof Uint8Array) || value.length !== CARD_TOKEN_LENGTH)
    throw malformed(`${name} is not a ${CARD_TOKEN_LENGTH}-byte card token`);
  return value;
}

function entries(value: unknown, name: string): BlacklistWireEntry[] {
  if (!Array.isArray(value)) throw malformed(`${name} is not an array`);
  return value.map((item, i) => {
    if (!Array.isArray(item) || item.length !== 2) throw malformed(`${name}[${i}] is not [token, reason]`);
    const reason = uint(item[1], `${name}[${i}] reason`, 255);
    if (reasonName(reason) === undefined) throw malformed(`${name}[${i}] reason ${reason} is unknown`);
    return { token: token(item[0], `${name}[${i}] token`), reason };
  });
}

function wire(list: readonly BlacklistWireEntry[]): unknown[] {
  return list.map((e) => [e.token, e.reason]);
}

export function encodeBlacklistPush(push: BlacklistPush): Uint8Array {
  if (push.kind === 'delta')
    return encodeCbor({ k: 'd', v: push.version, b: push.base, a: wire(push.add), r: push.remove });
  return encodeCbor({ k: 'f', v: push.version, p: push.page, n: push.pages, e: wire(push.entries) });
}

/** Decodes and checks a 0x8A body; a BlacklistError 'malformed' names what is wrong. */
export function decodeBlacklistPush(body: Uint8Array): BlacklistPush {
  let value: unknown;
  try {
    value = decodeCbor(body);
  } catch (error) {
    throw malformed(`not CBOR (${(error as Error).message})`);
  }
  const m = map(value);
  const version = uint(m.v, 'v');
  if (m.k === 'd') {
    const base = uint(m.b, 'b');
    if (base >= version) throw malformed(`delta base ${base} is not below its version ${version}`);
    const add = entries(m.a, 'a');
    if (!Array.isArray(m.r)) throw malformed('r is not an array');
    const remove = m.r.map((t, i) => token(t, `r[${i}]`));
    if (add.length + remove.length > BLACKLIST_PAGE_ENTRIES)
      throw malformed(`a delta carries at most ${BLACKLIST_PAGE_ENTRIES} changes`);
    return { kind: 'delta', version, base, add, remove };
  }
  if (m.k === 'f') {
    const pages = uint(m.n, 'n', BLACKLIST_MAX_PAGES);
    if (pages < 1) throw malformed('n is 0');
    const page = uint(m.p, 'p', pages - 1);
    const list = entries(m.e, 'e');
    if (list.length > BLACKLIST_PAGE_ENTRIES)
      throw malformed(`a page carries at most ${BLACKLIST_PAGE_ENTRIES} entries`);
    return { kind: 'page', version, page, pages, entries: list };
  }
  throw malformed(`k ${String(m.k)} is not d or f`);
}

export function encodeBlacklistAck(ack: BlacklistAck): Uint8Array {
  const body: Record<string, unknown> = { v: ack.version, ok: ack.ok };
  if (ack.why !== undefined) body.why = ack.why;
  return encodeCbor(body);
}

export function decodeBlacklistAck(body: Uint8Array): BlacklistAck {
  let value: unknown;
  try {
    value = decodeCbor(body);
  } catch (error) {
    throw malformed(`not CBOR (${(error as Error).message})`);
  }
  const m = map(value);
  if (typeof m.ok !== 'boolean') throw malformed('ok is not a boolean');
  const ack: BlacklistAck = { version: uint(m.v, 'v'), ok: m.ok };
  if (m.why !== undefined) {
    if (typeof m.why !== 'string' || m.why.length > 200) throw malformed('why is not a short text');
    ack.why = m.why;
  }
  return ack;
}

/** Orders tokens byte by byte, as the meter's flash table does. */
function tokenOrder(a: BlacklistWireEntry, b: BlacklistWireEntry): number {
  for (let i = 0; i < CARD_TOKEN_LENGTH; i++) {
    if (a.token[i] !== b.token[i]) return a.token[i] - b.token[i];
  }
  return 0;
}

/**
 * Cuts a full list into 0x8A pages (one empty page for an empty list), sorted by token and every
 * page but the last full: the meter stages each page at its place in its sorted flash table, so
 * pages may arrive in any order without the meter holding them in RAM. A token listed twice is
 * kept once (its last entry).
 */
export function blacklistPages(version: number, unsorted: readonly BlacklistWireEntry[]): BlacklistPush[] {
  const byToken = unsorted.map((e, i) => ({ e, i })).sort((a, b) => tokenOrder(a.e, b.e) || a.i - b.i);
  const list = byToken
    .filter((x, k) => k + 1 >= byToken.length || tokenOrder(x.e, byToken[k + 1].e) !== 0)
    .map((x) => x.e);
  const pages = Math.max(1, Math.ceil(list.length / BLACKLIST_PAGE_ENTRIES));
  if (pages > BLACKLIST_MAX_PAGES)
    throw new BlacklistError(
      'too-large',
      `${list.length} entries need more than ${BLACKLIST_MAX_PAGES} pages`,
    );
  const out: BlacklistPush[] = [];
  for (let page = 0; page < pages; page++) {
    const entries = list.slice(page * BLACKLIST_PAGE_ENTRIES, (page + 1) * BLACKLIST_PAGE_ENTRIES);
    out.push({ kind: 'page', version, page, pages, entries });
  }
  return out;
}
