// The tariff engine: one code path prices a tap at the meter and a renewal at the platform.
//
// What a purchase is. The driver buys minutes of parking time. Paid time runs only in charged
// periods: starting in a free period before charges begin (a cumulative tariff) the paid time
// starts when they do, and a free period in the middle of a stay (lunchtime, overnight) stops the
// clock. A `nonCumulative` tariff refuses time that would cross a free or restricted period, and a
// new session does not inherit the time left on the bay. Restricted periods (no-parking, no-sale)
// refuse any purchase that would reach them.
//
// How it is priced. The bands of a rate table are positions in the run of charged time: minutes
// 0-60 of the stay in the first band, and so on; after a free period the bands start again from the
// first, or continue where the stay had got to (`bandsAfterFree`). Each band's share of the purchase
// is charged as whole units (every started `per` minutes), pro rata, or one flat amount when the
// purchase enters the band. Units are counted once over the whole purchase (`rounding.units`): the
// minutes a band gets on both sides of a free period fill the same units, so a purchase across the
// gap costs what the same minutes cost in one piece. A renewal continues the session: its position
// starts where the paid time got to, so the first hour is not sold twice at the first-hour price and
// the renewal costs what the longer stay costs minus what was paid. The total is rounded to the
// tariff's money unit. All arithmetic is on integers (seconds, minor units).
//
// Local time comes from the tariff's POSIX TZ string (tz.ts): the timetable is read in local time,
// so a 23- or 25-hour day has 23 or 25 hours of the day's periods, and a period across midnight
// continues from one date to the next.
import {
  civilFromDays,
  daysFromCivil,
  formatLocal,
  fromLocal,
  nextTransition,
  parseTimeZone,
  type TimeZone,
  toLocal,
} from './tz';
import type {
  BayState,
  Eligibility,
  Payer,
  PriorPurchase,
  Quote,
  QuoteLine,
  QuoteOk,
  Refusal,
  RefusalReason,
  TariffDocument,
  Tier,
} from './types';
import { parseClock, validateTariff } from './validate';

const DAY = 86_400;
/** Longest purchase in any tariff (minutes), and how far ahead a walk through free time may look. */
export const MAX_PURCHASE_MINUTES = 7 * 24 * 60;
const HORIZON_SECONDS = 62 * DAY;
const WEEKDAY_BIT: Record<string, number> = {
  sun: 0,
  mon: 1,
  tue: 2,
  wed: 3,
  thu: 4,
  fri: 5,
  sat: 6,
  hol: 7,
};

interface Band {
  start: number; // seconds into the run
  end: number; // Infinity for an open last band
  tier: Tier;
}

interface Entry {
  index: number;
  bays: ReadonlySet<number> | undefined; // undefined: every bay
  days: number; // bit mask of WEEKDAY_BIT
  from: number; // seconds of the day
  to: number;
  wraps: boolean;
  mode: 'charged' | 'free' | 'no-parking' | 'no-sale';
  rate: string | undefined;
  bands: Band[] | undefined;
  maxStay: number; // seconds, Infinity when none
  nonTransferable: boolean | undefined; // the entry's own flag, if it sets one
  onDate: ((days: number) => boolean) | undefined; // the entry's dates; undefined: every date
  eligible: Eligibility | undefined; // who the entry is for; undefined: everyone
}

interface Segment {
  entry: Entry | undefined; // undefined: no entry covers it (free)
  until: number;
}

export interface DurationRequest {
  bay: number;
  /** Epoch seconds of the purchase. */
  start: number;
  minutes: number;
  /**
   * A renewal of the session (the service charging rule): minutes already bought in it, counted
   * towards the maximum stay and continuing the rate's bands. 0 (the default) is a new session.
   */
  paidMinutes?: number;
  /** Who pays, for entries limited to some payment methods or user classes. */
  payer?: Payer;
  /**
   * The payer's earlier purchases in the tariff's zone, for `maxPrice` and `noReturnMinutes` (the
   * caller's to supply; without it the payer is taken to have none). At most MAX_HISTORY.
   */
  history?: readonly PriorPurchase[];
}

export interface AmountRequest {
  bay: number;
  start: number;
  /** Minor units offered. */
  amount: number;
  paidMinutes?: number;
  payer?: Payer;
  history?: readonly PriorPurchase[];
}

/** The most earlier purchases a quote takes (a meter keeps fewer; a day of hourly renewals is 24). */
export const MAX_HISTORY = 256;

/**
 * What a quote's units go on from: nothing (a new session), the units each band of a renewal's
 * paid part reached (keyed by rate and band), or the renewal's band positions.
 */
type UnitCarry = typeof NEW_SESSION | ReadonlyMap<string, number> | 'positions';
const NEW_SESSION = 'new-session';

interface Piece {
  rate: string;
  tier: number;
  band: Band;
  run: number;
  from: number;
  to: number;
  startPos: number;
  endPos: number;
}

type Walk =
  | {
      ok: true;
      pieces: Piece[];
      free: { from: number; to: number }[];
      paidFrom: number;
      paidUntil: number;
      /** A flat amount valid until a time (a FlatUntil band): the band's local time. */
      validUntil?: string;
    }
  | Refusal;

function refuse(reason: RefusalReason, message: string, extra: Partial<Refusal> = {}): Refusal {
  return { ok: false, reason, message, ...extra };
}

function ceilDiv(a: number, b: number): number {
  return Math.floor((a + b - 1) / b);
}

export class Tariff {
  readonly doc: TariffDocument;
  readonly tz: TimeZone;
  readonly #entries: Entry[];
  readonly #holidays: ReadonlySet<number>;
  readonly #boundaries = new Map<number, number[]>();
  readonly #entriesOf = new Map<number, Entry[]>();

  /** Validates (naming the bad field in a TariffError) and compiles a tariff document. */
  static from(value: unknown): Tariff {
    return new Tariff(validateTariff(value));
  }

  constructor(doc: TariffDocument) {
    this.doc = doc;
    this.tz = parseTimeZone(doc.timeZone);
    const holidays = new Set<number>();
    for (const d of doc.holidays ?? []) {
      holidays.add(daysFromCivil(Number(d.slice(0, 4)), Number(d.slice(5, 7)), Number(d.slice(8, 10))));
    }
    this.#holidays = holidays;
    this.#entries = doc.timetable.map((e, index) => {
      const from = parseClock(e.from, '', false) * 60;
      const to = parseClock(e.to, '', true) * 60;
      const selector = e.bays ?? '*';
      const bays =
        selector === '*'
          ? undefined
          : new Set(Array.isArray(selector) ? selector : (doc.groups?.[selector] ?? []));
      let days = 0;
      for (const d of e.days) days |= 1 << WEEKDAY_BIT[d];
      let bands: Band[] | undefined;
      if (e.mode === 'charged' && e.rate) {
        let start = 0;
        bands = doc.rates[e.rate].map((tier) => {
          const end = tier.upTo === undefined ? Number.POSITIVE_INFINITY : tier.upTo * 60;
          const band = { start, end, tier };
          start = end;
          return band;
        });
      }
      return {
        index,
        bays,
        days,
        from,
        to,
        wraps: to <= from,
        mode: e.mode,
        rate: e.rate,
        bands,
        maxStay: e.maxStayMinutes === undefined ? Number.POSITIVE_INFINITY : e.maxStayMinutes * 60,
        nonTransferable: e.nonTransferable,
        onDate: e.dates ? datesCheck(e.dates) : undefined,
        eligible: e.eligible,
      };
    });
  }

  get id(): string {
    return this.doc.id;
  }

  get version(): number {
    return this.doc.version;
  }

  get currency(): number {
    return this.doc.currency;
  }

  get stepMinutes(): number {
    return this.doc.rounding?.stepMinutes ?? 1;
  }

  get graceMinutes(): number {
    return this.doc.graceMinutes ?? 0;
  }

  /** Whether any timetable entry names this bay (through '*', a group or its id). */
  knowsBay(bay: number): boolean {
    return this.#entries.some((e) => !e.bays || e.bays.has(bay)) || this.#entries.length === 0;
  }

  isHoliday(days: number): boolean {
    return this.#holidays.has(days);
  }

  /** Local date of an instant as 'YYYY-MM-DD', and its day number. */
  localDate(t: number): string {
    const l = toLocal(this.tz, t);
    const { year, month, day } = civilFromDays(l.days);
    return `${String(year).padStart(4, '0')}-${String(month).padStart(2, '0')}-${String(day).padStart(2, '0')}`;
  }

  #bayEntries(bay: number): Entry[] {
    let list = this.#entriesOf.get(bay);
    if (!list) {
      list = this.#entries.filter((e) => !e.bays || e.bays.has(bay));
      this.#entriesOf.set(bay, list);
      const marks = new Set<number>([DAY]);
      for (const e of list) {
        if (e.from > 0) marks.add(e.from);
        if (e.to > 0 && e.to < DAY) marks.add(e.to);
      }
      this.#boundaries.set(
        bay,
        [...marks].sort((a, b) => a - b),
      );
    }
    return list;
  }

  #dayMatches(e: Entry, days: number): boolean {
    if (e.onDate && !e.onDate(days)) return false;
    const bit = this.#holidays.has(days) ? 7 : (((days + 4) % 7) + 7) % 7;
    return (e.days & (1 << bit)) !== 0;
  }

  #segmentAt(bay: number, t: number, payer?: Payer): Segment {
    const entries = this.#bayEntries(bay);
    const local = toLocal(this.tz, t);
    let found: Entry | undefined;
    for (const e of entries) {
      if (e.eligible && !isEligible(e.eligible, payer)) continue;
      const s = local.seconds;
      const inside = e.wraps
        ? (s >= e.from && this.#dayMatches(e, local.days)) ||
          (s < e.to && this.#dayMatches(e, local.days - 1))
        : s >= e.from && s < e.to && this.#dayMatches(e, local.days);
      if (inside) {
        found = e;
        break;
      }
    }
    let next = DAY;
    for (const mark of this.#boundaries.get(bay) ?? [DAY]) {
      if (mark > local.seconds) {
        next = mark;
        break;
      }
    }
    const boundary = local.days * DAY + next - local.offset;
    return { entry: found, until: Math.min(boundary, nextTransition(this.tz, t)) };
  }

  /** The rules a bay is under at `t` (for `payer`; without one, the entries everyone may use), and until when. */
  stateAt(bay: number, t: number, payer?: Payer): BayState {
    const first = this.#segmentAt(bay, t, payer);
    const state = stateOf(first.entry);
    let until = first.until;
    while (until - t < 14 * DAY) {
      const seg = this.#segmentAt(bay, until, payer);
      if (stateOf(seg.entry) !== state || seg.entry?.rate !== first.entry?.rate) {
        return first.entry?.rate ? { state, rate: first.entry.rate, until } : { state, until };
      }
      until = seg.until;
    }
    return first.entry?.rate ? { state, rate: first.entry.rate } : { state };
  }

  /**
   * Whether paid time in `bay` is tied to its vehicle at `t` (a bay vacated then ends its session):
   * the flag of the timetable entry in force, else the document's, else false.
   */
  nonTransferableAt(bay: number, t: number): boolean {
    return this.#segmentAt(bay, t).entry?.nonTransferable ?? this.doc.nonTransferable ?? false;
  }

  /**
   * Walks forward from `start` consuming `seconds` of paid time. `offset` is paid time already in
   * the session (a renewal): it counts towards the maximum stays and the position in the bands.
   */
  #walk(bay: number, start: number, seconds: number, offset: number, payer?: Payer): Walk {
    const nonCumulative = this.doc.nonCumulative === true;
    const sellsAhead = this.doc.sellsAhead !== false;
    const continueBands = this.doc.bandsAfterFree === 'continue';
    const totalMax =
      this.doc.maxStayMinutes === undefined ? Number.POSITIVE_INFINITY : this.doc.maxStayMinutes * 60;
    const pieces: Piece[] = [];
    const free: { from: number; to: number }[] = [];
    let t = start;
    let left = seconds;
    let runPos = offset;
    let run = 0;
    let entryIndex = -1;
    let entryUsed = offset;
    let paidFrom: number | undefined;
    const bought = () => seconds - left;
    const limitRefusal = (reason: RefusalReason, message: string, room: number, at?: number): Refusal => {
      const extra: Partial<Refusal> = { maxMinutes: Math.floor((bought() + Math.max(0, room)) / 60) };
      if (at !== undefined) extra.at = at;
      return refuse(reason, message, extra);
    };
    while (left > 0) {
      if (t - start > HORIZON_SECONDS) {
        return paidFrom === undefined
          ? refuse('free', 'no charged period in the coming weeks: parking is free')
          : limitRefusal('max-stay', 'more time than the tariff sells ahead', 0);
      }
      const seg = this.#segmentAt(bay, t, payer);
      const e = seg.entry;
      if (e?.mode === 'no-parking' || e?.mode === 'no-sale') {
        if (paidFrom === undefined && free.length === 0)
          return e.mode === 'no-sale'
            ? refuse('no-sale', 'no sale in this period', { at: t, maxMinutes: 0 })
            : refuse('restricted', 'no parking in this period', { at: t, maxMinutes: 0 });
        return limitRefusal('restricted', `no parking from ${formatLocal(this.tz, t)}`, 0, t);
      }
      if (!e || e.mode === 'free') {
        if (paidFrom === undefined && (nonCumulative || !sellsAhead)) {
          const resumes = this.#nextCharged(bay, seg.until, start, payer);
          return refuse(
            'free',
            `free parking until ${resumes === undefined ? 'further notice' : formatLocal(this.tz, resumes)}`,
            {
              ...(resumes === undefined ? {} : { at: resumes }),
              maxMinutes: 0,
            },
          );
        }
        if (nonCumulative) {
          return limitRefusal(
            'non-cumulative',
            `paid time does not carry past ${formatLocal(this.tz, t)}`,
            0,
            t,
          );
        }
        const last = free[free.length - 1];
        if (last && last.to === t) last.to = seg.until;
        else free.push({ from: t, to: seg.until });
        if (paidFrom !== undefined || runPos > 0) {
          // The clock stops: a new run of charged time starts after the free period; the bands
          // start again from the first unless the tariff continues them (for a renewal too).
          run++;
          if (!continueBands) runPos = 0;
          entryUsed = 0;
          entryIndex = -1;
        }
        t = seg.until;
        continue;
      }
      // Charged.
      if (paidFrom === undefined) paidFrom = t;
      if (e.index !== entryIndex) {
        if (entryIndex !== -1) entryUsed = 0;
        entryIndex = e.index;
      }
      const bands = e.bands ?? [];
      const first = bands[0]?.tier;
      if (first && 'validUntil' in first && first.validUntil !== undefined) {
        // A flat amount valid until a time: sold only as the start of a purchase, whatever minutes
        // were asked; a purchase that reaches it from other time ends where it begins.
        if (pieces.length > 0)
          return limitRefusal(
            'max-stay',
            `from ${formatLocal(this.tz, t)} time is sold as a flat ${first.flat} valid until ${first.validUntil}`,
            0,
            t,
          );
        return this.#flatUntil(bay, t, e, first.validUntil, free, payer);
      }
      const bandIndex = bands.findIndex((b) => runPos >= b.start && runPos < b.end);
      if (bandIndex < 0) {
        return limitRefusal(
          'max-stay',
          `rate ${e.rate} sells no more than ${bands[bands.length - 1].end / 60} min`,
          0,
        );
      }
      const band = bands[bandIndex];
      const roomTime = seg.until - t;
      const roomEntry = e.maxStay - entryUsed;
      const roomTotal = totalMax - offset - bought();
      const roomBand = band.end - runPos;
      const lastBand = bandIndex === bands.length - 1;
      const take = Math.min(left, roomTime, roomEntry, roomTotal, roomBand);
      if (take < left) {
        if (take === roomEntry || take === roomTotal) {
          const which = roomEntry <= roomTotal ? e.maxStay / 60 : totalMax / 60;
          return limitRefusal('max-stay', `maximum stay ${which} min`, take);
        }
        if (take === roomBand && lastBand) {
          return limitRefusal('max-stay', `rate ${e.rate} sells no more than ${band.end / 60} min`, take);
        }
      }
      const prev = pieces[pieces.length - 1];
      if (prev && prev.run === run && prev.rate === e.rate && prev.tier === bandIndex && prev.to === t) {
        prev.to = t + take;
        prev.endPos = runPos + take;
      } else {
        pieces.push({
          rate: e.rate ?? '',
          tier: bandIndex,
          band,
          run,
          from: t,
          to: t + take,
          startPos: runPos,
          endPos: runPos + take,
        });
      }
      t += take;
      left -= take;
      runPos += take;
      entryUsed += take;
    }
    return { ok: true, pieces, free, paidFrom: paidFrom ?? start, paidUntil: t };
  }

  /** The next local `hhmm` strictly after `t`, epoch seconds. */
  nextLocalTime(t: number, hhmm: string): number {
    const s = parseClock(hhmm, '', false) * 60;
    const local = toLocal(this.tz, t);
    const today = fromLocal(this.tz, local.days, s);
    return today > t ? today : fromLocal(this.tz, local.days + 1, s);
  }

  /** The cap period (maxPrice) that contains `t`: from the last local reset at or before it to the next. */
  capPeriodAt(t: number): { from: number; to: number } | undefined {
    const cap = this.doc.maxPrice;
    if (!cap) return undefined;
    const to = this.nextLocalTime(t, cap.resetAt);
    const s = parseClock(cap.resetAt, '', false) * 60;
    const local = toLocal(this.tz, to);
    return { from: fromLocal(this.tz, local.days - 1, s), to };
  }

  /**
   * A FlatUntil purchase from `t` in entry `e`: paid until the band's next local time, refused when
   * a restricted period comes first (the free periods on the way are part of what it covers).
   */
  #flatUntil(
    bay: number,
    t: number,
    e: Entry,
    validUntil: string,
    free: { from: number; to: number }[],
    payer?: Payer,
  ): Walk {
    const until = this.nextLocalTime(t, validUntil);
    for (let at = t; at < until; ) {
      const seg = this.#segmentAt(bay, at, payer);
      const mode = seg.entry?.mode;
      if (mode === 'no-parking' || mode === 'no-sale')
        return refuse(
          mode === 'no-sale' ? 'no-sale' : 'restricted',
          `the ${validUntil} ticket would run into ${mode === 'no-sale' ? 'a no-sale' : 'a no-parking'} period at ${formatLocal(this.tz, at)}`,
          { at, maxMinutes: 0 },
        );
      at = seg.until;
    }
    const band = (e.bands ?? [])[0];
    const piece: Piece = {
      rate: e.rate ?? '',
      tier: 0,
      band,
      run: 0,
      from: t,
      to: until,
      startPos: 0,
      endPos: until - t,
    };
    return { ok: true, pieces: [piece], free, paidFrom: t, paidUntil: until, validUntil };
  }

  #nextCharged(bay: number, from: number, start: number, payer?: Payer): number | undefined {
    let t = from;
    while (t - start < 14 * DAY) {
      const seg = this.#segmentAt(bay, t, payer);
      if (seg.entry && seg.entry.mode !== 'free') return seg.entry.mode === 'charged' ? t : undefined;
      t = seg.until;
    }
    return undefined;
  }

  /** The charged lines of the pieces (the time's price, before any cap, fee, tax or rounding). */
  #timeLines(pieces: Piece[], carry: UnitCarry): QuoteLine[] {
    return this.#countUnits(pieces, carry).lines;
  }

  /**
   * Prices each piece and says where each band's units got to. A band's units are counted over
   * the minutes that band gets, starting a unit where the band is first met: a rate that takes
   * over in the middle of a run of charged time starts its own unit rather than finishing one
   * another rate began. Counted over the whole purchase (`rounding.units`), a band met again
   * after a free period goes on from where its units got to (the unused part of a started unit is
   * used first); counted per period, each run of charged time starts its bands' units afresh.
   */
  #countUnits(pieces: Piece[], carry: UnitCarry): { lines: QuoteLine[]; reached: Map<string, number> } {
    const lines: QuoteLine[] = [];
    const acrossRuns = (this.doc.rounding?.units ?? 'purchase') === 'purchase';
    const fromPaid = carry !== 'positions' && carry !== NEW_SESSION;
    let reached = new Map<string, number>(fromPaid ? carry : []);
    const met = new Set<string>(fromPaid ? carry.keys() : []);
    let run = pieces[0]?.run ?? 0;
    pieces.forEach((p, index) => {
      if (p.run !== run) {
        run = p.run;
        if (!acrossRuns) reached = new Map();
      }
      const tier = p.band.tier;
      const a = p.startPos - p.band.start;
      const b = p.endPos - p.band.start;
      const key = `${p.rate}\u0000${p.tier}`;
      // A renewal whose paid part could not be walked again goes on from its band position.
      const goesOnFromPosition = carry === 'positions' && index === 0 && (acrossRuns || p.run === 0);
      const unitFrom = reached.get(key) ?? (goesOnFromPosition ? a : 0);
      const unitTo = unitFrom + (b - a);
      const firstMet = !met.has(key) && !goesOnFromPosition;
      reached.set(key, unitTo);
      met.add(key);
      const base: QuoteLine = {
        kind: 'charged',
        from: p.from,
        to: p.to,
        fromLocal: formatLocal(this.tz, p.from),
        toLocal: formatLocal(this.tz, p.to),
        seconds: p.to - p.from,
        rate: p.rate,
        tier: p.tier,
        amount: 0,
        text: '',
      };
      const span = `${clock(base.fromLocal)}-${clock(base.toLocal)} rate ${p.rate} band ${p.tier + 1}`;
      if ('flat' in tier) {
        // Paid when the purchase enters the band: at its start, or where the band is first met.
        const enters = a === 0 || firstMet;
        base.amount = enters ? tier.flat : 0;
        base.text = enters ? `${span}: flat ${tier.flat}` : `${span}: flat already paid`;
      } else {
        const perSec = tier.per * 60;
        if (tier.prorata) {
          base.amount = ceilDiv(unitTo * tier.price, perSec) - ceilDiv(unitFrom * tier.price, perSec);
          base.text = `${span}: ${fmtMinutes(b - a)} min at ${tier.price} per ${tier.per} min pro rata = ${base.amount}`;
        } else {
          const units = ceilDiv(unitTo, perSec) - ceilDiv(unitFrom, perSec);
          base.units = units;
          base.amount = units * tier.price;
          base.text = `${span}: ${units} x ${tier.per} min at ${tier.price} = ${base.amount}`;
        }
        base.unitPrice = tier.price;
        base.perMinutes = tier.per;
      }
      lines.push(base);
    });
    return { lines, reached };
  }

  /**
   * Where a renewal's units go on from: the session's paid part walked again from its start, when
   * that part is one run of charged time ending where the renewal starts; else its band positions.
   */
  #paidCarry(bay: number, start: number, paid: number, payer?: Payer): UnitCarry {
    if (paid === 0) return NEW_SESSION;
    const walk = this.#walk(bay, start - paid, paid, 0, payer);
    if (!walk.ok || walk.free.length > 0 || walk.paidFrom !== start - paid || walk.paidUntil !== start)
      return 'positions';
    return this.#countUnits(walk.pieces, NEW_SESSION).reached;
  }

  /** The time's price of the part of the pieces before `t`. */
  #costBefore(pieces: Piece[], t: number, carry: UnitCarry): number {
    const cut: Piece[] = [];
    for (const p of pieces) {
      if (p.from >= t) break;
      cut.push(p.to <= t ? p : { ...p, to: t, endPos: p.startPos + (t - p.from) });
    }
    let total = 0;
    for (const line of this.#timeLines(cut, carry)) total += line.amount;
    return total;
  }

  /**
   * The maxPrice cap: the purchase is cut at the cap resets; the part in each period pays at most
   * what the cap leaves after the payer's earlier purchases counted in that period.
   */
  #capShares(
    pieces: Piece[],
    history: readonly PriorPurchase[],
    carry: UnitCarry,
  ): { shares: PriorPurchase[]; discount: number; paidBefore: number } | undefined {
    const cap = this.doc.maxPrice;
    if (!cap || pieces.length === 0) return undefined;
    const first = pieces[0].from;
    const last = pieces[pieces.length - 1].to;
    const shares: PriorPurchase[] = [];
    let discount = 0;
    let paidBefore = 0;
    let period = this.capPeriodAt(first);
    let costSoFar = 0;
    while (period && period.from < last) {
      const { from, to } = period;
      const inside = pieces.filter((p) => p.to > from && p.from < to);
      if (inside.length > 0) {
        let earlier = 0;
        for (const h of history) if (h.start >= from && h.start < to) earlier += h.amount;
        const costAtEnd = this.#costBefore(pieces, Math.min(to, last), carry);
        const portion = costAtEnd - costSoFar;
        costSoFar = costAtEnd;
        const paid = Math.min(portion, Math.max(0, cap.amount - earlier));
        if (shares.length === 0) paidBefore = earlier;
        discount += portion - paid;
        shares.push({
          start: Math.max(from, inside[0].from),
          end: Math.min(to, inside[inside.length - 1].to),
          amount: paid,
        });
      }
      period = this.capPeriodAt(to);
    }
    return { shares, discount, paidBefore };
  }

  #price(
    pieces: Piece[],
    carry: UnitCarry,
    history: readonly PriorPurchase[] = [],
  ): { lines: QuoteLine[]; total: number; tax?: QuoteOk['tax']; capShares?: PriorPurchase[] } {
    const lines = this.#timeLines(pieces, carry);
    let total = 0;
    for (const line of lines) total += line.amount;
    const capped = this.#capShares(pieces, history, carry);
    if (capped && capped.discount > 0) {
      const cap = this.doc.maxPrice as { amount: number; resetAt: string };
      lines.push({
        kind: 'cap',
        amount: -capped.discount,
        text: `at most ${cap.amount} per period from ${cap.resetAt}${capped.paidBefore > 0 ? ` (${capped.paidBefore} paid earlier)` : ''}: ${capped.discount} off`,
      });
      total -= capped.discount;
    }
    const fee = this.doc.fee;
    if (fee && fee.amount > 0 && carry === NEW_SESSION) {
      lines.push({ kind: 'fee', amount: fee.amount, text: `${fee.name ?? 'fee'} ${fee.amount}` });
      total += fee.amount;
    }
    const tax = this.doc.tax;
    // Thousandths of a per cent: 8.875 % is 8875.
    const milliPercent = tax ? Math.round(tax.percent * 1000) : 0;
    const taxName = tax?.name ?? 'tax';
    if (tax && !tax.included) {
      // Added tax, rounded half up to the minor unit, before the total is brought to the money unit.
      const added = Math.floor((total * milliPercent + 50_000) / 100_000);
      lines.push({ kind: 'tax', amount: added, text: `${taxName} ${tax.percent}% on ${total} = ${added}` });
      total += added;
    }
    const unit = this.doc.rounding?.moneyUnit ?? 1;
    if (unit > 1) {
      const mode = this.doc.rounding?.money ?? 'up';
      const rounded =
        mode === 'up'
          ? ceilDiv(total, unit) * unit
          : mode === 'down'
            ? Math.floor(total / unit) * unit
            : Math.floor((total + Math.floor(unit / 2)) / unit) * unit;
      if (rounded !== total) {
        const rounding: QuoteLine = {
          kind: 'rounding',
          amount: rounded - total,
          text: `rounded ${mode} to ${unit}`,
        };
        const added = lines.find((l) => l.kind === 'tax');
        if (added && added.amount > rounded) {
          // Rounded below its own tax (3 + 1 tax rounded to the nearest 10 is 0): the tax is at
          // most what is paid, and the rounding takes the rest off the time's price.
          rounding.amount -= rounded - added.amount;
          added.amount = rounded;
          added.text += `, at most the ${rounded} paid`;
        }
        lines.push(rounding);
        total = rounded;
      }
    }
    const shares = capped ? { capShares: capped.shares } : {};
    if (!tax) return { lines, total, ...shares };
    // Included: the tax part of the total as paid. Added: the tax line (a rounding line after it
    // belongs to the amount paid, so the net is what is left).
    const taxAmount = tax.included
      ? total -
        Math.floor((total * 100_000 + Math.floor((100_000 + milliPercent) / 2)) / (100_000 + milliPercent))
      : (lines.find((l) => l.kind === 'tax')?.amount ?? 0);
    return {
      lines,
      total,
      tax: {
        name: taxName,
        percent: tax.percent,
        included: tax.included,
        net: total - taxAmount,
        amount: taxAmount,
      },
      ...shares,
    };
  }

  /**
   * "No return within N minutes": a new session is refused while the payer's latest purchase in the
   * zone ended less than noReturnMinutes before `start` (or has not ended). A renewal is not a return.
   */
  #noReturn(start: number, paidMinutes: number, history: readonly PriorPurchase[]): Refusal | undefined {
    const minutes = this.doc.noReturnMinutes;
    if (minutes === undefined || paidMinutes > 0 || history.length === 0) return undefined;
    let lastEnd = Number.NEGATIVE_INFINITY;
    for (const h of history) if (h.end > lastEnd) lastEnd = h.end;
    const back = lastEnd + minutes * 60;
    if (back <= start) return undefined;
    const hours = minutes % 60 === 0 ? `${minutes / 60} h` : `${minutes} min`;
    return refuse(
      'no-return',
      `no return within ${hours}: you may park here again from ${formatLocal(this.tz, back)}`,
      {
        at: back,
        maxMinutes: 0,
      },
    );
  }

  #checkRequest(bay: number, start: number, paidMinutes: number): Refusal | undefined {
    if (!Number.isInteger(bay) || bay < 0 || !this.knowsBay(bay))
      return refuse('unknown-bay', `bay ${bay} is not in this tariff`);
    if (!Number.isFinite(start)) return refuse('bad-request', 'start is not a time');
    if (!Number.isInteger(paidMinutes) || paidMinutes < 0 || paidMinutes > MAX_PURCHASE_MINUTES)
      return refuse('bad-request', 'paidMinutes must be whole minutes');
    return undefined;
  }

  /** The price of `minutes` of parking bought at `start`, with its breakdown, or why not. */
  quoteDuration(request: DurationRequest): Quote {
    return this.#quoteDuration(request);
  }

  /**
   * quoteDuration, with where a renewal's units go on from when the caller has it already (a
   * search over durations prices the same paid part at every probe).
   */
  #quoteDuration(request: DurationRequest, paidCarry?: UnitCarry): Quote {
    const { bay, minutes } = request;
    const start = Math.floor(request.start);
    const paidMinutes = request.paidMinutes ?? 0;
    const bad = this.#checkRequest(bay, start, paidMinutes);
    if (bad) return bad;
    if (!Number.isInteger(minutes) || minutes < 1 || minutes > MAX_PURCHASE_MINUTES)
      return refuse('bad-request', `minutes must be a whole number from 1 to ${MAX_PURCHASE_MINUTES}`);
    const history = request.history ?? [];
    const badHistory = checkHistory(history);
    if (badHistory) return badHistory;
    const barred = this.#noReturn(start, paidMinutes, history);
    if (barred) return barred;
    const walk = this.#walk(bay, start, minutes * 60, paidMinutes * 60, request.payer);
    if (!walk.ok) return walk;
    const minMinutes = this.doc.minimum?.minutes;
    if (minMinutes !== undefined && minutes < minMinutes && paidMinutes === 0 && !walk.validUntil) {
      // Less than the minimum is sold only when less than that is left before a boundary.
      const probe = this.#walk(bay, start, minMinutes * 60, 0, request.payer);
      const cap = probe.ok ? undefined : probe.maxMinutes;
      if (cap === undefined || minutes !== cap)
        return refuse('below-minimum', `the least sold is ${minMinutes} min`, { minMinutes });
    }
    const carry = paidCarry ?? this.#paidCarry(bay, start, paidMinutes * 60, request.payer);
    const { lines, total, tax, capShares } = this.#price(walk.pieces, carry, history);
    const minAmount = this.doc.minimum?.amount;
    if (minAmount !== undefined && total < minAmount)
      return refuse('below-minimum', `the least sold is ${minAmount}`, { minAmount });
    for (const f of walk.free) {
      lines.push({
        kind: 'free',
        from: f.from,
        to: f.to,
        fromLocal: formatLocal(this.tz, f.from),
        toLocal: formatLocal(this.tz, f.to),
        seconds: 0,
        amount: 0,
        text: `${clock(formatLocal(this.tz, f.from))}-${clock(formatLocal(this.tz, f.to))} free: the paid time does not run`,
      });
    }
    lines.sort((x, y) => (x.from ?? Number.POSITIVE_INFINITY) - (y.from ?? Number.POSITIVE_INFINITY));
    const quote: QuoteOk = {
      ok: true,
      tariff: { id: this.doc.id, version: this.doc.version },
      bay,
      currency: this.doc.currency,
      start,
      paidFrom: walk.paidFrom,
      paidUntil: walk.paidUntil,
      graceUntil: walk.paidUntil + this.graceMinutes * 60,
      startLocal: formatLocal(this.tz, start),
      paidUntilLocal: formatLocal(this.tz, walk.paidUntil),
      minutes: walk.validUntil ? Math.ceil((walk.paidUntil - walk.paidFrom) / 60) : minutes,
      amount: total,
      lines,
    };
    if (tax) quote.tax = tax;
    if (capShares) quote.capShares = capShares;
    if (walk.validUntil) quote.validUntil = walk.validUntil;
    return quote;
  }

  /**
   * The most minutes that can be bought at `start` (within the maximum stays, before a restricted
   * period, and for a non-cumulative tariff before the charged period ends), or the refusal when
   * nothing can be bought.
   */
  maxMinutes(
    bay: number,
    start: number,
    paidMinutes = 0,
    payer?: Payer,
    history: readonly PriorPurchase[] = [],
  ): number | Refusal {
    const bad = this.#checkRequest(bay, start, paidMinutes) ?? checkHistory(history);
    if (bad) return bad;
    const barred = this.#noReturn(Math.floor(start), paidMinutes, history);
    if (barred) return barred;
    const limit = Math.min(
      MAX_PURCHASE_MINUTES,
      (this.doc.maxStayMinutes ?? MAX_PURCHASE_MINUTES) - paidMinutes,
    );
    if (limit <= 0)
      return refuse('max-stay', `maximum stay ${this.doc.maxStayMinutes} min reached`, { maxMinutes: 0 });
    const walk = this.#walk(bay, Math.floor(start), limit * 60, paidMinutes * 60, payer);
    if (walk.ok) return walk.validUntil ? Math.ceil((walk.paidUntil - walk.paidFrom) / 60) : limit;
    if (walk.maxMinutes !== undefined && walk.maxMinutes > 0) return walk.maxMinutes;
    return walk;
  }

  /** The time `amount` buys at `start` (in whole steps), never costing more than the amount. */
  quoteAmount(request: AmountRequest): Quote {
    const { bay, amount } = request;
    const start = Math.floor(request.start);
    const paidMinutes = request.paidMinutes ?? 0;
    if (!Number.isInteger(amount) || amount < 0)
      return refuse('bad-request', 'amount must be whole minor units');
    const { payer } = request;
    const history = request.history ?? [];
    const cap = this.maxMinutes(bay, start, paidMinutes, payer, history);
    if (typeof cap !== 'number') return cap;
    const step = this.stepMinutes;
    const carry = this.#paidCarry(bay, start, paidMinutes * 60, payer);
    const at = (minutes: number) =>
      this.#quoteDuration({ bay, start, minutes, paidMinutes, payer, history }, carry);
    const fits = (q: Quote): q is QuoteOk => q.ok && q.amount <= amount;
    // Candidates: every whole step up to the cap, and the cap itself. The price does not fall as the
    // minutes rise, so the last that fits is found by bisection.
    let best: QuoteOk | undefined;
    const capQuote = at(cap);
    if (fits(capQuote)) best = capQuote;
    else {
      let lo = 1;
      let hi = Math.floor(cap / step);
      while (lo <= hi) {
        const mid = Math.floor((lo + hi) / 2);
        const q = at(mid * step);
        if (fits(q)) {
          best = q;
          lo = mid + 1;
        } else if (!q.ok && q.reason === 'below-minimum') lo = mid + 1;
        else hi = mid - 1;
      }
    }
    if (!best) {
      const least = this.#leastQuote(bay, start, paidMinutes, cap, carry, payer);
      return refuse('below-minimum', `${amount} buys no time: the least sold costs ${least ?? 'more'}`, {
        ...(least === undefined ? {} : { minAmount: least }),
      });
    }
    return { ...best, tendered: amount, unused: amount - best.amount };
  }

  #leastQuote(
    bay: number,
    start: number,
    paidMinutes: number,
    cap: number,
    carry: UnitCarry,
    payer?: Payer,
  ): number | undefined {
    const step = this.stepMinutes;
    const first = Math.min(cap, Math.max(step, this.doc.minimum?.minutes ?? step));
    for (const minutes of [first, Math.ceil(first / step) * step, cap]) {
      const q = this.#quoteDuration({ bay, start, minutes, paidMinutes, payer }, carry);
      if (q.ok) return Math.max(q.amount, this.doc.minimum?.amount ?? 0);
    }
    return undefined;
  }
}

/**
 * The test of an entry's dates on a local day number: a range of 'YYYY-MM-DD' dates, or a season of
 * 'MM-DD' days every year (from after to: it runs over the new year).
 */
function datesCheck(dates: { from?: string; to?: string }): (days: number) => boolean {
  const sample = dates.from ?? dates.to ?? '';
  if (sample.length === 10) {
    const day = (d: string) =>
      daysFromCivil(Number(d.slice(0, 4)), Number(d.slice(5, 7)), Number(d.slice(8, 10)));
    const from = dates.from === undefined ? Number.NEGATIVE_INFINITY : day(dates.from);
    const to = dates.to === undefined ? Number.POSITIVE_INFINITY : day(dates.to);
    return (days) => days >= from && days <= to;
  }
  const monthDay = (d: string) => Number(d.slice(0, 2)) * 100 + Number(d.slice(3, 5));
  const from = dates.from === undefined ? 101 : monthDay(dates.from);
  const to = dates.to === undefined ? 1231 : monthDay(dates.to);
  return (days) => {
    const { month, day } = civilFromDays(days);
    const md = month * 100 + day;
    return from <= to ? md >= from && md <= to : md >= from || md <= to;
  };
}

/** A history the engine can use: at most MAX_HISTORY purchases of whole seconds and minor units. */
function checkHistory(history: readonly PriorPurchase[]): Refusal | undefined {
  if (!Array.isArray(history) || history.length > MAX_HISTORY)
    return refuse('bad-request', `history must list at most ${MAX_HISTORY} earlier purchases`);
  for (let i = 0; i < history.length; i++) {
    const h = history[i];
    if (
      typeof h !== 'object' ||
      h === null ||
      !Number.isSafeInteger(h.start) ||
      !Number.isSafeInteger(h.end) ||
      h.end < h.start ||
      !Number.isSafeInteger(h.amount) ||
      h.amount < 0
    )
      return refuse(
        'bad-request',
        `history[${i}] must be { start, end, amount } in whole seconds (end not before start) and minor units`,
      );
  }
  return undefined;
}

/** Whether `payer` may use an entry limited to `eligible`: each list it gives must match. */
function isEligible(eligible: Eligibility, payer: Payer | undefined): boolean {
  if (eligible.methods && !(payer?.method && eligible.methods.includes(payer.method))) return false;
  if (eligible.classes && !eligible.classes.some((c) => payer?.classes?.includes(c))) return false;
  return true;
}

function stateOf(e: Entry | undefined): BayState['state'] {
  if (!e || e.mode === 'free') return 'free';
  if (e.mode === 'no-parking') return 'restricted';
  return e.mode;
}

function clock(iso: string | undefined): string {
  return iso ? iso.slice(11, 16) : '';
}

function fmtMinutes(seconds: number): string {
  return seconds % 60 === 0 ? String(seconds / 60) : (seconds / 60).toFixed(2);
}
