// The meter applies the tariff rules that need the payer's history (a maximum price per period, "no
// return within N hours") to a card at the tap, from its own transactions for the card's token.
import assert from 'node:assert/strict';
import { PurchaseHistory } from '../../firmware/units/purchaseHistory';
import { RecordKind } from '../../protocol/records';
import { encodeTariffPush, type TariffDocument } from '../../protocol/tariff';
import { SCENARIO_METER_ID, TapScenario } from '../../sim/fleet/tapScenario';

const EVERY = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun', 'hol'] as const;

function tariff(version: number, extra: Partial<TariffDocument>): TariffDocument {
  return {
    id: 'history',
    version,
    currency: 826,
    timeZone: 'UTC0',
    rates: { hourly: [{ price: 240, per: 60, prorata: true }] },
    timetable: [{ days: [...EVERY], from: '00:00', to: '24:00', mode: 'charged', rate: 'hourly' }],
    rounding: { stepMinutes: 15 },
    minimum: { minutes: 15 },
    maxStayMinutes: 240,
    ...extra,
  };
}

function pushTariff(s: TapScenario, doc: TariffDocument): void {
  const ack = s.meter.charging.applyDownlink(
    encodeTariffPush({ kind: 'tariff', version: doc.version, tariff: doc }),
  );
  assert.ok(ack.ok, ack.why);
}

/** The charges and operation codes the platform received, after the boot record. */
function outcomes(s: TapScenario): string[] {
  return s.platform
    .records(SCENARIO_METER_ID)
    .slice(1)
    .map(({ record }) =>
      record.kind === RecordKind.Transaction
        ? `paid ${record.data.charge}`
        : record.kind === RecordKind.Operation
          ? record.data.code
          : 'other',
    );
}

describe('meter: tariff rules on the card’s history', () => {
  it('caps what one card pays in a period at 3.00 (resets at 02:00), other cards paying in full', () => {
    const s = new TapScenario();
    pushTariff(s, tariff(10, { maxPrice: { amount: 300, resetAt: '02:00' } }));
    assert.match(s.tap(15).display, /Paid GBP 2\.40/); // card 0, bay 1, 60 min
    const second = s.tap(35); // card 0, bay 3, 60 min: 0.60 left under the cap
    assert.match(second.display, /Paid GBP 0\.60/);
    s.tap(55); // card 0, bay 2, 60 min: nothing left to pay in this period
    s.tap(16); // card 1, bay 2, 15 min: its own history is empty
    assert.deepEqual(outcomes(s), ['paid 240', 'paid 60', 'paid 0', 'paid 60']);
    const card0 = s.token(s.cardNumber(0));
    const rebuilt = PurchaseHistory.fromLog(s.meter.log).of(card0, Math.floor(s.clock.now() / 1000));
    assert.deepEqual(
      rebuilt.map((p) => p.amount),
      [240, 60, 0],
      'a restart reads the card’s purchases back from the records',
    );
  });

  it('refuses a card back within 2 hours with the time it may return, and sells to it after', () => {
    const s = new TapScenario();
    pushTariff(s, tariff(11, { noReturnMinutes: 120 }));
    s.tap(0); // card 0, bay 1, 15 min, from 07:30
    const refused = s.tap(5); // card 0 again, bay 3, at 07:35: its stay ends at 07:45
    assert.match(refused.display, /No return before\s+09:45/);
    assert.equal(s.tap(6).display.includes('PAID'), true, 'another card is sold at once');
    s.clock.advance(2 * 3_600_000);
    assert.match(s.tap(10).display, /PAID/); // card 0, after 09:45
    assert.deepEqual(outcomes(s), ['paid 60', 'no-return', 'paid 180', 'paid 180']);
  });

  it('keeps at most its capacity, dropping the oldest, and forgets purchases past the horizon', () => {
    const h = new PurchaseHistory({ capacity: 3, horizonSeconds: 3600 });
    const token = new Uint8Array(16).fill(7);
    for (let i = 0; i < 5; i++) h.add(token, [{ start: i * 100, end: i * 100 + 50, amount: i }]);
    assert.equal(h.size, 3);
    assert.deepEqual(
      h.of(token, 1000).map((p) => p.amount),
      [2, 3, 4],
    );
    assert.deepEqual(h.of(token, 450 + 3600), [], 'ended more than an hour before');
    assert.deepEqual(h.of(new Uint8Array(16), 0), [], 'another token has none');
  });
});
