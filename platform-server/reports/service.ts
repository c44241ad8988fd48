// Reports on demand (management service 414b) on the platform: an operator asks one meter for an
// immediate status report or a selected range of its records (downlink 0x8C); the meter answers
// (0x0C) with the runs it re-sent and the part of the range it no longer holds, with a reason. The
// re-sent records arrive as ordinary record sets, which ingest stores or, when it already holds them
// with the same bytes, counts as duplicates; this service notes which of the meter's records arrived
// while the request was open, so a request shows what was sent, what arrived and what is still out.
//
// Its HTTP API is routes.ts; index.ts wires the room (the 0x0C route, the record listener, routes).
import {
  decodeReportAnswer,
  encodeReportRequest,
  type MissingRange,
  REPORT_REQUEST_DOWNLINK,
  type ReportAnswer,
  type ReportKind,
  type ReportRequest,
  ReportRequestError,
  validateReportRequest,
} from '../../protocol/reports';
import type { Database } from '../core/db';
import { RequestRefused } from '../core/errors';
import type { Accepted, UplinkHandler } from '../ingest/gate';

export interface ReportDeps {
  db: Database;
  /** Seals and publishes a downlink (Ingest.sendDownlink); returns its sequence number. */
  sendDownlink(meterId: number, type: number, body: Uint8Array): Promise<number>;
}

export class ReportRefused extends RequestRefused {
  override readonly name: string = 'ReportRefused';
}

export interface Run {
  from: number;
  to: number;
}

export interface ReportAsk {
  kind: ReportKind;
  fromSeq?: number;
  toSeq?: number;
  /** ISO date-times; sent to the meter as epoch seconds. */
  since?: string;
  until?: string;
}

export interface ReportRequestView {
  requestId: number;
  meterId: number;
  kind: ReportKind;
  fromSeq: number | null;
  toSeq: number | null;
  since: string | null;
  until: string | null;
  requestedBy: string;
  requestedAt: string;
  downlinkSeq: number | null;
  /** sent: no answer yet; answered: the meter answered; refused: the meter refused the request. */
  state: 'sent' | 'answered' | 'refused';
  answeredAt: string | null;
  refusal: { code: string; why: string | null } | null;
  statusSent: boolean | null;
  /** The records the meter held when the request came, and the last one acknowledged. */
  held: Run | null;
  acknowledged: number | null;
  /** Runs the meter says it re-sent. */
  sent: Run[];
  /** The part of the range the meter did not send, with its reason. */
  missing: MissingRange[];
  /** Of the runs sent: records that arrived, new to the platform or already held (duplicates). */
  receivedNew: number;
  receivedDuplicate: number;
  /** Of the runs sent: records not arrived (yet). */
  outstanding: Run[];
  /** Answered, and everything the meter sent has arrived (for a status request: the report went). */
  complete: boolean;
}

interface Row {
  id: string | number;
  meter_id: string | number;
  kind: ReportKind;
  from_seq: string | number | null;
  to_seq: string | number | null;
  since: Date | string | null;
  until: Date | string | null;
  requested_by: string;
  requested_at: Date | string;
  downlink_seq: string | number | null;
  state: 'sent' | 'answered' | 'refused';
  answered_at: Date | string | null;
  answer: StoredAnswer | null;
  received_new: [number, number][];
  received_duplicate: [number, number][];
  complete: boolean;
}

/** The answer as kept in the answer column (JSON). */
type StoredAnswer = Omit<ReportAnswer, 'requestId' | 'kind'>;

const COLUMNS = `id, meter_id, kind, from_seq, to_seq, since, until, requested_by, requested_at, downlink_seq,
  state, answered_at, answer, received_new, received_duplicate, complete`;

/** How long a request keeps collecting the records that arrive for it. */
const OPEN_FOR = '1 day';

export class ReportService {
  readonly #deps: ReportDeps;

  constructor(deps: ReportDeps) {
    this.#deps = deps;
  }

  /** Checks a request, stores it, and sends it to the meter; throws ReportRefused (nothing sent). */
  async request(meterId: number, ask: ReportAsk, requestedBy: string): Promise<ReportRequestView> {
    const since = seconds(ask.since, 'since');
    const until = seconds(ask.until, 'until');
    const probe: ReportRequest = { requestId: 1, kind: ask.kind };
    if (ask.fromSeq !== undefined) probe.fromSeq = ask.fromSeq;
    if (ask.toSeq !== undefined) probe.toSeq = ask.toSeq;
    if (since !== undefined) probe.since = since;
    if (until !== undefined) probe.until = until;
    try {
      validateReportRequest(probe);
    } catch (error) {
      if (error instanceof ReportRequestError) throw new ReportRefused(400, error.code, error.message);
      throw error;
    }
    const { rows: known } = await this.#deps.db.query('SELECT 1 FROM meters WHERE id = $1', [meterId]);
    if (known.length === 0) throw new ReportRefused(404, 'unknown-meter', `no meter ${meterId}`);
    const { rows } = await this.#deps.db.query<{ id: string | number }>(
      `INSERT INTO report_requests (meter_id, kind, from_seq, to_seq, since, until, requested_by)
       VALUES ($1, $2, $3, $4, to_timestamp($5::double precision), to_timestamp($6::double precision), $7)
       RETURNING id`,
      [meterId, ask.kind, ask.fromSeq ?? null, ask.toSeq ?? null, since ?? null, until ?? null, requestedBy],
    );
    const requestId = Number(rows[0].id);
    const body = encodeReportRequest({ ...probe, requestId });
    let downlinkSeq: number;
    try {
      downlinkSeq = await this.#deps.sendDownlink(meterId, REPORT_REQUEST_DOWNLINK, body);
    } catch (error) {
      // Not sent: no request is kept that the meter never got.
      await this.#deps.db.query('DELETE FROM report_requests WHERE id = $1', [requestId]);
      throw new ReportRefused(502, 'downlink-failed', `request not sent: ${(error as Error).message}`);
    }
    await this.#deps.db.query('UPDATE report_requests SET downlink_seq = $2 WHERE id = $1', [
      requestId,
      downlinkSeq,
    ]);
    return (await this.get(requestId)) as ReportRequestView;
  }

  async get(requestId: number): Promise<ReportRequestView | undefined> {
    const { rows } = await this.#deps.db.query<Row>(`SELECT ${COLUMNS} FROM report_requests WHERE id = $1`, [
      requestId,
    ]);
    return rows[0] && view(rows[0]);
  }

  /** A meter's requests, newest first. */
  async ofMeter(meterId: number, limit = 50): Promise<ReportRequestView[]> {
    const { rows } = await this.#deps.db.query<Row>(
      `SELECT ${COLUMNS} FROM report_requests WHERE meter_id = $1 ORDER BY id DESC LIMIT $2`,
      [meterId, limit],
    );
    return rows.map(view);
  }

  /** Ingest's handler for 0x0C: the answer, kept in the transaction that accepts the frame. */
  onAnswer: UplinkHandler = async ({ meterId, body }, tx) => {
    const answer = decodeReportAnswer(body);
    const { rows } = await tx.query<Row>(
      `SELECT ${COLUMNS} FROM report_requests WHERE id = $1 AND meter_id = $2 FOR UPDATE`,
      [answer.requestId, meterId],
    );
    const row = rows[0];
    if (!row) return; // an answer to a request this platform did not send (a garbled one: id 0)
    const { requestId: _id, kind: _kind, ...stored } = answer;
    row.answer = stored;
    row.state = answer.ok ? 'answered' : 'refused';
    await tx.query(
      `UPDATE report_requests SET state = $2, answer = $3, answered_at = now(), complete = $4 WHERE id = $1`,
      [row.id, row.state, JSON.stringify(stored), completeOf(row)],
    );
  };

  /**
   * Ingest's stored batches: the records of each set that fall in an open request of its meter are
   * noted as arrived, new or duplicate.
   */
  async onCommitted(accepted: Accepted[]): Promise<void> {
    const meterIds = [...new Set(accepted.map((a) => a.meterId))];
    const { rows: open } = await this.#deps.db.query<{ id: string | number }>(
      `SELECT id FROM report_requests
        WHERE meter_id = ANY($1::bigint[]) AND kind = 'records' AND NOT complete AND state <> 'refused'
          AND requested_at > now() - interval '${OPEN_FOR}'`,
      [meterIds],
    );
    for (const { id } of open) {
      await this.#deps.db.transaction(async (tx) => {
        const { rows } = await tx.query<Row>(
          `SELECT ${COLUMNS} FROM report_requests WHERE id = $1 FOR UPDATE`,
          [id],
        );
        const row = rows[0];
        if (!row || row.complete) return;
        let fresh = row.received_new.map(([from, to]) => ({ from, to }));
        let duplicate = row.received_duplicate.map(([from, to]) => ({ from, to }));
        let changed = false;
        for (const set of accepted) {
          if (set.meterId !== Number(row.meter_id)) continue;
          const count = set.stored.length + set.duplicates;
          if (count === 0) continue;
          const whole = { from: set.ack.seq - count + 1, to: set.ack.seq };
          const bounded =
            row.from_seq === null
              ? [whole]
              : intersect([whole], [{ from: Number(row.from_seq), to: Number(row.to_seq) }]);
          if (bounded.length === 0) continue;
          const storedRuns = merge(set.stored.map((s) => ({ from: s.record.seq, to: s.record.seq })));
          fresh = merge([...fresh, ...intersect(bounded, storedRuns)]);
          duplicate = merge([...duplicate, ...subtract(bounded, storedRuns)]);
          changed = true;
        }
        if (!changed) return;
        row.received_new = fresh.map((r) => [r.from, r.to]);
        row.received_duplicate = duplicate.map((r) => [r.from, r.to]);
        await tx.query(
          'UPDATE report_requests SET received_new = $2, received_duplicate = $3, complete = $4 WHERE id = $1',
          [id, JSON.stringify(row.received_new), JSON.stringify(row.received_duplicate), completeOf(row)],
        );
      });
    }
  }
}

function seconds(value: string | undefined, field: string): number | undefined {
  if (value === undefined) return undefined;
  const ms = Date.parse(value);
  if (!Number.isFinite(ms)) throw new ReportRefused(400, 'bad-range', `${field} is not a date-time`, field);
  return Math.floor(ms / 1000);
}

function iso(value: Date | string | null): string | null {
  return value === null ? null : new Date(value).toISOString();
}

function numberOrNull(value: string | number | null): number | null {
  return value === null ? null : Number(value);
}

function runsOf(pairs: [number, number][]): Run[] {
  return pairs.map(([from, to]) => ({ from, to }));
}

function completeOf(row: Row): boolean {
  if (row.state !== 'answered' || !row.answer) return false;
  if (row.kind === 'status') return row.answer.statusSent === true;
  const arrived = merge([...runsOf(row.received_new), ...runsOf(row.received_duplicate)]);
  return subtract(row.answer.sent ?? [], arrived).length === 0;
}

function view(row: Row): ReportRequestView {
  const answer = row.answer;
  const sent = answer?.sent ?? [];
  const fresh = intersect(runsOf(row.received_new), sent);
  const duplicate = intersect(runsOf(row.received_duplicate), sent);
  return {
    requestId: Number(row.id),
    meterId: Number(row.meter_id),
    kind: row.kind,
    fromSeq: numberOrNull(row.from_seq),
    toSeq: numberOrNull(row.to_seq),
    since: iso(row.since),
    until: iso(row.until),
    requestedBy: row.requested_by,
    requestedAt: iso(row.requested_at) as string,
    downlinkSeq: numberOrNull(row.downlink_seq),
    state: row.state,
    answeredAt: iso(row.answered_at),
    refusal:
      row.state === 'refused' && answer
        ? { code: answer.code ?? 'bad-request', why: answer.why ?? null }
        : null,
    statusSent: answer?.statusSent ?? null,
    held: answer?.held ?? null,
    acknowledged: answer?.acknowledged ?? null,
    sent,
    missing: answer?.missing ?? [],
    receivedNew: count(fresh),
    receivedDuplicate: count(duplicate),
    outstanding: subtract(sent, merge([...fresh, ...duplicate])),
    complete: row.complete,
  };
}

// ---- runs of sequence numbers (inclusive, sorted, merged) ---------------------------------------

function count(runs: Run[]): number {
  return runs.reduce((n, r) => n + r.to - r.from + 1, 0);
}

export function merge(runs: Run[]): Run[] {
  const sorted = runs.filter((r) => r.from <= r.to).sort((a, b) => a.from - b.from);
  const out: Run[] = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last && r.from <= last.to + 1) last.to = Math.max(last.to, r.to);
    else out.push({ ...r });
  }
  return out;
}

export function intersect(a: Run[], b: Run[]): Run[] {
  const out: Run[] = [];
  for (const x of merge(a))
    for (const y of merge(b)) {
      const from = Math.max(x.from, y.from);
      const to = Math.min(x.to, y.to);
      if (from <= to) out.push({ from, to });
    }
  return merge(out);
}

/** The parts of `a` not in `b`. */
export function subtract(a: Run[], b: Run[]): Run[] {
  let rest = merge(a);
  for (const y of merge(b)) {
    const next: Run[] = [];
    for (const x of rest) {
      if (y.to < x.from || y.from > x.to) next.push(x);
      else {
        if (x.from < y.from) next.push({ from: x.from, to: y.from - 1 });
        if (x.to > y.to) next.push({ from: y.to + 1, to: x.to });
      }
    }
    rest = next;
  }
  return rest;
}
