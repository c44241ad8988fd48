// The city's reports of money and operations, from what the platform stores: revenue (card sales at
// the meters and renewals paid by phone), occupancy from the bay sensors' status reports, alarms with
// their response times, and uptime from the meters' downtime records. Days are the city's (its IANA
// time zone); a range is paged by days, and each page says where the next one starts.
// Not to be confused with reports/ (414b): a status report or records asked of one meter by radio.
import type { Database } from '../core/db';
import { RequestRefused } from '../core/errors';
import { liveSalesSince } from '../history/liveSales';

export const REPORT_KINDS = ['revenue', 'occupancy', 'events', 'uptime', 'settlement'] as const;
export type ReportKind = (typeof REPORT_KINDS)[number];

/** The longest range one report covers, and the default and largest page. */
export const MAX_RANGE_DAYS = 366;
export const DEFAULT_PAGE_DAYS = 31;
export const MAX_PAGE_DAYS = 92;
/** Meters per page of a report with a row per meter, as JSON; the largest page. */
export const DEFAULT_PAGE_METERS = 500;
export const MAX_PAGE_METERS = 5000;

export interface ReportRequest {
  /** First day, YYYY-MM-DD (the city's day). */
  from: string;
  /** Day after the last, YYYY-MM-DD. */
  to: string;
  area?: string;
  meterId?: number;
  /** Days per page; the whole range for CSV and PDF. */
  pageDays?: number;
  /**
   * Revenue only: a row per meter (the default), or per area, the city's summary (a 10,000-meter
   * city's week is 210,000 rows per meter, a few hundred per area).
   */
  by?: 'meter' | 'area';
  /**
   * Meters per page of a report with a row per meter (every meter when not given: the CSV and the
   * PDF); the pages go through the meters in the rows' order, by area and number.
   */
  pageMeters?: number;
  /** Where this page of meters starts: the previous page's `nextMeters`. */
  afterMeter?: string;
}

export interface Column {
  key: string;
  title: string;
  /** Money in minor units, shown with two decimals in the PDF. */
  money?: boolean;
  /** Summed in the totals line. */
  total?: boolean;
}

export interface Report {
  kind: ReportKind;
  title: string;
  timeZone: string;
  from: string;
  /** The end of this page (exclusive): `to`, or where the next page starts. */
  to: string;
  /** The first day of the next page of days, or null on the last one. */
  next: string | null;
  /**
   * Paged by meters: the `afterMeter` of the next page of meters over the same days, or null when
   * this page has the last meters (then `next` leads on to the next days).
   */
  nextMeters: string | null;
  columns: Column[];
  rows: Record<string, string | number | null>[];
  totals: Record<string, number>;
}

const DAY = /^\d{4}-\d{2}-\d{2}$/;
const DAY_MS = 86_400_000;

function parseDay(value: string, field: string): number {
  const ms = DAY.test(value) ? Date.parse(`${value}T00:00:00Z`) : Number.NaN;
  if (!Number.isFinite(ms) || new Date(ms).toISOString().slice(0, 10) !== value)
    throw new RequestRefused(400, 'bad-date', `${field} is not a date (YYYY-MM-DD): ${value}`, field);
  return ms;
}

const dayOf = (ms: number) => new Date(ms).toISOString().slice(0, 10);

/**
 * Where a page of meters ends, in the rows' order (area, meters without one last, then number),
 * as an opaque token: the area is kept, not looked up again, so a meter moved to another area
 * between two pages neither hides nor repeats the meters after it.
 */
export interface MeterCursor {
  area: string | null;
  id: number;
}

export function encodeMeterCursor(cursor: MeterCursor): string {
  return Buffer.from(JSON.stringify([cursor.area, cursor.id])).toString('base64url');
}

function decodeMeterCursor(token: string): MeterCursor {
  const refused = () =>
    new RequestRefused(400, 'bad-cursor', 'afterMeter is not a nextMeters this report gave', 'afterMeter');
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    throw refused();
  }
  if (
    !Array.isArray(value) ||
    value.length !== 2 ||
    !(value[0] === null || typeof value[0] === 'string') ||
    !Number.isSafeInteger(value[1]) ||
    value[1] < 0
  )
    throw refused();
  return { area: value[0], id: value[1] };
}

export const CARD_METHODS: Record<number, string> = {
  1: 'card: debit',
  2: 'card: credit',
  3: 'card: prepaid',
};

const DEFINITIONS: Record<ReportKind, { title: string; columns: Column[] }> = {
  revenue: {
    title: 'Revenue by day, area, meter and payment method',
    columns: [
      { key: 'day', title: 'Day' },
      { key: 'area', title: 'Area' },
      { key: 'meterId', title: 'Meter' },
      { key: 'method', title: 'Payment method' },
      { key: 'currency', title: 'Currency' },
      { key: 'payments', title: 'Payments', total: true },
      { key: 'minutes', title: 'Minutes sold', total: true },
      { key: 'amount', title: 'Amount', money: true, total: true },
    ],
  },
  occupancy: {
    title: 'Occupancy and utilisation from the bay sensors',
    columns: [
      { key: 'day', title: 'Day' },
      { key: 'area', title: 'Area' },
      { key: 'meterId', title: 'Meter' },
      { key: 'bays', title: 'Bays' },
      { key: 'reports', title: 'Status reports', total: true },
      { key: 'averageOccupied', title: 'Occupied bays (mean)' },
      { key: 'maxOccupied', title: 'Occupied bays (max)' },
      { key: 'utilisation', title: 'Utilisation %' },
    ],
  },
  events: {
    title: 'Security and operational events (alarms raised)',
    columns: [
      { key: 'day', title: 'Day' },
      { key: 'area', title: 'Area' },
      { key: 'meterId', title: 'Meter' },
      { key: 'severity', title: 'Severity' },
      { key: 'kind', title: 'Event' },
      { key: 'raised', title: 'Raised', total: true },
      { key: 'resolved', title: 'Resolved', total: true },
      { key: 'minutesToAcknowledge', title: 'Mean minutes to acknowledge' },
      { key: 'minutesToRepair', title: 'Mean minutes to repair' },
    ],
  },
  settlement: {
    title: 'Settlement by business day, acquirer and card type',
    columns: [
      { key: 'day', title: 'Business day' },
      { key: 'acquirer', title: 'Acquirer' },
      { key: 'cardType', title: 'Card type' },
      { key: 'currency', title: 'Currency' },
      { key: 'batches', title: 'Batches', total: true },
      { key: 'items', title: 'Items', total: true },
      { key: 'amount', title: 'Settled', money: true, total: true },
      { key: 'delivered', title: 'Delivered', total: true },
      { key: 'reconciled', title: 'Reconciled', total: true },
      { key: 'openExceptions', title: 'Open exceptions', total: true },
    ],
  },
  uptime: {
    title: 'Uptime and time to repair per meter',
    columns: [
      { key: 'area', title: 'Area' },
      { key: 'meterId', title: 'Meter' },
      { key: 'downtimeMinutes', title: 'Downtime (min)', total: true },
      { key: 'uptime', title: 'Uptime %' },
      { key: 'faults', title: 'Faults raised', total: true },
      { key: 'minutesToRepair', title: 'Mean minutes to repair' },
    ],
  },
};

export class ReportingService {
  constructor(
    private readonly db: Database,
    readonly timeZone: string,
  ) {}

  /** One page of a report (the whole range when `pageDays` covers it). */
  async report(kind: ReportKind, request: ReportRequest): Promise<Report> {
    const fromMs = parseDay(request.from, 'from');
    const toMs = parseDay(request.to, 'to');
    if (toMs <= fromMs) throw new RequestRefused(400, 'bad-range', 'to must be after from', 'to');
    if ((toMs - fromMs) / DAY_MS > MAX_RANGE_DAYS)
      throw new RequestRefused(400, 'range-too-long', `a report covers at most ${MAX_RANGE_DAYS} days`, 'to');
    if (request.area !== undefined) {
      const known = await this.db.query('SELECT 1 FROM meters WHERE area = $1 LIMIT 1', [request.area]);
      if (known.rows.length === 0)
        throw new RequestRefused(404, 'unknown-area', `no meter is in area ${request.area}`, 'area');
    }
    // Uptime is over the whole range: a share of it, not of a page.
    const pageDays = kind === 'uptime' ? MAX_RANGE_DAYS : (request.pageDays ?? DEFAULT_PAGE_DAYS);
    const pageEndMs = Math.min(toMs, fromMs + pageDays * DAY_MS);
    const page = { from: dayOf(fromMs), to: dayOf(pageEndMs) };
    const meters = await this.#meterPage(kind, request);
    const rows = await this.#rows(kind, page, request, meters?.ids ?? null);
    const definition = DEFINITIONS[kind];
    const totals: Record<string, number> = {};
    for (const column of definition.columns)
      if (column.total) totals[column.key] = rows.reduce((sum, row) => sum + Number(row[column.key] ?? 0), 0);
    return {
      kind,
      title: definition.title,
      timeZone: this.timeZone,
      from: page.from,
      to: page.to,
      next: pageEndMs < toMs ? page.to : null,
      nextMeters: meters?.next ?? null,
      columns: definition.columns,
      rows,
      totals,
    };
  }

  /**
   * The meters of this page, for a report with a row per meter over the whole city or an area
   * when pageMeters is given: ordered as its rows are, one more asked for to know whether another
   * page follows. Undefined when the report is not paged by meters.
   */
  async #meterPage(
    kind: ReportKind,
    request: ReportRequest,
  ): Promise<{ ids: string[]; next: string | null } | undefined> {
    const perMeter = kind !== 'settlement' && !(kind === 'revenue' && request.by === 'area');
    if (!perMeter || request.meterId !== undefined || request.pageMeters === undefined) {
      if (request.afterMeter !== undefined)
        throw new RequestRefused(
          400,
          'not-paged-by-meter',
          'this report is not paged by meters',
          'afterMeter',
        );
      return undefined;
    }
    if (
      !Number.isSafeInteger(request.pageMeters) ||
      request.pageMeters < 1 ||
      request.pageMeters > MAX_PAGE_METERS
    )
      throw new RequestRefused(400, 'bad-page', `pageMeters is from 1 to ${MAX_PAGE_METERS}`, 'pageMeters');
    const after = request.afterMeter === undefined ? undefined : decodeMeterCursor(request.afterMeter);
    // Meters without an area sort last: (area IS NULL, area or '', id) orders them as the rows do.
    const { rows } = await this.db.query<{ id: string; area: string | null }>(
      `SELECT m.id, m.area FROM meters m
        WHERE ($1::text IS NULL OR m.area = $1)
          AND ($2::boolean IS NULL OR (m.area IS NULL, COALESCE(m.area, ''), m.id) > ($2, $3::text, $4::bigint))
        ORDER BY m.area IS NULL, m.area, m.id
        LIMIT $5`,
      [
        request.area ?? null,
        after === undefined ? null : after.area === null,
        after?.area ?? '',
        after?.id ?? 0,
        request.pageMeters + 1,
      ],
    );
    const page = rows.slice(0, request.pageMeters);
    const last = page[page.length - 1];
    return {
      ids: page.map((r) => r.id),
      next:
        rows.length > request.pageMeters ? encodeMeterCursor({ area: last.area, id: Number(last.id) }) : null,
    };
  }

  async #rows(
    kind: ReportKind,
    page: { from: string; to: string },
    request: ReportRequest,
    meterPage: string[] | null,
  ): Promise<Record<string, string | number | null>[]> {
    // $1, $2: the page's first and next day at the city's midnight; $3 its zone; $4 area; $5 meter;
    // $6 this page's meters (null: not paged by meters).
    const params = [
      page.from,
      page.to,
      this.timeZone,
      request.area ?? null,
      request.meterId ?? null,
      meterPage,
    ];
    const bounds = `($1::date::timestamp AT TIME ZONE $3)`;
    const end = `($2::date::timestamp AT TIME ZONE $3)`;
    const onPage = (column: string) => `($6::bigint[] IS NULL OR ${column} = ANY($6))`;
    const meterFilter = `($4::text IS NULL OR m.area = $4) AND ($5::bigint IS NULL OR m.id = $5) AND ${onPage('m.id')}`;
    const day = (column: string) => `to_char(${column} AT TIME ZONE $3, 'YYYY-MM-DD')`;
    if (request.by === 'area' && kind !== 'revenue')
      throw new RequestRefused(400, 'not-by-area', 'only the revenue report has rows per area', 'by');
    if (kind === 'revenue') {
      const byArea = request.by === 'area';
      // One snapshot for both statements: a day rolled up or marked stale in between is read once.
      const rows = await this.db.transaction(async (tx) => {
        await tx.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY');
        // Closed days with fresh totals (history/rollup.ts) come from daily_sales (per area, from
        // daily_area_sales); today and the days the running totals cover (history/liveSales.ts) from
        // live_sales; the rest (days not rolled up yet or made stale by a late sale, before the running
        // totals began) from the sales themselves, each run of them as one range of recorded_at so
        // only its partitions and index entries are read.
        const fresh = await tx.query<{ day: string }>(
          `SELECT to_char(day, 'YYYY-MM-DD') AS day FROM daily_sales_days
            WHERE day >= $1::date AND day < $2::date AND rolled_up_at IS NOT NULL AND NOT stale AND time_zone = $3`,
          [page.from, page.to, this.timeZone],
        );
        const rolled = new Set(fresh.rows.map((r) => r.day));
        const liveSince = await liveSalesSince(tx, this.timeZone);
        const running: string[] = [];
        const ranges: [string, string][] = [];
        for (let ms = Date.parse(`${page.from}T00:00:00Z`); dayOf(ms) < page.to; ms += DAY_MS) {
          const d = dayOf(ms);
          if (rolled.has(d)) continue;
          if (liveSince !== undefined && d >= liveSince) {
            running.push(d);
            continue;
          }
          const last = ranges[ranges.length - 1];
          if (last && last[1] === d) last[1] = dayOf(ms + DAY_MS);
          else ranges.push([d, dayOf(ms + DAY_MS)]);
        }
        const rangeParams: string[] = [];
        const raw = ranges.map(([lo, hi]) => {
          rangeParams.push(lo, hi);
          const n = params.length + rangeParams.length;
          return `(t.recorded_at >= ($${n - 1}::date::timestamp AT TIME ZONE $3) AND t.recorded_at < ($${n}::date::timestamp AT TIME ZONE $3))`;
        });
        const rolledParam = params.length + rangeParams.length + 1;
        const runningParam = rolledParam + 1;
        // The city's areas over closed days are kept summed; per meter, or with one meter asked for,
        // the per-meter totals are read.
        const areaTotals = byArea && request.meterId === undefined;
        const closedDays = areaTotals
          ? `SELECT s.day, s.area, NULL::bigint AS meter_id, s.card_type, NULL::text AS channel, s.currency,
                    s.payments, s.minutes, s.amount
               FROM daily_area_sales s
              WHERE s.day = ANY($${rolledParam}::date[]) AND ($4::text IS NULL OR s.area = $4)`
          : `SELECT s.day, m.area, m.id AS meter_id, s.card_type, NULL::text AS channel, s.currency,
                    s.payments, s.minutes, s.amount
               FROM daily_sales s
               JOIN meters m ON m.id = s.meter_id
              WHERE s.day = ANY($${rolledParam}::date[]) AND ${onPage('s.meter_id')} AND ${meterFilter}`;
        return (
          await tx.query<{
            day: string;
            area: string | null;
            meter_id: string | null;
            card_type: number | null;
            channel: string | null;
            currency: number;
            payments: string;
            minutes: string;
            amount: string;
          }>(
            // The parts never share a row of the report (other days, or a channel and no card type),
            // so each is summed on its own and the totals' rows are taken as they are.
            `SELECT to_char(day, 'YYYY-MM-DD') AS day, area, ${byArea ? 'NULL::bigint AS meter_id' : 'meter_id'},
                    card_type, channel, currency, ${byArea ? 'sum(payments) AS payments, sum(minutes) AS minutes, sum(amount) AS amount' : 'payments, minutes, amount'}
               FROM (
                 ${closedDays}
                 UNION ALL
                 SELECT l.day, m.area, m.id, l.card_type, NULL::text, l.currency, l.payments, l.minutes, l.amount
                   FROM live_sales l
                   JOIN meters m ON m.id = l.meter_id
                  WHERE l.day = ANY($${runningParam}::date[]) AND ${onPage('l.meter_id')} AND ${meterFilter}
                 UNION ALL
                 SELECT (t.recorded_at AT TIME ZONE $3)::date, m.area, m.id, t.card_type, NULL::text, t.currency,
                        count(*), sum(t.minutes), sum(t.charge)
                   FROM transactions t
                   JOIN meters m ON m.id = t.meter_id
                  WHERE (${raw.length > 0 ? raw.join(' OR ') : 'false'}) AND ${onPage('t.meter_id')} AND ${meterFilter}
                  GROUP BY 1, m.area, m.id, t.card_type, t.currency
                 UNION ALL
                 SELECT (rn.applied_at AT TIME ZONE $3)::date, m.area, m.id, NULL, rn.channel, rn.currency,
                        count(*), sum(rn.minutes), sum(rn.charge)
                   FROM renewals rn
                   JOIN meters m ON m.id = rn.meter_id
                  WHERE rn.status = 'applied' AND rn.applied_at >= ${bounds} AND rn.applied_at < ${end}
                    AND ${onPage('rn.meter_id')} AND ${meterFilter}
                  GROUP BY 1, m.area, m.id, rn.channel, rn.currency
               ) sales
              ${
                meterPage !== null
                  ? // The page's meters are already in area order: their places sort the rows without
                    // comparing area names again in the database's collation.
                    'JOIN unnest($6::bigint[]) WITH ORDINALITY AS page(meter, place) ON page.meter = sales.meter_id'
                  : ''
              }
              ${byArea ? 'GROUP BY sales.day, area, card_type, channel, currency' : ''}
              ORDER BY sales.day, ${meterPage !== null ? 'page.place' : `area NULLS LAST${byArea ? '' : ', meter_id'}`},
                       card_type NULLS LAST, channel, currency`,
            [...params, ...rangeParams, [...rolled], running],
          )
        ).rows;
      });
      return rows.map((r) => ({
        day: r.day,
        area: r.area,
        meterId: r.meter_id === null ? null : Number(r.meter_id),
        method:
          r.channel !== null
            ? `phone: ${r.channel}`
            : (CARD_METHODS[r.card_type ?? 0] ?? `card: type ${r.card_type}`),
        currency: r.currency,
        payments: Number(r.payments),
        minutes: Number(r.minutes),
        amount: Number(r.amount),
      }));
    }
    if (kind === 'occupancy') {
      const { rows } = await this.db.query<{
        day: string;
        area: string | null;
        meter_id: string;
        bays: number | null;
        reports: string;
        average: number;
        maximum: number;
      }>(
        `SELECT ${day('h.reported_at')} AS day, m.area, m.id AS meter_id, m.bays,
                count(*) AS reports, avg(h.occupied_bays)::double precision AS average, max(h.occupied_bays) AS maximum
           FROM meter_status_history h
           JOIN meters m ON m.id = h.meter_id
          WHERE h.reported_at >= ${bounds} AND h.reported_at < ${end} AND ${meterFilter}
          GROUP BY 1, m.area, m.id, m.bays
          ORDER BY 1, m.area NULLS LAST, m.id`,
        params,
      );
      return rows.map((r) => ({
        day: r.day,
        area: r.area,
        meterId: Number(r.meter_id),
        bays: r.bays,
        reports: Number(r.reports),
        averageOccupied: Math.round(r.average * 100) / 100,
        maxOccupied: r.maximum,
        utilisation: r.bays ? Math.round((r.average / r.bays) * 1000) / 10 : null,
      }));
    }
    if (kind === 'events') {
      const { rows } = await this.db.query<{
        day: string;
        area: string | null;
        meter_id: string;
        severity: string;
        kind: string;
        raised: string;
        resolved: string;
        to_acknowledge: number | null;
        to_repair: number | null;
      }>(
        `SELECT ${day('a.raised_at')} AS day, m.area, m.id AS meter_id, a.severity, a.kind,
                count(*) AS raised, count(a.resolved_at) AS resolved,
                avg(extract(epoch FROM a.acknowledged_at - a.raised_at) / 60)::double precision AS to_acknowledge,
                avg(extract(epoch FROM a.resolved_at - a.raised_at) / 60)::double precision AS to_repair
           FROM alarms a
           JOIN meters m ON m.id = a.meter_id
          WHERE a.raised_at >= ${bounds} AND a.raised_at < ${end} AND ${meterFilter}
          GROUP BY 1, m.area, m.id, a.severity, a.kind
          ORDER BY 1, m.area NULLS LAST, m.id, a.severity, a.kind`,
        params,
      );
      const minutes = (v: number | null) => (v === null ? null : Math.round(v * 10) / 10);
      return rows.map((r) => ({
        day: r.day,
        area: r.area,
        meterId: Number(r.meter_id),
        severity: r.severity,
        kind: r.kind,
        raised: Number(r.raised),
        resolved: Number(r.resolved),
        minutesToAcknowledge: minutes(r.to_acknowledge),
        minutesToRepair: minutes(r.to_repair),
      }));
    }
    if (kind === 'settlement') {
      // Batches by their business day (already the city's day); an area or meter does not apply.
      if (request.area !== undefined || request.meterId !== undefined)
        throw new RequestRefused(400, 'not-per-meter', 'the settlement report is for the whole city', 'area');
      const { rows } = await this.db.query<{
        day: string;
        acquirer: string;
        card_type: string;
        currency: number;
        batches: string;
        items: string;
        amount: string;
        delivered: string;
        reconciled: string;
        open_exceptions: string;
      }>(
        `SELECT to_char(b.business_day, 'YYYY-MM-DD') AS day, b.acquirer, b.card_type, b.currency,
                count(*) AS batches, sum(b.items) AS items, sum(b.total) AS amount,
                count(b.delivered_at) AS delivered, count(b.reconciled_at) AS reconciled,
                (SELECT count(*) FROM clearing_exceptions e JOIN settlement_batches x ON x.id = e.batch_id
                  WHERE e.status = 'open' AND x.business_day = b.business_day AND x.acquirer = b.acquirer
                    AND x.card_type = b.card_type AND x.currency = b.currency) AS open_exceptions
           FROM settlement_batches b
          WHERE b.business_day >= $1::date AND b.business_day < $2::date
          GROUP BY b.business_day, b.acquirer, b.card_type, b.currency
          ORDER BY 1, 2, 3, 4`,
        [page.from, page.to],
      );
      return rows.map((r) => ({
        day: r.day,
        acquirer: r.acquirer,
        cardType: r.card_type,
        currency: r.currency,
        batches: Number(r.batches),
        items: Number(r.items),
        amount: Number(r.amount),
        delivered: Number(r.delivered),
        reconciled: Number(r.reconciled),
        openExceptions: Number(r.open_exceptions),
      }));
    }
    // Uptime: the meters' downtime operation records (the period they could not serve), clipped
    // to the range, against the range's length; faults are alarms of the fault severities.
    const { rows } = await this.db.query<{
      area: string | null;
      meter_id: string;
      downtime_seconds: number;
      faults: string;
      to_repair: number | null;
    }>(
      `SELECT m.area, m.id AS meter_id,
              COALESCE((SELECT sum(extract(epoch FROM LEAST(o.period_to, ${end}) - GREATEST(o.period_from, ${bounds})))
                          FROM operations o
                         WHERE o.meter_id = m.id AND o.code = 'downtime'
                           AND o.period_from < ${end} AND o.period_to > ${bounds}), 0)::double precision AS downtime_seconds,
              (SELECT count(*) FROM alarms a WHERE a.meter_id = m.id AND a.severity IN ('total-fault', 'partial-fault')
                  AND a.raised_at >= ${bounds} AND a.raised_at < ${end}) AS faults,
              (SELECT avg(extract(epoch FROM a.resolved_at - a.raised_at) / 60) FROM alarms a
                WHERE a.meter_id = m.id AND a.severity IN ('total-fault', 'partial-fault') AND a.resolved_at IS NOT NULL
                  AND a.raised_at >= ${bounds} AND a.raised_at < ${end})::double precision AS to_repair
         FROM meters m
        WHERE ${meterFilter}
        ORDER BY m.area NULLS LAST, m.id`,
      params,
    );
    const rangeSeconds = (Date.parse(`${page.to}T00:00:00Z`) - Date.parse(`${page.from}T00:00:00Z`)) / 1000;
    return rows.map((r) => ({
      area: r.area,
      meterId: Number(r.meter_id),
      downtimeMinutes: Math.round(r.downtime_seconds / 60),
      uptime: Math.round((1 - r.downtime_seconds / rangeSeconds) * 10000) / 100,
      faults: Number(r.faults),
      minutesToRepair: r.to_repair === null ? null : Math.round(r.to_repair * 10) / 10,
    }));
  }
}
