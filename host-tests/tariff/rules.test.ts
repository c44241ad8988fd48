// Worked examples of the tariff rules seasons, fees, tax, eligibility and selling ahead add
// (docs/tariffs.md): each priced by the engine the meter and the platform share.
import assert from 'node:assert/strict';
import { type Payer, Tariff, type TariffDocument } from '../../protocol/tariff';
import { EVERY_DAY, oneRate } from './fixtures';

const at = (iso: string) => Date.parse(iso) / 1000;

describe('tariff rules: seasons, fees, tax, eligibility, selling ahead', () => {
  it('charges a seaside front only in its season, and a one-off works period on fixed dates', () => {
    const seaside: TariffDocument = {
      id: 'seafront',
      version: 1,
      currency: 826,
      timeZone: 'GMT0BST,M3.5.0/1,M10.5.0',
      rates: { summer: [{ price: 150, per: 60, prorata: true }] },
      timetable: [
        // Works on the promenade: no parking for two weeks of the season.
        {
          days: [...EVERY_DAY],
          from: '00:00',
          to: '24:00',
          mode: 'no-parking',
          dates: { from: '2026-07-06', to: '2026-07-19' },
        },
        {
          days: [...EVERY_DAY],
          from: '09:00',
          to: '18:00',
          mode: 'charged',
          rate: 'summer',
          dates: { from: '04-01', to: '09-30' },
        },
      ],
    };
    const t = new Tariff(seaside);
    const june = t.quoteDuration({ bay: 1, start: at('2026-06-10T10:00:00+01:00'), minutes: 120 });
    assert.ok(june.ok);
    assert.equal(june.amount, 300, '2 hours at 1.50 in the season');
    const october = t.quoteDuration({ bay: 1, start: at('2026-10-10T10:00:00+01:00'), minutes: 60 });
    assert.equal(october.ok, false);
    assert.equal(!october.ok && october.reason, 'free', 'out of season the front is free');
    const works = t.quoteDuration({ bay: 1, start: at('2026-07-10T10:00:00+01:00'), minutes: 60 });
    assert.equal(!works.ok && works.reason, 'restricted', 'the works dates win over the season');
    assert.equal(t.stateAt(1, at('2026-07-20T10:00:00+01:00')).state, 'charged', 'the day after the works');
  });

  it('runs a winter season over the new year', () => {
    const ski = oneRate(
      'ski',
      [{ upTo: 1440, flat: 1200 }],
      { from: '00:00', to: '24:00', dates: { from: '12-15', to: '04-15' } },
      { currency: 978, timeZone: 'CET-1CEST,M3.5.0,M10.5.0/3' },
    );
    const t = new Tariff(ski);
    for (const day of ['2026-12-20', '2027-01-05', '2027-04-15'])
      assert.equal(t.stateAt(1, at(`${day}T12:00:00+01:00`)).state, 'charged', day);
    for (const day of ['2026-12-14', '2027-04-16', '2027-08-01'])
      assert.equal(t.stateAt(1, at(`${day}T12:00:00+01:00`)).state, 'free', day);
  });

  it('adds a booking fee to a new session once, not to its renewal', () => {
    const doc = oneRate(
      'fee',
      [{ price: 200, per: 60 }],
      { from: '08:00', to: '20:00' },
      {
        fee: { amount: 20, name: 'service fee' },
      },
    );
    const t = new Tariff(doc);
    const first = t.quoteDuration({ bay: 1, start: at('2026-06-10T10:00:00Z'), minutes: 60 });
    assert.ok(first.ok);
    assert.equal(first.amount, 220, '2.00 for the hour and a 20p service fee');
    assert.deepEqual(
      first.lines.map((l) => [l.kind, l.amount]),
      [
        ['charged', 200],
        ['fee', 20],
      ],
    );
    const renewal = t.quoteDuration({ bay: 1, start: first.paidUntil, minutes: 60, paidMinutes: 60 });
    assert.ok(renewal.ok);
    assert.equal(renewal.amount, 200, 'the renewal pays the hour only');
  });

  it('shows the VAT included in a price, and adds a sales tax on top with the coin rounding after it', () => {
    const base = oneRate('tax', [{ price: 250, per: 60 }], { from: '00:00', to: '24:00' });
    const start = at('2026-06-10T10:00:00Z');
    const vat = new Tariff({ ...base, tax: { percent: 20, included: true, name: 'VAT' } }).quoteDuration({
      bay: 1,
      start,
      minutes: 120,
    });
    assert.ok(vat.ok);
    assert.equal(vat.amount, 500, 'the price the driver pays does not change');
    assert.deepEqual(vat.tax, { name: 'VAT', percent: 20, included: true, net: 417, amount: 83 });

    const sales = new Tariff({
      ...base,
      currency: 840,
      tax: { percent: 8.875, included: false, name: 'sales tax' },
      rounding: { moneyUnit: 5 },
    });
    const q = sales.quoteDuration({ bay: 1, start, minutes: 120 });
    assert.ok(q.ok);
    // 5.00 + 8.875% = 0.44375, rounded half up to 0.44; then up to the nickel: 5.45.
    assert.deepEqual(
      q.lines.map((l) => [l.kind, l.amount]),
      [
        ['charged', 500],
        ['tax', 44],
        ['rounding', 1],
      ],
    );
    assert.equal(q.amount, 545);
    assert.equal(q.tax?.amount, 44);
    assert.equal(q.tax?.net, 501, 'what is not tax: the time, and the rounding to the coin');
  });

  it('gives residents their rate and phone payers a lower one; everyone else pays the visitor rate', () => {
    const doc: TariffDocument = {
      id: 'zone-r',
      version: 1,
      currency: 826,
      timeZone: 'UTC0',
      rates: {
        resident: [{ price: 50, per: 60 }],
        phone: [{ price: 180, per: 60 }],
        visitor: [{ price: 200, per: 60 }],
      },
      timetable: [
        {
          days: [...EVERY_DAY],
          from: '08:00',
          to: '20:00',
          mode: 'charged',
          rate: 'resident',
          eligible: { classes: ['resident'] },
        },
        {
          days: [...EVERY_DAY],
          from: '08:00',
          to: '20:00',
          mode: 'charged',
          rate: 'phone',
          eligible: { methods: ['phone'] },
        },
        { days: [...EVERY_DAY], from: '08:00', to: '20:00', mode: 'charged', rate: 'visitor' },
      ],
    };
    const t = new Tariff(doc);
    const start = at('2026-06-10T10:00:00Z');
    const price = (payer?: Payer) => {
      const q = t.quoteDuration({ bay: 1, start, minutes: 60, ...(payer ? { payer } : {}) });
      assert.ok(q.ok);
      return q.amount;
    };
    assert.equal(price(), 200, 'no payer named: the visitor rate');
    assert.equal(price({ method: 'card' }), 200, 'a card at the meter: the visitor rate');
    assert.equal(price({ method: 'phone' }), 180, 'by phone');
    assert.equal(price({ method: 'card', classes: ['resident'] }), 50, 'a resident, however they pay');
    assert.equal(price({ method: 'card', classes: ['permit'] }), 200, 'another class is not a resident');
  });

  it('sells Monday morning on a free Sunday only when the tariff sells ahead', () => {
    const doc = oneRate('weekdays', [{ price: 120, per: 60 }], {
      days: ['mon', 'tue', 'wed', 'thu', 'fri'],
      from: '08:00',
      to: '18:00',
    });
    const sunday = at('2026-06-07T20:00:00Z');
    const ahead = new Tariff(doc).quoteDuration({ bay: 1, start: sunday, minutes: 60 });
    assert.ok(ahead.ok);
    assert.equal(ahead.paidFrom, at('2026-06-08T08:00:00Z'), 'the hour runs from 08:00 on Monday');
    const notAhead = new Tariff({ ...doc, sellsAhead: false }).quoteDuration({
      bay: 1,
      start: sunday,
      minutes: 60,
    });
    assert.equal(notAhead.ok, false);
    assert.ok(!notAhead.ok && notAhead.reason === 'free' && notAhead.at === at('2026-06-08T08:00:00Z'));
    const monday = new Tariff({ ...doc, sellsAhead: false }).quoteDuration({
      bay: 1,
      start: at('2026-06-08T17:30:00Z'),
      minutes: 60,
    });
    assert.ok(monday.ok, 'a purchase made in charged time still runs on after it');
    assert.equal(monday.paidUntil, at('2026-06-09T08:30:00Z'));
  });
});
