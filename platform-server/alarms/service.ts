// The alarm inbox: alarms raised in the transaction that stores what the meters report (security
// events 0x03, status events and reports 0x04; classify.ts reads them) and by a periodic sweep for
// meters past their expected contact; a repeat while the alarm is unresolved counts on it; operators
// acknowledge, assign and resolve with a note; every step is kept in the alarm's history; and each
// change is told, after its commit, to the listeners of `changes` (the console's live view, forwarding).
import { EventEmitter } from 'node:events';
import type { SecurityEvent } from '../../protocol/keys';
import { DEFAULT_SETTINGS, type StatusMessage } from '../../protocol/status';
import type { Database, Queryable } from '../core/db';
import { RequestRefused } from '../core/errors';
import type { Logger } from '../ingest/gate';
import {
  type AlarmSeverity,
  type AlarmSignal,
  SEVERITIES,
  signalsOfSecurityEvent,
  signalsOfStatusEvent,
  signalsOfStatusReport,
} from './classify';

export class AlarmRefused extends RequestRefused {
  override readonly name: string = 'AlarmRefused';
}

export type AlarmState = 'open' | 'acknowledged' | 'resolved';
export type AlarmAction =
  | 'raised'
  | 'repeated'
  | 'reopened'
  | 'cleared'
  | 'acknowledged'
  | 'assigned'
  | 'resolved';

export interface AlarmView {
  id: number;
  meterId: number;
  meterName: string;
  area: string | null;
  kind: string;
  subject: string;
  severity: AlarmSeverity;
  source: string;
  detail: string;
  state: AlarmState;
  occurredAt: string;
  raisedAt: string;
  lastAt: string;
  occurrences: number;
  clearedAt: string | null;
  acknowledgedAt: string | null;
  acknowledgedBy: string | null;
  assignedTo: string | null;
  assignedAt: string | null;
  resolvedAt: string | null;
  resolvedBy: string | null;
  resolution: string | null;
}

export interface AlarmHistoryEntry {
  at: string;
  action: string;
  actor: string;
  note: string | null;
}

/** One change to one alarm, told after its commit. */
export interface AlarmChange {
  action: AlarmAction;
  alarm: AlarmView;
}

export interface AlarmEvents {
  change: [AlarmChange];
}

export interface AlarmQuery {
  /** 'active': open or acknowledged (not resolved). */
  state?: AlarmState | 'active' | 'all';
  severity?: AlarmSeverity;
  area?: string;
  meterId?: number;
  assignedTo?: string;
  limit?: number;
  /** An alarm id: the page of older ones. */
  before?: number;
}

export interface ResponseTimes {
  /** The meter id or area name (null: meters in no area). */
  key: number | string | null;
  alarms: number;
  acknowledged: number;
  resolved: number;
  /** Mean and longest seconds from raised to acknowledged, over the acknowledged ones. */
  meanAcknowledgeSeconds: number | null;
  maxAcknowledgeSeconds: number | null;
  /** Mean and longest seconds from raised to resolved, over the resolved ones. */
  meanRepairSeconds: number | null;
  maxRepairSeconds: number | null;
}

export interface AlarmOptions {
  db: Database;
  logger: Logger;
  /** The platform's clock in ms (tests move it); Date.now by default. */
  now?: () => number;
  /** A pack at or below this state of charge in a status report is low (default 15, the meter's own). */
  lowBatteryPercent?: number;
  /** No contact for this long makes a meter overdue (default two missed status reports: 7200 s). */
  overdueAfterSeconds?: number;
  /** How often the overdue sweep runs, seconds (default 60); 0: only when sweep() is called. */
  sweepSeconds?: number;
}

/**
 * Runs in the transaction that raises or reopens an alarm (forwarding writes its deliveries there,
 * so an alarm raised is never left without them).
 */
export type RaiseHook = (
  tx: Pick<Queryable, 'query'>,
  alarmId: number,
  action: 'raised' | 'reopened',
) => Promise<void>;

/** What the service needs of a transaction. */
type Tx = Pick<Queryable, 'query'>;

/** A change in a transaction, told once it commits. */
type Pending = { id: number; action: AlarmAction };

interface AlarmRow {
  id: number;
  meter_id: number;
  meter_name: string;
  area: string | null;
  kind: string;
  subject: string;
  severity: AlarmSeverity;
  source: string;
  detail: string;
  occurred_at: Date;
  raised_at: Date;
  last_at: Date;
  occurrences: number;
  cleared_at: Date | null;
  acknowledged_at: Date | null;
  acknowledged_by: string | null;
  assigned_to: string | null;
  assigned_at: Date | null;
  resolved_at: Date | null;
  resolved_by: string | null;
  resolution: string | null;
}

const iso = (d: Date | null) => d?.toISOString() ?? null;

const view = (r: AlarmRow): AlarmView => ({
  id: r.id,
  meterId: r.meter_id,
  meterName: r.meter_name,
  area: r.area,
  kind: r.kind,
  subject: r.subject,
  severity: r.severity,
  source: r.source,
  detail: r.detail,
  state: r.resolved_at ? 'resolved' : r.acknowledged_at ? 'acknowledged' : 'open',
  occurredAt: r.occurred_at.toISOString(),
  raisedAt: r.raised_at.toISOString(),
  lastAt: r.last_at.toISOString(),
  occurrences: r.occurrences,
  clearedAt: iso(r.cleared_at),
  acknowledgedAt: iso(r.acknowledged_at),
  acknowledgedBy: r.acknowledged_by,
  assignedTo: r.assigned_to,
  assignedAt: iso(r.assigned_at),
  resolvedAt: iso(r.resolved_at),
  resolvedBy: r.resolved_by,
  resolution: r.resolution,
});

const SELECT_ALARM = `SELECT a.*, m.name AS meter_name, m.area FROM alarms a JOIN meters m ON m.id = a.meter_id`;

/** SQL rank of a severity (1 most severe). */
const RANK = `array_position(ARRAY['${SEVERITIES.join("','")}']::text[], $SEV)`;

export const OVERDUE = 'overdue';

export class AlarmService {
  readonly #o: AlarmOptions;
  readonly #now: () => number;
  readonly #lowPercent: number;
  readonly #overdueAfterS: number;
  readonly #raiseHooks: RaiseHook[] = [];
  #sweepTimer: NodeJS.Timeout | undefined;
  #sweeping: Promise<void> | undefined;
  /** Listeners get each change after its commit; a listener's throw is logged, nothing else. */
  readonly changes = new EventEmitter<AlarmEvents>();

  constructor(options: AlarmOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
    this.#lowPercent = options.lowBatteryPercent ?? 15;
    this.#overdueAfterS = options.overdueAfterSeconds ?? 2 * DEFAULT_SETTINGS.statusSeconds;
    this.changes.setMaxListeners(0);
  }

  /** Adds work to the transaction of each alarm raised or reopened. */
  onRaise(hook: RaiseHook): void {
    this.#raiseHooks.push(hook);
  }

  /** Subscribes to alarm changes; returns the unsubscribe. */
  subscribe(listener: (change: AlarmChange) => void): () => void {
    this.changes.on('change', listener);
    return () => this.changes.off('change', listener);
  }

  // ---- From the meters, in the transaction that stores the frame -----------------------------

  /** A status report or event (0x04), in the transaction that stores it; returns the after-commit telling. */
  async onStatusMessage(tx: Tx, meterId: number, message: StatusMessage): Promise<() => Promise<void>> {
    const signals =
      message.kind === 'status'
        ? signalsOfStatusReport(message, this.#lowPercent)
        : signalsOfStatusEvent(message);
    const source = message.kind === 'status' ? 'status-report' : 'status-event';
    const pending = await this.#apply(tx, meterId, source, signals);
    // A meter that reports is no longer overdue.
    pending.push(...(await this.#clear(tx, meterId, OVERDUE, '', 'status received', 'platform')));
    return () => this.#tell(pending);
  }

  /** A security event (0x03), in the transaction that stores it; returns the after-commit telling. */
  async onSecurityEvent(tx: Tx, meterId: number, event: SecurityEvent): Promise<() => Promise<void>> {
    const pending = await this.#apply(tx, meterId, 'security-event', signalsOfSecurityEvent(event));
    return () => this.#tell(pending);
  }

  async #apply(tx: Tx, meterId: number, source: string, signals: AlarmSignal[]): Promise<Pending[]> {
    const pending: Pending[] = [];
    for (const s of signals) {
      if (s.type === 'clear')
        pending.push(...(await this.#clear(tx, meterId, s.kind, s.subject, s.detail, 'meter')));
      else {
        const change = await this.#raise(tx, meterId, source, s);
        if (change) pending.push(change);
      }
    }
    return pending;
  }

  /**
   * Opens an alarm, or counts a repeat on the unresolved one of the same meter, kind and subject
   * (its severity rising if the repeat's is higher). A condition reported again is not counted,
   * unless it had cleared meanwhile (then it is reopened).
   */
  async #raise(
    tx: Tx,
    meterId: number,
    source: string,
    s: Extract<AlarmSignal, { type: 'raise' }>,
  ): Promise<Pending | undefined> {
    const now = new Date(this.#now());
    const counted = s.repeat === 'occurrence';
    const rows = await tx.query<{ id: number; occurrences: number; reopened: boolean; changed: boolean }>(
      `WITH before AS (
         SELECT id, cleared_at FROM alarms WHERE meter_id = $1 AND kind = $2 AND subject = $3 AND resolved_at IS NULL
       )
       INSERT INTO alarms AS a (meter_id, kind, subject, severity, source, detail, occurred_at, raised_at, last_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
       ON CONFLICT (meter_id, kind, subject) WHERE resolved_at IS NULL DO UPDATE SET
         occurrences = a.occurrences + CASE WHEN $9 OR a.cleared_at IS NOT NULL THEN 1 ELSE 0 END,
         last_at = CASE WHEN $9 OR a.cleared_at IS NOT NULL THEN $8 ELSE a.last_at END,
         detail = CASE WHEN $9 OR a.cleared_at IS NOT NULL THEN $6 ELSE a.detail END,
         cleared_at = NULL,
         severity = CASE WHEN ${RANK.replace('$SEV', '$4')} < ${RANK.replace('$SEV', 'a.severity')} THEN $4 ELSE a.severity END
       RETURNING id, occurrences,
         COALESCE((SELECT cleared_at IS NOT NULL FROM before), false) AS reopened,
         (SELECT id FROM before) IS NULL OR $9 OR COALESCE((SELECT cleared_at IS NOT NULL FROM before), false) AS changed`,
      [meterId, s.kind, s.subject, s.severity, source, s.detail, s.occurredAt, now, counted],
    );
    const row = rows.rows[0];
    if (!row.changed) return undefined;
    const action: AlarmAction = row.reopened ? 'reopened' : row.occurrences === 1 ? 'raised' : 'repeated';
    if (action !== 'repeated') {
      await this.#history(tx, row.id, now, action, source === 'sweep' ? 'platform' : 'meter', s.detail);
      for (const hook of this.#raiseHooks) await hook(tx, row.id, action);
    }
    return { id: row.id, action };
  }

  /** Marks the unresolved alarms of the kind (and subject, unless null) cleared: the condition is gone. */
  async #clear(
    tx: Tx,
    meterId: number,
    kind: string,
    subject: string | null,
    detail: string,
    actor: string,
  ): Promise<Pending[]> {
    const now = new Date(this.#now());
    const rows = await tx.query<{ id: number }>(
      `UPDATE alarms SET cleared_at = $4
        WHERE meter_id = $1 AND kind = $2 AND ($3::text IS NULL OR subject = $3)
          AND resolved_at IS NULL AND cleared_at IS NULL
        RETURNING id`,
      [meterId, kind, subject, now],
    );
    for (const r of rows.rows) await this.#history(tx, r.id, now, 'cleared', actor, detail);
    return rows.rows.map((r) => ({ id: r.id, action: 'cleared' as const }));
  }

  async #history(tx: Tx, alarmId: number, at: Date, action: string, actor: string, note: string | null) {
    await tx.query(
      'INSERT INTO alarm_history (alarm_id, at, action, actor, note) VALUES ($1, $2, $3, $4, $5)',
      [alarmId, at, action, actor, note],
    );
  }

  /** Tells the listeners, after the commit; a listener's failure is logged and goes no further. */
  async #tell(pending: Pending[]): Promise<void> {
    if (pending.length === 0 || this.changes.listenerCount('change') === 0) return;
    const alarms = await this.#views(pending.map((p) => p.id));
    for (const p of pending) {
      const alarm = alarms.get(p.id);
      if (!alarm) continue;
      try {
        this.changes.emit('change', { action: p.action, alarm });
      } catch (error) {
        this.#o.logger.error({ err: error, alarmId: p.id }, 'alarm listener failed');
      }
    }
  }

  async #views(ids: number[]): Promise<Map<number, AlarmView>> {
    const rows = await this.#o.db.query<AlarmRow>(`${SELECT_ALARM} WHERE a.id = ANY($1::bigint[])`, [ids]);
    return new Map(rows.rows.map((r) => [r.id, view(r)]));
  }

  // ---- The overdue sweep ---------------------------------------------------------------------

  /**
   * Raises 'overdue' for each meter heard from before but not for overdueAfterSeconds, and clears it
   * for those heard from since. Several platform instances may sweep at once: the unresolved
   * alarm's unique index keeps one.
   */
  async sweep(): Promise<{ raised: number; cleared: number }> {
    const now = new Date(this.#now());
    const limit = new Date(now.getTime() - this.#overdueAfterS * 1000);
    const pending: Pending[] = [];
    await this.#o.db.transaction(async (tx) => {
      const late = await tx.query<{ id: number; last_seen_at: Date }>(
        `SELECT m.id, m.last_seen_at FROM meters m
          WHERE m.last_seen_at < $1
            AND NOT EXISTS (SELECT 1 FROM alarms a WHERE a.meter_id = m.id AND a.kind = $2
                              AND a.resolved_at IS NULL AND a.cleared_at IS NULL)`,
        [limit, OVERDUE],
      );
      for (const m of late.rows) {
        const change = await this.#raise(tx, m.id, 'sweep', {
          type: 'raise',
          kind: OVERDUE,
          subject: '',
          severity: 'technical',
          detail: `no contact since ${m.last_seen_at.toISOString()} (expected within ${this.#overdueAfterS} s)`,
          occurredAt: now,
          repeat: 'condition',
        });
        if (change) pending.push(change);
      }
      const back = await tx.query<{ meter_id: number }>(
        `SELECT a.meter_id FROM alarms a JOIN meters m ON m.id = a.meter_id
          WHERE a.kind = $2 AND a.resolved_at IS NULL AND a.cleared_at IS NULL AND m.last_seen_at >= $1`,
        [limit, OVERDUE],
      );
      for (const m of back.rows)
        pending.push(...(await this.#clear(tx, m.meter_id, OVERDUE, '', 'contact again', 'platform')));
    });
    await this.#tell(pending);
    return {
      raised: pending.filter((p) => p.action !== 'cleared').length,
      cleared: pending.filter((p) => p.action === 'cleared').length,
    };
  }

  /** Starts the periodic sweep (sweepSeconds, default 60; 0 starts none). */
  start(): void {
    const every = this.#o.sweepSeconds ?? 60;
    if (every <= 0 || this.#sweepTimer) return;
    this.#sweepTimer = setInterval(() => {
      if (this.#sweeping) return;
      this.#sweeping = this.sweep()
        .then(() => undefined)
        .catch((error) => this.#o.logger.error({ err: error }, 'overdue sweep failed'))
        .finally(() => {
          this.#sweeping = undefined;
        });
    }, every * 1000);
    this.#sweepTimer.unref();
  }

  /** Stops the sweep and waits for one under way. */
  async stop(): Promise<void> {
    clearInterval(this.#sweepTimer);
    this.#sweepTimer = undefined;
    await this.#sweeping;
  }

  // ---- The inbox ---------------------------------------------------------------------------

  /** Alarms newest first, with the counts of unresolved ones per severity. */
  async list(query: AlarmQuery = {}): Promise<{
    alarms: AlarmView[];
    nextBefore: number | null;
    active: Record<AlarmSeverity, number>;
  }> {
    const limit = query.limit ?? 100;
    const state = query.state ?? 'active';
    const rows = await this.#o.db.query<AlarmRow>(
      `${SELECT_ALARM}
        WHERE ($1 = 'all'
               OR ($1 = 'active' AND a.resolved_at IS NULL)
               OR ($1 = 'open' AND a.resolved_at IS NULL AND a.acknowledged_at IS NULL)
               OR ($1 = 'acknowledged' AND a.resolved_at IS NULL AND a.acknowledged_at IS NOT NULL)
               OR ($1 = 'resolved' AND a.resolved_at IS NOT NULL))
          AND ($2::text IS NULL OR a.severity = $2) AND ($3::text IS NULL OR m.area = $3)
          AND ($4::bigint IS NULL OR a.meter_id = $4) AND ($5::text IS NULL OR a.assigned_to = $5)
          AND ($6::bigint IS NULL OR a.id < $6)
        ORDER BY a.id DESC LIMIT $7`,
      [
        state,
        query.severity ?? null,
        query.area ?? null,
        query.meterId ?? null,
        query.assignedTo ?? null,
        query.before ?? null,
        limit + 1,
      ],
    );
    const page = rows.rows.slice(0, limit);
    const counts = await this.#o.db.query<{ severity: AlarmSeverity; n: number }>(
      'SELECT severity, count(*)::int AS n FROM alarms WHERE resolved_at IS NULL GROUP BY severity',
    );
    const active = Object.fromEntries(SEVERITIES.map((s) => [s, 0])) as Record<AlarmSeverity, number>;
    for (const c of counts.rows) active[c.severity] = Number(c.n);
    return {
      alarms: page.map(view),
      nextBefore: rows.rows.length > limit ? page[page.length - 1].id : null,
      active,
    };
  }

  /** One alarm with its history, oldest step first. */
  async get(id: number): Promise<AlarmView & { history: AlarmHistoryEntry[] }> {
    const alarm = (await this.#views([id])).get(id);
    if (!alarm) throw new AlarmRefused(404, 'unknown-alarm', `no alarm ${id}`);
    const history = await this.#o.db.query<{ at: Date; action: string; actor: string; note: string | null }>(
      'SELECT at, action, actor, note FROM alarm_history WHERE alarm_id = $1 ORDER BY id',
      [id],
    );
    return {
      ...alarm,
      history: history.rows.map((h) => ({
        at: h.at.toISOString(),
        action: h.action,
        actor: h.actor,
        note: h.note,
      })),
    };
  }

  /**
   * Changes one unresolved alarm under its row lock: `change` runs with the row and returns the
   * columns to set and the history note; `audit` writes the operator's audit row in the same transaction.
   */
  async #operate(
    id: number,
    action: AlarmAction,
    who: string,
    note: string | null,
    change: (row: AlarmRow, now: Date) => { sql: string; params: (string | Date | null)[] },
    audit?: (tx: Queryable, alarm: AlarmView) => Promise<void>,
  ): Promise<AlarmView> {
    const now = new Date(this.#now());
    const alarm = await this.#o.db.transaction(async (tx) => {
      const found = await tx.query<AlarmRow>(
        `SELECT a.*, m.name AS meter_name, m.area FROM alarms a JOIN meters m ON m.id = a.meter_id
          WHERE a.id = $1 FOR UPDATE OF a`,
        [id],
      );
      const row = found.rows[0];
      if (!row) throw new AlarmRefused(404, 'unknown-alarm', `no alarm ${id}`);
      if (row.resolved_at)
        throw new AlarmRefused(409, 'alarm-resolved', `alarm ${id} was resolved by ${row.resolved_by}`);
      const { sql, params } = change(row, now);
      const updated = await tx.query<AlarmRow>(`UPDATE alarms SET ${sql} WHERE id = $1 RETURNING *`, [
        id,
        ...params,
      ]);
      await this.#history(tx, id, now, action, who, note);
      const result = view({ ...updated.rows[0], meter_name: row.meter_name, area: row.area });
      await audit?.(tx, result);
      return result;
    });
    await this.#tell([{ id, action }]);
    return alarm;
  }

  /** Acknowledges an unresolved alarm (409 if it already is). */
  acknowledge(
    id: number,
    who: string,
    note: string | null,
    audit?: (tx: Queryable, alarm: AlarmView) => Promise<void>,
  ): Promise<AlarmView> {
    return this.#operate(
      id,
      'acknowledged',
      who,
      note,
      (row, now) => {
        if (row.acknowledged_at)
          throw new AlarmRefused(
            409,
            'already-acknowledged',
            `alarm ${id} was acknowledged by ${row.acknowledged_by}`,
          );
        return { sql: 'acknowledged_at = $2, acknowledged_by = $3', params: [now, who] };
      },
      audit,
    );
  }

  /** Assigns an unresolved alarm to an enabled operator, or unassigns it (null). */
  async assign(
    id: number,
    who: string,
    assignee: string | null,
    audit?: (tx: Queryable, alarm: AlarmView) => Promise<void>,
  ): Promise<AlarmView> {
    if (assignee !== null) {
      const found = await this.#o.db.query(
        'SELECT 1 FROM operators WHERE username = $1 AND disabled_at IS NULL',
        [assignee],
      );
      if (found.rows.length === 0)
        throw new AlarmRefused(400, 'unknown-operator', `no enabled operator ${assignee}`, 'operator');
    }
    return this.#operate(
      id,
      'assigned',
      who,
      assignee ?? 'unassigned',
      (_row, now) => ({
        sql: 'assigned_to = $2, assigned_at = $3',
        params: [assignee, assignee === null ? null : now],
      }),
      audit,
    );
  }

  /** Resolves an alarm with a note; one not yet acknowledged is acknowledged by the same step. */
  resolve(
    id: number,
    who: string,
    note: string,
    audit?: (tx: Queryable, alarm: AlarmView) => Promise<void>,
  ): Promise<AlarmView> {
    return this.#operate(
      id,
      'resolved',
      who,
      note,
      (_row, now) => ({
        sql: `resolved_at = $2, resolved_by = $3, resolution = $4,
              acknowledged_at = COALESCE(acknowledged_at, $2), acknowledged_by = COALESCE(acknowledged_by, $3)`,
        params: [now, who, note],
      }),
      audit,
    );
  }

  /**
   * Time to acknowledge and time to repair (raised → resolved) per meter or per area, over the
   * alarms raised in [since, until).
   */
  async responseTimes(by: 'meter' | 'area', since: Date, until: Date): Promise<ResponseTimes[]> {
    const key = by === 'meter' ? 'a.meter_id' : 'm.area';
    const seconds = (end: string) => `extract(epoch FROM (${end} - a.raised_at))`;
    const rows = await this.#o.db.query<{
      key: number | string | null;
      alarms: number;
      acknowledged: number;
      resolved: number;
      mean_ack: number | null;
      max_ack: number | null;
      mean_repair: number | null;
      max_repair: number | null;
    }>(
      `SELECT ${key} AS key, count(*)::int AS alarms,
              count(a.acknowledged_at)::int AS acknowledged, count(a.resolved_at)::int AS resolved,
              avg(${seconds('a.acknowledged_at')})::float8 AS mean_ack, max(${seconds('a.acknowledged_at')})::float8 AS max_ack,
              avg(${seconds('a.resolved_at')})::float8 AS mean_repair, max(${seconds('a.resolved_at')})::float8 AS max_repair
         FROM alarms a JOIN meters m ON m.id = a.meter_id
        WHERE a.raised_at >= $1 AND a.raised_at < $2
        GROUP BY ${key} ORDER BY ${key} NULLS LAST`,
      [since, until],
    );
    const round = (v: number | null) => (v === null ? null : Math.round(Number(v)));
    return rows.rows.map((r) => ({
      key: r.key,
      alarms: r.alarms,
      acknowledged: r.acknowledged,
      resolved: r.resolved,
      meanAcknowledgeSeconds: round(r.mean_ack),
      maxAcknowledgeSeconds: round(r.max_ack),
      meanRepairSeconds: round(r.mean_repair),
      maxRepairSeconds: round(r.max_repair),
    }));
  }
}
