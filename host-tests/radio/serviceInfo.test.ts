// Service information: a phone nearby reads the meter's id, its bays and their state and the tariff
// applied, with no token and no pairing, on the info characteristic or as an 'info' message; it
// carries nothing personal (no card, no staff) and follows the bays as they change.
import assert from 'node:assert/strict';
import { Meter } from '../../firmware/meter';
import { provisionBoard } from '../../firmware/units/security';
import { VirtualBoard } from '../../hal/mock/board';
import { purseCard } from '../../hal/mock/cards';
import { VirtualClock } from '../../hal/mock/clock';
import { VirtualBroker } from '../../hal/mock/mqtt';
import { nobleCrypto as crypto } from '../../hal/nobleCrypto';
import { decodeCbor } from '../../protocol/cbor';
import { deriveCardTokenKey } from '../../protocol/cardToken';
import { deriveMeterKeys } from '../../protocol/keys';
import { HandheldConnection } from '../../sim/handheld/client';
import {
  BEACON_COMPANY_ID,
  BEACON_MAX_BYTES,
  BeaconError,
  decodeServiceBeacon,
  encodeServiceBeacon,
  tariffTag,
} from '../../protocol/handheld';

const METER = 7302;
const CARD_NUMBER = '6280000000000983';

interface Info {
  t: string;
  meter: number;
  bays: { bay: number; state: string; until?: number }[];
  tariff: { id: string; version: number; currency: number };
}

function rig() {
  const clock = new VirtualClock('2026-05-01T08:00:00Z');
  const board = new VirtualBoard({ mqtt: new VirtualBroker(clock).link(), clock });
  const master = new Uint8Array(32).fill(3);
  provisionBoard(
    board.hardware,
    { ...deriveMeterKeys(crypto, master, METER, 1), cardTokenKey: deriveCardTokenKey(crypto, master) },
    METER,
  );
  const meter = new Meter(board.hardware, {
    meterId: METER,
    bays: [1, 2],
    rate: { currency: 826, perHour: 240, minMinutes: 15, maxMinutes: 240, stepMinutes: 15 },
    maintenance: { sequence: ['up', 'up', 'down', 'bay'] },
  });
  meter.start();
  const { card } = purseCard([0x04, 9, 8, 3], {
    cardNumber: CARD_NUMBER,
    expiry: { year: 2031, month: 1 },
    cardType: 1,
    balance: 10_000,
    limit: 0,
    counter: 0,
    currency: 826,
  });
  const payBay1 = () => {
    board.press('ok');
    board.press('up');
    board.press('ok');
    board.field.add(card);
    clock.advance(300);
    board.field.remove(card);
  };
  const switchOn = () => {
    for (let i = 0; i < 3; i++) board.press('cancel');
  };
  return { clock, board, meter, payBay1, switchOn };
}

describe('service information', () => {
  it('is read without a token or pairing: meter id, bays and their state, the tariff', () => {
    const r = rig();
    r.payBay1();
    r.switchOn();
    const conn = new HandheldConnection(r.board.ble, 23);
    const read = decodeCbor(r.board.ble.readInfo()) as Info;
    const asked = conn.request({ t: 'info' }) as unknown as Info;
    for (const info of [read, asked]) {
      assert.equal(info.meter, METER);
      assert.deepEqual(
        info.bays.map((b) => [b.bay, b.state]),
        [
          [1, 'paid'],
          [2, 'expired'],
        ],
      );
      assert.equal(info.bays[0].until, r.meter.bays.paidUntil(1));
      assert.equal(info.tariff.currency, 826);
      assert.equal(info.tariff.id, r.meter.charging.tariff.id);
      assert.equal(info.tariff.version, r.meter.charging.tariff.version);
    }
    assert.equal(r.meter.securityManagement.handheldStaff, undefined, 'no session was needed');
  });

  it('carries nothing personal: no card number, no staff, only the documented fields', () => {
    const r = rig();
    r.payBay1();
    r.switchOn();
    r.board.ble.connect();
    const bytes = r.board.ble.readInfo();
    const text = Buffer.from(bytes).toString('latin1');
    assert.ok(!text.includes(CARD_NUMBER) && !text.includes(CARD_NUMBER.slice(-4)), 'no card number');
    const info = decodeCbor(bytes) as Record<string, unknown>;
    assert.deepEqual(Object.keys(info).sort(), ['bays', 'meter', 't', 'tariff']);
    for (const bay of info.bays as Record<string, unknown>[])
      for (const key of Object.keys(bay)) assert.ok(['bay', 'state', 'until'].includes(key), key);
    assert.deepEqual(Object.keys(info.tariff as object).sort(), ['currency', 'id', 'version']);
  });

  it('follows the bays: paid, then past the time paid, as the next connection reads it', () => {
    const r = rig();
    r.payBay1();
    r.switchOn();
    r.board.ble.connect();
    assert.equal((decodeCbor(r.board.ble.readInfo()) as Info).bays[0].state, 'paid');
    r.board.ble.disconnect();
    r.clock.advance(r.meter.bays.paidUntil(1) * 1000 - r.clock.now() + 60_000); // past the time paid
    r.switchOn();
    r.board.ble.connect();
    const state = (decodeCbor(r.board.ble.readInfo()) as Info).bays[0].state;
    assert.ok(['grace', 'overtime'].includes(state), state);
  });

  it('with the link off a passer-by cannot connect, but hears the non-connectable beacon: meter, bays and their state, tariff', () => {
    const r = rig();
    r.payBay1();
    assert.equal(r.board.ble.advertising, false, 'the link is off: nothing connectable');
    assert.equal(r.board.ble.connect(), false, 'a phone cannot connect to read the characteristic');
    r.clock.advance(30_000); // the beacon is brought up to date every 30 s
    const heard = r.board.ble.scanBeacon();
    assert.ok(heard, 'the meter broadcasts its service information');
    assert.equal(heard.companyId, BEACON_COMPANY_ID);
    assert.equal(heard.intervalMs, 2_000, 'slow advertising');
    assert.ok(heard.data.length <= BEACON_MAX_BYTES);
    const beacon = decodeServiceBeacon(heard.data);
    assert.equal(beacon.meterId, METER);
    assert.deepEqual(
      beacon.bays.map((b) => [b.bay, b.state]),
      [
        [1, 'paid'],
        [2, 'expired'],
      ],
    );
    const left = Math.ceil((r.meter.bays.paidUntil(1) - r.clock.now() / 1000) / 60);
    assert.equal(beacon.bays[0].minutesLeft, left);
    assert.equal(beacon.tariff.version, r.meter.charging.tariff.version);
    assert.equal(beacon.tariff.currency, 826);
    assert.equal(beacon.tariff.tag, tariffTag(r.meter.charging.tariff.id));
    assert.equal(beacon.moreBays, false);
    // Nothing personal: the card number is not in it.
    const text = Buffer.from(heard.data).toString('latin1');
    assert.ok(!text.includes(CARD_NUMBER.slice(-4)));
  });

  it('the beacon stops while the connectable service is advertised and while a handheld is connected, and follows the bays', () => {
    const r = rig();
    r.payBay1();
    r.switchOn();
    assert.equal(r.board.ble.scanBeacon(), undefined, 'the connectable service instead');
    r.board.ble.connect();
    assert.equal(r.board.ble.scanBeacon(), undefined, 'nothing while connected');
    r.board.ble.disconnect();
    r.meter.handheld!.switchOff();
    assert.ok(r.board.ble.scanBeacon(), 'back once the link is off');
    r.clock.advance(r.meter.bays.paidUntil(1) * 1000 - r.clock.now() + 60_000); // past the time paid
    const state = decodeServiceBeacon(r.board.ble.scanBeacon()!.data).bays[0].state;
    assert.ok(['grace', 'overtime'].includes(state), state);
  });

  it('the beacon codec: four bays at most (the rest flagged), bad data refused with a BeaconError', () => {
    const info = {
      meterId: 0xfedcba98,
      bays: [1, 2, 3, 4, 5].map((bay) => ({ bay, state: 'free' })),
      tariff: { id: 'zone-a', version: 7, currency: 978 },
    };
    const data = encodeServiceBeacon(info, 0);
    assert.equal(data.length, 11 + 4 * 3, 'header and four bays');
    assert.ok(data.length <= BEACON_MAX_BYTES);
    const beacon = decodeServiceBeacon(data);
    assert.equal(beacon.meterId, 0xfedcba98);
    assert.equal(beacon.bays.length, 4);
    assert.equal(beacon.moreBays, true);
    assert.deepEqual(beacon.tariff, { version: 7, currency: 978, tag: tariffTag('zone-a') });
    const long = encodeServiceBeacon({ ...info, bays: [{ bay: 1, state: 'paid', until: 10 * 86_400 }] }, 0);
    assert.equal(decodeServiceBeacon(long).bays[0].minutesLeft, 4095, 'minutes left capped at 12 bits');
    assert.throws(() => decodeServiceBeacon(data.slice(0, 12)), BeaconError);
    assert.throws(() => decodeServiceBeacon(Uint8Array.of(9, ...data.slice(1))), BeaconError);
    assert.throws(() => encodeServiceBeacon({ ...info, meterId: -1 }, 0), RangeError);
    // The virtual stack refuses what a real one cannot send: too long, or an interval out of range.
    const r = rig();
    const peripheral = r.board.ble.peripheral;
    assert.throws(
      () => peripheral.broadcast!({ companyId: 1, data: new Uint8Array(25), intervalMs: 2_000 }),
      RangeError,
    );
    assert.throws(() => peripheral.broadcast!({ companyId: 1, data, intervalMs: 20_000 }), RangeError);
  });
});
