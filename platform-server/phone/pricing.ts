// How a remote renewal is priced. The platform and the meter must price alike (DESIGN.md: the same
// tariff engine prices a tap and a renewal), so the phone service asks a Pricing and never computes
// a fee itself. FlatRatePricing stands in until the tariff engine (issue 3, protocol/tariff) is in;
// TariffPricing adapts anything with the engine's quoteDuration() so the switch is one line.

export interface PriceRequest {
  meterId: number;
  bayId: number;
  /** Epoch seconds the renewal's time starts (the current paid-until or now, whichever is later). */
  start: number;
  minutes: number;
  /** Minutes already bought in this session (counted towards the maximum stay). */
  paidMinutes: number;
}

export type PriceQuote =
  | { ok: true; amount: number; currency: number }
  | { ok: false; reason: string; message: string; maxMinutes?: number };

export interface Pricing {
  quote(request: PriceRequest): PriceQuote;
}

export interface FlatRate {
  currency: number;
  /** Minor units per hour. */
  perHour: number;
  /** Longest session, renewals included, minutes. */
  maxStayMinutes: number;
  minMinutes: number;
  /** Restricted periods: UTC minutes of the day [from, to) in which no time is sold. */
  restricted?: { from: number; to: number }[];
}

export class FlatRatePricing implements Pricing {
  constructor(readonly rate: FlatRate) {}

  quote(r: PriceRequest): PriceQuote {
    const { rate } = this;
    if (!Number.isInteger(r.minutes) || r.minutes < rate.minMinutes)
      return {
        ok: false,
        reason: 'below-minimum',
        message: `the least you can add is ${rate.minMinutes} minutes`,
      };
    const left = rate.maxStayMinutes - r.paidMinutes;
    if (r.minutes > left) {
      return {
        ok: false,
        reason: 'max-stay',
        message:
          left > 0
            ? `the maximum stay is ${rate.maxStayMinutes} minutes: you can add ${left} more`
            : `the maximum stay of ${rate.maxStayMinutes} minutes is reached`,
        maxMinutes: Math.max(0, left),
      };
    }
    for (const period of rate.restricted ?? []) {
      if (overlapsDaily(r.start, r.start + r.minutes * 60, period))
        return {
          ok: false,
          reason: 'restricted',
          message: `parking is restricted from ${hhmm(period.from)} to ${hhmm(period.to)} UTC`,
        };
    }
    return { ok: true, amount: Math.ceil((r.minutes * rate.perHour) / 60), currency: rate.currency };
  }
}

/** The shape of protocol/tariff's Tariff that pricing needs (structural: no import until it lands). */
export interface TariffLike {
  readonly currency: number;
  quoteDuration(request: {
    bay: number;
    start: number;
    minutes: number;
    paidMinutes?: number;
  }):
    | { ok: true; amount: number; currency: number }
    | { ok: false; reason: string; message: string; maxMinutes?: number };
}

/** Prices with the tariff engine; `tariffOf` picks the tariff of a meter. */
export class TariffPricing implements Pricing {
  constructor(readonly tariffOf: (meterId: number) => TariffLike | undefined) {}

  quote(r: PriceRequest): PriceQuote {
    const tariff = this.tariffOf(r.meterId);
    if (!tariff) return { ok: false, reason: 'no-tariff', message: 'this meter has no tariff for renewals' };
    const q = tariff.quoteDuration({
      bay: r.bayId,
      start: r.start,
      minutes: r.minutes,
      paidMinutes: r.paidMinutes,
    });
    if (!q.ok) {
      const refusal: PriceQuote = { ok: false, reason: q.reason, message: q.message };
      if (q.maxMinutes !== undefined) refusal.maxMinutes = q.maxMinutes;
      return refusal;
    }
    return { ok: true, amount: q.amount, currency: q.currency };
  }
}

function overlapsDaily(from: number, to: number, period: { from: number; to: number }): boolean {
  for (let day = Math.floor(from / 86_400) - 1; day * 86_400 < to; day++) {
    const start = day * 86_400 + period.from * 60;
    const end = day * 86_400 + (period.to > period.from ? period.to : period.to + 1440) * 60;
    if (start < to && from < end) return true;
  }
  return false;
}

function hhmm(minutes: number): string {
  return `${String(Math.floor(minutes / 60)).padStart(2, '0')}:${String(minutes % 60).padStart(2, '0')}`;
}
