import assert from 'node:assert/strict';
import { VirtualBoard } from '../../hal/mock/board';
import { classicCard } from '../../hal/mock/cards';
import { Meter } from '../../firmware/meter';
import { RecordKind } from '../../protocol/records';
import { SCENARIO_METER_ID, TapScenario } from '../../sim/fleet/tapScenario';

describe('meter end to end on virtual hardware', () => {
  it('sells a stay on a card: display, buzzer, lights, record (with the tariff rule applied), upload and ack', () => {
    const s = new TapScenario();
    const out = s.tap(1); // bay 2, 30 minutes, credit card
    assert.match(out.display, /PAID bay 2/);
    assert.match(out.display, /Paid GBP 1\.20/);
    assert.equal(s.board.light('paid', 1), 1);
    assert.equal(s.board.light('expired', 1), 0);
    assert.equal(s.board.light('paid', 0), 0);
    assert.ok(
      s.board.buzzer.tones.some((t) => t.frequencyHz === 2700 && t.durationMs === 120),
      'success tone',
    );
    const tx = s.meter.log.read(1).map((r) => r.seq);
    assert.deepEqual(tx, [1, 2], 'boot record, then the transaction');
    const held = s.platform.records(SCENARIO_METER_ID);
    assert.equal(held.length, 2, 'both records reached the platform');
    const sale = held[1].record;
    assert.equal(sale.kind, RecordKind.Transaction);
    if (sale.kind !== RecordKind.Transaction) return;
    assert.deepEqual(
      { ...sale.data, paidFrom: 0, paidUntil: 0 },
      {
        transactionNumber: 1,
        card: { token: s.token('6280000000000025'), last4: '0025' },
        cardExpiry: '2812',
        cardType: 2,
        bayId: 2,
        minutes: 30,
        paidFrom: 0,
        paidUntil: 0,
        charge: 120,
        currency: 826,
        remainingValue: -120,
        tariffRule: s.meter.charging.tariff.version,
      },
    );
    assert.equal(sale.data.paidUntil - sale.data.paidFrom, 30 * 60);
    assert.equal(s.meter.ledger.acknowledgedSeq, 2);
    // The bay's light turns red when the time runs out.
    s.clock.advance(30 * 60_000);
    assert.equal(s.board.light('paid', 1), 0);
    assert.equal(s.board.light('expired', 1), 1);
  });

  it('refuses a blacklisted card with a message and an operation record, taking nothing', () => {
    const s = new TapScenario();
    const out = s.tap(3); // the stolen card
    assert.match(out.display, /CARD REFUSED/);
    assert.match(out.display, /Card blocked/);
    const last = s.platform.records(SCENARIO_METER_ID).at(-1)!.record;
    assert.equal(last.kind, RecordKind.Operation);
    assert.equal(last.kind === RecordKind.Operation && last.data.code, 'card-blacklisted');
    assert.deepEqual(last.kind === RecordKind.Operation && last.data.card, {
      token: s.token('6280000000000041'),
      last4: '0041',
    });
    assert.ok(
      s.board.buzzer.tones.some((t) => t.frequencyHz === 440),
      'failure tone',
    );
  });

  it('refuses an expired card and a card that is not a payment card', () => {
    const s = new TapScenario();
    assert.match(s.tap(4).display, /Card expired/);
    s.board.press('ok');
    s.board.press('ok');
    s.board.field.add(classicCard([0x01, 0x02, 0x03, 0x04]));
    s.clock.advance(300);
    assert.match(s.board.display.text, /CARD REFUSED/);
    const codes = s.meter.log.read(1).map((r) => r.seq);
    assert.equal(codes.length, 3);
  });

  it('keeps bays separate and extends a paid bay from its paid-until time', () => {
    const s = new TapScenario();
    s.tap(0); // bay 1, 15 min
    const first = s.meter.bays.paidUntil(1);
    s.tap(6); // bay 1 again (6 mod 3 = 0), 45 min (6 mod 4 = 2 steps), credit card... card index 1
    assert.equal(s.meter.bays.paidUntil(1), first + 45 * 60);
    assert.equal(s.meter.bays.paidUntil(2), 0);
  });

  it('keeps records and paid bays across a restart, and uploads what was not acknowledged', () => {
    const clockScenario = new TapScenario();
    clockScenario.platform.acking = false;
    clockScenario.tap(0);
    clockScenario.tap(1);
    const before = clockScenario.meter.log.lastSeq;
    assert.equal(clockScenario.meter.ledger.acknowledgedSeq, 0);
    // Power cut: a new board on the same flash and preferences, the same broker and platform. The
    // old meter is gone (its link with it): it must not answer the new meter's acks.
    clockScenario.meter.comms.stop();
    const state = clockScenario.board.state;
    const board = new VirtualBoard({ mqtt: clockScenario.broker.link(), clock: clockScenario.clock, state });
    clockScenario.platform.acking = true;
    const meter = new Meter(board.hardware, clockScenario.meter.config);
    assert.equal(meter.boot.restart, 'abnormal');
    assert.equal(meter.boot.chainVerified, before);
    assert.ok(meter.bays.paidUntil(1) > 0);
    meter.start();
    clockScenario.clock.advance(1000);
    assert.equal(meter.ledger.acknowledgedSeq, before + 1, 'all records, and the boot record, acknowledged');
    assert.equal(clockScenario.platform.records(SCENARIO_METER_ID).length, before + 1);
    assert.deepEqual(clockScenario.platform.refused, []);
  });

  it('retries an upload whose ack was lost, without duplicates at the platform', () => {
    const s = new TapScenario();
    s.platform.acking = false;
    s.tap(0);
    assert.equal(s.meter.ledger.acknowledgedSeq, 0);
    s.platform.acking = true;
    s.clock.advance(60_000); // the ack timer fires and the set goes again
    assert.equal(s.meter.ledger.acknowledgedSeq, s.meter.log.lastSeq);
    assert.equal(s.platform.records(SCENARIO_METER_ID).length, s.meter.log.lastSeq);
  });

  it('refuses forged, replayed and truncated downlinks, keeping its acknowledged state', () => {
    const s = new TapScenario();
    const refused: string[] = [];
    s.meter.bus.on('downlink-refused', (e) => refused.push(e.reason));
    s.tap(0);
    const acked = s.meter.ledger.acknowledgedSeq;
    const down = s.broker.published.filter((m) => m.topic.endsWith(`/${SCENARIO_METER_ID}/down`));
    assert.ok(down.length > 0);
    const intruder = s.broker.link();
    intruder.open({ onConnect() {}, onDisconnect() {}, onMessage() {} });
    const topic = down[0].topic;
    intruder.publish(topic, down[down.length - 1].payload); // replay of the last ack
    const forged = down[0].payload.slice();
    forged[forged.length - 1] ^= 0x01;
    intruder.publish(topic, forged);
    intruder.publish(topic, new Uint8Array(7));
    s.clock.advance(10);
    assert.deepEqual(refused, ['replay', 'decrypt-failed', 'truncated']);
    // Nothing acknowledged was lost; the replay and the forgery became security operation
    // records, uploaded and acknowledged in turn.
    assert.equal(s.meter.log.lastSeq, acked + 2);
    assert.equal(s.meter.ledger.acknowledgedSeq, acked + 2);
  });
});
