// Validation of a tariff document, field by field, naming the first bad field as a path
// (`timetable[3].rate`). Where validation runs, and why by hand: the same function runs on the
// platform before a tariff is stored or pushed, in the CLI, and on the meter when a 0x85 downlink
// arrives. A JSON-schema validator (ajv) compiles schemas to code with `new Function`, which XS on
// the device does not offer to a locked firmware image, and would add tens of kilobytes to the
// ESP32 image; the meter must still check what it receives (a platform bug must not stop sales), so
// one hand-written validator serves everywhere. tariff.schema.json describes the same document for
// editors and the platform API; host-tests/tariff/schema.test.ts checks the two agree.
import { parseTimeZone, TimeZoneError } from './tz';
import type { Day, Eligibility, PaymentMethod, TariffDocument, Tier, TimetableEntry } from './types';

export class TariffError extends Error {
  override readonly name: string = 'TariffError';
  /** The offending field, as a path from the document's root ('' for the document itself). */
  readonly field: string;

  constructor(field: string, message: string) {
    super(field ? `${field}: ${message}` : message);
    this.field = field;
  }
}

export const DAYS: readonly Day[] = Object.freeze(['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'hol']);
const MODES = Object.freeze(['charged', 'free', 'no-parking', 'no-sale']);
const MONEY = Object.freeze(['up', 'down', 'nearest']);
const MAX_MINUTES = 7 * 24 * 60;
const MAX_AMOUNT = 100_000_000;

type Obj = Record<string, unknown>;

function obj(value: unknown, field: string): Obj {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new TariffError(field, 'must be an object');
  return value as Obj;
}

function only(o: Obj, field: string, allowed: readonly string[]): void {
  for (const key of Object.keys(o)) {
    if (!allowed.includes(key)) throw new TariffError(join(field, key), 'is not a tariff field');
  }
}

function join(field: string, key: string | number): string {
  return typeof key === 'number' ? `${field}[${key}]` : field ? `${field}.${key}` : key;
}

function int(value: unknown, field: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max)
    throw new TariffError(field, `must be a whole number from ${min} to ${max}`);
  return value;
}

function optInt(o: Obj, key: string, field: string, min: number, max: number): number | undefined {
  return o[key] === undefined ? undefined : int(o[key], join(field, key), min, max);
}

function optBool(o: Obj, key: string, field: string): boolean | undefined {
  if (o[key] === undefined) return undefined;
  if (typeof o[key] !== 'boolean') throw new TariffError(join(field, key), 'must be true or false');
  return o[key];
}

function str(value: unknown, field: string): string {
  if (typeof value !== 'string' || value.length === 0)
    throw new TariffError(field, 'must be a non-empty string');
  return value;
}

/** 'HH:MM' to minutes of the day; '24:00' allowed when `end`. */
export function parseClock(value: unknown, field: string, end: boolean): number {
  const m = typeof value === 'string' ? /^(\d{2}):(\d{2})$/.exec(value) : null;
  const minutes = m ? Number(m[1]) * 60 + Number(m[2]) : -1;
  if (!m || Number(m[2]) > 59 || minutes > (end ? 1440 : 1439))
    throw new TariffError(field, `must be a local time "HH:MM"${end ? ' (up to 24:00)' : ''}`);
  return minutes;
}

function tier(value: unknown, field: string): Tier {
  const o = obj(value, field);
  if (o.validUntil !== undefined) {
    only(o, field, ['flat', 'validUntil']);
    if (o.flat === undefined) throw new TariffError(join(field, 'flat'), 'is required with validUntil');
    const flat = int(o.flat, join(field, 'flat'), 0, MAX_AMOUNT);
    parseClock(o.validUntil, join(field, 'validUntil'), false);
    return { flat, validUntil: o.validUntil as string };
  }
  const upTo = optInt(o, 'upTo', field, 1, MAX_MINUTES);
  if (o.flat !== undefined) {
    only(o, field, ['upTo', 'flat']);
    const flat = int(o.flat, join(field, 'flat'), 0, MAX_AMOUNT);
    return upTo === undefined ? { flat } : { upTo, flat };
  }
  only(o, field, ['upTo', 'price', 'per', 'prorata']);
  if (o.price === undefined) throw new TariffError(join(field, 'price'), 'is required (or flat)');
  const price = int(o.price, join(field, 'price'), 0, MAX_AMOUNT);
  const per = int(o.per, join(field, 'per'), 1, MAX_MINUTES);
  if (o.prorata !== undefined && typeof o.prorata !== 'boolean')
    throw new TariffError(join(field, 'prorata'), 'must be true or false');
  const t: Tier = { price, per };
  if (upTo !== undefined) t.upTo = upTo;
  if (o.prorata) t.prorata = true;
  return t;
}

function entry(value: unknown, field: string, doc: { rates: Obj; groups: Obj }): TimetableEntry {
  const o = obj(value, field);
  only(o, field, [
    'bays',
    'days',
    'from',
    'to',
    'mode',
    'rate',
    'maxStayMinutes',
    'nonTransferable',
    'dates',
    'eligible',
  ]);
  const e: TimetableEntry = { days: [], from: '', to: '', mode: 'free' };
  if (o.bays !== undefined) {
    const f = join(field, 'bays');
    if (Array.isArray(o.bays)) {
      if (o.bays.length === 0) throw new TariffError(f, 'must name at least one bay');
      e.bays = o.bays.map((b, i) => int(b, join(f, i), 0, 0xffffffff));
    } else if (o.bays === '*') e.bays = '*';
    else {
      const group = str(o.bays, f);
      if (!Object.hasOwn(doc.groups, group)) throw new TariffError(f, `names no group "${group}"`);
      e.bays = group;
    }
  }
  if (!Array.isArray(o.days) || o.days.length === 0)
    throw new TariffError(join(field, 'days'), 'must list days (mon … sun, hol)');
  e.days = o.days.map((d, i) => {
    if (!DAYS.includes(d as Day))
      throw new TariffError(join(join(field, 'days'), i), 'must be mon … sun or hol');
    return d as Day;
  });
  const from = parseClock(o.from, join(field, 'from'), false);
  const to = parseClock(o.to, join(field, 'to'), true);
  e.from = o.from as string;
  e.to = o.to as string;
  if (from === to % 1440 && to !== 1440 && from !== 0)
    throw new TariffError(join(field, 'to'), 'must differ from "from" (use 00:00 to 24:00 for a whole day)');
  if (!MODES.includes(o.mode as string))
    throw new TariffError(join(field, 'mode'), 'must be charged, free, no-parking or no-sale');
  e.mode = o.mode as TimetableEntry['mode'];
  if (e.mode === 'charged') {
    const rate = str(o.rate, join(field, 'rate'));
    if (!Object.hasOwn(doc.rates, rate))
      throw new TariffError(join(field, 'rate'), `names no rate "${rate}"`);
    e.rate = rate;
  } else if (o.rate !== undefined) {
    throw new TariffError(join(field, 'rate'), `is only for charged entries, not ${e.mode}`);
  }
  const maxStay = optInt(o, 'maxStayMinutes', field, 1, MAX_MINUTES);
  if (maxStay !== undefined) e.maxStayMinutes = maxStay;
  const nonTransferable = optBool(o, 'nonTransferable', field);
  if (nonTransferable !== undefined) e.nonTransferable = nonTransferable;
  if (o.dates !== undefined) e.dates = dates(o.dates, join(field, 'dates'));
  if (o.eligible !== undefined) e.eligible = eligibility(o.eligible, join(field, 'eligible'));
  return e;
}

const METHODS = Object.freeze(['card', 'phone', 'coin']);

function eligibility(value: unknown, field: string): Eligibility {
  const o = obj(value, field);
  only(o, field, ['methods', 'classes']);
  const list = (key: 'methods' | 'classes'): string[] | undefined => {
    const v = o[key];
    if (v === undefined) return undefined;
    if (!Array.isArray(v) || v.length === 0)
      throw new TariffError(join(field, key), 'must list at least one');
    return v.map((item, i) => {
      const f = join(join(field, key), i);
      if (key === 'methods' && !METHODS.includes(item as string))
        throw new TariffError(f, 'must be card, phone or coin');
      const name = str(item, f);
      if (name.length > 32) throw new TariffError(f, 'must be at most 32 characters');
      return name;
    });
  };
  const methods = list('methods');
  const classes = list('classes');
  if (!methods && !classes) throw new TariffError(field, 'must give methods, classes or both');
  const e: Eligibility = {};
  if (methods) e.methods = methods as PaymentMethod[];
  if (classes) e.classes = classes;
  return e;
}

/** An entry's dates: both ends 'YYYY-MM-DD' (a range, from not after to) or both 'MM-DD' (a season). */
function dates(value: unknown, field: string): { from?: string; to?: string } {
  const o = obj(value, field);
  only(o, field, ['from', 'to']);
  if (o.from === undefined && o.to === undefined) throw new TariffError(field, 'must give from, to or both');
  const form = (key: 'from' | 'to'): 'date' | 'season' | undefined => {
    const v = o[key];
    if (v === undefined) return undefined;
    const m = typeof v === 'string' ? /^(?:(\d{4})-)?(\d{2})-(\d{2})$/.exec(v) : null;
    if (!m || Number(m[2]) < 1 || Number(m[2]) > 12 || Number(m[3]) < 1 || Number(m[3]) > 31)
      throw new TariffError(join(field, key), 'must be a date "YYYY-MM-DD" or a day of the year "MM-DD"');
    return m[1] === undefined ? 'season' : 'date';
  };
  const from = form('from');
  const to = form('to');
  if (from && to && from !== to)
    throw new TariffError(join(field, 'to'), 'must be of the same form as from (YYYY-MM-DD or MM-DD)');
  if (from === 'date' && to === 'date' && (o.to as string) < (o.from as string))
    throw new TariffError(join(field, 'to'), 'must not be before from');
  const d: { from?: string; to?: string } = {};
  if (o.from !== undefined) d.from = o.from as string;
  if (o.to !== undefined) d.to = o.to as string;
  return d;
}

/** A percentage with at most three decimals (8.875), from 0 to 100. */
function percent(value: unknown, field: string): number {
  if (
    typeof value !== 'number' ||
    !(value >= 0 && value <= 100) ||
    Math.abs(Math.round(value * 1000) - value * 1000) > 1e-6
  )
    throw new TariffError(field, 'must be a percentage from 0 to 100 with at most three decimals');
  return value;
}

function optName(o: Obj, field: string): string | undefined {
  if (o.name === undefined) return undefined;
  const name = str(o.name, join(field, 'name'));
  if (name.length > 32) throw new TariffError(join(field, 'name'), 'must be at most 32 characters');
  return name;
}

/** Checks a parsed JSON value and returns it as a TariffDocument; throws TariffError naming the field. */
export function validateTariff(value: unknown): TariffDocument {
  const o = obj(value, '');
  only(o, '', [
    '$schema',
    'id',
    'version',
    'currency',
    'timeZone',
    'groups',
    'holidays',
    'rates',
    'timetable',
    'maxStayMinutes',
    'minimum',
    'graceMinutes',
    'nonCumulative',
    'sellsAhead',
    'bandsAfterFree',
    'nonTransferable',
    'rounding',
    'fee',
    'tax',
    'maxPrice',
    'noReturnMinutes',
  ]);
  const doc: TariffDocument = {
    id: str(o.id, 'id'),
    version: int(o.version, 'version', 0, 0xffffffff),
    currency: int(o.currency, 'currency', 1, 999),
    timeZone: str(o.timeZone, 'timeZone'),
    rates: {},
    timetable: [],
  };
  try {
    parseTimeZone(doc.timeZone);
  } catch (error) {
    if (error instanceof TimeZoneError) throw new TariffError('timeZone', error.message);
    throw error;
  }
  const groups: Record<string, number[]> = {};
  if (o.groups !== undefined) {
    const g = obj(o.groups, 'groups');
    for (const [name, bays] of Object.entries(g)) {
      const f = join('groups', name);
      if (!Array.isArray(bays) || bays.length === 0) throw new TariffError(f, 'must list bay ids');
      groups[name] = bays.map((b, i) => int(b, join(f, i), 0, 0xffffffff));
    }
    doc.groups = groups;
  }
  if (o.holidays !== undefined) {
    if (!Array.isArray(o.holidays)) throw new TariffError('holidays', 'must be a list of dates');
    doc.holidays = o.holidays.map((d, i) => {
      const m = typeof d === 'string' ? /^\d{4}-(\d{2})-(\d{2})$/.exec(d) : null;
      if (!m || Number(m[1]) < 1 || Number(m[1]) > 12 || Number(m[2]) < 1 || Number(m[2]) > 31)
        throw new TariffError(join('holidays', i), 'must be a date "YYYY-MM-DD"');
      return d as string;
    });
  }
  const rates = obj(o.rates, 'rates');
  if (Object.keys(rates).length === 0) throw new TariffError('rates', 'must define at least one rate');
  for (const [name, tiers] of Object.entries(rates)) {
    const f = join('rates', name);
    if (!Array.isArray(tiers) || tiers.length === 0) throw new TariffError(f, 'must list at least one band');
    let previous = 0;
    doc.rates[name] = tiers.map((t, i) => {
      const parsed = tier(t, join(f, i));
      if ('validUntil' in parsed) {
        if (tiers.length > 1)
          throw new TariffError(join(join(f, i), 'validUntil'), 'is for a rate of one band only');
        return parsed;
      }
      if (parsed.upTo === undefined && i < tiers.length - 1)
        throw new TariffError(join(join(f, i), 'upTo'), 'is required on every band but the last');
      if (parsed.upTo !== undefined && parsed.upTo <= previous)
        throw new TariffError(join(join(f, i), 'upTo'), `must be more than the band before (${previous})`);
      previous = parsed.upTo ?? previous;
      return parsed;
    });
  }
  if (!Array.isArray(o.timetable)) throw new TariffError('timetable', 'must be a list of entries');
  const context = { rates, groups };
  doc.timetable = o.timetable.map((e, i) => entry(e, join('timetable', i), context));
  const maxStay = optInt(o, 'maxStayMinutes', '', 1, MAX_MINUTES);
  if (maxStay !== undefined) doc.maxStayMinutes = maxStay;
  if (o.minimum !== undefined) {
    const m = obj(o.minimum, 'minimum');
    only(m, 'minimum', ['minutes', 'amount']);
    doc.minimum = {};
    const minutes = optInt(m, 'minutes', 'minimum', 1, MAX_MINUTES);
    const amount = optInt(m, 'amount', 'minimum', 0, MAX_AMOUNT);
    if (minutes !== undefined) doc.minimum.minutes = minutes;
    if (amount !== undefined) doc.minimum.amount = amount;
    if (minutes !== undefined && maxStay !== undefined && minutes > maxStay)
      throw new TariffError('minimum.minutes', `is more than maxStayMinutes (${maxStay})`);
  }
  const grace = optInt(o, 'graceMinutes', '', 0, 24 * 60);
  if (grace !== undefined) doc.graceMinutes = grace;
  const nonCumulative = optBool(o, 'nonCumulative', '');
  if (nonCumulative !== undefined) doc.nonCumulative = nonCumulative;
  const sellsAhead = optBool(o, 'sellsAhead', '');
  if (sellsAhead !== undefined) doc.sellsAhead = sellsAhead;
  if (o.bandsAfterFree !== undefined) {
    if (o.bandsAfterFree !== 'restart' && o.bandsAfterFree !== 'continue')
      throw new TariffError('bandsAfterFree', 'must be restart or continue');
    doc.bandsAfterFree = o.bandsAfterFree;
  }
  const nonTransferable = optBool(o, 'nonTransferable', '');
  if (nonTransferable !== undefined) doc.nonTransferable = nonTransferable;
  if (o.rounding !== undefined) {
    const r = obj(o.rounding, 'rounding');
    only(r, 'rounding', ['stepMinutes', 'money', 'moneyUnit', 'units']);
    doc.rounding = {};
    const step = optInt(r, 'stepMinutes', 'rounding', 1, 24 * 60);
    if (step !== undefined) doc.rounding.stepMinutes = step;
    if (r.money !== undefined) {
      if (!MONEY.includes(r.money as string))
        throw new TariffError('rounding.money', 'must be up, down or nearest');
      doc.rounding.money = r.money as 'up' | 'down' | 'nearest';
    }
    const unit = optInt(r, 'moneyUnit', 'rounding', 1, 100_000);
    if (unit !== undefined) doc.rounding.moneyUnit = unit;
    if (r.units !== undefined) {
      if (r.units !== 'purchase' && r.units !== 'period')
        throw new TariffError('rounding.units', 'must be purchase or period');
      doc.rounding.units = r.units;
    }
  }
  if (o.fee !== undefined) {
    const f = obj(o.fee, 'fee');
    only(f, 'fee', ['amount', 'name']);
    doc.fee = { amount: int(f.amount, 'fee.amount', 0, MAX_AMOUNT) };
    const name = optName(f, 'fee');
    if (name !== undefined) doc.fee.name = name;
  }
  if (o.tax !== undefined) {
    const t = obj(o.tax, 'tax');
    only(t, 'tax', ['percent', 'included', 'name']);
    if (typeof t.included !== 'boolean')
      throw new TariffError('tax.included', 'must say whether the prices include the tax (true or false)');
    doc.tax = { percent: percent(t.percent, 'tax.percent'), included: t.included };
    const name = optName(t, 'tax');
    if (name !== undefined) doc.tax.name = name;
  }
  if (o.maxPrice !== undefined) {
    const m = obj(o.maxPrice, 'maxPrice');
    only(m, 'maxPrice', ['amount', 'resetAt']);
    const amount = int(m.amount, 'maxPrice.amount', 1, MAX_AMOUNT);
    if (m.resetAt === undefined)
      throw new TariffError(
        'maxPrice.resetAt',
        'is required: the local time "HH:MM" a new cap period starts',
      );
    parseClock(m.resetAt, 'maxPrice.resetAt', false);
    doc.maxPrice = { amount, resetAt: m.resetAt as string };
  }
  const noReturn = optInt(o, 'noReturnMinutes', '', 1, MAX_MINUTES);
  if (noReturn !== undefined) doc.noReturnMinutes = noReturn;
  return doc;
}
