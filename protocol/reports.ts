// Reports on demand (management service 414b): the platform asks a meter for an immediate status
// report or for a selected range of its records, as CBOR maps like the other messages.
//   0x8C { r: request id, k: 'status' | 'records', from?, to? (record sequence numbers),
//          since?, until? (record time, epoch seconds) }
//   0x0C { r, k, ok, code?, why?, st?: status sent, held?: [first, last] held in storage,
//          acked?: last acknowledged, sent?: [[first, last], ...] records re-sent,
//          missing?: [[first, last, reason], ...] }
// A status request sends the ordinary status uplink (0x04) now; a records request re-sends the
// records of the range the meter still holds as ordinary record sets (0x01), which the platform's
// ingest recognises as duplicates of what it already stores. The answer says what went and which
// part of the range did not, with a reason, so the platform can tell released records from lost ones.
import { decodeCbor, encodeCbor } from './cbor';
import { ProtocolError } from './errors';
import { badField, uint } from './fields';

export const REPORT_REQUEST_DOWNLINK = 0x8c;
export const REPORT_ANSWER_UPLINK = 0x0c;

/** Records re-sent for one request, at most; the rest of the range is answered 'over-limit'. */
export const MAX_RECORDS_PER_REQUEST = 512;

export type ReportKind = 'status' | 'records';

export interface ReportRequest {
  /** The platform's id for the request, echoed in the answer. */
  requestId: number;
  kind: ReportKind;
  /** Record sequence numbers, inclusive; for kind 'records' only. */
  fromSeq?: number;
  toSeq?: number;
  /** Record time (epoch seconds), inclusive; for kind 'records' only. */
  since?: number;
  until?: number;
}

/**
 * Why part of a requested range was not re-sent:
 * - released: acknowledged by the platform and since erased from the meter's storage;
 * - not-recorded: beyond the newest record the meter has written;
 * - pending-upload: not yet acknowledged, so it travels by the ordinary upload anyway;
 * - no-chain-link: held, but the chain link before it was erased, so no set can start there;
 * - unreadable: held, but its bytes do not decode (time ranges only);
 * - over-limit: beyond MAX_RECORDS_PER_REQUEST for one request;
 * - not-sent: neither the link nor a handheld took the frame.
 */
export type MissingReason =
  | 'released'
  | 'not-recorded'
  | 'pending-upload'
  | 'no-chain-link'
  | 'unreadable'
  | 'over-limit'
  | 'not-sent';

export const MISSING_REASONS: readonly MissingReason[] = Object.freeze([
  'released',
  'not-recorded',
  'pending-upload',
  'no-chain-link',
  'unreadable',
  'over-limit',
  'not-sent',
]);

export interface MissingRange {
  from: number;
  to: number;
  reason: MissingReason;
}

/** Why a request was refused whole: its body did not decode, or its range is not one. */
export type ReportRefusalCode = 'bad-request' | 'bad-range';

export interface ReportAnswer {
  requestId: number;
  kind: ReportKind;
  ok: boolean;
  code?: ReportRefusalCode;
  why?: string;
  /** Kind status: whether the status report was sent. */
  statusSent?: boolean;
  /** Kind records: the records held in storage when the request came, [first, last]. */
  held?: { from: number; to: number };
  /** Kind records: the last record the platform had acknowledged. */
  acknowledged?: number;
  /** Kind records: runs of records re-sent. */
  sent?: { from: number; to: number }[];
  missing?: MissingRange[];
}

/** A request refused whole; `code` is what the answer carries. */
export class ReportRequestError extends Error {
  override readonly name: string = 'ReportRequestError';
  constructor(
    readonly code: ReportRefusalCode,
    message: string,
  ) {
    super(message);
  }
}

const U32 = 0xffffffff;

function map(value: unknown): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Uint8Array)
    throw badField('message is not a map');
  return value as Record<string, unknown>;
}

function u32(value: unknown, name: string): number {
  const n = uint(value, name);
  if (n > U32) throw badField(`${name} is not a 32-bit number`);
  return n;
}

function optionalU32(value: unknown, name: string): number | undefined {
  return value === undefined ? undefined : u32(value, name);
}

function kindOf(value: unknown): ReportKind {
  if (value !== 'status' && value !== 'records')
    throw badField(`k ${String(value)} is not status or records`);
  return value;
}

/**
 * Checks a request whole: a status request names no range; a records request names a sequence
 * range, a time range or both, each with its first not after its last. Throws ReportRequestError.
 */
export function validateReportRequest(request: ReportRequest): ReportRequest {
  const { requestId, kind, fromSeq, toSeq, since, until } = request;
  if (!Number.isInteger(requestId) || requestId < 1 || requestId > U32)
    throw new ReportRequestError('bad-request', 'request id must be a 32-bit number from 1');
  if (kind !== 'status' && kind !== 'records')
    throw new ReportRequestError('bad-request', `kind ${String(kind)} is not status or records`);
  const bounds = { fromSeq, toSeq, since, until };
  for (const [name, value] of Object.entries(bounds)) {
    if (value !== undefined && (!Number.isInteger(value) || value < 0 || value > U32))
      throw new ReportRequestError('bad-range', `${name} must be a 32-bit number`);
  }
  const bySeq = fromSeq !== undefined || toSeq !== undefined;
  const byTime = since !== undefined || until !== undefined;
  if (kind === 'status') {
    if (bySeq || byTime) throw new ReportRequestError('bad-range', 'a status request names no range');
    return { requestId, kind };
  }
  if (!bySeq && !byTime)
    throw new ReportRequestError(
      'bad-range',
      'a records request names a sequence range, a time range or both',
    );
  if (bySeq && (fromSeq === undefined || toSeq === undefined))
    throw new ReportRequestError('bad-range', 'fromSeq and toSeq come together');
  if (byTime && (since === undefined || until === undefined))
    throw new ReportRequestError('bad-range', 'since and until come together');
  if (fromSeq !== undefined && toSeq !== undefined && (fromSeq < 1 || fromSeq > toSeq))
    throw new ReportRequestError('bad-range', `sequence range ${fromSeq}..${toSeq} is empty`);
  if (since !== undefined && until !== undefined && since > until)
    throw new ReportRequestError('bad-range', `time range ${since}..${until} is empty`);
  const out: ReportRequest = { requestId, kind };
  if (bySeq) Object.assign(out, { fromSeq, toSeq });
  if (byTime) Object.assign(out, { since, until });
  return out;
}

export function encodeReportRequest(request: ReportRequest): Uint8Array {
  const r = validateReportRequest(request);
  const body: Record<string, unknown> = { r: r.requestId, k: r.kind };
  if (r.fromSeq !== undefined) body.from = r.fromSeq;
  if (r.toSeq !== undefined) body.to = r.toSeq;
  if (r.since !== undefined) body.since = r.since;
  if (r.until !== undefined) body.until = r.until;
  return encodeCbor(body);
}

/**
 * Decodes and checks a request. A body that does not decode is a ProtocolError; a request whose
 * fields are there but wrong is a ReportRequestError, so the meter can answer naming its id.
 */
export function decodeReportRequest(body: Uint8Array): ReportRequest {
  const m = map(decodeCbor(body));
  const requestId = u32(m.r, 'r');
  const kind = kindOf(m.k);
  const request: ReportRequest = { requestId, kind };
  const put = (key: 'fromSeq' | 'toSeq' | 'since' | 'until', value: unknown) => {
    if (value === undefined) return;
    if (typeof value !== 'number' || !Number.isInteger(value))
      throw new ReportRequestError('bad-range', `${key} is not a whole number`);
    request[key] = value;
  };
  put('fromSeq', m.from);
  put('toSeq', m.to);
  put('since', m.since);
  put('until', m.until);
  return validateReportRequest(request);
}

export function encodeReportAnswer(answer: ReportAnswer): Uint8Array {
  const body: Record<string, unknown> = { r: answer.requestId, k: answer.kind, ok: answer.ok };
  if (answer.code !== undefined) body.code = answer.code;
  if (answer.why !== undefined) body.why = answer.why;
  if (answer.statusSent !== undefined) body.st = answer.statusSent;
  if (answer.held !== undefined) body.held = [answer.held.from, answer.held.to];
  if (answer.acknowledged !== undefined) body.acked = answer.acknowledged;
  if (answer.sent !== undefined) body.sent = answer.sent.map((s) => [s.from, s.to]);
  if (answer.missing !== undefined) body.missing = answer.missing.map((g) => [g.from, g.to, g.reason]);
  return encodeCbor(body);
}

function range(value: unknown, name: string): { from: number; to: number } {
  if (!Array.isArray(value) || value.length < 2) throw badField(`${name} is not a [first, last] pair`);
  const from = u32(value[0], `${name}[0]`);
  const to = u32(value[1], `${name}[1]`);
  if (from > to) throw badField(`${name} runs backwards`);
  return { from, to };
}

function list(value: unknown, name: string): unknown[] {
  if (!Array.isArray(value)) throw badField(`${name} is not a list`);
  return value;
}

export function decodeReportAnswer(body: Uint8Array): ReportAnswer {
  const m = map(decodeCbor(body));
  if (typeof m.ok !== 'boolean') throw badField('ok is not a boolean');
  const answer: ReportAnswer = { requestId: u32(m.r, 'r'), kind: kindOf(m.k), ok: m.ok };
  if (m.code !== undefined) {
    if (m.code !== 'bad-request' && m.code !== 'bad-range') throw badField(`code ${String(m.code)}`);
    answer.code = m.code;
  }
  if (m.why !== undefined) {
    if (typeof m.why !== 'string') throw badField('why is not text');
    answer.why = m.why;
  }
  if (m.st !== undefined) {
    if (typeof m.st !== 'boolean') throw badField('st is not a boolean');
    answer.statusSent = m.st;
  }
  if (m.held !== undefined) {
    const held = list(m.held, 'held');
    answer.held = { from: u32(held[0], 'held[0]'), to: u32(held[1], 'held[1]') };
  }
  answer.acknowledged = optionalU32(m.acked, 'acked');
  if (answer.acknowledged === undefined) delete answer.acknowledged;
  if (m.sent !== undefined) answer.sent = list(m.sent, 'sent').map((s, i) => range(s, `sent[${i}]`));
  if (m.missing !== undefined)
    answer.missing = list(m.missing, 'missing').map((g, i) => {
      const r = range(g, `missing[${i}]`);
      const reason = (g as unknown[])[2];
      if (!MISSING_REASONS.includes(reason as MissingReason))
        throw new ProtocolError('bad-field', `missing[${i}] reason ${String(reason)} is not known`);
      return { ...r, reason: reason as MissingReason };
    });
  return answer;
}
