// The benchmark tariff: three bands, ten timetable entries, a DST time zone and
// holidays; and the fixed set of quotes both the XS and the Node runs price.
import type { Tariff, TariffDocument } from '../../protocol/tariff';

export const BENCH_TARIFF: TariffDocument = {
  id: 'bench-three-tier',
  version: 1,
  currency: 826,
  timeZone: 'GMT0BST,M3.5.0/1,M10.5.0',
  groups: { high: [1, 2, 3], side: [4, 5, 6] },
  holidays: ['2026-01-01', '2026-04-03', '2026-04-06', '2026-05-04', '2026-12-25', '2026-12-26'],
  rates: {
    day: [
      { upTo: 60, flat: 150 },
      { upTo: 120, price: 5, per: 3 },
      { price: 100, per: 15 },
    ],
    evening: [
      { upTo: 60, flat: 100 },
      { upTo: 180, price: 4, per: 3 },
      { price: 80, per: 15 },
    ],
    side: [
      { upTo: 30, flat: 50 },
      { upTo: 120, price: 10, per: 10 },
      { price: 40, per: 15, prorata: true },
    ],
  },
  timetable: [
    {
      bays: 'high',
      days: ['mon', 'tue', 'wed', 'thu', 'fri'],
      from: '07:00',
      to: '08:00',
      mode: 'no-parking',
    },
    {
      bays: 'high',
      days: ['mon', 'tue', 'wed', 'thu', 'fri'],
      from: '08:00',
      to: '18:30',
      mode: 'charged',
      rate: 'day',
      maxStayMinutes: 240,
    },
    {
      bays: 'high',
      days: ['sat'],
      from: '08:00',
      to: '18:30',
      mode: 'charged',
      rate: 'day',
      maxStayMinutes: 180,
    },
    {
      bays: 'high',
      days: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat'],
      from: '18:30',
      to: '23:00',
      mode: 'charged',
      rate: 'evening',
    },
    { bays: 'high', days: ['sun', 'hol'], from: '10:00', to: '16:00', mode: 'charged', rate: 'evening' },
    { bays: 'side', days: ['mon', 'tue', 'wed', 'thu', 'fri'], from: '12:00', to: '13:00', mode: 'free' },
    {
      bays: 'side',
      days: ['mon', 'tue', 'wed', 'thu', 'fri'],
      from: '08:00',
      to: '18:00',
      mode: 'charged',
      rate: 'side',
    },
    { bays: 'side', days: ['sat'], from: '09:00', to: '17:00', mode: 'charged', rate: 'side' },
    { bays: 'side', days: ['tue'], from: '06:00', to: '07:30', mode: 'no-sale' },
    {
      days: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun', 'hol'],
      from: '23:00',
      to: '06:00',
      mode: 'free',
    },
  ],
  maxStayMinutes: 600,
  minimum: { minutes: 15 },
  graceMinutes: 10,
  rounding: { stepMinutes: 15, money: 'up', moneyUnit: 10 },
};

/** Quote `i` of the fixed mix: bays 1-6, starts spread over a week in March, 15-240 minutes. */
export function benchQuote(tariff: Tariff, i: number): number {
  const start = 1_774_000_000 + ((i * 7919) % (7 * 86_400));
  const q = tariff.quoteDuration({ bay: 1 + (i % 6), start, minutes: 15 * (1 + (i % 16)) });
  return q.ok ? q.amount : -1;
}
