// Enforcement: each bay's validity for an officer's beat, read from the latest status report's bays
// (fleet room's bay_occupancy), the meters' stored transactions and the phone sessions (renewals
// move their paid_until); penalty notices (412g) issued with that evidence, idempotent on the id the
// officer's device generates; drivers' appeals and the supervisor's decision.
import { createHash, randomBytes } from 'node:crypto';
import type { Database, Queryable } from '../core/db';
import { RequestRefused } from '../core/errors';
import { normalisePlate } from '../core/plates';

export type Validity = 'paid' | 'grace' | 'overtime' | 'unpaid' | 'free';

export interface PlateLookup {
  plate: string;
  /** The bays paid from the phone for this plate, with each bay's validity now. */
  bays: (BayValidity & { sessionPaidUntil: string })[];
  /** Ids of the notices issued to this plate, newest first. */
  notices: string[];
}

export interface BayValidity {
  meterId: number;
  meterName: string;
  bayId: number;
  occupied: boolean;
  /** When the vehicle arrived (occupied) per the status report. */
  since: string | null;
  /** The latest paid-until over the meter's transactions and the phone sessions for the bay. */
  paidUntil: string | null;
  validity: Validity;
  /** When the status report's bay row was stored. */
  reportedAt: string;
}

/** A bay's validity at `now`: paid before paid-until, then grace, then overtime when occupied. */
export function validityOf(
  occupied: boolean,
  paidUntil: Date | null,
  now: Date,
  graceSeconds: number,
): Validity {
  if (paidUntil && paidUntil.getTime() > now.getTime()) return 'paid';
  if (!occupied) return 'free';
  if (!paidUntil) return 'unpaid';
  return now.getTime() - paidUntil.getTime() <= graceSeconds * 1000 ? 'grace' : 'overtime';
}

const BEAT_SQL = `
SELECT b.meter_id, m.name, b.bay_id, b.occupied, b.since, b.updated_at,
       GREATEST(
         (SELECT max(t.paid_until) FROM transactions t WHERE t.meter_id = b.meter_id AND t.bay_id = b.bay_id),
         (SELECT max(s.paid_until) FROM phone_sessions s WHERE s.meter_id = b.meter_id AND s.bay_id = b.bay_id)
       ) AS paid_until
  FROM bay_occupancy b JOIN meters m ON m.id = b.meter_id
 WHERE ($1::bigint[] IS NULL OR b.meter_id = ANY($1::bigint[]))
   AND ($2::text IS NULL OR m.area = $2)
   AND ($3::bigint IS NULL OR b.bay_id = $3)
 ORDER BY b.meter_id, b.bay_id`;

interface BeatRow {
  meter_id: string | number;
  name: string;
  bay_id: string | number;
  occupied: boolean;
  since: Date | null;
  updated_at: Date;
  paid_until: Date | null;
}

export interface NoticeInput {
  id: string;
  meterId: number;
  bayId: number;
  plate?: string;
  observedAt: string;
  latitude?: number;
  longitude?: number;
  note?: string;
}

export interface NoticeView {
  id: string;
  code: string;
  meterId: number;
  bayId: number;
  plate: string | null;
  officer: string;
  observedAt: string;
  latitude: number | null;
  longitude: number | null;
  note: string | null;
  evidence: NoticeEvidence;
  status: string;
  createdAt: string;
  appeal: AppealView | null;
}

export interface NoticeEvidence {
  bay: BayValidity | null;
  /** The meter's latest record for the bay (a transaction) or else its latest record, with its chain link. */
  record: { seq: number; kind: number; recordedAt: string; link: string } | null;
}

export interface AppealView {
  statement: string;
  contact: string | null;
  submittedAt: string;
  decision: string | null;
  reason: string | null;
  decidedBy: string | null;
  decidedAt: string | null;
}

/** Canonical JSON (keys sorted) of the officer's body, so key order does not make a conflict. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object')
    return `{${Object.keys(value)
      .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  return JSON.stringify(value);
}

// Crockford base32 without I, L, O, U: easy to read off paper.
const CODE_ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
function newCode(): string {
  const bytes = randomBytes(10);
  let out = '';
  for (const b of bytes) out += CODE_ALPHABET[b & 31];
  return `${out.slice(0, 5)}-${out.slice(5)}`;
}

const iso = (d: Date | null) => (d ? new Date(d).toISOString() : null);

/** The phone room's outbox (phone/channels.ts), handed in: messages to a registered driver. */
export interface DriverMessages {
  enqueue(
    q: Queryable,
    m: {
      driverId: number | null;
      channel: 'sms' | 'voice' | 'app';
      recipient: string;
      kind: string;
      body: string;
    },
  ): Promise<number>;
}

export class Enforcement {
  readonly #db: Database;
  readonly #now: () => number;
  readonly #graceSeconds: number;
  readonly #messages: DriverMessages | undefined;

  constructor(
    db: Database,
    options: { now?: () => number; graceSeconds?: number; driverMessages?: DriverMessages } = {},
  ) {
    this.#db = db;
    this.#now = options.now ?? Date.now;
    this.#graceSeconds = options.graceSeconds ?? 600;
    this.#messages = options.driverMessages;
  }

  async beat(
    filter: { meters?: number[]; area?: string; bayId?: number },
    q: Queryable = this.#db,
  ): Promise<BayValidity[]> {
    const now = new Date(this.#now());
    const { rows } = await q.query<BeatRow>(BEAT_SQL, [
      filter.meters ?? null,
      filter.area ?? null,
      filter.bayId ?? null,
    ]);
    return rows.map((r) => {
      const paidUntil = r.paid_until ? new Date(r.paid_until) : null;
      return {
        meterId: Number(r.meter_id),
        meterName: r.name,
        bayId: Number(r.bay_id),
        occupied: r.occupied,
        since: iso(r.since),
        paidUntil: iso(paidUntil),
        validity: validityOf(r.occupied, paidUntil, now, this.#graceSeconds),
        reportedAt: new Date(r.updated_at).toISOString(),
      };
    });
  }

  /**
   * A vehicle by its plate: the bays where parking was paid for it from the phone (started by the
   * bay code, with the plate), most recent first, each with the bay's validity now; and its notices.
   */
  async plate(raw: string): Promise<PlateLookup> {
    const plate = normalisePlate(raw);
    if (plate === undefined)
      throw new RequestRefused(400, 'bad-plate', 'a plate is 2 to 10 letters and digits', 'plate');
    const sessions = await this.#db.query<{ meter_id: number; bay_id: number; paid_until: Date }>(
      `SELECT meter_id, bay_id, max(paid_until) AS paid_until FROM phone_sessions
        WHERE plate = $1 AND status = 'active' GROUP BY meter_id, bay_id ORDER BY max(paid_until) DESC LIMIT 10`,
      [plate],
    );
    const bays: (BayValidity & { sessionPaidUntil: string })[] = [];
    for (const s of sessions.rows) {
      const [bay] = await this.beat({ meters: [Number(s.meter_id)], bayId: Number(s.bay_id) });
      const paidUntil = new Date(s.paid_until);
      const fallback: BayValidity = {
        meterId: Number(s.meter_id),
        meterName: '',
        bayId: Number(s.bay_id),
        occupied: false,
        since: null,
        paidUntil: paidUntil.toISOString(),
        validity: validityOf(true, paidUntil, new Date(this.#now()), this.#graceSeconds),
        reportedAt: paidUntil.toISOString(),
      };
      bays.push({ ...(bay ?? fallback), sessionPaidUntil: paidUntil.toISOString() });
    }
    const notices = await this.#db.query<{ id: string }>(
      `SELECT id FROM penalty_notices WHERE regexp_replace(upper(plate), '[[:space:]-]', '', 'g') = $1
        ORDER BY observed_at DESC LIMIT 20`,
      [plate],
    );
    return { plate, bays, notices: notices.rows.map((n) => n.id) };
  }

  /** Issues a notice; the same id with the same body returns the stored one (created: false). */
  async issue(
    input: NoticeInput,
    officer: { id: number; username: string },
  ): Promise<{ notice: NoticeView; created: boolean }> {
    const observed = new Date(input.observedAt);
    if (Number.isNaN(observed.getTime()))
      throw new RequestRefused(400, 'bad-time', 'observedAt is not a time', 'observedAt');
    const bodyHash = createHash('sha256').update(canonical(input)).digest('hex');
    const result = await this.#db.transaction(async (tx) => {
      const known = await tx.query<{ body_hash: string }>(
        'SELECT body_hash FROM penalty_notices WHERE id = $1 FOR UPDATE',
        [input.id],
      );
      if (known.rows[0]) {
        if (known.rows[0].body_hash !== bodyHash)
          throw new RequestRefused(
            409,
            'notice-id-conflict',
            `notice ${input.id} exists with another body`,
            'id',
          );
        return false;
      }
      const meter = await tx.query('SELECT 1 FROM meters WHERE id = $1', [input.meterId]);
      if (!meter.rows[0])
        throw new RequestRefused(404, 'unknown-meter', `no meter ${input.meterId}`, 'meterId');
      const [bay] = await this.beat({ meters: [input.meterId], bayId: input.bayId }, tx);
      const record = await tx.query<{
        seq: string | number;
        kind: number;
        recorded_at: Date;
        link: Uint8Array;
      }>(
        `SELECT r.seq, r.kind, r.recorded_at, r.link FROM records r
          WHERE r.meter_id = $1
          ORDER BY (EXISTS (SELECT 1 FROM transactions t WHERE t.meter_id = r.meter_id AND t.seq = r.seq
                             AND t.recorded_at = r.recorded_at AND t.bay_id = $2)) DESC, r.seq DESC
          LIMIT 1`,
        [input.meterId, input.bayId],
      );
      const r = record.rows[0];
      const evidence: NoticeEvidence = {
        bay: bay ?? null,
        record: r
          ? {
              seq: Number(r.seq),
              kind: r.kind,
              recordedAt: new Date(r.recorded_at).toISOString(),
              link: Buffer.from(r.link).toString('hex'),
            }
          : null,
      };
      const code = newCode();
      await tx.query(
        `INSERT INTO penalty_notices (id, code, meter_id, bay_id, plate, officer_id, officer, observed_at,
                                      latitude, longitude, note, evidence, body_hash, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
        [
          input.id,
          code,
          input.meterId,
          input.bayId,
          input.plate ?? null,
          officer.id,
          officer.username,
          observed,
          input.latitude ?? null,
          input.longitude ?? null,
          input.note ?? null,
          JSON.stringify(evidence),
          bodyHash,
          new Date(this.#now()),
        ],
      );
      await this.#tellDriver(tx, input, observed, code);
      return true;
    });
    const notice = await this.notice({ id: input.id });
    if (!notice) throw new Error(`notice ${input.id} vanished`);
    return { notice, created: result };
  }

  /**
   * The driver of the bay's latest phone session begun by the time observed, when there is one: a
   * message through the phone room's outbox on the driver's alert channel (in the same transaction).
   */
  async #tellDriver(tx: Queryable, input: NoticeInput, observed: Date, code: string): Promise<void> {
    if (!this.#messages) return;
    const { rows } = await tx.query<{
      driver_id: string | number;
      alert_channel: 'sms' | 'voice' | 'app';
      phone: string;
      renewal_phone: string | null;
      account_number: string;
    }>(
      `SELECT s.driver_id, d.alert_channel, d.phone, d.renewal_phone, d.account_number
         FROM phone_sessions s JOIN drivers d ON d.id = s.driver_id
        WHERE s.meter_id = $1 AND s.bay_id = $2 AND s.paid_from <= $3
        ORDER BY s.paid_from DESC LIMIT 1`,
      [input.meterId, input.bayId, observed],
    );
    const d = rows[0];
    if (!d) return;
    const channel = d.alert_channel;
    await this.#messages.enqueue(tx, {
      driverId: Number(d.driver_id),
      channel,
      recipient: channel === 'app' ? d.account_number : (d.renewal_phone ?? d.phone),
      kind: 'penalty-notice',
      body: `ParkLink: penalty notice ${code} was issued at bay ${input.bayId} (meter ${input.meterId}) at ${observed.toISOString()}. To appeal, open /enforcement/notices/${code}.`,
    });
  }

  async list(filter: { status?: string } = {}): Promise<NoticeView[]> {
    return this.#select('WHERE ($1::text IS NULL OR n.status = $1) ORDER BY n.created_at DESC, n.id', [
      filter.status ?? null,
    ]);
  }

  async notice(by: { id?: string; code?: string }): Promise<NoticeView | null> {
    const rows = by.id
      ? await this.#select('WHERE n.id = $1', [by.id])
      : await this.#select('WHERE n.code = $1', [(by.code ?? '').toUpperCase()]);
    return rows[0] ?? null;
  }

  /** The driver's statement on a notice found by its printed code; one appeal per notice. */
  async appeal(code: string, input: { statement: string; contact?: string }): Promise<NoticeView> {
    const notice = await this.notice({ code });
    if (!notice) throw new RequestRefused(404, 'unknown-notice', 'no notice with this code', 'code');
    await this.#db.transaction(async (tx) => {
      const done = await tx.query(
        `INSERT INTO notice_appeals (notice_id, statement, contact, submitted_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (notice_id) DO NOTHING RETURNING notice_id`,
        [notice.id, input.statement, input.contact ?? null, new Date(this.#now())],
      );
      if (!done.rows[0])
        throw new RequestRefused(409, 'already-appealed', 'this notice has an appeal already', 'code');
      await tx.query("UPDATE penalty_notices SET status = 'appealed' WHERE id = $1", [notice.id]);
    });
    return (await this.notice({ id: notice.id })) as NoticeView;
  }

  /** Both sides' evidence for the supervisor: the notice, the appeal, the bay's payments around it. */
  async caseFile(id: string): Promise<{ notice: NoticeView; payments: unknown[] } | null> {
    const notice = await this.notice({ id });
    if (!notice) return null;
    const at = new Date(notice.observedAt);
    const dayBefore = new Date(at.getTime() - 86_400_000);
    const tx = await this.#db.query<Record<string, unknown>>(
      `SELECT 'meter' AS source, seq, paid_from, paid_until, charge, currency, card_type FROM transactions
        WHERE meter_id = $1 AND bay_id = $2 AND paid_until >= $3 AND paid_from <= $4
        ORDER BY paid_from`,
      [notice.meterId, notice.bayId, dayBefore, at],
    );
    const phone = await this.#db.query<Record<string, unknown>>(
      `SELECT 'phone' AS source, id, paid_from, paid_until, paid_minutes, status FROM phone_sessions
        WHERE meter_id = $1 AND bay_id = $2 AND paid_until >= $3 AND paid_from <= $4
        ORDER BY paid_from`,
      [notice.meterId, notice.bayId, dayBefore, at],
    );
    const norm = (r: Record<string, unknown>) =>
      Object.fromEntries(
        Object.entries(r).map(([k, v]) => [
          k,
          v instanceof Date ? v.toISOString() : typeof v === 'bigint' ? Number(v) : v,
        ]),
      );
    return { notice, payments: [...tx.rows, ...phone.rows].map(norm) };
  }

  async decide(
    id: string,
    input: { decision: 'upheld' | 'cancelled'; reason: string },
    by: string,
  ): Promise<NoticeView> {
    await this.#db.transaction(async (tx) => {
      const n = await tx.query<{ status: string }>(
        'SELECT status FROM penalty_notices WHERE id = $1 FOR UPDATE',
        [id],
      );
      if (!n.rows[0]) throw new RequestRefused(404, 'unknown-notice', `no notice ${id}`, 'id');
      if (n.rows[0].status !== 'appealed')
        throw new RequestRefused(
          409,
          'not-appealed',
          `notice ${id} is ${n.rows[0].status}, not appealed`,
          'id',
        );
      await tx.query(
        'UPDATE notice_appeals SET decision = $2, reason = $3, decided_by = $4, decided_at = $5 WHERE notice_id = $1',
        [id, input.decision, input.reason, by, new Date(this.#now())],
      );
      await tx.query('UPDATE penalty_notices SET status = $2 WHERE id = $1', [id, input.decision]);
    });
    return (await this.notice({ id })) as NoticeView;
  }

  async #select(where: string, params: (string | null)[]): Promise<NoticeView[]> {
    const { rows } = await this.#db.query<Record<string, unknown>>(
      `SELECT n.*, a.statement, a.contact, a.submitted_at, a.decision, a.reason, a.decided_by, a.decided_at
         FROM penalty_notices n LEFT JOIN notice_appeals a ON a.notice_id = n.id ${where}`,
      params,
    );
    return rows.map((r) => ({
      id: r.id as string,
      code: r.code as string,
      meterId: Number(r.meter_id),
      bayId: Number(r.bay_id),
      plate: (r.plate as string | null) ?? null,
      officer: r.officer as string,
      observedAt: new Date(r.observed_at as Date).toISOString(),
      latitude: (r.latitude as number | null) ?? null,
      longitude: (r.longitude as number | null) ?? null,
      note: (r.note as string | null) ?? null,
      evidence: (typeof r.evidence === 'string' ? JSON.parse(r.evidence) : r.evidence) as NoticeEvidence,
      status: r.status as string,
      createdAt: new Date(r.created_at as Date).toISOString(),
      appeal: r.submitted_at
        ? {
            statement: r.statement as string,
            contact: (r.contact as string | null) ?? null,
            submittedAt: new Date(r.submitted_at as Date).toISOString(),
            decision: (r.decision as string | null) ?? null,
            reason: (r.reason as string | null) ?? null,
            decidedBy: (r.decided_by as string | null) ?? null,
            decidedAt: iso(r.decided_at as Date | null),
          }
        : null,
    }));
  }
}
