// The rules that need the payer's session history (docs/tariffs.md): a maximum price per cap period
// with its reset time, "no return within N hours", and a flat amount sold as valid until a time.
// Worked examples from published tariffs, priced by the engine the meter and the platform share.
import assert from 'node:assert/strict';
import {
  type PriorPurchase,
  type QuoteOk,
  Tariff,
  type TariffDocument,
  TariffError,
  validateTariff,
} from '../../protocol/tariff';
import { EVERY_DAY, oneRate, UK } from './fixtures';

const at = (iso: string) => Date.parse(iso) / 1000;

function ok(q: ReturnType<Tariff['quoteDuration']>): QuoteOk {
  assert.ok(q.ok, JSON.stringify(q));
  return q;
}

/** The quote's cap shares as the history a later purchase passes. */
const asHistory = (q: QuoteOk): PriorPurchase[] =>
  q.capShares ?? [{ start: q.paidFrom, end: q.paidUntil, amount: q.amount }];

describe('tariff rules that need the session history', () => {
  describe('maxPrice: a cap per period with its reset time', () => {
    // The brief's street: 2.00 an hour, at most 10.00, a new cap period at 02:00.
    const street = oneRate(
      'capped',
      [{ price: 200, per: 60, prorata: true }],
      { from: '00:00', to: '24:00' },
      {
        maxPrice: { amount: 1000, resetAt: '02:00' },
        timeZone: UK,
      },
    );
    const t = new Tariff(street);

    it('caps one purchase at the cap; the time past it is free to the period end', () => {
      const q = ok(t.quoteDuration({ bay: 1, start: at('2026-06-10T09:00:00+01:00'), minutes: 8 * 60 }));
      assert.equal(q.amount, 1000, '8 hours at 2.00 is 16.00, capped at 10.00');
      const cap = q.lines.find((l) => l.kind === 'cap');
      assert.equal(cap?.amount, -600);
      assert.deepEqual(q.capShares, [{ start: q.paidFrom, end: q.paidUntil, amount: 1000 }]);
    });

    it('counts what the same payer paid earlier in the period, and not before the reset', () => {
      const morning = ok(t.quoteDuration({ bay: 1, start: at('2026-06-10T09:00:00+01:00'), minutes: 180 }));
      assert.equal(morning.amount, 600);
      const history = asHistory(morning);
      const afternoon = ok(
        t.quoteDuration({ bay: 2, start: at('2026-06-10T14:00:00+01:00'), minutes: 180, history }),
      );
      assert.equal(afternoon.amount, 400, '6.00 paid: 4.00 is left under the cap');
      const later = ok(
        t.quoteDuration({
          bay: 3,
          start: at('2026-06-10T18:00:00+01:00'),
          minutes: 60,
          history: [...history, ...asHistory(afternoon)],
        }),
      );
      assert.equal(later.amount, 0, 'the cap is reached: free until the period ends at 02:00');
      const nextDay = ok(
        t.quoteDuration({ bay: 1, start: at('2026-06-11T09:00:00+01:00'), minutes: 60, history }),
      );
      assert.equal(nextDay.amount, 200, 'a new period after 02:00');
    });

    it('cuts a purchase at the reset: each period pays its own part under its own cap', () => {
      // 8 hours at 2.00 an hour is 10.00 (cap reached) from 18:00 to 02:00, then 2 hours more.
      const q = ok(t.quoteDuration({ bay: 1, start: at('2026-06-10T18:00:00+01:00'), minutes: 10 * 60 }));
      assert.equal(q.amount, 1400);
      assert.deepEqual(
        q.capShares?.map((s) => s.amount),
        [1000, 400],
      );
      assert.equal(q.capShares?.[1].start, at('2026-06-11T02:00:00+01:00'));
    });

    it('caps a Singapore night-parking car park at 2.00 a night (0.50 per half hour, 22:30-07:00)', () => {
      // HDB's night parking scheme: 0.50 per half hour up to a maximum of 2.00 for the night.
      const hdb: TariffDocument = {
        id: 'hdb-night',
        version: 1,
        currency: 702,
        timeZone: 'SGT-8',
        rates: { night: [{ price: 50, per: 30 }] },
        timetable: [{ days: EVERY_DAY, from: '22:30', to: '07:00', mode: 'charged', rate: 'night' }],
        maxPrice: { amount: 200, resetAt: '07:00' },
      };
      const n = new Tariff(validateTariff(hdb));
      const short = ok(n.quoteDuration({ bay: 1, start: at('2026-06-10T23:00:00+08:00'), minutes: 60 }));
      assert.equal(short.amount, 100, 'an hour: 2 half hours');
      const night = ok(n.quoteDuration({ bay: 1, start: at('2026-06-10T22:30:00+08:00'), minutes: 510 }));
      assert.equal(night.amount, 200, '22:30 to 07:00 is 17 half hours, capped at 2.00');
      const again = ok(
        n.quoteDuration({
          bay: 4,
          start: at('2026-06-11T01:00:00+08:00'),
          minutes: 120,
          history: asHistory(short),
        }),
      );
      assert.equal(again.amount, 100, 'the same payer has 1.00 left of the night');
    });

    it('adds a fee after the cap and brings the total to the money unit', () => {
      const withFee = new Tariff({ ...street, fee: { amount: 20 }, rounding: { moneyUnit: 10 } });
      const q = ok(withFee.quoteDuration({ bay: 1, start: at('2026-06-10T09:00:00+01:00'), minutes: 600 }));
      assert.equal(q.amount, 1020, 'the cap is on the time, the fee on top');
    });
  });

  describe('noReturnMinutes: no return within N hours', () => {
    // Maynard Place car park (Northaw & Cuffley): "no return within 2 hours"; the bands below four
    // hours here are ours, the council's notice gives 2.00 for 4-6 hours and 10.00 over 6 hours.
    const maynard = oneRate(
      'maynard-place',
      [{ upTo: 240, flat: 0 }, { upTo: 360, flat: 200 }, { flat: 1000 }],
      { from: '08:00', to: '18:00' },
      { noReturnMinutes: 120, timeZone: UK },
    );
    const t = new Tariff(maynard);
    const earlier: PriorPurchase[] = [
      { start: at('2026-06-10T08:30:00+01:00'), end: at('2026-06-10T10:30:00+01:00'), amount: 0 },
    ];

    it('refuses a payer whose last stay in the zone ended less than 2 hours ago, saying when they may return', () => {
      const q = t.quoteDuration({
        bay: 1,
        start: at('2026-06-10T11:00:00+01:00'),
        minutes: 60,
        history: earlier,
      });
      assert.equal(q.ok, false);
      assert.equal(!q.ok && q.reason, 'no-return');
      assert.equal(!q.ok && q.at, at('2026-06-10T12:30:00+01:00'));
      assert.match(!q.ok ? q.message : '', /no return within 2 h: .*12:30/);
      const most = t.maxMinutes(1, at('2026-06-10T11:00:00+01:00'), 0, undefined, earlier);
      assert.equal(typeof most === 'object' && most.reason, 'no-return', 'the buttons sell nothing either');
    });

    it('sells again once the 2 hours have passed, and to any other payer at once', () => {
      assert.ok(
        t.quoteDuration({ bay: 1, start: at('2026-06-10T12:30:00+01:00'), minutes: 60, history: earlier }).ok,
      );
      assert.ok(t.quoteDuration({ bay: 1, start: at('2026-06-10T11:00:00+01:00'), minutes: 60 }).ok);
    });

    it('does not refuse a renewal of the running session', () => {
      const q = t.quoteDuration({
        bay: 1,
        start: at('2026-06-10T10:30:00+01:00'),
        minutes: 60,
        paidMinutes: 120,
        history: earlier,
      });
      assert.ok(q.ok);
    });

    it('refuses a second new session on top of a running one (feeding the meter)', () => {
      const q = t.quoteAmount({
        bay: 2,
        start: at('2026-06-10T10:00:00+01:00'),
        amount: 500,
        history: earlier,
      });
      assert.equal(!q.ok && q.reason, 'no-return');
    });
  });

  describe('a flat amount valid until a time', () => {
    // John Street multi-storey, Stoke-on-Trent: daytime up to one hour 1.40, two 2.80, three 4.20,
    // four 4.40; evening 6pm to 7am 3.50, after 7pm 3.00.
    const stoke: TariffDocument = {
      id: 'john-street',
      version: 1,
      currency: 826,
      timeZone: UK,
      rates: {
        day: [
          { upTo: 60, flat: 140 },
          { upTo: 120, flat: 140 },
          { upTo: 180, flat: 140 },
          { upTo: 240, flat: 20 },
        ],
        early: [{ flat: 350, validUntil: '07:00' }],
        late: [{ flat: 300, validUntil: '07:00' }],
      },
      timetable: [
        { days: EVERY_DAY, from: '07:00', to: '18:00', mode: 'charged', rate: 'day' },
        { days: EVERY_DAY, from: '18:00', to: '19:00', mode: 'charged', rate: 'early' },
        { days: EVERY_DAY, from: '19:00', to: '07:00', mode: 'charged', rate: 'late' },
      ],
    };
    const t = new Tariff(validateTariff(stoke));

    it('sells the evening at 3.00 valid until 07:00 next morning, whatever duration is asked', () => {
      for (const minutes of [30, 240]) {
        const q = ok(t.quoteDuration({ bay: 1, start: at('2026-06-10T20:15:00+01:00'), minutes }));
        assert.equal(q.amount, 300);
        assert.equal(q.paidUntil, at('2026-06-11T07:00:00+01:00'));
        assert.equal(q.validUntil, '07:00');
        assert.equal(q.minutes, 645);
      }
      const early = ok(t.quoteDuration({ bay: 1, start: at('2026-06-10T18:20:00+01:00'), minutes: 60 }));
      assert.equal(early.amount, 350, '6pm to 7am: 3.50');
    });

    it('prices daytime by its bands and stops a daytime purchase where the evening ticket begins', () => {
      assert.equal(
        ok(t.quoteDuration({ bay: 1, start: at('2026-06-10T10:00:00+01:00'), minutes: 150 })).amount,
        420,
      );
      const q = t.quoteDuration({ bay: 1, start: at('2026-06-10T17:00:00+01:00'), minutes: 120 });
      assert.equal(!q.ok && q.reason, 'max-stay');
      assert.equal(!q.ok && q.maxMinutes, 60);
      assert.equal(t.maxMinutes(1, at('2026-06-10T17:00:00+01:00')), 60);
    });

    it('sells the ticket for an amount, and the buttons go no further than its end', () => {
      const q = t.quoteAmount({ bay: 1, start: at('2026-06-10T21:00:00+01:00'), amount: 500 });
      assert.ok(q.ok);
      assert.equal(q.amount, 300);
      assert.equal(q.unused, 200);
      assert.equal(t.maxMinutes(1, at('2026-06-10T21:00:00+01:00')), 600);
      const short = t.quoteAmount({ bay: 1, start: at('2026-06-10T21:00:00+01:00'), amount: 200 });
      assert.equal(!short.ok && short.reason, 'below-minimum');
    });

    it('refuses a ticket that would run into a no-parking period', () => {
      const market = new Tariff({
        ...stoke,
        timetable: [{ days: ['wed'], from: '05:00', to: '07:00', mode: 'no-parking' }, ...stoke.timetable],
      });
      const q = market.quoteDuration({ bay: 1, start: at('2026-06-09T20:00:00+01:00'), minutes: 60 });
      assert.equal(!q.ok && q.reason, 'restricted');
      assert.equal(!q.ok && q.at, at('2026-06-10T05:00:00+01:00'));
    });
  });

  describe('validation names the field', () => {
    const cases: [string, (d: TariffDocument & Record<string, unknown>) => void][] = [
      ['maxPrice.amount', (d) => (d.maxPrice = { amount: 0, resetAt: '02:00' })],
      ['maxPrice.resetAt', (d) => (d.maxPrice = { amount: 1000, resetAt: '24:00' })],
      ['maxPrice.resetAt', (d) => (d.maxPrice = { amount: 1000 } as never)],
      ['maxPrice.per', (d) => (d.maxPrice = { amount: 1000, resetAt: '02:00', per: 'day' } as never)],
      ['noReturnMinutes', (d) => (d.noReturnMinutes = 0)],
      ['noReturnMinutes', (d) => (d.noReturnMinutes = 1.5)],
      ['rates.rate[0].validUntil', (d) => (d.rates.rate = [{ flat: 300, validUntil: '7am' }])],
      ['rates.rate[0].flat', (d) => (d.rates.rate = [{ validUntil: '07:00' } as never])],
      ['rates.rate[0].upTo', (d) => (d.rates.rate = [{ upTo: 60, flat: 300, validUntil: '07:00' } as never])],
      [
        'rates.rate[0].validUntil',
        (d) =>
          (d.rates.rate = [
            { flat: 300, validUntil: '07:00' },
            { price: 1, per: 1 },
          ]),
      ],
    ];
    for (const [field, mutate] of cases) {
      it(`names ${field}`, () => {
        const doc = oneRate('x', [{ price: 100, per: 60 }], {
          from: '08:00',
          to: '18:00',
        }) as TariffDocument & Record<string, unknown>;
        mutate(doc);
        assert.throws(
          () => validateTariff(doc),
          (e: unknown) => e instanceof TariffError && e.field === field,
        );
      });
    }

    it('refuses a bad history as a bad request, pricing nothing', () => {
      const t = new Tariff(oneRate('x', [{ price: 100, per: 60 }], { from: '00:00', to: '24:00' }));
      for (const history of [
        [{ start: 10, end: 5, amount: 1 }],
        [{ start: 1, end: 5, amount: -1 }],
        [{ start: 1.5, end: 5, amount: 1 }],
        Array.from({ length: 257 }, () => ({ start: 1, end: 2, amount: 0 })),
      ]) {
        const q = t.quoteDuration({ bay: 1, start: 1_000_000, minutes: 60, history });
        assert.equal(!q.ok && q.reason, 'bad-request', JSON.stringify(history[0]));
      }
    });
  });
});
