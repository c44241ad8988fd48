// Local time from a POSIX TZ string (POSIX.1-2017 §8.3, the form ESP-IDF's newlib takes in `TZ`),
// e.g. `GMT0BST,M3.5.0/1,M10.5.0` or `<+1030>-10:30<+11>-11,M10.1.0,M4.1.0`. XS has no `Intl`, so
// the rules are evaluated here: std/dst names (alphabetic or <quoted>), offsets [+-]hh[:mm[:ss]]
// (positive west of Greenwich), and Jn / n / Mm.w.d rules with an optional /time (RFC 8536's
// extension: -167..167 hours). Dates are proleptic Gregorian; times are epoch seconds UTC.

export class TimeZoneError extends Error {
  override readonly name: string = 'TimeZoneError';
  constructor(message: string) {
    super(message);
  }
}

type Rule =
  | { kind: 'J'; day: number; time: number } // Julian day 1..365, 29 February never counted
  | { kind: 'N'; day: number; time: number } // zero-based day 0..365, leap day counted
  | { kind: 'M'; month: number; week: number; weekday: number; time: number };

export interface TimeZone {
  readonly spec: string;
  readonly stdName: string;
  readonly dstName: string | undefined;
  /** Seconds to add to UTC for standard time (east positive, the opposite of POSIX's sign). */
  readonly stdOffset: number;
  readonly dstOffset: number;
  readonly start: Rule | undefined;
  readonly end: Rule | undefined;
}

const DAY = 86_400;

/** Days from 1970-01-01 to the civil date (H. Hinnant's days_from_civil). */
export function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const mp = (month + 9) % 12;
  const doy = Math.floor((153 * mp + 2) / 5) + day - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146_097 + doe - 719_468;
}

/** The civil date of a day number (days since 1970-01-01). */
export function civilFromDays(days: number): { year: number; month: number; day: number } {
  const z = days + 719_468;
  const era = Math.floor(z / 146_097);
  const doe = z - era * 146_097;
  const yoe = Math.floor(
    (doe - Math.floor(doe / 1460) + Math.floor(doe / 36_524) - Math.floor(doe / 146_096)) / 365,
  );
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const day = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const month = mp < 10 ? mp + 3 : mp - 9;
  return { year: yoe + era * 400 + (month <= 2 ? 1 : 0), month, day };
}

/** 0 = Sunday … 6 = Saturday. */
export function weekdayOfDays(days: number): number {
  return (((days + 4) % 7) + 7) % 7;
}

export function isLeapYear(year: number): boolean {
  return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
}

function daysInMonth(year: number, month: number): number {
  return [31, isLeapYear(year) ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1];
}

class Reader {
  i = 0;
  constructor(readonly s: string) {}
  peek(): string {
    return this.s[this.i] ?? '';
  }
  fail(what: string): never {
    throw new TimeZoneError(`TZ "${this.s}": ${what} at position ${this.i}`);
  }
  name(): string {
    if (this.peek() === '<') {
      const close = this.s.indexOf('>', this.i);
      if (close < 0) this.fail('unterminated <name>');
      const name = this.s.slice(this.i + 1, close);
      if (name.length < 3 || !/^[A-Za-z0-9+-]+$/.test(name)) this.fail('bad <name>');
      this.i = close + 1;
      return name;
    }
    const m = /^[A-Za-z]{3,}/.exec(this.s.slice(this.i));
    if (!m) this.fail('expected a zone name of three letters or more');
    this.i += m[0].length;
    return m[0];
  }
  /** [+-]hh[:mm[:ss]] in seconds; `maxHours` 24 for offsets, 167 for rule times. */
  hms(maxHours: number): number {
    let sign = 1;
    if (this.peek() === '+' || this.peek() === '-') {
      sign = this.peek() === '-' ? -1 : 1;
      this.i++;
    }
    const m = /^(\d{1,3})(?::(\d{2}))?(?::(\d{2}))?/.exec(this.s.slice(this.i));
    if (!m) this.fail('expected hh[:mm[:ss]]');
    const h = Number(m[1]);
    const min = m[2] === undefined ? 0 : Number(m[2]);
    const sec = m[3] === undefined ? 0 : Number(m[3]);
    if (h > maxHours || min > 59 || sec > 59) this.fail('time out of range');
    this.i += m[0].length;
    return sign * (h * 3600 + min * 60 + sec);
  }
  int(): number {
    const m = /^\d+/.exec(this.s.slice(this.i));
    if (!m) this.fail('expected a number');
    this.i += m[0].length;
    return Number(m[0]);
  }
  rule(): Rule {
    let rule: Rule;
    if (this.peek() === 'J') {
      this.i++;
      const day = this.int();
      if (day < 1 || day > 365) this.fail('Jn out of 1..365');
      rule = { kind: 'J', day, time: 7200 };
    } else if (this.peek() === 'M') {
      this.i++;
      const month = this.int();
      if (this.peek() !== '.') this.fail('expected Mm.w.d');
      this.i++;
      const week = this.int();
      if (this.peek() !== '.') this.fail('expected Mm.w.d');
      this.i++;
      const weekday = this.int();
      if (month < 1 || month > 12 || week < 1 || week > 5 || weekday > 6) this.fail('Mm.w.d out of range');
      rule = { kind: 'M', month, week, weekday, time: 7200 };
    } else {
      const day = this.int();
      if (day > 365) this.fail('n out of 0..365');
      rule = { kind: 'N', day, time: 7200 };
    }
    if (this.peek() === '/') {
      this.i++;
      rule.time = this.hms(167);
    }
    return rule;
  }
}

/** Parses a POSIX TZ string; throws TimeZoneError naming the position of the fault. */
export function parseTimeZone(spec: string): TimeZone {
  if (typeof spec !== 'string' || spec.length === 0) throw new TimeZoneError('TZ is empty');
  if (spec.startsWith(':')) throw new TimeZoneError(`TZ "${spec}": file-based zones are not supported`);
  const r = new Reader(spec);
  const stdName = r.name();
  const stdOffset = 0 - r.hms(24); // 0 - x: never -0
  let dstName: string | undefined;
  let dstOffset = stdOffset;
  let start: Rule | undefined;
  let end: Rule | undefined;
  if (r.i < spec.length) {
    dstName = r.name();
    dstOffset = stdOffset + 3600;
    if (r.peek() !== ',' && r.i < spec.length) dstOffset = 0 - r.hms(24);
    if (r.peek() === ',') {
      r.i++;
      start = r.rule();
      if (r.peek() !== ',') r.fail('expected ",end-rule"');
      r.i++;
      end = r.rule();
    } else {
      // POSIX leaves the rules to the implementation; newlib and glibc use the US rules.
      start = { kind: 'M', month: 3, week: 2, weekday: 0, time: 7200 };
      end = { kind: 'M', month: 11, week: 1, weekday: 0, time: 7200 };
    }
    if (r.i !== spec.length) r.fail('unexpected text');
  }
  return Object.freeze({ spec, stdName, dstName, stdOffset, dstOffset, start, end });
}

/** Local midnight (as a day number) of a rule's date in `year`, plus the rule's time of day. */
function ruleLocalSeconds(rule: Rule, year: number): number {
  let days: number;
  if (rule.kind === 'J') {
    days = daysFromCivil(year, 1, 1) + rule.day - 1;
    if (isLeapYear(year) && rule.day >= 60) days++;
  } else if (rule.kind === 'N') {
    days = daysFromCivil(year, 1, 1) + rule.day;
  } else {
    const first = daysFromCivil(year, rule.month, 1);
    let day = 1 + ((rule.weekday - weekdayOfDays(first) + 7) % 7) + (rule.week - 1) * 7;
    const last = daysInMonth(year, rule.month);
    while (day > last) day -= 7; // week 5: the last such weekday of the month
    days = first + day - 1;
  }
  return days * DAY + rule.time;
}

/** The UTC instants DST starts and ends in `year` (start < end in the north, end < start in the south). */
export function transitionsOf(tz: TimeZone, year: number): { start: number; end: number } | undefined {
  if (!tz.start || !tz.end) return undefined;
  // A rule's time is local time as it is just before the change: standard time before the start,
  // daylight time before the end.
  return {
    start: ruleLocalSeconds(tz.start, year) - tz.stdOffset,
    end: ruleLocalSeconds(tz.end, year) - tz.dstOffset,
  };
}

function yearOf(epochSeconds: number): number {
  return civilFromDays(Math.floor(epochSeconds / DAY)).year;
}

function isDstAt(tz: TimeZone, t: number): boolean {
  const year = yearOf(t + tz.stdOffset);
  const tr = transitionsOf(tz, year);
  if (!tr) return false;
  if (tr.start < tr.end) return t >= tr.start && t < tr.end;
  return !(t >= tr.end && t < tr.start);
}

/** Seconds to add to UTC at instant `t` to get local time. */
export function offsetAt(tz: TimeZone, t: number): number {
  return isDstAt(tz, t) ? tz.dstOffset : tz.stdOffset;
}

/** The first change of offset strictly after `t` (Infinity for a zone without DST). */
export function nextTransition(tz: TimeZone, t: number): number {
  if (!tz.start || tz.dstOffset === tz.stdOffset) return Number.POSITIVE_INFINITY;
  const year = yearOf(t);
  let best = Number.POSITIVE_INFINITY;
  for (let y = year - 1; y <= year + 1; y++) {
    const tr = transitionsOf(tz, y);
    if (!tr) continue;
    for (const at of [tr.start, tr.end]) if (at > t && at < best) best = at;
  }
  return best;
}

export interface LocalTime {
  /** Days since 1970-01-01 of the local date. */
  days: number;
  year: number;
  month: number;
  day: number;
  /** 0 = Sunday. */
  weekday: number;
  /** Seconds since local midnight. */
  seconds: number;
  offset: number;
}

export function toLocal(tz: TimeZone, t: number): LocalTime {
  const offset = offsetAt(tz, t);
  const local = t + offset;
  const days = Math.floor(local / DAY);
  const { year, month, day } = civilFromDays(days);
  return { days, year, month, day, weekday: weekdayOfDays(days), seconds: local - days * DAY, offset };
}

function pad(n: number, width = 2): string {
  return String(n).padStart(width, '0');
}

/** ISO 8601 local time with its offset, to the minute unless seconds are not zero. */
export function formatLocal(tz: TimeZone, t: number): string {
  const l = toLocal(tz, t);
  const h = Math.floor(l.seconds / 3600);
  const m = Math.floor((l.seconds % 3600) / 60);
  const s = l.seconds % 60;
  const sign = l.offset < 0 ? '-' : '+';
  const off = Math.abs(l.offset);
  return (
    `${pad(l.year, 4)}-${pad(l.month)}-${pad(l.day)}T${pad(h)}:${pad(m)}${s ? `:${pad(s)}` : ''}` +
    `${sign}${pad(Math.floor(off / 3600))}:${pad(Math.floor((off % 3600) / 60))}`
  );
}

/** Epoch seconds of a local civil time; in the hour skipped by a spring change, the later reading. */
export function fromLocal(tz: TimeZone, days: number, secondsOfDay: number): number {
  const local = days * DAY + secondsOfDay;
  // Try both offsets; keep the ones that read back the same local time (two in an autumn hour).
  const candidates = [local - tz.stdOffset, local - tz.dstOffset].filter(
    (t) => t + offsetAt(tz, t) === local,
  );
  if (candidates.length > 0) return Math.min(...candidates);
  return local - Math.min(tz.stdOffset, tz.dstOffset); // in the gap: as if the clock had not changed yet
}

/** Length of a local day in seconds (86 400, or 82 800 / 90 000 on the days the clocks change). */
export function dayLength(tz: TimeZone, days: number): number {
  return fromLocal(tz, days + 1, 0) - fromLocal(tz, days, 0);
}

/** Parses `YYYY-MM-DDTHH:MM[:SS](Z|±HH:MM)`, or a local time without offset read in `tz`. */
export function parseInstant(text: string, tz?: TimeZone): number {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?(?:\.\d+)?(Z|[+-]\d{2}:?\d{2})?$/.exec(
    text,
  );
  if (!m) throw new TimeZoneError(`"${text}" is not an ISO 8601 date and time`);
  const [year, month, day, h, min, s] = [1, 2, 3, 4, 5, 6].map((i) => Number(m[i] ?? 0));
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month) || h > 23 || min > 59 || s > 59)
    throw new TimeZoneError(`"${text}" is not a valid date and time`);
  const days = daysFromCivil(year, month, day);
  const secondsOfDay = h * 3600 + min * 60 + s;
  const zone = m[7];
  if (zone === undefined) {
    if (!tz) throw new TimeZoneError(`"${text}" has no offset`);
    return fromLocal(tz, days, secondsOfDay);
  }
  if (zone === 'Z') return days * DAY + secondsOfDay;
  const digits = zone.replace(':', '');
  const off =
    (Number(digits.slice(1, 3)) * 3600 + Number(digits.slice(3, 5)) * 60) * (digits[0] === '-' ? -1 : 1);
  return days * DAY + secondsOfDay - off;
}
