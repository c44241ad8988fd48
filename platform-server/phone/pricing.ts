// How a remote renewal is priced. The platform and the meter must price alike (DESIGN.md: the same
// tariff engine prices a tap and a renewal), so the phone service asks a Pricing and never computes
// a fee itself. TariffPricing (the default) quotes with protocol/tariff's engine: the tariff the
// meter has applied (TariffService.tariffOf), else the configured default tariff. FlatRatePricing
// remains for tests and tools that want a rate without a tariff document.
import type { Payer, PriorPurchase } from '../../protocol/tariff';

/** A renewal by phone (app, SMS or voice); driver accounts carry no user class yet. */
const BY_PHONE: Payer = Object.freeze({ method: 'phone' });

export interface PriceRequest {
  meterId: number;
  bayId: number;
  /** Epoch seconds the renewal's time starts (the current paid-until or now, whichever is later). */
  start: number;
  minutes: number;
  /** Minutes already bought in this session (counted towards the maximum stay). */
  paidMinutes: number;
  /** The payer's earlier purchases in the meter's tariff zone (historyZone), when the tariff asks. */
  history?: readonly PriorPurchase[];
}

export type PriceQuote =
  /** `minutes`: what the amount buys, which a tariff's rounding may make more than was asked. */
  | { ok: true; amount: number; currency: number; minutes: number }
  | { ok: false; reason: string; message: string; maxMinutes?: number };

/** One extension a driver can buy now: the minutes, and their price. */
export interface ExtensionChoice {
  minutes: number;
  amount: number;
  currency: number;
}

/** The durations offered first, each rounded up to what the tariff sells, and the most that can be added. */
const USUAL_MINUTES = [15, 30, 60, 120] as const;

/**
 * The extensions `pricing` sells for a request: the usual durations that fit, and the most that can
 * still be added when that is not one of them, each quoted (so a duration the tariff rounds up is
 * offered at the minutes it really gives), without repeats. Empty when nothing can be added.
 */
export function extensionChoices(
  pricing: Pricing,
  request: Omit<PriceRequest, 'minutes'>,
): ExtensionChoice[] {
  const most = pricing.maxMinutes(request);
  if (most <= 0) return [];
  const step = Math.max(1, pricing.stepMinutes?.(request.meterId) ?? 1);
  const wanted = new Set<number>();
  for (const m of USUAL_MINUTES) {
    const rounded = Math.ceil(m / step) * step;
    if (rounded <= most) wanted.add(rounded);
  }
  wanted.add(most);
  const choices = new Map<number, ExtensionChoice>();
  for (const minutes of [...wanted].sort((a, b) => a - b)) {
    const q = pricing.quote({ ...request, minutes });
    if (q.ok && !choices.has(q.minutes))
      choices.set(q.minutes, { minutes: q.minutes, amount: q.amount, currency: q.currency });
  }
  // A choice that costs as much as a longer one is never offered.
  const sorted = [...choices.values()].sort((a, b) => a.minutes - b.minutes);
  return sorted.filter((c, i) => !sorted.slice(i + 1).some((longer) => longer.amount <= c.amount));
}

export interface Pricing {
  quote(request: PriceRequest): PriceQuote;
  /** The most minutes that can still be bought (0 when none). */
  maxMinutes(request: Omit<PriceRequest, 'minutes'>): number;
  /** The tariff's unit of time for `meterId` (minutes), when it sells in steps. */
  stepMinutes?(meterId: number): number;
  /**
   * The meters of `meterId`'s tariff zone when its tariff has a rule on the payer's history (a
   * maximum price per period, no return), so the caller looks the payer's purchases up there;
   * undefined when it has none.
   */
  historyZone?(meterId: number): readonly number[] | undefined;
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
    return {
      ok: true,
      amount: Math.ceil((r.minutes * rate.perHour) / 60),
      currency: rate.currency,
      minutes: r.minutes,
    };
  }

  maxMinutes(r: Omit<PriceRequest, 'minutes'>): number {
    return Math.max(0, this.rate.maxStayMinutes - r.paidMinutes);
  }
}

/** The shape of protocol/tariff's Tariff that pricing needs (structural, so tests can stub it). */
export interface TariffLike {
  readonly currency: number;
  /** The document's history rules, when the tariff has them. */
  readonly doc?: { maxPrice?: unknown; noReturnMinutes?: number };
  readonly stepMinutes?: number;
  quoteDuration(request: TariffRequest & { minutes: number }): TariffQuote;
  maxMinutes?(
    bay: number,
    start: number,
    paidMinutes?: number,
    payer?: Payer,
    history?: readonly PriorPurchase[],
  ): number | { ok: false };
}

interface TariffRequest {
  bay: number;
  start: number;
  paidMinutes?: number;
  payer?: Payer;
  history?: readonly PriorPurchase[];
}

type TariffQuote =
  | { ok: true; amount: number; currency: number; minutes?: number }
  | { ok: false; reason: string; message: string; maxMinutes?: number };

/**
 * Prices with the tariff engine: the tariff `tariffOf` gives for the meter (the one it has
 * acknowledged applying), else `fallback` (the platform's default tariff). A refusal keeps the
 * engine's reason (max-stay, restricted, non-cumulative, no-sale, free, below-minimum, …) and gets a
 * message a driver can act on ("you can add 30 more minutes").
 */
export class TariffPricing implements Pricing {
  constructor(
    readonly tariffOf: (meterId: number) => TariffLike | undefined,
    readonly fallback?: TariffLike,
    /** The meters of a meter's tariff zone (TariffService.zoneOf); the meter alone without it. */
    readonly zoneOf?: (meterId: number) => readonly number[],
  ) {}

  historyZone(meterId: number): readonly number[] | undefined {
    const doc = (this.tariffOf(meterId) ?? this.fallback)?.doc;
    if (!doc || (doc.maxPrice === undefined && doc.noReturnMinutes === undefined)) return undefined;
    return this.zoneOf?.(meterId) ?? [meterId];
  }

  quote(r: PriceRequest): PriceQuote {
    const tariff = this.tariffOf(r.meterId) ?? this.fallback;
    if (!tariff) return { ok: false, reason: 'no-tariff', message: 'this meter has no tariff for renewals' };
    const asked = {
      bay: r.bayId,
      start: r.start,
      paidMinutes: r.paidMinutes,
      payer: BY_PHONE,
      ...(r.history ? { history: r.history } : {}),
    };
    const q = tariff.quoteDuration({ ...asked, minutes: r.minutes });
    if (!q.ok) {
      const refusal: PriceQuote = { ok: false, reason: q.reason, message: refusalText(q) };
      if (q.maxMinutes !== undefined) refusal.maxMinutes = q.maxMinutes;
      return refusal;
    }
    // A tariff that sells 10-minute units charges 7 minutes as a whole unit: the driver gets the 10
    // when the whole unit costs the same.
    // Units are counted from the extension's start, or over the whole stay (rounding.units), so the
    // unit's end is looked for both ways; the longest that costs the same is given.
    let minutes = q.minutes ?? r.minutes;
    const step = tariff.stepMinutes ?? 1;
    const ends = [
      Math.ceil(r.minutes / step) * step,
      Math.ceil((r.paidMinutes + r.minutes) / step) * step - r.paidMinutes,
    ].sort((a, b) => b - a);
    for (const whole of ends) {
      if (whole <= minutes) continue;
      const unit = tariff.quoteDuration({ ...asked, minutes: whole });
      if (unit.ok && unit.amount === q.amount) {
        minutes = unit.minutes ?? whole;
        break;
      }
    }
    return { ok: true, amount: q.amount, currency: q.currency, minutes };
  }

  maxMinutes(r: Omit<PriceRequest, 'minutes'>): number {
    const tariff = this.tariffOf(r.meterId) ?? this.fallback;
    const most = tariff?.maxMinutes?.(r.bayId, r.start, r.paidMinutes, BY_PHONE, r.history ?? []);
    return typeof most === 'number' ? most : 0;
  }

  stepMinutes(meterId: number): number {
    return (this.tariffOf(meterId) ?? this.fallback)?.stepMinutes ?? 1;
  }
}

/** The engine's message, plus what can still be bought when a limit was hit. */
function refusalText(q: { reason: string; message: string; maxMinutes?: number }): string {
  const limit = q.reason === 'max-stay' || q.reason === 'restricted' || q.reason === 'non-cumulative';
  if (!limit || q.maxMinutes === undefined) return q.message;
  return q.maxMinutes > 0
    ? `${q.message}: you can add ${q.maxMinutes} more minutes`
    : `${q.message}: no more time can be added`;
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
