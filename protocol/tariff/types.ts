// The tariff as a provider writes it (JSON), shaped after the APDS rate model: rate tables whose
// tiers are bands of stay duration, a timetable that says which rate (or free / restricted period)
// applies to which bays at which local time of which day, and the rules around a purchase.
// tariff.schema.json describes the same document for editors; validate.ts checks it field by field.

export type Day = 'mon' | 'tue' | 'wed' | 'thu' | 'fri' | 'sat' | 'sun' | 'hol';

/**
 * One band of a rate table. Bands follow each other by duration: a band covers the minutes of the
 * stay from the previous band's `upTo` (0 for the first) to its own `upTo` (to the end of the stay
 * when absent; only the last band may leave it out, and time past a last `upTo` is not sold).
 * - `flat`: this amount once, whatever part of the band the stay uses ("1.00 for the first hour").
 * - `price` per `per` minutes: every started `per` minutes costs `price` ("0.05 per 3 minutes");
 *   with `prorata` the band is charged in proportion to the seconds used and rounded up to the
 *   minor unit instead ("2.40 an hour" for any duration).
 * A progressive table is bands whose price per minute rises.
 */
export type Tier =
  | { upTo?: number; flat: number }
  | { upTo?: number; price: number; per: number; prorata?: boolean }
  | FlatUntil;

/**
 * A flat amount sold as "valid until" a local time: a purchase that starts in an entry of this rate
 * costs `flat` and its paid time runs to the next `validUntil` ("evening 3.00, valid until 08:00
 * next morning"), whatever duration was asked. It is the rate's only band.
 */
export interface FlatUntil {
  upTo?: undefined;
  flat: number;
  /** Local 'HH:MM'. */
  validUntil: string;
}

export type EntryMode = 'charged' | 'free' | 'no-parking' | 'no-sale';

export interface TimetableEntry {
  /** '*' (default), the name of a bay group, or bay ids. */
  bays?: '*' | string | number[];
  /** Days the entry starts on; 'hol' is a public holiday (a holiday matches only entries naming it). */
  days: Day[];
  /** Local 'HH:MM'; `to` may be '24:00'; a `to` at or before `from` runs past midnight. */
  from: string;
  to: string;
  mode: EntryMode;
  /** Name of the rate table (charged entries only). */
  rate?: string;
  /** Longest stay in this period, minutes. */
  maxStayMinutes?: number;
  /** Overrides the document's `nonTransferable` for a bay vacated in this period. */
  nonTransferable?: boolean;
  /**
   * The local dates the entry applies on (the date a period starts on), both ends included, either
   * left out for an open end: 'YYYY-MM-DD' for one range (a trial, a works period), or 'MM-DD' for a
   * season every year, which may run over the new year ('11-01' to '02-28').
   */
  dates?: { from?: string; to?: string };
  /**
   * The entry applies only to a payer paying by one of `methods` and holding one of `classes`
   * (each list that is given must match); for anyone else the next matching entry applies.
   */
  eligible?: Eligibility;
}

export type PaymentMethod = 'card' | 'phone' | 'coin';

export interface Eligibility {
  methods?: PaymentMethod[];
  /** User classes a card or account carries: 'resident', 'disabled-badge', 'permit', 'motorcycle'. */
  classes?: string[];
}

/** Who is paying, as far as the tariff's eligibility rules ask. */
export interface Payer {
  method?: PaymentMethod;
  classes?: readonly string[];
}

export interface Rounding {
  /** Step of the duration buttons and of the time an amount buys (minutes, default 1). */
  stepMinutes?: number;
  /** How the total is brought to a multiple of `moneyUnit` (default 'up'). */
  money?: 'up' | 'down' | 'nearest';
  /** Smallest amount charged, minor units (e.g. 10 where the meter takes 10p coins; default 1). */
  moneyUnit?: number;
  /**
   * Where a band's whole units (every started `per` minutes; a pro rata band's minor unit) are
   * counted: 'purchase' (default) once over the whole purchase, so the minutes on both sides of a
   * free period fill the same units, as a coin meter counts and as OCPI's step_size does; 'period'
   * in each run of charged time apart (a started unit before the gap and another after it).
   */
  units?: 'purchase' | 'period';
}

export interface TariffDocument {
  /** The provider's name for this tariff. */
  id: string;
  /** Increases with every change; the meter acknowledges the version it applied. */
  version: number;
  /** ISO 4217 numeric code. */
  currency: number;
  /** POSIX TZ string of the bays' local time, e.g. 'GMT0BST,M3.5.0/1,M10.5.0'. */
  timeZone: string;
  groups?: Record<string, number[]>;
  /** Local dates 'YYYY-MM-DD'. */
  holidays?: string[];
  rates: Record<string, Tier[]>;
  /** First matching entry wins; time no entry covers is free. */
  timetable: TimetableEntry[];
  /** Longest purchase (one session, renewals included), minutes. */
  maxStayMinutes?: number;
  minimum?: { minutes?: number; amount?: number };
  /** Minutes after the paid time before the bay is in overtime. */
  graceMinutes?: number;
  /** Time bought does not carry across a free or restricted period, nor into another session. */
  nonCumulative?: boolean;
  /**
   * Whether a purchase made in a free period (a free Sunday, the evening) sells the next charged
   * period's time ahead (true, the default) or is refused until charges begin.
   */
  sellsAhead?: boolean;
  /**
   * Where the bands stand after a free period in the middle of a stay (lunchtime, overnight):
   * 'restart' (default) from the first band, as a new day's first hour; 'continue' from where the
   * stay had got to, so a progressive tariff keeps climbing.
   */
  bandsAfterFree?: 'restart' | 'continue';
  /**
   * Paid time is tied to the vehicle: a bay its vehicle leaves ends its session (the meter's bay
   * sensor sees it go). A timetable entry's own flag wins for a bay vacated during that entry.
   */
  nonTransferable?: boolean;
  rounding?: Rounding;
  /** An amount added once to a new session's price (not to its renewals): a booking or service fee. */
  fee?: { amount: number; name?: string };
  /**
   * The tax on every price: `percent` (up to three decimals), `included` in the document's prices or
   * added to them, and its name on the quote ('VAT').
   */
  tax?: Tax;
  /**
   * The most a payer (card token, account, plate) pays in one cap period in this tariff's zone,
   * what they paid earlier in the period included (the caller supplies it: `history` in a quote).
   * The period runs from one local `resetAt` to the next; time bought once the cap is reached is
   * free up to the end of the period, within the maximum stays.
   */
  maxPrice?: MaxPrice;
  /**
   * "No return within N hours": a new session of a payer whose earlier purchase in the zone ended
   * less than this many minutes before the new one would start is refused (reason `no-return`).
   */
  noReturnMinutes?: number;
}

export interface MaxPrice {
  /** Minor units: the cap on the time's price (before a fee and an added tax) in one period. */
  amount: number;
  /** Local 'HH:MM' at which a new cap period starts every day. */
  resetAt: string;
}

/**
 * One of the payer's earlier purchases in the zone (the session history a cap or a no-return rule
 * needs), supplied by the caller: on the meter from its own transactions for the card token, on the
 * platform from the stored records and phone sessions. Epoch seconds; `amount` in minor units counts
 * in the cap period that contains `start` (a quote's `capShares` give a purchase cut at the resets).
 */
export interface PriorPurchase {
  start: number;
  end: number;
  amount: number;
}

export interface Tax {
  percent: number;
  included: boolean;
  name?: string;
}

export type RefusalReason =
  | 'unknown-bay'
  | 'bad-request'
  | 'below-minimum'
  | 'max-stay'
  | 'restricted'
  | 'no-sale'
  | 'non-cumulative'
  | 'free'
  | 'no-return';

export interface Refusal {
  ok: false;
  reason: RefusalReason;
  message: string;
  /** The most minutes that could be bought here and now, when a limit was hit. */
  maxMinutes?: number;
  /** The least that must be bought (below-minimum). */
  minMinutes?: number;
  minAmount?: number;
  /**
   * When charging resumes (free), the restriction begins (restricted, no-sale), or the payer may
   * park again (no-return), epoch seconds.
   */
  at?: number;
}

export type LineKind = 'charged' | 'free' | 'fee' | 'tax' | 'rounding' | 'cap';

export interface QuoteLine {
  kind: LineKind;
  /** Epoch seconds UTC and local ISO 8601, for the time lines. */
  from?: number;
  to?: number;
  fromLocal?: string;
  toLocal?: string;
  /** Purchased seconds this line covers (0 for free time, which does not use the purchase). */
  seconds?: number;
  rate?: string;
  /** Index of the rate's band. */
  tier?: number;
  units?: number;
  unitPrice?: number;
  perMinutes?: number;
  /** Minor units. */
  amount: number;
  text: string;
}

export interface QuoteOk {
  ok: true;
  tariff: { id: string; version: number };
  bay: number;
  currency: number;
  /** When the purchase was made, epoch seconds. */
  start: number;
  /** When the paid time starts to run (later than start when bought before charges begin). */
  paidFrom: number;
  paidUntil: number;
  /** Overtime begins here. */
  graceUntil: number;
  startLocal: string;
  paidUntilLocal: string;
  /** Purchased minutes. */
  minutes: number;
  /** Price, minor units. */
  amount: number;
  /** The tax in `amount` (included) or on top of its other lines (added): net + tax = amount. */
  tax?: { name: string; percent: number; included: boolean; net: number; amount: number };
  /**
   * Under a `maxPrice`: the purchase cut at the cap resets, each piece with what it pays after the
   * cap (the time's price; no fee, added tax or rounding). Stored as the payer's history, one
   * PriorPurchase per share, they keep every period's total exact.
   */
  capShares?: PriorPurchase[];
  /** The purchase is a flat amount valid until this local time ('HH:MM' of a FlatUntil band). */
  validUntil?: string;
  /** The amount direction: what was offered and what is left unused. */
  tendered?: number;
  unused?: number;
  lines: QuoteLine[];
}

export type Quote = QuoteOk | Refusal;

/** What rules a bay is under at an instant. */
export interface BayState {
  state: 'charged' | 'free' | 'restricted' | 'no-sale';
  rate?: string;
  /** When this state ends, epoch seconds (undefined: not within the next two weeks). */
  until?: number;
}
