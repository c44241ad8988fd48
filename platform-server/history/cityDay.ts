// The city's day in JavaScript, for the one place that needs it without asking the database: ingest
// telling, per batch, whether any sale is from before today (history/rollup.ts). The reports and the
// roll-up compute days in SQL (`AT TIME ZONE`); this must agree with them on where today starts.

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(timeZone, f);
  }
  return f;
}

/** How far the zone's wall clock is ahead of UTC at `at` (ms). */
export function zoneOffset(at: number, timeZone: string): number {
  const parts: Record<string, number> = {};
  for (const p of formatter(timeZone).formatToParts(at))
    if (p.type !== 'literal') parts[p.type] = Number(p.value);
  const wall = Date.UTC(parts.year, parts.month - 1, parts.day, parts.hour, parts.minute, parts.second);
  return wall - (at - (((at % 1000) + 1000) % 1000));
}

/** The instant the city day holding `at` starts. */
export function cityDayStart(at: number, timeZone: string): number {
  const wall = at + zoneOffset(at, timeZone);
  const midnight = wall - (((wall % DAY_MS) + DAY_MS) % DAY_MS);
  // The offset at midnight may differ from the one at `at` (a DST change in between): twice settles it.
  const first = midnight - zoneOffset(midnight, timeZone);
  return midnight - zoneOffset(first, timeZone);
}

/** The city's date (YYYY-MM-DD) at `at`, as PostgreSQL's `(at AT TIME ZONE zone)::date` gives it. */
export function cityDate(at: number, timeZone: string): string {
  return new Date(at + zoneOffset(at, timeZone)).toISOString().slice(0, 10);
}

/** Where today starts in one zone, worked out once a day. */
export class CityDays {
  #start = 0;
  #end = 0;

  constructor(readonly timeZone: string) {
    formatter(timeZone); // an unknown zone throws here, at start, not in the middle of a batch
  }

  /** The instant today (the city day holding `now`) started. */
  todayStart(now: number): number {
    if (now < this.#start || now >= this.#end) {
      this.#start = cityDayStart(now, this.timeZone);
      // A day lasts 23 to 25 hours: 26 hours on is inside the next one.
      this.#end = cityDayStart(this.#start + 26 * HOUR_MS, this.timeZone);
    }
    return this.#start;
  }
}
