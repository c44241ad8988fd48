// Worked examples: three tariff shapes met on real streets, each priced by hand in the comments and
// by the engine in the assertions. Times are UTC in the requests; the comments read them locally.
import assert from 'node:assert/strict';
import { flatTariff, parseInstant, type QuoteOk, Tariff, type TariffDocument } from '../../protocol/tariff';
import { townCentre } from './fixtures';

function ok(q: ReturnType<Tariff['quoteDuration']>): QuoteOk {
  if (!q.ok) assert.fail(`refused: ${q.reason} ${q.message}`);
  return q;
}

describe('tariff worked examples', () => {
  // 1. A British town-centre street: charged Monday to Saturday 08:00-18:00 at 0.30 for every
  //    started 10 minutes, at most 2 hours, no return of unused time into the evening or the next day
  //    (non-cumulative), Sundays and bank holidays free, the statutory 10 minutes' grace, the least
  //    sold 20 minutes. The buttons step by 10 minutes. (The tariff is in ./fixtures.ts.)

  it('town centre: 45 minutes on a weekday morning is five started 10-minute units', () => {
    const t = Tariff.from(townCentre);
    // Wednesday 4 March 2026, 09:00 GMT. 45 minutes = 4 whole units and a started fifth: 5 x 0.30.
    const q = ok(t.quoteDuration({ bay: 7, start: parseInstant('2026-03-04T09:00:00Z'), minutes: 45 }));
    assert.equal(q.amount, 150);
    assert.equal(q.paidUntilLocal, '2026-03-04T09:45+00:00');
    assert.equal(q.graceUntil - q.paidUntil, 600, 'ten minutes of grace');
    assert.equal(q.lines.length, 1);
    assert.equal(q.lines[0].units, 5);
  });

  it('town centre: late in the day the time left before 18:00 is all that is sold', () => {
    const t = Tariff.from(townCentre);
    // Saturday 7 March 2026 at 17:20: 40 minutes of charged time remain; an hour is refused because
    // the paid time would run into the free evening and the tariff is non-cumulative.
    const start = parseInstant('2026-03-07T17:20:00Z');
    const hour = t.quoteDuration({ bay: 7, start, minutes: 60 });
    assert.equal(hour.ok, false);
    assert.equal(!hour.ok && hour.reason, 'non-cumulative');
    assert.equal(!hour.ok && hour.maxMinutes, 40);
    assert.equal(t.maxMinutes(7, start), 40);
    // At 17:50 only 10 minutes remain, less than the 20-minute minimum: those 10 minutes are sold.
    const late = parseInstant('2026-03-07T17:50:00Z');
    assert.equal(ok(t.quoteDuration({ bay: 7, start: late, minutes: 10 })).amount, 30);
    // At 17:00 the minimum still applies: 10 minutes is below it.
    const early = t.quoteDuration({ bay: 7, start: parseInstant('2026-03-07T17:00:00Z'), minutes: 10 });
    assert.equal(!early.ok && early.reason, 'below-minimum');
  });

  it('town centre: Sundays and Christmas are free, and 2 hours is the longest stay', () => {
    const t = Tariff.from(townCentre);
    const sunday = t.quoteDuration({ bay: 7, start: parseInstant('2026-03-08T10:00:00Z'), minutes: 30 });
    assert.equal(!sunday.ok && sunday.reason, 'free');
    assert.equal(
      !sunday.ok && sunday.at,
      parseInstant('2026-03-09T08:00:00Z'),
      'charges resume Monday 08:00',
    );
    const christmas = t.stateAt(7, parseInstant('2026-12-25T11:00:00Z'));
    assert.equal(christmas.state, 'free');
    const long = t.quoteDuration({ bay: 7, start: parseInstant('2026-03-04T09:00:00Z'), minutes: 130 });
    assert.equal(!long.ok && long.reason, 'max-stay');
    assert.equal(!long.ok && long.maxMinutes, 120);
    // 2.00 buys 60 minutes (6 x 0.30 = 1.80; a seventh unit would cost 2.10), 0.20 left unused.
    const bought = t.quoteAmount({ bay: 7, start: parseInstant('2026-03-04T09:00:00Z'), amount: 200 });
    assert.ok(bought.ok);
    assert.equal(bought.minutes, 60);
    assert.equal(bought.amount, 180);
    assert.equal(bought.unused, 20);
  });

  // 2. A progressive city-centre tariff (the shape of demand-priced downtown streets): the first
  //    hour 2.00 flat, the second hour 0.05 for every 3 minutes (the APDS "incrementing" example),
  //    from the third hour 1.00 per 15 minutes to push turnover. Bays 1-4 by the station are a group
  //    with a dearer evening rate; everywhere else evenings are free. Time bought before 08:00 starts
  //    at 08:00 and time crosses the free night into the next morning (cumulative).
  const progressive: TariffDocument = {
    id: 'city-progressive',
    version: 12,
    currency: 978,
    timeZone: 'CET-1CEST,M3.5.0,M10.5.0/3',
    groups: { station: [1, 2, 3, 4] },
    rates: {
      day: [
        { upTo: 60, flat: 200 },
        { upTo: 120, price: 5, per: 3 },
        { price: 100, per: 15 },
      ],
      evening: [{ price: 150, per: 60, prorata: true }],
    },
    timetable: [
      {
        bays: 'station',
        days: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat'],
        from: '19:00',
        to: '23:00',
        mode: 'charged',
        rate: 'evening',
      },
      {
        days: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat'],
        from: '08:00',
        to: '19:00',
        mode: 'charged',
        rate: 'day',
      },
    ],
    rounding: { stepMinutes: 15, money: 'up', moneyUnit: 10 },
  };

  it('progressive: each hour dearer than the last, with the incrementing second hour', () => {
    const t = Tariff.from(progressive);
    const start = parseInstant('2026-06-10T08:00:00Z'); // Wednesday 10:00 CEST
    // 60 min: 2.00 flat. 90 min: 2.00 + 10 x 0.05 = 2.50. 120 min: 2.00 + 1.00 = 3.00.
    // 150 min: 3.00 + 2 x 1.00 = 5.00.
    const prices = [60, 90, 120, 150].map(
      (minutes) => ok(t.quoteDuration({ bay: 9, start, minutes })).amount,
    );
    assert.deepEqual(prices, [200, 250, 300, 500]);
    // 100 min: 2.00 + 14 started 3-minute units (40 min = 13 1/3) = 2.70, already a multiple of 0.10.
    assert.equal(ok(t.quoteDuration({ bay: 9, start, minutes: 100 })).amount, 270);
    // 65 min: 2.00 + 2 units = 2.10.
    assert.equal(ok(t.quoteDuration({ bay: 9, start, minutes: 65 })).amount, 210);
  });

  it('progressive: bought at 07:30, the time starts at 08:00; past 19:00 it continues next morning', () => {
    const t = Tariff.from(progressive);
    const q = ok(t.quoteDuration({ bay: 9, start: parseInstant('2026-06-10T05:30:00Z'), minutes: 60 }));
    assert.equal(q.paidFrom, parseInstant('2026-06-10T06:00:00Z'), 'paid time starts at 08:00 CEST');
    assert.equal(q.paidUntilLocal, '2026-06-10T09:00+02:00');
    assert.equal(q.amount, 200);
    // 18:30 CEST, 90 minutes: 30 minutes tonight (the 2.00 first-hour flat), the free night, then
    // a new run tomorrow: the bands start again, another 2.00 flat for the first hour.
    const night = ok(t.quoteDuration({ bay: 9, start: parseInstant('2026-06-10T16:30:00Z'), minutes: 90 }));
    assert.equal(night.paidUntilLocal, '2026-06-11T09:00+02:00');
    assert.equal(night.amount, 400);
    assert.deepEqual(
      night.lines.map((l) => l.kind),
      ['charged', 'free', 'charged'],
    );
  });

  it('progressive: the station group pays the evening rate where other bays park free', () => {
    const t = Tariff.from(progressive);
    const start = parseInstant('2026-06-10T17:30:00Z'); // 19:30 CEST
    // 45 minutes at 1.50 an hour pro rata = 1.125, rounded up to the 0.10 coin: 1.20.
    const station = ok(t.quoteDuration({ bay: 2, start, minutes: 45 }));
    assert.equal(station.amount, 120);
    assert.equal(station.lines.at(-1)?.kind, 'rounding');
    assert.equal(t.stateAt(9, start).state, 'free');
    assert.equal(t.stateAt(2, start).rate, 'evening');
  });

  it('progressive: a renewal continues the bands instead of buying the first hour again', () => {
    const t = Tariff.from(progressive);
    const first = ok(t.quoteDuration({ bay: 9, start: parseInstant('2026-06-10T08:00:00Z'), minutes: 60 }));
    const renewal = ok(t.quoteDuration({ bay: 9, start: first.paidUntil, minutes: 60, paidMinutes: 60 }));
    // The second hour: 20 x 0.05 = 1.00, not another 2.00 flat.
    assert.equal(renewal.amount, 100);
    assert.equal(first.amount + renewal.amount, 300, 'the same as 120 minutes bought at once');
  });

  // 3. A residential street with an overnight flat charge across midnight and street cleaning: day
  //    rate 1.20 an hour pro rata (max stay 3 hours) from 07:00 to 19:00, then a 3.00 flat from
  //    19:00 to 07:00 (one entry across midnight, holidays included), no parking on Tuesdays
  //    07:00-09:00 for cleaning, and no sale on the match-day evening (a holiday-like closure).
  //    US Eastern time, where the clocks change at 02:00 inside the overnight period.
  const residential: TariffDocument = {
    id: 'residential-overnight',
    version: 1,
    currency: 840,
    timeZone: 'EST5EDT,M3.2.0,M11.1.0',
    holidays: ['2026-07-04'],
    rates: { day: [{ price: 120, per: 60, prorata: true }], night: [{ flat: 300 }] },
    timetable: [
      { days: ['tue'], from: '07:00', to: '09:00', mode: 'no-parking' },
      {
        days: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'],
        from: '07:00',
        to: '19:00',
        mode: 'charged',
        rate: 'day',
        maxStayMinutes: 180,
      },
      {
        days: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun', 'hol'],
        from: '19:00',
        to: '07:00',
        mode: 'charged',
        rate: 'night',
      },
    ],
    graceMinutes: 5,
    rounding: { stepMinutes: 30 },
  };

  it('residential: the night flat covers the stay across midnight, whatever its length', () => {
    const t = Tariff.from(residential);
    // Friday 6 March 2026 21:00 EST (02:00 UTC Saturday), until 06:00: one 3.00 flat.
    const q = ok(t.quoteDuration({ bay: 40, start: parseInstant('2026-03-07T02:00:00Z'), minutes: 540 }));
    assert.equal(q.amount, 300);
    assert.equal(q.lines.length, 1, 'one line across midnight: the entry continues');
    assert.equal(q.paidUntilLocal, '2026-03-07T06:00-05:00');
  });

  it('residential: the night the clocks go forward is one hour shorter, and the flat the same', () => {
    const t = Tariff.from(residential);
    // Saturday 7 March 2026 19:00 EST to Sunday 07:00 EDT: 11 hours, not 12 (02:00 became 03:00).
    const start = parseInstant('2026-03-08T00:00:00Z');
    assert.equal(
      t.maxMinutes(40, start),
      11 * 60 + 180,
      'the 11-hour night, then the 3-hour maximum of the day period',
    );
    const whole = ok(t.quoteDuration({ bay: 40, start, minutes: 11 * 60 }));
    assert.equal(whole.paidUntilLocal, '2026-03-08T07:00-04:00');
    assert.equal(whole.amount, 300);
    // One more minute is day-rate time: 1.20 an hour pro rata, rounded up to 0.02.
    const more = ok(t.quoteDuration({ bay: 40, start, minutes: 11 * 60 + 1 }));
    assert.equal(more.amount, 302);
  });

  it('residential: the autumn night is 13 hours for the same flat', () => {
    const t = Tariff.from(residential);
    const start = parseInstant('2026-10-31T23:00:00Z'); // Saturday 19:00 EDT
    const q = ok(t.quoteDuration({ bay: 40, start, minutes: 13 * 60 }));
    assert.equal(q.paidUntilLocal, '2026-11-01T07:00-05:00');
    assert.equal(q.amount, 300);
  });

  it('residential: street cleaning refuses time that reaches it, with the most that can be bought', () => {
    const t = Tariff.from(residential);
    // Tuesday 10 March 2026 06:00 EDT: the night flat until 07:00, then cleaning.
    const start = parseInstant('2026-03-10T10:00:00Z');
    const q = t.quoteDuration({ bay: 40, start, minutes: 120 });
    assert.equal(!q.ok && q.reason, 'restricted');
    assert.equal(!q.ok && q.maxMinutes, 60);
    assert.equal(!q.ok && q.at, parseInstant('2026-03-10T11:00:00Z'));
    const during = t.quoteDuration({ bay: 40, start: parseInstant('2026-03-10T12:00:00Z'), minutes: 30 });
    assert.equal(!during.ok && during.reason, 'restricted');
    assert.equal(t.stateAt(40, parseInstant('2026-03-10T12:00:00Z')).state, 'restricted');
    // Day time is at most 3 hours: 10:00 EDT plus 4 hours is refused at 3.
    const day = t.quoteDuration({ bay: 40, start: parseInstant('2026-03-11T14:00:00Z'), minutes: 240 });
    assert.equal(!day.ok && day.reason, 'max-stay');
    assert.equal(!day.ok && day.maxMinutes, 180);
  });

  it('a flat hourly rate written as a tariff prices like the old flat rate', () => {
    const t = new Tariff(
      flatTariff({ currency: 826, perHour: 250, minMinutes: 15, maxMinutes: 240, stepMinutes: 15 }),
    );
    const start = parseInstant('2026-03-02T07:30:00Z');
    for (const minutes of [15, 30, 45, 100, 240]) {
      assert.equal(ok(t.quoteDuration({ bay: 1, start, minutes })).amount, Math.ceil((minutes * 250) / 60));
    }
    assert.equal(t.quoteDuration({ bay: 1, start, minutes: 10 }).ok, false);
    assert.equal(t.quoteDuration({ bay: 1, start, minutes: 241 }).ok, false);
  });
});
