// Security on whole meters: nonces across power cuts, rotation and its window, replay records,
// tamper (keys wiped first, alarm, alert, payments refused until re-key), maintenance sessions,
// cloned cards and torn debits.
import assert from 'node:assert/strict';
import { Meter } from '../../firmware/meter';
import { provisionBoard, SecurityUnit } from '../../firmware/units/security';
import { VirtualBoard } from '../../hal/mock/board';
import { purseCard } from '../../hal/mock/cards';
import { VirtualClock } from '../../hal/mock/clock';
import { VirtualBroker } from '../../hal/mock/mqtt';
import { MemoryPreferences } from '../../hal/mock/preferences';
import type { Preferences } from '../../hal/preferences';
import { nobleCrypto as crypto } from '../../hal/nobleCrypto';
import { openFrame, readFrameSeq, sealFrame } from './support';
import {
  decodeSecurityEvent,
  deriveMeterKeys,
  encodeMaintenanceToken,
  encodeRotation,
  KeyFrame,
  maintenanceProof,
  maintenanceSecret,
  wrapEpochKeys,
} from '../../protocol/keys';
import { downlinkTopic, uplinkTopic } from '../../protocol/topics';
import { HandheldConnection } from '../../sim/handheld/client';
import { deriveCardTokenKey } from '../../protocol/cardToken';

const METER = 4242;
const MASTER = new Uint8Array(32).fill(0x42);

function meterRig(options: { clock?: VirtualClock; board?: VirtualBoard; broker?: VirtualBroker } = {}) {
  const clock = options.clock ?? new VirtualClock('2026-05-01T08:00:00Z');
  const broker = options.broker ?? new VirtualBroker(clock);
  const board = options.board ?? new VirtualBoard({ mqtt: broker.link(), clock });
  const keys = deriveMeterKeys(crypto, MASTER, METER, 1);
  if (!options.board)
    provisionBoard(board.hardware, { ...keys, cardTokenKey: deriveCardTokenKey(crypto, MASTER) }, METER);
  const meter = new Meter(board.hardware, {
    meterId: METER,
    bays: [1],
    rate: { currency: 826, perHour: 240, minMinutes: 15, maxMinutes: 240, stepMinutes: 15 },
  });
  meter.start();
  const platform = broker.link();
  const uplinks: Uint8Array[] = [];
  platform.open({ onConnect() {}, onDisconnect() {}, onMessage: (_t, p) => uplinks.push(p) });
  platform.subscribe(uplinkTopic(METER));
  let downSeq = 1000;
  const down = (type: number, body: Uint8Array, epoch = 1, seq = ++downSeq) => {
    const k = deriveMeterKeys(crypto, MASTER, METER, epoch);
    const frame = sealFrame(crypto, k.downlink, { version: 1, type, meterId: METER, epoch, seq }, body);
    platform.publish(downlinkTopic(METER), frame);
    clock.advance(10);
    return frame;
  };
  clock.advance(10);
  return { clock, broker, board, meter, platform, uplinks, down, keys };
}

/** Preferences that lose power on the n-th write: the write is not done and the meter stops. */
class FailingPreferences implements Preferences {
  constructor(
    readonly inner: MemoryPreferences,
    public writesLeft: number,
  ) {}
  get(d: string, k: string) {
    return this.inner.get(d, k);
  }
  set(d: string, k: string, v: never) {
    if (this.writesLeft-- <= 0) throw new Error('power cut');
    this.inner.set(d, k, v);
  }
  delete(d: string, k: string) {
    this.inner.delete(d, k);
  }
  keys(d: string) {
    return this.inner.keys(d);
  }
}

describe('uplink nonces across restarts and power cuts', () => {
  it('never repeats a (epoch, sequence) pair whatever write the power cut hits', () => {
    const keys = deriveMeterKeys(crypto, MASTER, 9, 1);
    const seen = new Set<number>();
    const memory = new MemoryPreferences();
    SecurityUnit.provision(memory, keys);
    let cuts = 0;
    for (let cycle = 0; cycle < 60; cycle++) {
      const preferences = new FailingPreferences(memory, cycle % 3);
      const unit = new SecurityUnit({ preferences, crypto, meterId: 9 });
      for (let i = 0; i < 70; i++) {
        let frame: Uint8Array;
        try {
          frame = unit.sealUplink(0x01, Uint8Array.of(i));
        } catch {
          cuts++;
          break; // the power is gone: nothing was sent
        }
        const seq = readFrameSeq(frame);
        assert.ok(!seen.has(seq), `sequence ${seq} reused after ${cycle} power cycles`);
        seen.add(seq);
        assert.deepEqual(openFrame(crypto, keys.uplink, frame).body, Uint8Array.of(i));
      }
    }
    assert.ok(cuts > 30, `${cuts} power cuts during a reservation`);
  });
});

describe('key hierarchy on the virtual board', () => {
  it('keeps A and B out of the heap: the SAM and the ATECC608 derive D; the platform agrees', () => {
    const { meter, board, broker, clock } = meterRig();
    assert.equal(meter.security.vaultKind, 'secure-parts');
    assert.equal(meter.security.epoch, 1);
    assert.ok(board.secureElement.state.secret[2]);
    assert.equal(board.sam.state.meterId, METER);
    board.press('ok');
    clock.advance(1000);
    const keys = deriveMeterKeys(crypto, MASTER, METER, 1);
    const uplinks = broker.published.filter((m) => m.topic === uplinkTopic(METER));
    assert.ok(uplinks.length > 0);
    for (const u of uplinks) assert.equal(openFrame(crypto, keys.uplink, u.payload).header.epoch, 1);
  });
});

describe('key rotation and replay', () => {
  it('switches after acknowledging, accepts the old epoch for the window, then refuses it', () => {
    const r = meterRig();
    const next = deriveMeterKeys(crypto, MASTER, METER, 2);
    const body = encodeRotation({ epoch: 2, keys: wrapEpochKeys(crypto, r.keys.downlink, METER, next) });
    const before = r.uplinks.length;
    r.down(KeyFrame.ROTATION, body);
    assert.equal(r.meter.security.epoch, 2);
    const ack = r.uplinks[before];
    const opened = openFrame(crypto, r.keys.uplink, ack); // sealed under the old C
    assert.equal(opened.header.type, KeyFrame.SECURITY);
    const event = decodeSecurityEvent(opened.body);
    assert.equal(event.ev, 'key-epoch');
    assert.equal(event.epoch, 2);
    assert.deepEqual(event.kcv, crypto.sha256(next.uplink).slice(0, 3));
    const refused: string[] = [];
    r.meter.bus.on('downlink-refused', (e) => refused.push(e.reason));
    r.down(0x84, new Uint8Array(0), 1); // in flight under the old epoch: accepted
    r.down(0x84, new Uint8Array(0), 2);
    assert.deepEqual(refused, []);
    r.clock.advance(11 * 60_000);
    r.down(0x84, new Uint8Array(0), 1);
    assert.deepEqual(refused, ['stale-epoch']);
    assert.equal(r.board.sam.state.banks[0], undefined, 'the old bank is erased after the window');
    r.board.press('ok');
    r.clock.advance(1000);
    const last = r.uplinks[r.uplinks.length - 1];
    assert.equal(openFrame(crypto, next.uplink, last).header.epoch, 2);
  });

  it('refuses a rotation whose wrap was made under another key, keeping the epoch', () => {
    const r = meterRig();
    const next = deriveMeterKeys(crypto, MASTER, METER, 2);
    r.down(
      KeyFrame.ROTATION,
      encodeRotation({ epoch: 2, keys: wrapEpochKeys(crypto, new Uint8Array(32), METER, next) }),
    );
    assert.equal(r.meter.security.epoch, 1);
    const codes = r.meter.log.read(1).map((x) => x.bytes);
    assert.ok(codes.some((b) => new TextDecoder().decode(b).includes('security-rotation-refused')));
  });

  it('refuses a replayed downlink and records it as a security event', () => {
    const r = meterRig();
    const frame = r.down(0x84, new Uint8Array(0));
    const refused: string[] = [];
    r.meter.bus.on('downlink-refused', (e) => refused.push(e.reason));
    const seqBefore = r.meter.log.lastSeq;
    r.platform.publish(downlinkTopic(METER), frame);
    r.clock.advance(10);
    assert.deepEqual(refused, ['replay']);
    assert.equal(r.meter.log.lastSeq, seqBefore + 1);
    const text = new TextDecoder().decode(r.meter.log.read(seqBefore + 1)[0].bytes);
    assert.ok(text.includes('security-replay'));
  });
});

describe('tamper', () => {
  it('wipes SAM, secure element and RAM first, then alarms, alerts and refuses payments until re-keyed', () => {
    const r = meterRig();
    const order: string[] = [];
    r.meter.bus.on('keys-wiped', () => order.push('wiped'));
    const tone = r.board.buzzer.tone.bind(r.board.buzzer);
    r.board.buzzer.tone = (f, d) => {
      order.push(`tone ${f}`);
      tone(f, d);
    };
    const before = r.uplinks.length;
    r.meter.bus.emit('cover-opened', { at: r.clock.monotonic() });
    assert.deepEqual(order, ['wiped', 'tone 4000']);
    r.clock.advance(10);
    assert.equal(r.meter.securityManagement.lastTamper?.wipedAfterMs, 0);
    assert.equal(r.board.sam.state.banks[0], undefined);
    assert.equal(r.board.sam.state.cardMaster, undefined);
    assert.equal(
      r.board.secureElement.state.slots[4].every((b) => b === 0),
      true,
    );
    assert.equal(r.meter.security.provisioned, false);
    const alert = r.uplinks[before];
    assert.equal(decodeSecurityEvent(openFrame(crypto, r.keys.uplink, alert).body).ev, 'tamper');
    const refusals: string[] = [];
    r.meter.bus.on('service-unavailable', (e) => refusals.push(e.reason));
    r.board.press('ok');
    assert.ok(refusals[0]?.startsWith('tampered'));
    // A restart does not forget it.
    const again = new Meter(r.board.hardware, r.meter.config);
    assert.equal(again.security.tampered, true);
    assert.equal(again.security.provisioned, false);
    provisionBoard(r.board.hardware, deriveMeterKeys(crypto, MASTER, METER, 3), METER, {
      cardMaster: new Uint8Array(16),
    });
    const rekeyed = new Meter(r.board.hardware, r.meter.config);
    assert.equal(rekeyed.security.tampered, false);
    assert.equal(rekeyed.security.epoch, 3);
  });

  it('during a transaction: the card is not debited and nothing stored is lost', () => {
    const r = meterRig();
    const { card, applet } = purseCard([4, 1, 2, 3], {
      cardNumber: '6280000000000017',
      expiry: { year: 2030, month: 1 },
      cardType: 1,
      balance: 5000,
      limit: 0,
      counter: 0,
      currency: 826,
    });
    r.board.press('ok');
    r.board.press('ok'); // awaiting the card
    const lastSeq = r.meter.log.lastSeq;
    r.meter.bus.emit('cover-opened', { at: r.clock.monotonic() });
    r.board.field.add(card);
    r.clock.advance(300);
    assert.equal(applet.data.balance, 5000);
    assert.ok(r.meter.log.lastSeq > lastSeq);
    assert.equal(r.meter.log.read(1).length, r.meter.log.lastSeq);
  });
});

describe('maintenance sessions', () => {
  function session(r: ReturnType<typeof meterRig>, tokenId: number, expiresIn = 600) {
    const now = Math.floor(r.clock.now() / 1000);
    const token = encodeMaintenanceToken({
      meterId: METER,
      staff: 'alice',
      tokenId,
      notBefore: now - 10,
      expiresAt: now + expiresIn,
    });
    const secret = maintenanceSecret(crypto, r.keys.secrets!.m, token);
    r.meter.bus.emit('maintenance-entry', {}); // the mode key switches the handheld link on
    const conn = new HandheldConnection(r.board.ble);
    const challenge = conn.request({ t: 'hello', token }) as { t: string; c?: Uint8Array; why?: string };
    return { token, secret, challenge, conn };
  }

  it('opens maintenance only with a proven token and the mode keys; then the cover may open', () => {
    const r = meterRig();
    const s = session(r, 1);
    assert.equal(s.challenge.t, 'challenge');
    s.conn.request({ t: 'proof', p: maintenanceProof(crypto, s.secret, s.challenge.c!, METER) });
    assert.equal(r.meter.securityManagement.maintenanceOpen, false);
    r.meter.bus.emit('maintenance-opened', { at: r.clock.now() });
    assert.equal(r.meter.securityManagement.maintenanceOpen, true);
    r.meter.bus.emit('cover-opened', { at: r.clock.monotonic() });
    assert.equal(r.meter.security.provisioned, true, 'no wipe in maintenance');
  });

  it('refuses replayed, expired and wrongly proven tokens, and times out; each is a record', () => {
    const r = meterRig();
    const ok = session(r, 5);
    ok.conn.request({ t: 'proof', p: maintenanceProof(crypto, ok.secret, ok.challenge.c!, METER) });
    r.clock.advance(61_000); // no mode keys: timed out
    r.board.ble.disconnect();
    const replay = session(r, 5);
    assert.equal(replay.challenge.t, 'refused');
    r.board.ble.disconnect();
    const expired = session(r, 6, -1);
    assert.equal(expired.challenge.t, 'refused');
    r.board.ble.disconnect();
    const wrong = session(r, 7);
    assert.equal(wrong.conn.request({ t: 'proof', p: new Uint8Array(32) }).t, 'refused');
    assert.ok(wrong.challenge.c);
    const text = r.meter.log
      .read(1)
      .map((x) => new TextDecoder().decode(x.bytes))
      .join('|');
    for (const code of ['maintenance-session-timeout', 'maintenance-session-refused'])
      assert.ok(text.includes(code), code);
    assert.equal(text.split('maintenance-session-refused').length - 1, 3);
    r.meter.bus.emit('cover-opened', { at: r.clock.monotonic() });
    assert.equal(r.meter.security.provisioned, false, 'the cover opened outside maintenance: wiped');
  });
});

describe('card security on the meter', () => {
  const data = {
    cardNumber: '6280000000000025',
    expiry: { year: 2030, month: 1 },
    cardType: 1 as const,
    balance: 5000,
    limit: 0,
    counter: 3,
    currency: 826,
  };

  it('refuses a cloned card (right UID, wrong key) and reports its UID', () => {
    const r = meterRig();
    const { card, applet } = purseCard([4, 9, 9, 9], data, { key: new Uint8Array(16).fill(1) });
    const refused: string[] = [];
    r.meter.bus.on('payment-refused', (e) => refused.push(e.reason));
    r.board.press('ok');
    r.board.press('ok');
    r.board.field.add(card);
    r.clock.advance(300);
    assert.deepEqual(refused, ['card-cloned']);
    assert.equal(applet.data.balance, 5000);
    const text = r.meter.log.read(r.meter.log.lastSeq)[0].bytes;
    assert.ok(new TextDecoder().decode(text).includes('04090909'));
  });

  for (const tear of ['before-commit', 'after-commit'] as const) {
    it(`completes or leaves unchanged a debit torn ${tear}, once the card comes back`, () => {
      const r = meterRig();
      const { card, applet } = purseCard([4, 7, 7, 7], data);
      const events: string[] = [];
      r.meter.bus.on('payment-refused', (e) => events.push(e.reason));
      r.meter.bus.on('payment-accepted', () => events.push('accepted'));
      r.board.press('ok');
      r.board.press('ok');
      applet.tear = tear;
      r.board.field.add(card);
      r.clock.advance(250);
      assert.deepEqual(events, ['debit-uncertain']);
      r.board.field.remove(card);
      r.board.field.add(card);
      r.clock.advance(500);
      assert.deepEqual(events, ['debit-uncertain', 'accepted']);
      assert.equal(applet.data.counter, 4, 'debited exactly once');
      assert.equal(applet.debits, 1);
    });
  }
});
