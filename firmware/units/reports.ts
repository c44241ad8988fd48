// Reports on demand (management service 414b): the platform, or a handheld carrying its sealed
// downlink, asks for an immediate status report or a selected range of records (downlink 0x8C).
// A status request sends the ordinary status uplink now. A records request re-sends, as ordinary
// record sets (0x01), the acknowledged records of the range still held in storage; records not yet
// acknowledged travel by the ordinary upload anyway and are not sent twice. The answer (0x0C) says
// which runs went and which part of the range did not, with a reason.
//
// Nothing here writes to storage: a request, good or bad, only reads the log, so a bad one loses
// nothing. A bad request is answered with its typed refusal (ok false, code, why).
import type { Crypto } from '../../hal/crypto';
import { genesisHash } from '../../protocol/chain';
import { decodeCbor } from '../../protocol/cbor';
import { ProtocolError } from '../../protocol/errors';
import { recordHeader } from '../../protocol/records';
import {
  decodeReportRequest,
  encodeReportAnswer,
  MAX_RECORDS_PER_REQUEST,
  type MissingRange,
  type MissingReason,
  REPORT_ANSWER_UPLINK,
  REPORT_REQUEST_DOWNLINK,
  type ReportAnswer,
  type ReportKind,
  type ReportRequest,
  ReportRequestError,
} from '../../protocol/reports';
import type { EventBus } from '../bus';
import type { MeterEvents } from '../events';
import type { UploadSetView } from './comms';
import type { RecordSource, StoredRecord } from './storage';

export interface ReportsOptions {
  bus?: EventBus<MeterEvents>;
  log: RecordSource;
  /** The last record the platform acknowledged (UploadLedger.acknowledgedSeq). */
  acknowledgedSeq: () => number;
  crypto: Crypto;
  meterId: number;
  /** Largest record payload per set, bytes (CommsUnit.maxSetBytes). */
  maxSetBytes: () => number;
  /** Sends one set through the record upload path (CommsUnit.sendSet). */
  sendSet: (set: UploadSetView) => boolean;
  /** Sends the status uplink now (the guard's report, or the monitor's where no guard is fitted). */
  sendStatus: () => boolean;
  /** Sends the 0x0C answer (CommsUnit.send). */
  send: (type: number, body: Uint8Array) => boolean;
  /** Records re-sent per request, at most (default MAX_RECORDS_PER_REQUEST). */
  maxRecords?: number;
}

/** Records read from storage at a time while a range is scanned. */
const READ_CHUNK = 32;

export class ReportsUnit {
  readonly #o: ReportsOptions;

  constructor(options: ReportsOptions) {
    this.#o = options;
    options.bus?.on('downlink', ({ type, body }) => {
      if (type === REPORT_REQUEST_DOWNLINK) this.applyDownlink(body);
    });
  }

  /** Handles a 0x8C body: answers it (and sends what it asks for); returns the answer sent. */
  applyDownlink(body: Uint8Array): ReportAnswer {
    let answer: ReportAnswer;
    try {
      const request = decodeReportRequest(body);
      answer = request.kind === 'status' ? this.#status(request) : this.#records(request);
    } catch (error) {
      if (error instanceof ReportRequestError || error instanceof ProtocolError) {
        answer = {
          ...refusedHeader(body),
          ok: false,
          code: error instanceof ReportRequestError ? error.code : 'bad-request',
          why: error.message,
        };
      } else throw error;
    }
    this.#o.send(REPORT_ANSWER_UPLINK, encodeReportAnswer(answer));
    return answer;
  }

  #status(request: ReportRequest): ReportAnswer {
    return { requestId: request.requestId, kind: 'status', ok: true, statusSent: this.#o.sendStatus() };
  }

  #records(request: ReportRequest): ReportAnswer {
    const { log } = this.#o;
    const acked = this.#o.acknowledgedSeq();
    const held = { from: log.firstSeq, to: log.lastSeq };
    const bySeq = request.fromSeq !== undefined && request.toSeq !== undefined;
    const lo = bySeq ? (request.fromSeq as number) : 1;
    const hi = bySeq ? (request.toSeq as number) : Math.max(log.lastSeq, 1);
    const missing: MissingRange[] = [];
    const miss = (from: number, to: number, reason: MissingReason) => {
      if (from > to) return;
      const last = missing[missing.length - 1];
      if (last && last.reason === reason && last.to + 1 === from) last.to = to;
      else missing.push({ from, to, reason });
    };
    const sent: { from: number; to: number }[] = [];
    const answer = (): ReportAnswer => ({
      requestId: request.requestId,
      kind: 'records',
      ok: true,
      held: log.lastSeq === 0 ? { from: 0, to: 0 } : held,
      acknowledged: acked,
      sent,
      missing: missing.sort((a, b) => a.from - b.from),
    });
    if (log.lastSeq === 0) {
      if (bySeq) miss(lo, hi, 'not-recorded');
      return answer();
    }
    const firstHeld = Math.max(log.firstSeq, 1);
    // Records below the oldest held were acknowledged and erased; a time range may have reached them
    // when the oldest held record is not older than its start.
    if (bySeq) miss(lo, Math.min(hi, firstHeld - 1), 'released');
    const scanFrom = Math.max(lo, firstHeld);
    const scanTo = Math.min(hi, acked, log.lastSeq);
    // Not yet acknowledged: on its way by the ordinary upload (for a time range, possibly in it).
    miss(Math.max(lo, acked + 1, firstHeld), Math.min(hi, log.lastSeq), 'pending-upload');
    if (bySeq) miss(Math.max(lo, log.lastSeq + 1), hi, 'not-recorded');

    const limit = this.#o.maxRecords ?? MAX_RECORDS_PER_REQUEST;
    const maxBytes = this.#o.maxSetBytes();
    let picked = 0;
    let run: StoredRecord[] = [];
    let runBytes = 0;
    let previous: Uint8Array | undefined; // the link before the run
    let seen: { seq: number; link: Uint8Array } | undefined; // the last record scanned
    let firstTimeChecked = false;
    const flush = () => {
      if (run.length === 0 || !previous) return;
      const set: UploadSetView = {
        firstSeq: run[0].seq,
        lastSeq: run[run.length - 1].seq,
        previous,
        records: run.map((r) => r.bytes),
        lastLink: run[run.length - 1].link,
      };
      if (this.#o.sendSet(set)) {
        const last = sent[sent.length - 1];
        if (last && last.to + 1 === set.firstSeq) last.to = set.lastSeq;
        else sent.push({ from: set.firstSeq, to: set.lastSeq });
      } else miss(set.firstSeq, set.lastSeq, 'not-sent');
      run = [];
      runBytes = 0;
    };

    let cursor = scanFrom;
    while (cursor <= scanTo) {
      const chunk = log.read(cursor, scanTo, READ_CHUNK);
      if (chunk.length === 0) {
        miss(cursor, scanTo, 'released');
        break;
      }
      for (const r of chunk) {
        if (r.seq > cursor) {
          // A hole inside the held range (erased or damaged): the run cannot cross it.
          flush();
          if (bySeq) miss(cursor, r.seq - 1, 'released');
          seen = undefined;
        }
        cursor = r.seq + 1;
        const linkBefore =
          seen && seen.seq === r.seq - 1 ? seen.link : r.seq === 1 ? this.#genesis() : log.linkOf(r.seq - 1);
        seen = { seq: r.seq, link: r.link };
        let wanted = true;
        if (request.since !== undefined && request.until !== undefined) {
          let time: number | undefined;
          try {
            time = recordHeader(r.bytes).time;
          } catch {
            time = undefined;
          }
          if (time === undefined) {
            flush();
            miss(r.seq, r.seq, 'unreadable');
            continue;
          }
          if (!firstTimeChecked) {
            firstTimeChecked = true;
            // The oldest record scanned is already inside the period: older ones may have been too.
            if (!bySeq && r.seq === firstHeld && firstHeld > 1 && time >= request.since)
              miss(1, firstHeld - 1, 'released');
          }
          wanted = time >= request.since && time <= request.until;
        }
        if (!wanted) {
          flush();
          continue;
        }
        if (picked >= limit) {
          flush();
          miss(r.seq, scanTo, 'over-limit');
          cursor = scanTo + 1;
          break;
        }
        if (run.length === 0) {
          if (!linkBefore) {
            miss(r.seq, r.seq, 'no-chain-link');
            continue;
          }
          previous = linkBefore;
        } else if (runBytes + r.bytes.length + 2 > maxBytes) {
          flush();
          previous = linkBefore;
        }
        run.push(r);
        runBytes += r.bytes.length + 2;
        picked++;
      }
    }
    flush();
    return answer();
  }

  #genesis(): Uint8Array {
    return genesisHash(this.#o.crypto, this.#o.meterId);
  }
}

/** The request id and kind of a refused body where they can be read (else 0 and 'records'). */
function refusedHeader(body: Uint8Array): { requestId: number; kind: ReportKind } {
  let m: unknown;
  try {
    m = decodeCbor(body);
  } catch {
    return { requestId: 0, kind: 'records' };
  }
  const fields =
    typeof m === 'object' && m !== null && !Array.isArray(m) ? (m as Record<string, unknown>) : {};
  const r = fields.r;
  return {
    requestId: typeof r === 'number' && Number.isInteger(r) && r >= 0 && r <= 0xffffffff ? r : 0,
    kind: fields.k === 'status' ? 'status' : 'records',
  };
}
