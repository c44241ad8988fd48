// Properties of the tariff engine over random tariffs (fast-check): bands of every kind, timetables
// of up to ten entries in several time zones with and without DST, random starts over five years.
// The number of cases each property ran is printed (PARKLINK_PROPERTY_RUNS raises it).
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  type Day,
  type Payer,
  type PaymentMethod,
  type QuoteOk,
  Tariff,
  type TariffDocument,
  type Tier,
  type TimetableEntry,
} from '../../protocol/tariff';
import { dayLength, parseTimeZone } from '../../protocol/tariff/tz';
import { PropertyRuns } from './propertyCheck';

const ZONES = [
  'UTC0',
  'GMT0BST,M3.5.0/1,M10.5.0',
  'CET-1CEST,M3.5.0,M10.5.0/3',
  'EST5EDT,M3.2.0,M11.1.0',
  'AEST-10AEDT,M10.1.0,M4.1.0/3',
  '<+1030>-10:30<+11>-11,M10.1.0,M4.1.0',
  'NZST-12NZDT,M9.5.0,M4.1.0/3',
  '<-03>3',
];
const DAYS: Day[] = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun', 'hol'];
const CLASSES = ['resident', 'disabled-badge', 'permit'];
const START_MIN = Date.UTC(2024, 0, 1) / 1000;
const START_MAX = Date.UTC(2029, 0, 1) / 1000;

const clock = (minutes: number) =>
  `${String(Math.floor(minutes / 60)).padStart(2, '0')}:${String(minutes % 60).padStart(2, '0')}`;

const tierArb: fc.Arbitrary<Tier> = fc.oneof(
  fc.record({ flat: fc.integer({ min: 0, max: 800 }) }),
  fc.record({ price: fc.integer({ min: 0, max: 300 }), per: fc.integer({ min: 1, max: 60 }) }),
  fc.record({
    price: fc.integer({ min: 0, max: 600 }),
    per: fc.integer({ min: 1, max: 120 }),
    prorata: fc.constant(true),
  }),
);

const ratesArb = fc
  .array(
    fc.tuple(
      fc.array(tierArb, { minLength: 1, maxLength: 3 }),
      fc.array(fc.integer({ min: 10, max: 200 }), { minLength: 3, maxLength: 3 }),
      fc.boolean(),
    ),
    { minLength: 1, maxLength: 3 },
  )
  .map((list) => {
    const rates: Record<string, Tier[]> = {};
    list.forEach(([tiers, widths, openEnd], i) => {
      let upTo = 0;
      rates[`r${i}`] = tiers.map((t, j) => {
        upTo += widths[j];
        return j < tiers.length - 1 || !openEnd ? { ...t, upTo } : { ...t };
      });
    });
    return rates;
  });

function entryArb(rateCount: number): fc.Arbitrary<TimetableEntry> {
  return fc
    .record({
      days: fc.subarray(DAYS, { minLength: 1 }),
      from: fc.integer({ min: 0, max: 95 }),
      to: fc.integer({ min: 1, max: 96 }),
      mode: fc.constantFrom(
        'charged',
        'charged',
        'charged',
        'charged',
        'free',
        'free',
        'no-parking',
        'no-sale',
      ),
      rate: fc.integer({ min: 0, max: rateCount - 1 }),
      maxStay: fc.option(fc.integer({ min: 15, max: 600 }), { nil: undefined }),
      bays: fc.option(fc.subarray([1, 2, 3], { minLength: 1 }), { nil: undefined }),
      eligible: fc.option(
        fc.record(
          {
            methods: fc.subarray(['card', 'phone', 'coin'] as PaymentMethod[], { minLength: 1 }),
            classes: fc.subarray(CLASSES, { minLength: 1 }),
          },
          { requiredKeys: [] },
        ),
        { nil: undefined },
      ),
    })
    .filter((e) => e.from !== e.to % 96)
    .map((e) => {
      const entry: TimetableEntry = {
        days: e.days,
        from: clock(e.from * 15),
        to: clock(e.to * 15),
        mode: e.mode as TimetableEntry['mode'],
      };
      if (e.mode === 'charged') entry.rate = `r${e.rate}`;
      if (e.maxStay !== undefined) entry.maxStayMinutes = e.maxStay;
      if (e.bays !== undefined) entry.bays = e.bays;
      if (e.eligible?.methods || e.eligible?.classes) entry.eligible = e.eligible;
      return entry;
    });
}

const tariffArb: fc.Arbitrary<TariffDocument> = ratesArb.chain((rates) =>
  fc
    .record({
      // Up to ten entries; most tariffs end with a catch-all charged entry (first match wins), so
      // that random starts find sales as often as free and restricted time.
      timetable: fc
        .tuple(
          fc.array(entryArb(Object.keys(rates).length), { minLength: 1, maxLength: 9 }),
          fc.boolean(),
          fc.boolean(),
        )
        .map(([entries, catchAll, more]) =>
          catchAll || more
            ? [...entries, { days: DAYS, from: '00:00', to: '24:00', mode: 'charged' as const, rate: 'r0' }]
            : entries,
        ),
      timeZone: fc.constantFrom(...ZONES),
      maxStay: fc.option(fc.integer({ min: 30, max: 1440 }), { nil: undefined }),
      minMinutes: fc.option(fc.integer({ min: 1, max: 30 }), { nil: undefined }),
      grace: fc.integer({ min: 0, max: 15 }),
      nonCumulative: fc.boolean(),
      step: fc.constantFrom(1, 5, 10, 15),
      moneyUnit: fc.constantFrom(1, 1, 5, 10),
      money: fc.constantFrom('up' as const, 'down' as const, 'nearest' as const),
      units: fc.constantFrom('purchase' as const, 'period' as const),
      fee: fc.option(fc.integer({ min: 0, max: 150 }), { nil: undefined }),
      tax: fc.option(
        fc.record({
          percent: fc.integer({ min: 0, max: 30_000 }).map((m) => m / 1000),
          included: fc.boolean(),
        }),
        { nil: undefined },
      ),
      bandsAfterFree: fc.constantFrom('restart' as const, 'continue' as const),
      holidays: fc.array(
        fc.date({ min: new Date(START_MIN * 1000), max: new Date(START_MAX * 1000), noInvalidDate: true }),
        { maxLength: 5 },
      ),
    })
    .map((r) => {
      const doc: TariffDocument = {
        id: 'prop',
        version: 1,
        currency: 826,
        timeZone: r.timeZone,
        rates,
        timetable: r.timetable,
        holidays: r.holidays.map((d) => d.toISOString().slice(0, 10)),
        graceMinutes: r.grace,
        nonCumulative: r.nonCumulative,
        bandsAfterFree: r.bandsAfterFree,
        rounding: { stepMinutes: r.step, moneyUnit: r.moneyUnit, money: r.money, units: r.units },
      };
      if (r.maxStay !== undefined) doc.maxStayMinutes = r.maxStay;
      if (r.fee !== undefined) doc.fee = { amount: r.fee };
      if (r.tax !== undefined) doc.tax = r.tax;
      if (r.minMinutes !== undefined) doc.minimum = { minutes: Math.min(r.minMinutes, r.maxStay ?? 1440) };
      return doc;
    }),
);

const startArb = fc.integer({ min: START_MIN, max: START_MAX });
const bayArb = fc.constantFrom(1, 2, 3);
const runs = new PropertyRuns(300);
const check: PropertyRuns['check'] = (name, arb, predicate, examples) =>
  runs.check(name, arb, predicate, examples);

describe('tariff engine properties (fast-check)', () => {
  after(() => {
    runs.print();
  });

  it('every generated tariff passes its own validation', () => {
    check('valid tariffs', tariffArb, (doc) => {
      Tariff.from(JSON.parse(JSON.stringify(doc)));
      return true;
    });
  });

  it('the price is never negative, and the breakdown adds up to it', () => {
    check(
      'price never negative',
      fc.tuple(tariffArb, bayArb, startArb, fc.integer({ min: 1, max: 300 })),
      ([doc, bay, start, minutes]) => {
        const q = new Tariff(doc).quoteDuration({ bay, start, minutes });
        if (!q.ok) return false;
        assert.ok(q.amount >= 0);
        assert.equal(
          q.lines.reduce((sum, l) => sum + l.amount, 0),
          q.amount,
        );
        const charged = q.lines
          .filter((l) => l.kind === 'charged')
          .reduce((sum, l) => sum + (l.seconds ?? 0), 0);
        assert.equal(charged, minutes * 60, 'the charged lines cover exactly the time bought');
      },
    );
  });

  it('the price does not fall as the duration rises', () => {
    check(
      'non-decreasing in duration',
      fc.tuple(
        tariffArb,
        bayArb,
        startArb,
        fc.integer({ min: 1, max: 200 }),
        fc.integer({ min: 1, max: 200 }),
      ),
      ([doc, bay, start, a, extra]) => {
        const t = new Tariff(doc);
        const shorter = t.quoteDuration({ bay, start, minutes: a });
        const longer = t.quoteDuration({ bay, start, minutes: a + extra });
        if (longer.ok && shorter.ok)
          assert.ok(shorter.amount <= longer.amount, `${shorter.amount} > ${longer.amount}`);
        // What is sold is a prefix: if the longer stay is sold, so is the shorter (minimum aside).
        if (longer.ok && !shorter.ok) assert.equal(shorter.reason, 'below-minimum');
        return shorter.ok;
      },
    );
  });

  it('the maximum stay is never exceeded, in either direction', () => {
    check(
      'max stay never exceeded',
      fc.tuple(
        tariffArb,
        bayArb,
        startArb,
        fc.integer({ min: 1, max: 1500 }),
        fc.integer({ min: 0, max: 5000 }),
      ),
      ([doc, bay, start, minutes, amount]) => {
        const t = new Tariff(doc);
        const limit = doc.maxStayMinutes ?? Number.POSITIVE_INFINITY;
        const q = t.quoteDuration({ bay, start, minutes });
        if (q.ok) assert.ok(q.minutes <= limit);
        else if (q.reason === 'max-stay') assert.ok((q.maxMinutes ?? 0) < minutes);
        const a = t.quoteAmount({ bay, start, amount });
        if (a.ok) assert.ok(a.minutes <= limit);
        const cap = t.maxMinutes(bay, start);
        if (typeof cap === 'number') assert.ok(cap <= limit);
        return q.ok || a.ok;
      },
    );
  });

  it('the time an amount buys never costs more than the amount, and one step more would', () => {
    check(
      'amount buys within the amount',
      fc.tuple(tariffArb, bayArb, startArb, fc.integer({ min: 0, max: 3000 })),
      ([doc, bay, start, amount]) => {
        const t = new Tariff(doc);
        const q = t.quoteAmount({ bay, start, amount });
        if (!q.ok) return false;
        assert.ok(q.amount <= amount);
        assert.equal(q.unused, amount - q.amount);
        const again = t.quoteDuration({ bay, start, minutes: q.minutes }) as QuoteOk;
        assert.equal(again.amount, q.amount, 'the same price both ways');
        const next = t.quoteDuration({ bay, start, minutes: q.minutes + t.stepMinutes });
        if (next.ok && q.minutes % t.stepMinutes === 0) assert.ok(next.amount > amount);
      },
    );
  });

  it('a renewal never costs more than buying the whole stay at once', () => {
    // Unrounded and untaxed: each quote rounds its own money and tax to the minor unit.
    const unrounded = tariffArb.map((d) => ({
      ...d,
      rounding: { stepMinutes: 1 },
      minimum: undefined,
      tax: undefined,
    }));
    check(
      'renewal adds up',
      fc.tuple(
        unrounded,
        bayArb,
        startArb,
        fc.integer({ min: 1, max: 120 }),
        fc.integer({ min: 1, max: 120 }),
      ),
      ([doc, bay, start, a, b]) => {
        const t = new Tariff(doc);
        const first = t.quoteDuration({ bay, start, minutes: a });
        const whole = t.quoteDuration({ bay, start, minutes: a + b });
        // A session that crossed a free period restarts the bands: its renewal is priced from the
        // session's paid minutes, so compare only sessions in one run.
        if (!first.ok || !whole.ok || first.lines.some((l) => l.kind === 'free')) return false;
        const renewal = t.quoteDuration({ bay, start: first.paidUntil, minutes: b, paidMinutes: a });
        if (!renewal.ok) return false;
        assert.equal(first.amount + renewal.amount, whole.amount);
        assert.equal(renewal.paidUntil, whole.paidUntil);
        return true;
      },
    );
  });

  it('minutes bought across a free period cost what the same minutes cost in one piece', () => {
    // Charged 08:00-18:30 and free otherwise, against the same rate charged all day; units counted
    // over the purchase. Bands continued across the gap: any table; bands restarted after it: one
    // band, as the same minutes in one piece would also stay in it.
    const oneBand = fc
      .oneof(
        fc.record({ price: fc.integer({ min: 1, max: 300 }), per: fc.integer({ min: 2, max: 60 }) }),
        fc.record({
          price: fc.integer({ min: 1, max: 600 }),
          per: fc.integer({ min: 1, max: 120 }),
          prorata: fc.constant(true),
        }),
      )
      .map((tier): Tier[] => [tier]);
    const across = fc
      .oneof(
        fc.record({ bands: fc.constant('continue' as const), table: ratesArb.map((r) => r.r0) }),
        fc.record({ bands: fc.constant('restart' as const), table: oneBand }),
      )
      .chain(({ bands, table }) =>
        fc
          .record({
            timeZone: fc.constantFrom(...ZONES),
            moneyUnit: fc.constantFrom(1, 5, 10),
            start: startArb,
            minutes: fc.integer({ min: 1, max: 900 }),
          })
          .map((r) => {
            const doc = (timetable: TimetableEntry[]): TariffDocument => ({
              id: 'gap',
              version: 1,
              currency: 826,
              timeZone: r.timeZone,
              rates: { r0: table },
              timetable,
              bandsAfterFree: bands,
              rounding: { moneyUnit: r.moneyUnit, units: 'purchase' },
            });
            return {
              withGap: doc([{ days: DAYS, from: '08:00', to: '18:30', mode: 'charged', rate: 'r0' }]),
              allDay: doc([{ days: DAYS, from: '00:00', to: '24:00', mode: 'charged', rate: 'r0' }]),
              start: r.start,
              minutes: r.minutes,
            };
          }),
      );
    let crossed = 0;
    check('across a free period', across, ({ withGap, allDay, start, minutes }) => {
      const gap = new Tariff(withGap).quoteDuration({ bay: 1, start, minutes });
      if (!gap.ok) return false;
      const piece = new Tariff(allDay).quoteDuration({ bay: 1, start: gap.paidFrom, minutes });
      if (!piece.ok) return false;
      if (gap.lines.some((l) => l.kind === 'free')) crossed++;
      assert.equal(gap.amount, piece.amount);
      return true;
    });
    assert.ok(crossed > 0, 'some purchases crossed the free period');
  });

  it('a tax always adds up: net and tax make the price, at the tariff rate to the minor unit', () => {
    const taxed = tariffArb.filter((d) => d.tax !== undefined);
    check(
      'tax adds up',
      fc.tuple(taxed, bayArb, startArb, fc.integer({ min: 1, max: 300 })),
      ([doc, bay, start, minutes]) => {
        const q = new Tariff(doc).quoteDuration({ bay, start, minutes });
        if (!q.ok) return false;
        const tax = q.tax;
        assert.ok(tax, 'a taxed tariff puts the tax on every quote');
        assert.equal(tax.net + tax.amount, q.amount);
        assert.ok(tax.amount >= 0 && tax.net >= 0);
        const milliPercent = Math.round((doc.tax?.percent ?? 0) * 1000);
        if (doc.tax?.included) {
          // The tax part of the price paid, to the nearest minor unit.
          assert.ok(
            Math.abs(tax.amount * (100_000 + milliPercent) - q.amount * milliPercent) <=
              100_000 + milliPercent,
          );
        } else {
          const before = q.lines
            .filter((l) => l.kind === 'charged' || l.kind === 'fee')
            .reduce((sum, l) => sum + l.amount, 0);
          const line = q.lines.find((l) => l.kind === 'tax');
          assert.equal(line?.amount, tax.amount, 'the tax line is the tax');
          if (tax.net === 0 && tax.amount === q.amount && q.lines.some((l) => l.kind === 'rounding')) {
            // Rounded below its own tax: the tax is cut to what is paid.
            assert.ok(tax.amount * 100_000 <= before * milliPercent + 50_000, 'never more than the tax');
          } else {
            assert.ok(Math.abs(tax.amount * 100_000 - before * milliPercent) <= 50_000, 'rounded half up');
          }
        }
        return true;
      },
      // Found by a run of 20,000 cases: 3 + 1 tax brought to the nearest 10 is 0.
      [
        [
          {
            id: 'prop',
            version: 1,
            currency: 826,
            timeZone: 'UTC0',
            rates: { r0: [{ flat: 3 }] },
            timetable: [{ days: DAYS, from: '00:00', to: '24:00', mode: 'charged', rate: 'r0' }],
            rounding: { stepMinutes: 1, moneyUnit: 10, money: 'nearest', units: 'purchase' },
            tax: { percent: 16.667, included: false },
          },
          1,
          1704067200,
          1,
        ],
      ],
    );
  });

  it('a fee is added once to a new session, never to its renewal', () => {
    const withFee = tariffArb.filter((d) => (d.fee?.amount ?? 0) > 0);
    check(
      'fee once',
      fc.tuple(withFee, bayArb, startArb, fc.integer({ min: 1, max: 120 })),
      ([doc, bay, start, minutes]) => {
        const t = new Tariff(doc);
        const first = t.quoteDuration({ bay, start, minutes });
        if (!first.ok) return false;
        assert.equal(first.lines.filter((l) => l.kind === 'fee').length, 1);
        const renewal = t.quoteDuration({ bay, start: first.paidUntil, minutes, paidMinutes: minutes });
        if (renewal.ok) assert.equal(renewal.lines.filter((l) => l.kind === 'fee').length, 0);
        return true;
      },
    );
  });

  it('eligibility never changes a price for a payer not entitled to the entry', () => {
    // Priced for a payer, a tariff is the same as one without the entries that payer may not use
    // and without the eligibility of the entries it may use, priced for anyone.
    const payerArb: fc.Arbitrary<Payer> = fc.record(
      {
        method: fc.constantFrom('card' as const, 'phone' as const, 'coin' as const),
        classes: fc.subarray(CLASSES),
      },
      { requiredKeys: [] },
    );
    const entitled = (e: TimetableEntry, p: Payer) =>
      (!e.eligible?.methods || (p.method !== undefined && e.eligible.methods.includes(p.method))) &&
      (!e.eligible?.classes || e.eligible.classes.some((c) => p.classes?.includes(c)));
    check(
      'eligibility',
      fc.tuple(tariffArb, payerArb, bayArb, startArb, fc.integer({ min: 1, max: 300 })),
      ([doc, payer, bay, start, minutes]) => {
        const own: TariffDocument = {
          ...doc,
          timetable: doc.timetable.filter((e) => entitled(e, payer)).map(({ eligible: _, ...e }) => e),
        };
        const mine = new Tariff(doc).quoteDuration({ bay, start, minutes, payer });
        const plain = new Tariff(own).quoteDuration({ bay, start, minutes });
        assert.equal(mine.ok, plain.ok);
        if (!mine.ok || !plain.ok) return false;
        assert.equal(mine.amount, plain.amount);
        assert.equal(mine.paidUntil, plain.paidUntil);
        return true;
      },
    );
  });

  it('counting units over the purchase never costs more than counting them in each period', () => {
    check(
      'units over the purchase',
      fc.tuple(tariffArb, bayArb, startArb, fc.integer({ min: 1, max: 600 })),
      ([doc, bay, start, minutes]) => {
        const once = new Tariff({ ...doc, rounding: { ...doc.rounding, units: 'purchase' } });
        const each = new Tariff({ ...doc, rounding: { ...doc.rounding, units: 'period' } });
        const a = once.quoteDuration({ bay, start, minutes });
        const b = each.quoteDuration({ bay, start, minutes });
        assert.equal(a.ok, b.ok, 'the same purchase is sold or refused either way');
        if (!a.ok || !b.ok) return false;
        assert.ok(a.amount <= b.amount, `${a.amount} over the purchase, ${b.amount} per period`);
        return true;
      },
      // Found by a CI run: a rate that takes over for 15 minutes, then the first rate again.
      [
        [
          {
            id: 'prop',
            version: 1,
            currency: 826,
            timeZone: '<+1030>-10:30<+11>-11,M10.1.0,M4.1.0',
            rates: { r0: [{ price: 180, per: 17 }], r1: [{ price: 302, per: 64, prorata: true }] },
            timetable: [
              { days: ['mon', 'hol'], from: '11:15', to: '11:30', mode: 'charged', rate: 'r1' },
              { days: ['hol'], from: '00:00', to: '00:15', mode: 'charged', rate: 'r0' },
              { days: DAYS, from: '00:00', to: '24:00', mode: 'charged', rate: 'r0' },
            ],
            holidays: [],
            graceMinutes: 0,
            nonCumulative: false,
            bandsAfterFree: 'restart',
            rounding: { stepMinutes: 1, moneyUnit: 1, money: 'up', units: 'purchase' },
          },
          1,
          1704067200,
          254,
        ],
      ],
    );
  });

  it('local days are 24 hours, except one of 23 and one of 25 a year where the clocks change', () => {
    // (Lord Howe Island's half-hour change makes its days 23.5 and 24.5 hours.)
    check(
      'DST days 23/25 h',
      fc.tuple(fc.constantFrom(...ZONES), fc.integer({ min: 2000, max: 2037 })),
      ([spec, year]) => {
        const tz = parseTimeZone(spec);
        const first = Date.UTC(year, 0, 1) / 86_400_000;
        const last = Date.UTC(year + 1, 0, 1) / 86_400_000;
        const hours = new Map<number, number>();
        let total = 0;
        for (let d = first; d < last; d++) {
          const h = dayLength(tz, d) / 3600;
          hours.set(h, (hours.get(h) ?? 0) + 1);
          total += h;
        }
        const dst = tz.dstName !== undefined;
        const change = (tz.dstOffset - tz.stdOffset) / 3600;
        assert.deepEqual(
          [...hours.keys()].sort((x, y) => x - y),
          dst ? [24 - change, 24, 24 + change] : [24],
        );
        if (dst) {
          assert.equal(hours.get(24 - change), 1);
          assert.equal(hours.get(24 + change), 1);
        }
        // The year's hours add up: local midnights are a whole number of UTC hours apart in total.
        assert.equal(total, (last - first) * 24);
        return true;
      },
    );
  });
});
