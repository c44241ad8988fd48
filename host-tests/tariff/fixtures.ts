// Tariffs shared by the tariff and pay-by-phone tests.
import type { Day, TariffDocument, Tier, TimetableEntry } from '../../protocol/tariff';

export const UK = 'GMT0BST,M3.5.0/1,M10.5.0';

/** Worked example 1 (examples.test.ts): a British town-centre street, 0.30 per started 10 min. */
export const townCentre: TariffDocument = {
  id: 'town-centre',
  version: 3,
  currency: 826,
  timeZone: UK,
  holidays: ['2026-12-25', '2026-12-26', '2026-12-28'],
  rates: { street: [{ price: 30, per: 10 }] },
  timetable: [
    {
      days: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat'],
      from: '08:00',
      to: '18:00',
      mode: 'charged',
      rate: 'street',
    },
  ],
  maxStayMinutes: 120,
  minimum: { minutes: 20 },
  graceMinutes: 10,
  nonCumulative: true,
  rounding: { stepMinutes: 10 },
};

export const EVERY_DAY: Day[] = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];
export const MON_TO_SAT: Day[] = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat'];

/**
 * A tariff of one rate (`tiers`) charged `from`-`to` on `days` and free otherwise, in UTC (so the
 * times in a test read as they are) and pounds unless `extra` says otherwise; `extra` on top.
 */
export function oneRate(
  id: string,
  tiers: Tier[],
  hours: { days?: Day[]; from: string; to: string; dates?: TimetableEntry['dates'] },
  extra: Partial<TariffDocument> = {},
): TariffDocument {
  const entry: TimetableEntry = {
    days: hours.days ?? EVERY_DAY,
    from: hours.from,
    to: hours.to,
    mode: 'charged',
    rate: 'rate',
  };
  if (hours.dates) entry.dates = hours.dates;
  return {
    id,
    version: 1,
    currency: 826,
    timeZone: 'UTC0',
    rates: { rate: tiers },
    timetable: [entry],
    ...extra,
  };
}
