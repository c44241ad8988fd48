// A rate that takes over in the middle of a run of charged time (a peak quarter-hour inside an
// all-day rate) starts its own units: it does not finish a unit another rate began, which used to
// sell the peak minutes for nothing. A renewal goes on from the units its paid part reached.
import assert from 'node:assert/strict';
import { type QuoteOk, Tariff, type TariffDocument, type Tier } from '../../protocol/tariff';
import { EVERY_DAY } from './fixtures';

// Monday 2026-06-01, UTC: 1.80 per started 17 minutes all day, a peak rate 11:15-11:30.
const AT_1100 = Date.UTC(2026, 5, 1, 11, 0) / 1000;
const MINUTE = 60;

function withPeak(peak: Tier[], units: 'purchase' | 'period' = 'purchase'): TariffDocument {
  return {
    id: 'peak',
    version: 1,
    currency: 826,
    timeZone: 'UTC0',
    rates: { day: [{ price: 180, per: 17 }], peak },
    timetable: [
      { days: ['mon'], from: '11:15', to: '11:30', mode: 'charged', rate: 'peak' },
      { days: EVERY_DAY, from: '00:00', to: '24:00', mode: 'charged', rate: 'day' },
    ],
    rounding: { units },
  };
}

function sold(doc: TariffDocument, start: number, minutes: number, paidMinutes = 0): QuoteOk {
  const q = new Tariff(doc).quoteDuration({ bay: 1, start, minutes, paidMinutes });
  assert.ok(q.ok, `sold: ${q.ok ? '' : q.message}`);
  return q;
}

const charged = (q: QuoteOk) => q.lines.filter((l) => l.kind === 'charged').map((l) => l.amount);

describe('tariff: a rate that takes over in the middle of a run', () => {
  it('charges the peak its own started unit, not the rest of the unit the day rate began', () => {
    const q = sold(withPeak([{ price: 302, per: 64 }]), AT_1100, 30);
    assert.deepEqual(charged(q), [180, 302], '11:00-11:15 one day unit, 11:15-11:30 one peak unit');
    assert.equal(q.amount, 482);
  });

  it('charges a flat peak band where the purchase first meets it', () => {
    const q = sold(withPeak([{ flat: 250 }]), AT_1100, 30);
    assert.deepEqual(charged(q), [180, 250]);
  });

  it('goes on with the day rate where its units got to when the day rate comes back', () => {
    // 15 + 15 day minutes fill two 17-minute units, as they would in one piece.
    for (const units of ['purchase', 'period'] as const) {
      const q = sold(withPeak([{ price: 302, per: 64 }], units), AT_1100, 45);
      assert.deepEqual(charged(q), [180, 302, 180], units);
    }
  });

  it('prices a renewal from the units its paid part reached, so the two add up to the whole', () => {
    const doc = withPeak([{ price: 302, per: 64 }]);
    for (const [first, more] of [
      [15, 15],
      [10, 30],
      [20, 25],
      [30, 15],
    ]) {
      const paid = sold(doc, AT_1100, first);
      const renewal = sold(doc, paid.paidUntil, more, first);
      const whole = sold(doc, AT_1100, first + more);
      assert.equal(paid.amount + renewal.amount, whole.amount, `${first} then ${more} minutes`);
      assert.equal(renewal.paidUntil, whole.paidUntil);
    }
    // Renewed at 11:15 for the peak quarter: a peak unit, not the day unit's unused 2 minutes.
    assert.equal(sold(doc, AT_1100 + 15 * MINUTE, 15, 15).amount, 302);
  });
});
