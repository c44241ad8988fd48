// Charging management (43): the price of the service chosen at the meter. For now a flat rate per
// hour, rounded up to the minor unit; the full tariff engine (rates, timetables, grace) replaces it.

export interface FlatRate {
  /** ISO 4217 numeric currency code. */
  currency: number;
  /** Minor units (pence, cents) per hour. */
  perHour: number;
  minMinutes: number;
  maxMinutes: number;
  stepMinutes: number;
}

export class RefusedPurchaseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RefusedPurchaseError';
  }
}

export class ChargingUnit {
  readonly rate: FlatRate;

  constructor(rate: FlatRate) {
    if (!Number.isSafeInteger(rate.perHour) || rate.perHour < 0)
      throw new RangeError('perHour must be whole minor units');
    if (rate.minMinutes < rate.stepMinutes || rate.maxMinutes < rate.minMinutes)
      throw new RangeError('bad minute limits');
    this.rate = rate;
  }

  /** Minor units for `minutes` of parking, rounded up. */
  price(minutes: number): number {
    if (!Number.isInteger(minutes) || minutes < this.rate.minMinutes) {
      throw new RefusedPurchaseError(`below the minimum stay of ${this.rate.minMinutes} min`);
    }
    if (minutes > this.rate.maxMinutes)
      throw new RefusedPurchaseError(`over the maximum stay of ${this.rate.maxMinutes} min`);
    return Math.ceil((minutes * this.rate.perHour) / 60);
  }

  /** The next duration on the up/down buttons, kept within the limits. */
  step(minutes: number, direction: 1 | -1): number {
    const next = minutes + direction * this.rate.stepMinutes;
    return Math.min(this.rate.maxMinutes, Math.max(this.rate.minMinutes, next));
  }
}
