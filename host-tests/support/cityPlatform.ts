// A platform reporting in a city's time zone, with metered areas, and the city's days around now:
// what the daily and running sales totals' tests stand on.
import assert from 'node:assert/strict';
import { cityDayStart } from '../../platform-server/history/cityDay';
import { createPlatform, type Platform } from '../../platform-server/platform';
import { uplinkTopic } from '../../protocol/topics';
import { type Backend, quietLogger, TestMeter } from '../../sim/fleet/platform';

const HOUR = 3_600_000;

/** The city day `offset` days from the one holding `now`: its start, its date, an instant in it. */
export function cityCalendar(now: number, timeZone: string) {
  const todayStart = cityDayStart(now, timeZone);
  const dayStart = (offset: number) => cityDayStart(todayStart + offset * 24 * HOUR + 12 * HOUR, timeZone);
  return {
    todayStart,
    dayStart,
    /** YYYY-MM-DD */
    day: (offset: number) => new Date(dayStart(offset) + 12 * HOUR).toISOString().slice(0, 10),
    /** Seconds, `hours` into the day. */
    at: (offset: number, hours: number) => Math.floor((dayStart(offset) + hours * HOUR) / 1000),
  };
}

export interface CityPlatform {
  platform: Platform;
  /** The database's URL: null on the embedded backend. */
  url: string | undefined;
  meters: Map<number, TestMeter>;
  /** Uplinks records from..to of a meter, which must be accepted. */
  send(id: number, from: number, to: number): Promise<void>;
  close(): Promise<void>;
}

/** A platform on a fresh database of `backend`, its reports in `timeZone`, each meter in its area. */
export async function cityPlatform(
  backend: Backend,
  timeZone: string,
  areas: readonly (readonly [number, string])[],
): Promise<CityPlatform> {
  const fresh = await backend.fresh();
  const platform = await createPlatform({
    ...fresh.config,
    httpLogger: false,
    logger: quietLogger,
    apds: { timeZone },
  });
  const meters = new Map<number, TestMeter>();
  for (const [id, area] of areas) {
    meters.set(id, new TestMeter(id, await platform.provisionMeter(id, `meter ${id}`)));
    await platform.db.query('UPDATE meters SET area = $2 WHERE id = $1', [id, area]);
  }
  return {
    platform,
    url: fresh.config.databaseUrl,
    meters,
    async send(id, from, to) {
      const m = meters.get(id) as TestMeter;
      const outcome = await platform.ingest.handleUplink(uplinkTopic(id), m.frame(from, to));
      assert.equal(outcome.ok, true, JSON.stringify(outcome));
    },
    async close() {
      await platform.close();
      await fresh.drop();
    },
  };
}
