// A purchase that carries over a free period (the evening into the next morning): its units are
// counted once over the purchase unless the tariff says each period apart, and the bands start
// again after the gap or continue, as the tariff chooses. Worked examples from docs/tariffs.md.
import assert from 'node:assert/strict';
import { Tariff, type TariffDocument, TariffError } from '../../protocol/tariff';
import { oneRate } from './fixtures';

// 20p per started 15 minutes, 08:00-18:30 every day, free overnight (UTC, so the times read as is).
const evening = oneRate('evening', [{ price: 20, per: 15 }], { from: '08:00', to: '18:30' });
// Wednesday 2026-06-03 18:20: 10 minutes before the free evening, the rest from 08:00 on Thursday.
const AT_1820 = Date.UTC(2026, 5, 3, 18, 20) / 1000;

function quote(doc: TariffDocument, minutes: number) {
  const q = new Tariff(doc).quoteDuration({ bay: 1, start: AT_1820, minutes });
  assert.ok(q.ok, 'sold');
  return q;
}

describe('tariff: a purchase across a free period', () => {
  it('counts its units once over the purchase by default: 30 minutes cost 2 units either side of the night', () => {
    const q = quote(evening, 30);
    assert.equal(q.amount, 40, '10 + 20 minutes fill two 15-minute units, as 30 minutes in one piece');
    assert.equal(q.paidUntil, Date.UTC(2026, 5, 4, 8, 20) / 1000);
    assert.deepEqual(
      q.lines.filter((l) => l.kind === 'charged').map((l) => l.units),
      [1, 1],
      'the unit started at 18:20 is finished at 08:05; the second runs to 08:20',
    );
    const onePiece = new Tariff(evening).quoteDuration({ bay: 1, start: AT_1820 - 3600, minutes: 30 });
    assert.ok(onePiece.ok);
    assert.equal(q.amount, onePiece.amount, 'the same minutes bought at 17:20 cost the same');
  });

  it("rounds each period apart when the tariff says 'period': 30 minutes cost 3 units", () => {
    const q = quote({ ...evening, rounding: { units: 'period' } }, 30);
    assert.equal(q.amount, 60, 'a started unit before the night (10 min) and two after it (20 min)');
  });

  it('restarts progressive bands after the free period by default, or continues them', () => {
    // First hour 1.00 flat, then 50p per started 30 minutes.
    const progressive: TariffDocument = {
      ...evening,
      rates: {
        rate: [
          { upTo: 60, flat: 100 },
          { price: 50, per: 30 },
        ],
      },
    };
    // 18:00 for 90 minutes: 18:00-18:30 (30 min of the first hour), then 08:00-09:00.
    const start = Date.UTC(2026, 5, 3, 18, 0) / 1000;
    const restart = new Tariff(progressive).quoteDuration({ bay: 1, start, minutes: 90 });
    const carryOn = new Tariff({ ...progressive, bandsAfterFree: 'continue' }).quoteDuration({
      bay: 1,
      start,
      minutes: 90,
    });
    assert.ok(restart.ok && carryOn.ok);
    assert.equal(restart.amount, 200, 'a first hour on each day: 1.00 + 1.00');
    assert.equal(carryOn.amount, 150, 'one first hour across the night (1.00), then a half hour (50p)');
    // 18:00 for 150 minutes: restart sells Thursday its own first hour and an hour more.
    const longer = new Tariff(progressive).quoteDuration({ bay: 1, start, minutes: 150 });
    const longerOn = new Tariff({ ...progressive, bandsAfterFree: 'continue' }).quoteDuration({
      bay: 1,
      start,
      minutes: 150,
    });
    assert.ok(longer.ok && longerOn.ok);
    assert.equal(longer.amount, 300, '1.00 on Wednesday; on Thursday 1.00 and 2 x 50p');
    assert.equal(longerOn.amount, 250, '1.00 for the first hour, then 3 x 50p');
  });

  it('refuses a value it does not know, naming the field', () => {
    assert.throws(
      () => Tariff.from({ ...evening, rounding: { units: 'day' } }),
      (e: unknown) => e instanceof TariffError && /rounding\.units/.test(e.message),
    );
    assert.throws(
      () => Tariff.from({ ...evening, bandsAfterFree: 'sometimes' }),
      (e: unknown) => e instanceof TariffError && /bandsAfterFree/.test(e.message),
    );
  });
});
