// The meter applies the tariff rules that need the payer's history (a maximum price per period, "no
// return within N hours") to a card at the tap, from its own transactions for the card's token.
import assert from 'node:assert/strict';
import { PurchaseHistory } from '../../firmware/units/purchaseHistory';
import type { RecordSource, StoredRecord } from '../../firmware/units/storage';
import { encodeRecord, RecordKind } from '../../protocol/records';
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

  it('rebuilds from the latest records only, skipping other kinds and a record it cannot decode', () => {
    const token = new Uint8Array(16).fill(9);
    const sale = (seq: number, charge: number): Uint8Array =>
      encodeRecord({
        seq,
        time: 1_780_000_000 + seq,
        meterId: 7,
        kind: RecordKind.Transaction,
        data: {
          transactionNumber: seq,
          card: { token, last4: '0009' },
          cardExpiry: '2812',
          cardType: 1,
          bayId: 1,
          minutes: 30,
          paidFrom: 1_780_000_000 + seq * 60,
          paidUntil: 1_780_001_800 + seq * 60,
          charge,
          currency: 826,
          remainingValue: 1000,
        },
      });
    const stored: StoredRecord[] = [
      { seq: 1, link: new Uint8Array(32), bytes: sale(1, 10) },
      { seq: 2, link: new Uint8Array(32), bytes: Uint8Array.of(0xff, 0x00, 0x13) },
      {
        seq: 3,
        link: new Uint8Array(32),
        bytes: encodeRecord({
          seq: 3,
          time: 1_780_000_003,
          meterId: 7,
          kind: RecordKind.Operation,
          data: { code: 'no-return', detail: 'x', card: { token, last4: '0009' } },
        }),
      },
      { seq: 4, link: new Uint8Array(32), bytes: sale(4, 40) },
      { seq: 5, link: new Uint8Array(32), bytes: sale(5, 50) },
    ];
    const reads: [number, number | undefined, number | undefined][] = [];
    const log: RecordSource = {
      firstSeq: 1,
      lastSeq: 5,
      lastLink: undefined,
      append: () => assert.fail('the history never writes'),
      read: (from, to, limit) => {
        reads.push([from, to, limit]);
        return stored.filter((r) => r.seq >= from && r.seq <= (to ?? 5)).slice(0, limit);
      },
      linkOf: () => undefined,
    };
    const all = PurchaseHistory.fromLog(log).of(token, 1_780_000_000);
    assert.deepEqual(
      all.map((p) => p.amount),
      [10, 40, 50],
      'the damaged record and the operation are skipped, nothing else lost',
    );
    const latest = PurchaseHistory.fromLog(log, { scanRecords: 2 }).of(token, 1_780_000_000);
    assert.deepEqual(
      latest.map((p) => p.amount),
      [40, 50],
    );
    assert.deepEqual(reads.at(-1), [4, 5, 2], 'reads back only the latest records');
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
