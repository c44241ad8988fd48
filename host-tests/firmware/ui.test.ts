// The meter's user flow on virtual hardware: the tariff at the buttons, the 0x85 tariff
// downlink and its 0x05 acknowledgement, card type and receipt, the mode key with lockout, sleep,
// the display's bay states, battery and platform messages, the lights, overtime and tamper.
import assert from 'node:assert/strict';
import { VirtualBoard } from '../../hal/mock/board';
import { purseCard } from '../../hal/mock/cards';
import type { CardTypeValue } from '../../drivers/rfid/purse';
import { VirtualClock } from '../../hal/mock/clock';
import { VirtualBroker } from '../../hal/mock/mqtt';
import { nobleCrypto } from '../../hal/nobleCrypto';
import type { MeterEvents } from '../../firmware/events';
import { Meter, type MeterConfig } from '../../firmware/meter';
import { provisionBoard } from '../../firmware/units/security';
import { FRAME_VERSION, openFrame, sealFrame } from '../../protocol/frame';
import { deriveMeterKeys } from '../../protocol/keys';
import {
  decodeTariffAck,
  encodeTariffPush,
  TARIFF_ACK_UPLINK,
  TARIFF_DOWNLINK,
  type TariffDocument,
  type TariffPush,
} from '../../protocol/tariff';
import { receiptCheck } from '../../protocol/receiptCode';
import { RecordKind } from '../../protocol/records';
import { downlinkTopic, uplinkTopic } from '../../protocol/topics';
import { deriveCardTokenKey } from '../../protocol/cardToken';

const METER = 2001;
const MASTER = Uint8Array.from({ length: 32 }, (_, i) => 255 - i);

const townCentre: TariffDocument = {
  id: 'town-centre',
  version: 5,
  currency: 826,
  timeZone: 'GMT0BST,M3.5.0/1,M10.5.0',
  rates: { street: [{ price: 30, per: 10 }] },
  timetable: [
    {
      days: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat'],
      from: '08:00',
      to: '18:00',
      mode: 'charged',
      rate: 'street',
    },
    { days: ['sun'], from: '10:00', to: '12:00', mode: 'no-parking' },
  ],
  maxStayMinutes: 120,
  minimum: { minutes: 20 },
  graceMinutes: 10,
  nonCumulative: true,
  rounding: { stepMinutes: 10 },
};

class Rig {
  readonly clock: VirtualClock;
  readonly broker: VirtualBroker;
  readonly board: VirtualBoard;
  readonly meter: Meter;
  readonly keys = deriveMeterKeys(nobleCrypto, MASTER, METER, 1);
  readonly events: { name: string; payload: unknown }[] = [];
  #downSeq = 100;

  constructor(config: Partial<MeterConfig> = {}, start = '2026-03-04T09:00:00Z') {
    this.clock = new VirtualClock(start);
    this.broker = new VirtualBroker(this.clock);
    this.board = new VirtualBoard({ mqtt: this.broker.link(), clock: this.clock });
    provisionBoard(
      this.board.hardware,
      { ...this.keys, cardTokenKey: deriveCardTokenKey(nobleCrypto, MASTER) },
      METER,
    );
    this.meter = new Meter(this.board.hardware, {
      meterId: METER,
      bays: [1, 2],
      tariff: townCentre,
      ...config,
    });
    const bus = this.meter.bus;
    for (const name of [
      'card-type-selected',
      'receipt-requested',
      'record-appended',
      'maintenance-entry',
      'maintenance-opened',
      'maintenance-refused',
      'maintenance-locked',
      'sleep',
      'wake',
      'bay-expired',
      'bay-overtime',
      'tariff-applied',
      'tariff-refused',
      'downlink-refused',
      'fault',
    ] as (keyof MeterEvents)[]) {
      bus.on(name, (payload) => this.events.push({ name, payload }));
    }
    this.meter.start();
  }

  named(name: string): unknown[] {
    return this.events.filter((e) => e.name === name).map((e) => e.payload);
  }

  push(push: TariffPush): void {
    const frame = sealFrame(
      nobleCrypto,
      this.keys.downlink,
      { version: FRAME_VERSION, type: TARIFF_DOWNLINK, meterId: METER, epoch: 1, seq: ++this.#downSeq },
      encodeTariffPush(push),
    );
    const link = this.broker.link();
    link.open({ onConnect() {}, onDisconnect() {}, onMessage() {} });
    link.publish(downlinkTopic(METER), frame);
    this.clock.advance(10);
  }

  acks() {
    return this.broker.published
      .filter((m) => m.topic === uplinkTopic(METER))
      .map((m) => openFrame(nobleCrypto, this.keys.uplink, m.payload))
      .filter((f) => f.header.type === TARIFF_ACK_UPLINK)
      .map((f) => decodeTariffAck(f.body));
  }

  pay(card = debitCard()): void {
    this.board.field.add(card.card);
    this.clock.advance(300);
    this.board.field.remove(card.card);
  }
}

function debitCard(cardType: CardTypeValue = 1) {
  return purseCard([0x04, 0x21, 0x22, 0x23], {
    cardNumber: '6280000000009991',
    cardType,
    balance: 10_000,
    limit: cardType === 1 ? 0 : 5_000,
    expiry: { year: 2029, month: 1 },
    counter: 0,
    currency: 826,
  });
}

describe('meter user flow and tariffs', () => {
  it('prices at the buttons with the tariff: minimum, steps, and the end of the charged day', () => {
    const rig = new Rig({}, '2026-03-07T17:20:00Z'); // Saturday 17:20, charges end at 18:00
    rig.board.press('ok');
    assert.match(rig.board.display.text, /Time 20 min/);
    assert.match(rig.board.display.text, /Fee GBP 0\.60/);
    for (let i = 0; i < 5; i++) rig.board.press('up');
    assert.match(rig.board.display.text, /Time 40 min/, 'no more than the 40 minutes left before 18:00');
    assert.match(rig.board.display.text, /Fee GBP 1\.20/);
    rig.board.press('ok');
    rig.pay();
    assert.match(rig.board.display.text, /PAID bay 1/);
    assert.equal(rig.meter.bays.paidUntil(1), Date.parse('2026-03-07T18:00:00Z') / 1000);
  });

  it('says why nothing is sold in a free or restricted period', () => {
    const rig = new Rig({}, '2026-03-08T09:00:00Z'); // Sunday: free, no parking 10-12
    rig.board.press('ok');
    assert.match(rig.board.display.text, /free parking until/i);
    rig.board.press('ok');
    assert.equal(rig.meter.transactions.state, 'selecting', 'OK does not wait for a card');
    rig.board.press('cancel');
    rig.clock.advance(61 * 60_000);
    rig.meter.information.showIdle();
    assert.match(rig.board.display.text, /Bay 1 no parking/);
  });

  it('applies a pushed tariff once, keeps it across a restart, and acknowledges the version with 0x05', () => {
    const rig = new Rig();
    const dearer: TariffDocument = { ...townCentre, version: 6, rates: { street: [{ price: 50, per: 10 }] } };
    rig.push({ kind: 'tariff', version: 6, tariff: dearer });
    assert.deepEqual(rig.named('downlink-refused'), []);
    assert.deepEqual(rig.named('fault'), []);
    assert.equal(rig.meter.charging.tariff.version, 6);
    assert.deepEqual(rig.named('tariff-applied'), [{ id: 'town-centre', version: 6 }]);
    rig.push({ kind: 'tariff', version: 6, tariff: dearer }); // again: acknowledged, not re-applied
    rig.push({
      kind: 'tariff',
      version: 7,
      tariff: { ...dearer, version: 7, rates: { street: [{ price: 5 }] } } as never,
    });
    assert.equal(rig.meter.charging.tariff.version, 6, 'a bad tariff is refused and the old one stays');
    assert.deepEqual(
      rig.acks().map((a) => [a.version, a.ok]),
      [
        [6, true],
        [6, true],
        [7, false],
      ],
    );
    assert.match(rig.acks()[2].why ?? '', /rates\.street\[0\]\.per/);
    rig.board.press('ok');
    assert.match(rig.board.display.text, /Fee GBP 1\.00/, '20 minutes at the new 0.50 per 10');
    // A restart with the provisioned (older) tariff keeps the pushed one.
    const again = new Meter(
      new VirtualBoard({ mqtt: rig.broker.link(), clock: rig.clock, state: rig.board.state }).hardware,
      rig.meter.config,
    );
    assert.equal(again.charging.tariff.version, 6);
  });

  it('shows platform messages and bays taken out of service, and the battery', () => {
    const rig = new Rig();
    rig.push({
      kind: 'message',
      version: 1,
      text: 'Snow: gritting 6pm',
      until: Date.parse('2026-03-04T12:00:00Z') / 1000,
    });
    rig.push({ kind: 'bays', version: 1, bays: { '2': 'unavailable' } });
    rig.meter.bus.emit('battery', { percent: 76 });
    assert.match(rig.board.display.text, /ParkLink 09:00 76%/);
    assert.match(rig.board.display.text, /Bay 2 unavailable/);
    assert.match(rig.board.display.text, /Snow: gritting 6pm/);
    rig.clock.advance(3 * 3600_000 + 60_000);
    assert.doesNotMatch(rig.board.display.text, /Snow/, 'the message expires');
    assert.equal(rig.acks().length, 2);
  });

  it('chooses the card type with up/down while waiting for a card, and refuses another type', () => {
    const rig = new Rig();
    rig.board.press('ok');
    rig.board.press('ok');
    rig.board.press('up'); // debit
    rig.board.press('up'); // credit
    assert.deepEqual(rig.named('card-type-selected'), [{ cardType: 1 }, { cardType: 2 }]);
    assert.match(rig.board.display.text, /Card: credit/);
    rig.pay(debitCard(1));
    assert.match(rig.board.display.text, /Not the card type/);
    rig.clock.advance(6000);
    rig.board.press('ok');
    rig.board.press('ok');
    rig.board.press('up');
    rig.pay(debitCard(1));
    assert.match(rig.board.display.text, /PAID bay 1/);
  });

  it('gives a receipt when OK is pressed just after paying, and not later', () => {
    const rig = new Rig();
    rig.board.press('ok');
    rig.board.press('ok');
    rig.pay();
    rig.board.press('ok');
    const receipts = rig.named('receipt-requested') as MeterEvents['receipt-requested'][];
    assert.equal(receipts.length, 1);
    assert.equal(receipts[0].charge, 60);
    // The code names the sale's record, and its check is its chain link's first 40 bits.
    const sales = (rig.named('record-appended') as MeterEvents['record-appended'][]).filter(
      (e) => e.record.kind === RecordKind.Transaction,
    );
    const seq = sales[sales.length - 1].record.seq;
    const sale = rig.meter.records.linkOf(seq);
    const shown = /Code (\d+)-(\d+)\s+Check ([0-9A-Z]{4})-([0-9A-Z]{4})/.exec(rig.board.display.text);
    assert.ok(shown, rig.board.display.text);
    assert.equal(Number(shown[1]), METER);
    assert.equal(Number(shown[2]), seq);
    assert.ok(sale);
    assert.equal(`${shown[3]}${shown[4]}`, receiptCheck(sale));
    assert.equal(receipts[0].receiptCode, `${shown[1]}-${shown[2]}-${shown[3]}-${shown[4]}`);
    assert.match(rig.board.display.text, /^Bay 1 paid GBP 0\.60\n/);
    assert.match(rig.board.display.text, /\nReceipt code online$/);
    assert.equal(rig.meter.transactions.state, 'idle', 'the OK did not start a sale');
    rig.clock.advance(10_000);
    rig.board.press('ok');
    assert.equal(rig.named('receipt-requested').length, 1);
    assert.equal(rig.meter.transactions.state, 'selecting');
  });

  it('opens maintenance with the mode key, and locks out after three wrong sequences', () => {
    const rig = new Rig({
      maintenance: { sequence: ['up', 'up', 'down', 'bay'], maxAttempts: 3, lockoutMs: 60_000 },
    });
    const cancel3 = () => {
      for (let i = 0; i < 3; i++) rig.board.press('cancel');
    };
    const enter = (keys: ('up' | 'down' | 'bay' | 'ok')[]) => {
      cancel3();
      for (const k of keys) rig.board.press(k);
    };
    enter(['up', 'up', 'down', 'bay']);
    assert.equal(rig.named('maintenance-opened').length, 1);
    assert.equal(rig.meter.transactions.state, 'idle', 'code presses are not keys');
    for (let i = 0; i < 3; i++) enter(['up', 'down', 'up', 'bay']);
    assert.deepEqual(rig.named('maintenance-refused'), [
      { attempts: 1, left: 2 },
      { attempts: 2, left: 1 },
      { attempts: 3, left: 0 },
    ]);
    assert.equal(rig.named('maintenance-locked').length, 1);
    enter(['up', 'up', 'down', 'bay']); // the right code, but locked out
    assert.equal(rig.named('maintenance-opened').length, 1);
    assert.equal(rig.named('maintenance-locked').length, 2);
    rig.clock.advance(61_000);
    enter(['up', 'up', 'down', 'bay']);
    assert.equal(rig.named('maintenance-opened').length, 2);
    // An unfinished sequence times out as a wrong one.
    cancel3();
    rig.board.press('up');
    rig.clock.advance(11_000);
    assert.equal(rig.named('maintenance-refused').length, 4);
  });

  it('sleeps when idle, switching display, reader antenna and radio off, and wakes on a key', () => {
    const rig = new Rig({ sleep: { idleMs: 120_000, radio: true } });
    const link = rig.board.hardware.mqtt as unknown as { powered: boolean; connected: boolean };
    assert.equal(link.connected, true);
    rig.clock.advance(121_000);
    assert.equal(rig.meter.keyInput.asleep, true);
    assert.equal(rig.board.display.on, false);
    assert.equal(rig.board.reader.antennaOn, false);
    assert.equal(link.powered, false);
    assert.equal(link.connected, false);
    rig.board.press('bay');
    assert.equal(rig.meter.keyInput.asleep, false);
    assert.equal(rig.board.display.on, true);
    assert.equal(link.connected, true);
    assert.equal(rig.meter.transactions.state, 'idle', 'the waking key only wakes');
    assert.deepEqual(rig.named('wake'), [{ reason: 'key' }]);
    // Not while a sale waits for a card.
    rig.board.press('ok');
    rig.board.press('ok');
    rig.clock.advance(125_000);
    assert.equal(rig.meter.keyInput.asleep, false);
  });

  it('lights, expiry, grace and overtime per bay, with the rear overtime light', () => {
    const rig = new Rig();
    rig.board.press('ok');
    rig.board.press('ok');
    rig.pay(); // bay 1, 20 minutes from 09:00
    const overtimeLight = () => rig.board.pins.level(15);
    assert.equal(rig.board.light('paid', 0), 1);
    rig.clock.advance(20 * 60_000);
    assert.equal(rig.board.light('expired', 0), 1);
    assert.equal(rig.named('bay-expired').length, 1);
    assert.match(rig.board.display.text, /Bay 1 grace \d+m/);
    assert.equal(overtimeLight(), 0, 'in grace');
    rig.clock.advance(10 * 60_000);
    assert.deepEqual(
      rig.named('bay-overtime').map((e) => (e as { bayId: number }).bayId),
      [1],
    );
    assert.equal(overtimeLight(), 1);
    assert.deepEqual(rig.meter.notify.overtime, [1]);
    rig.meter.information.showIdle();
    assert.match(rig.board.display.text, /Bay 1 OVERTIME/);
    // Paying again ends the overtime.
    rig.board.press('ok');
    rig.board.press('ok');
    rig.pay();
    assert.equal(overtimeLight(), 0);
  });

  it('plays the tamper pattern', () => {
    const rig = new Rig();
    rig.meter.bus.emit('tamper', { source: 'cover' });
    rig.clock.advance(2000);
    const tones = rig.board.buzzer.tones.map((t) => t.frequencyHz);
    assert.deepEqual(tones.slice(-6), [3200, 1800, 3200, 1800, 3200, 1800]);
  });
});
