// The fleet as the operator console shows it: one row per meter with its live state, read in one
// query over the fleet room's status tables (meter_status, bay_occupancy, meter_events), ingest's
// meters and transactions, and the firmware rollouts. The feed (FleetFeed) polls for meters whose
// state changed and hands their new rows to every listener (the console's server-sent events), so
// several platform instances each see what the others stored.
import type { Queryable } from '../core/db';
import { CityDays, cityDate } from '../history/cityDay';
import { liveSalesSince } from '../history/liveSales';

export type ContactState = 'online' | 'overdue' | 'never';
export type Light = 'green' | 'amber' | 'red' | 'grey';

export interface FleetRow {
  id: number;
  name: string;
  area: string | null;
  address: string | null;
  latitude: number | null;
  longitude: number | null;
  /** Bays the registry says the meter serves (null: not recorded; the status report's count shows). */
  bays: number | null;
  provisioned: boolean;
  keyEpoch: number;
  lastContactAt: string | null;
  contactSeconds: number;
  contact: ContactState;
  light: Light;
  /** Percent of the pack in use, null before a status report. */
  battery: number | null;
  /** Open alarms for now: the status report's open faults plus raised alarm, fault and warning events. */
  openAlarms: number;
  /** The most severe open condition (alarm, fault, warning), null when none. */
  worstAlarm: string | null;
  occupiedBays: number;
  reportedBays: number;
  /** Version of the last firmware image the meter confirmed, null when it runs its factory image. */
  firmwareVersion: number | null;
  /** Sum of the charges of the city day's card sales and applied phone renewals (minor units), and their currency code. */
  revenueToday: number;
  currency: number | null;
}

interface Row {
  id: string | number;
  name: string;
  area: string | null;
  address: string | null;
  latitude: number | null;
  longitude: number | null;
  bays: number | null;
  provisioned: boolean;
  key_epoch: string | number;
  last_contact: Date | null;
  contact_seconds: number;
  battery: string | number | null;
  faults: number | null;
  alarms: number | null;
  faults_open: number | null;
  warnings: number | null;
  occupied: number | null;
  reported_bays: number | null;
  firmware: string | number | null;
  revenue: string | number | null;
  currency: number | null;
}

// One statement for every meter (or the listed ones): each piece is a grouped subquery joined on
// the meter id, so 10,000 meters cost a few scans, not 10,000 lookups. $1 the meters or null, $2
// the instant today started; today's card sales come from `sales`.
const fleetSql = (sales: string) => `
WITH wanted AS (
  SELECT m.* FROM meters m WHERE $1::bigint[] IS NULL OR m.id = ANY($1::bigint[])
), open_events AS (
  SELECT meter_id, severity FROM (
    SELECT DISTINCT ON (e.meter_id, e.event, COALESCE(e.bay_id, -1)) e.meter_id, e.severity, e.active
      FROM meter_events e JOIN wanted w ON w.id = e.meter_id
     WHERE e.severity IN ('alarm', 'warning', 'fault')
     ORDER BY e.meter_id, e.event, COALESCE(e.bay_id, -1), e.occurred_at DESC, e.id DESC) latest
   WHERE active
), alarms AS (
  SELECT meter_id,
         count(*) FILTER (WHERE severity = 'alarm')::int AS alarms,
         count(*) FILTER (WHERE severity = 'fault')::int AS faults_open,
         count(*) FILTER (WHERE severity = 'warning')::int AS warnings
    FROM open_events GROUP BY meter_id
), occupancy AS (
  SELECT b.meter_id, count(*) FILTER (WHERE b.occupied)::int AS occupied, count(*)::int AS reported_bays
    FROM bay_occupancy b JOIN wanted w ON w.id = b.meter_id GROUP BY b.meter_id
), firmware AS (
  SELECT DISTINCT ON (rm.meter_id) rm.meter_id, i.version
    FROM firmware_rollout_meters rm
    JOIN firmware_rollouts r ON r.id = rm.rollout_id
    JOIN firmware_images i ON i.id = r.image_id
    JOIN wanted w ON w.id = rm.meter_id
   WHERE rm.state = 'confirmed'
   ORDER BY rm.meter_id, rm.updated_at DESC
), revenue AS (
  -- Card sales at the meter and renewals paid by phone and applied by it, summed per meter (in one
  -- aggregate) before any join.
  SELECT meter_id, sum(revenue) AS revenue, min(currency) AS currency
    FROM (
      ${sales}
      UNION ALL
      SELECT rn.meter_id, rn.charge, rn.currency
        FROM renewals rn
       WHERE rn.status = 'applied' AND rn.applied_at >= $2 AND ($1::bigint[] IS NULL OR rn.meter_id = ANY($1::bigint[]))
    ) sales
   GROUP BY meter_id
)
SELECT w.id, w.name, w.area, w.address, w.latitude, w.longitude, w.bays,
       w.provisioned_at IS NOT NULL AS provisioned, w.key_epoch, w.contact_seconds,
       GREATEST(w.last_seen_at, s.received_at) AS last_contact,
       (s.battery -> 'packs' ->> (s.battery ->> 'source'))::double precision AS battery,
       jsonb_array_length(s.faults) AS faults,
       a.alarms, a.faults_open, a.warnings, o.occupied, o.reported_bays,
       f.version AS firmware, v.revenue, v.currency
  FROM wanted w
  LEFT JOIN meter_status s ON s.meter_id = w.id
  LEFT JOIN alarms a ON a.meter_id = w.id
  LEFT JOIN occupancy o ON o.meter_id = w.id
  LEFT JOIN firmware f ON f.meter_id = w.id
  LEFT JOIN revenue v ON v.meter_id = w.id
 ORDER BY w.id`;

/**
 * Today's card sales from the running totals (history/liveSales.ts), one row a meter and card type
 * ($3: today's date), once they are whole for today in the city's zone.
 */
const FLEET_LIVE_SQL = fleetSql(`SELECT s.meter_id, s.amount AS revenue, s.currency
        FROM live_sales s
       WHERE s.day = $3::date AND ($1::bigint[] IS NULL OR s.meter_id = ANY($1::bigint[]))`);

/** Otherwise summed from the sales (a day before the running totals began). */
const FLEET_SALES_SQL = fleetSql(`SELECT t.meter_id, t.charge AS revenue, t.currency
        FROM transactions t
       WHERE t.recorded_at >= $2 AND ($1::bigint[] IS NULL OR t.meter_id = ANY($1::bigint[]))`);

/** Battery at or below this percent turns the light amber. */
export const LOW_BATTERY_PERCENT = 20;

/** Overdue: no contact for more than twice the expected interval (one missed report is forgiven). */
export function contactState(lastContact: Date | null, contactSeconds: number, now: Date): ContactState {
  if (!lastContact) return 'never';
  return now.getTime() - lastContact.getTime() > 2 * contactSeconds * 1000 ? 'overdue' : 'online';
}

/**
 * Red: an open alarm or fault, or overdue; amber: a warning, low battery or an open module fault in
 * the status report; green otherwise; grey: never heard from.
 */
export function trafficLight(
  contact: ContactState,
  counts: { alarms: number; faults: number; warnings: number; reportFaults: number },
  battery: number | null,
): Light {
  if (contact === 'never') return 'grey';
  if (contact === 'overdue' || counts.alarms > 0 || counts.faults > 0) return 'red';
  if (counts.warnings > 0 || counts.reportFaults > 0 || (battery !== null && battery <= LOW_BATTERY_PERCENT))
    return 'amber';
  return 'green';
}

export class FleetView {
  readonly #days: CityDays;

  /** "Today" for the revenue column is the city's day in `timeZone` (default UTC). */
  constructor(
    private readonly db: Queryable,
    private readonly now: () => Date = () => new Date(),
    timeZone = 'UTC',
  ) {
    this.#days = new CityDays(timeZone);
  }

  /** Every meter, or those listed, in id order. */
  async rows(ids?: readonly number[]): Promise<FleetRow[]> {
    const now = this.now();
    const start = this.#days.todayStart(now.getTime());
    const today = cityDate(start, this.#days.timeZone);
    // Chosen before the statement is planned: a plan with both branches keeps the sales scan's
    // parallel workers even when it is never run.
    const since = await liveSalesSince(this.db, this.#days.timeZone);
    const whole = since !== undefined && since <= today;
    const meters = ids ? [...ids] : null;
    const { rows } = whole
      ? await this.db.query<Row>(FLEET_LIVE_SQL, [meters, new Date(start), today])
      : await this.db.query<Row>(FLEET_SALES_SQL, [meters, new Date(start)]);
    return rows.map((r) => {
      const contact = contactState(r.last_contact, r.contact_seconds, now);
      const battery = r.battery === null ? null : Number(r.battery);
      const alarms = r.alarms ?? 0;
      const faults = r.faults_open ?? 0;
      const warnings = r.warnings ?? 0;
      const reportFaults = r.faults ?? 0;
      return {
        id: Number(r.id),
        name: r.name,
        area: r.area,
        address: r.address,
        latitude: r.latitude,
        longitude: r.longitude,
        bays: r.bays,
        provisioned: r.provisioned,
        keyEpoch: Number(r.key_epoch),
        lastContactAt: r.last_contact?.toISOString() ?? null,
        contactSeconds: r.contact_seconds,
        contact,
        light: trafficLight(contact, { alarms, faults, warnings, reportFaults }, battery),
        battery,
        openAlarms: alarms + faults + warnings + reportFaults,
        worstAlarm:
          alarms > 0 ? 'alarm' : faults + reportFaults > 0 ? 'fault' : warnings > 0 ? 'warning' : null,
        occupiedBays: r.occupied ?? 0,
        reportedBays: r.reported_bays ?? 0,
        firmwareVersion: r.firmware === null ? null : Number(r.firmware),
        revenueToday: r.revenue === null ? 0 : Number(r.revenue),
        currency: r.currency,
      };
    });
  }

  /** Meters whose contact, status, events or records arrived after `since`. */
  async changedSince(since: Date): Promise<number[]> {
    const { rows } = await this.db.query<{ id: string | number }>(
      `SELECT id FROM meters WHERE last_seen_at > $1
       UNION SELECT meter_id FROM meter_status WHERE received_at > $1
       UNION SELECT meter_id FROM meter_events WHERE received_at > $1`,
      [since],
    );
    return rows.map((r) => Number(r.id));
  }
}

/** How long a nudge waits, so the uplinks of one burst share a poll. */
const NUDGE_DELAY_MS = 50;

export type FleetListener = (rows: FleetRow[]) => void;

/**
 * Polls for changed meters while anyone listens and hands each listener the changed rows. A meter
 * that turns overdue by staying silent changes nothing here: the console works that out from the
 * last contact and the interval each row carries, so no poll has to read the whole fleet again.
 */
export class FleetFeed {
  readonly #listeners = new Set<FleetListener>();
  #timer: NodeJS.Timeout | undefined;
  #since = new Date(0);
  #polling = false;
  #nudged: NodeJS.Timeout | undefined;

  constructor(
    private readonly view: FleetView,
    private readonly options: { pollMs: number; now?: () => Date } = { pollMs: 1000 },
  ) {}

  get listeners(): number {
    return this.#listeners.size;
  }

  subscribe(listener: FleetListener): () => void {
    this.#listeners.add(listener);
    if (!this.#timer) {
      this.#since = this.#now();
      this.#timer = setInterval(() => void this.poll(), this.options.pollMs);
      this.#timer.unref();
    }
    return () => {
      this.#listeners.delete(listener);
      if (this.#listeners.size === 0) this.stop();
    };
  }

  /** One poll: the rows of the meters that changed. */
  async poll(): Promise<void> {
    if (this.#polling) return;
    this.#polling = true;
    try {
      const now = this.#now();
      // Rows stored while the previous poll ran carry a time before `now`: look back a second.
      const since = new Date(this.#since.getTime() - 1000);
      const ids = await this.view.changedSince(since);
      this.#since = now;
      if (ids.length === 0) return;
      const rows = await this.view.rows(ids);
      for (const listener of this.#listeners) listener(rows);
    } catch {
      // The next poll tries again (a closing database, a lost connection).
    } finally {
      this.#polling = false;
    }
  }

  /**
   * Something was stored on this instance (an uplink accepted): poll soon instead of at the next
   * period, coalescing a burst into one poll. Other instances' changes wait for the period.
   */
  nudge(): void {
    if (!this.#timer || this.#nudged) return;
    this.#nudged = setTimeout(() => {
      this.#nudged = undefined;
      void this.poll();
    }, NUDGE_DELAY_MS);
    this.#nudged.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    if (this.#nudged) clearTimeout(this.#nudged);
    this.#timer = undefined;
    this.#nudged = undefined;
  }

  #now(): Date {
    return this.options.now?.() ?? new Date();
  }
}
