// A flat hourly rate, the simplest tariff, written as a tariff document: charged at all hours on
// every day, pro rata to the minute and rounded up to the minor unit, with a minimum and a maximum
// purchase and the step of the duration buttons.
import type { TariffDocument } from './types';

export interface FlatRate {
  /** ISO 4217 numeric currency code. */
  currency: number;
  /** Minor units (pence, cents) per hour. */
  perHour: number;
  minMinutes: number;
  maxMinutes: number;
  stepMinutes: number;
  /** POSIX TZ of the bays (default UTC). */
  timeZone?: string;
  graceMinutes?: number;
}

export function flatTariff(rate: FlatRate, id = 'flat', version = 0): TariffDocument {
  if (!Number.isSafeInteger(rate.perHour) || rate.perHour < 0)
    throw new RangeError('perHour must be whole minor units');
  if (rate.minMinutes < rate.stepMinutes || rate.maxMinutes < rate.minMinutes)
    throw new RangeError('bad minute limits');
  const doc: TariffDocument = {
    id,
    version,
    currency: rate.currency,
    timeZone: rate.timeZone ?? 'UTC0',
    rates: { hourly: [{ price: rate.perHour, per: 60, prorata: true }] },
    timetable: [
      {
        days: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun', 'hol'],
        from: '00:00',
        to: '24:00',
        mode: 'charged',
        rate: 'hourly',
      },
    ],
    maxStayMinutes: rate.maxMinutes,
    minimum: { minutes: rate.minMinutes },
    rounding: { stepMinutes: rate.stepMinutes },
  };
  if (rate.graceMinutes !== undefined) doc.graceMinutes = rate.graceMinutes;
  return doc;
}
