// Tariffs shared by the tariff and pay-by-phone tests.
import type { TariffDocument } from '../../protocol/tariff';

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
