// Storage (411) and main record (410): the stores restore each other, the upload backup,
// operator releases, memory full, the claim 10 records.
import assert from 'node:assert/strict';
import { EventBus } from '../../firmware/bus';
import type { MeterEvents } from '../../firmware/events';
import { CommsUnit } from '../../firmware/units/comms';
import {
  MainRecord,
  ReleaseRefusedError,
  ServiceUnavailableError,
  StorageDamageError,
} from '../../firmware/units/records';
import { SecurityUnit } from '../../firmware/units/security';
import { RecordStore, StorageFullError } from '../../firmware/units/storage';
import { VirtualClock } from '../../hal/mock/clock';
import { VirtualNorFlash } from '../../hal/mock/flash';
import { MemoryPreferences } from '../../hal/mock/preferences';
import { RecordingMqttLink } from '../../hal/mock/mqtt';
import { nobleCrypto as crypto } from '../../hal/nobleCrypto';
import { toHex } from '../../protocol/bytes';
import { decodeCbor } from '../../protocol/cbor';
import { ProtocolError } from '../../protocol/errors';
import { FRAME_VERSION, FrameType, openFrame, sealFrame } from '../../protocol/frame';
import { deriveMeterKeys } from '../../protocol/keys';
import { decodeRecordsMessage, encodeAckMessage } from '../../protocol/messages';
import {
  decodeRecord,
  encodeRecord,
  MaintenanceCode,
  type MeterRecord,
  OperationCode,
  RecordKind,
} from '../../protocol/records';
import { deriveReleaseKey, STORAGE_CONTROL_FRAME, signReleaseToken } from '../../protocol/release';
import { SCENARIO_METER_ID, TapScenario } from '../../sim/fleet/tapScenario';

const METER = 77;
const SECTOR = 4096;

interface Cells {
  records: Uint8Array;
  backup: Uint8Array;
  upload: Uint8Array;
}

function blank(sectors = 4): Cells {
  return {
    records: new Uint8Array(sectors * SECTOR).fill(0xff),
    backup: new Uint8Array(sectors * SECTOR).fill(0xff),
    upload: new Uint8Array(2 * SECTOR).fill(0xff),
  };
}

function boot(cells: Cells, preferences = new MemoryPreferences(), clock = new VirtualClock()) {
  const flash = {
    records: new VirtualNorFlash({ cells: cells.records, sectorSize: SECTOR }),
    backup: new VirtualNorFlash({ cells: cells.backup, sectorSize: SECTOR }),
    upload: new VirtualNorFlash({ cells: cells.upload, sectorSize: SECTOR }),
  };
  const store = new RecordStore({ ...flash, preferences, crypto });
  const bus = new EventBus<MeterEvents>();
  const faults: unknown[] = [];
  bus.on('fault', (f) => faults.push(f.error));
  const records = new MainRecord({
    log: store,
    ledger: store.ledger,
    crypto,
    clock,
    meterId: METER,
    bus,
    preferences,
  });
  return { flash, store, records, bus, faults, preferences, clock };
}

function codes(store: RecordStore): string[] {
  return store.read(store.firstSeq).map((r) => {
    const record = decodeRecord(r.bytes);
    return record.kind === RecordKind.Transaction ? 'tx' : record.data.code;
  });
}

/** Offset of record `seq`'s entry in a log written from a blank partition (no sector change yet). */
function entryOffset(store: RecordStore, seq: number): number {
  return 8 + store.read(1, seq - 1).reduce((sum, r) => sum + 45 + r.bytes.length, 0);
}

describe('record stores: main and real-time backup restore each other (411)', () => {
  it('writes every record to both stores in step', () => {
    const cells = blank();
    const a = boot(cells);
    for (let i = 0; i < 20; i++) a.records.appendOperation('test', `r${i}`);
    assert.deepEqual(
      a.store.backup.read(1).map((r) => toHex(r.bytes)),
      a.store.main.read(1).map((r) => toHex(r.bytes)),
    );
    const b = boot(cells);
    assert.deepEqual(b.store.report.findings, []);
  });

  it('restores a bit flip in the main store from the backup, with a maintenance record and a fault', () => {
    const cells = blank();
    const a = boot(cells);
    for (let i = 0; i < 10; i++) a.records.appendOperation('test', `r${i}`);
    const held = a.store.read(1).map((r) => toHex(r.bytes));
    cells.records[entryOffset(a.store, 4) + 42] ^= 0x10;
    const b = boot(cells);
    assert.deepEqual(
      b.store.report.findings.map((f) => [f.store, f.action]),
      [['main', 'restored']],
    );
    assert.deepEqual(
      b.store.read(1).map((r) => toHex(r.bytes)),
      held,
      'every record back, bytes equal',
    );
    assert.equal(b.records.verifyChain(), 10);
    b.records.recordBoot('abnormal', 'test');
    b.records.reportBootFaults();
    assert.deepEqual(codes(b.store).slice(10), [MaintenanceCode.StorageRestored, OperationCode.Boot]);
    assert.equal(b.faults.length, 1);
    assert.ok(b.faults[0] instanceof StorageDamageError);
    assert.equal(b.store.lastSeq, 12, 'no sequence number reused');
    assert.deepEqual(boot(cells).store.report.findings, [], 'the repair holds');
  });

  it('restores an erased backup sector from the main store', () => {
    const cells = blank();
    const a = boot(cells);
    for (let i = 0; i < 120; i++) a.records.appendOperation('test', `record number ${i}`);
    assert.ok(a.store.backup.usage.sectorsUsed >= 2);
    cells.backup.fill(0xff, 0, SECTOR); // the first sector erased (or unreadable)
    const b = boot(cells);
    assert.deepEqual(
      b.store.report.findings.map((f) => [f.store, f.action]),
      [['backup', 'restored']],
    );
    assert.equal(b.store.backup.read(1).length, 120);
    assert.deepEqual(boot(cells).store.report.findings, []);
  });

  it('when both stores are damaged in different records, rebuilds both from what each still holds', () => {
    const cells = blank();
    const a = boot(cells);
    for (let i = 0; i < 10; i++) a.records.appendOperation('test', `r${i}`);
    const held = a.store.read(1).map((r) => toHex(r.bytes));
    cells.records[entryOffset(a.store, 3) + 44] ^= 0x01;
    cells.backup[entryOffset(a.store, 7) + 44] ^= 0x01;
    const b = boot(cells);
    assert.deepEqual(
      b.store.report.findings.map((f) => [f.store, f.action]),
      [
        ['backup', 'restored'],
        ['main', 'restored'],
      ],
    );
    assert.deepEqual(
      b.store.read(1).map((r) => toHex(r.bytes)),
      held,
    );
    assert.deepEqual(
      b.store.backup.read(1).map((r) => toHex(r.bytes)),
      held,
    );
  });

  it('reports a record damaged in every copy as lost, never reusing its number; the upload set restores it when it holds it', () => {
    const cells = blank();
    const a = boot(cells);
    for (let i = 0; i < 6; i++) a.records.appendOperation('test', `r${i}`);
    const offset = entryOffset(a.store, 4) + 44;
    cells.records[offset] ^= 0x01;
    cells.backup[offset] ^= 0x01;
    const b = boot(cells);
    assert.deepEqual(
      b.store.report.findings.filter((f) => f.action === 'lost').map((f) => [f.from, f.to]),
      [[4, 4]],
    );
    b.records.recordBoot('abnormal', 'test');
    assert.ok(codes(b.store).includes(MaintenanceCode.RecordsLost));
    assert.ok(b.store.lastSeq > 6, 'numbering goes on after the lost record');
    assert.deepEqual(b.store.main.holes, [[4, 4]]);

    // Same damage, but record 4 is in the upload backup's set: nothing is lost.
    const c = blank();
    const d = boot(c);
    for (let i = 0; i < 6; i++) d.records.appendOperation('test', `r${i}`);
    d.store.uploads.save(d.store.linkOf(2)!, d.store.read(3, 5));
    c.records[offset] ^= 0x01;
    c.backup[offset] ^= 0x01;
    const e = boot(c);
    assert.deepEqual(
      e.store.report.findings.filter((f) => f.action === 'lost'),
      [],
    );
    assert.equal(e.store.read(1).length, 6);
    assert.equal(e.records.verifyChain(), 6);
  });

  it('catches the backup up after a cut between the main and the backup write', () => {
    const cells = blank();
    const a = boot(cells);
    for (let i = 0; i < 3; i++) a.records.appendOperation('test', `r${i}`);
    // The main store's write completes, the backup's never starts.
    const { store } = a;
    const seq = store.lastSeq + 1;
    const bytes = encodeRecord({
      kind: RecordKind.Operation,
      seq,
      time: 1,
      meterId: METER,
      data: { code: 'x', detail: '', card: null },
    });
    store.main.append(seq, crypto.sha256(bytes), bytes, 1);
    const b = boot(cells);
    assert.deepEqual(
      b.store.report.findings.map((f) => f.action),
      ['caught-up'],
    );
    assert.equal(b.store.backup.lastSeq, 4);
  });
});

/** A link that records what is published and lets the test deliver downlinks. */
function fakeLink() {
  const link = new RecordingMqttLink();
  return {
    link,
    sent: link.sent,
    deliver: (p: Uint8Array) => link.deliver(`parklink/v1/meters/${METER}/down`, p),
  };
}

describe('upload backup and operator release (411)', () => {
  const keys = deriveMeterKeys(crypto, new Uint8Array(32).fill(3), METER, 1);
  const releaseKey = deriveReleaseKey(crypto, keys.downlink, METER);

  function meterWithComms(cells: Cells, preferences: MemoryPreferences, clock = new VirtualClock()) {
    const m = boot(cells, preferences, clock);
    const security = new SecurityUnit({ preferences, crypto, meterId: METER });
    const fake = fakeLink();
    const comms = new CommsUnit({
      link: fake.link,
      security,
      log: m.store,
      ledger: m.store.ledger,
      crypto,
      clock,
      timers: clock,
      bus: m.bus,
      ackTimeoutMs: 1000,
    });
    m.bus.on('downlink', (d) => {
      if (d.type === STORAGE_CONTROL_FRAME) m.records.applyRelease(d.body);
    });
    return { ...m, comms, fake };
  }

  let downSeq = 0;
  const downlink = (type: number, body: Uint8Array) =>
    sealFrame(
      crypto,
      keys.downlink,
      { version: FRAME_VERSION, type, meterId: METER, epoch: 1, seq: ++downSeq },
      body,
    );

  it('copies each set to the upload backup and sends the same bytes again after a restart', () => {
    const cells = blank();
    const preferences = new MemoryPreferences();
    SecurityUnit.provision(preferences, keys);
    const a = meterWithComms(cells, preferences);
    for (let i = 0; i < 5; i++) a.records.appendOperation('test', `r${i}`);
    a.comms.start();
    assert.equal(a.fake.sent.length, 1);
    const first = decodeRecordsMessage(openFrame(crypto, keys.uplink, a.fake.sent[0]).body);
    assert.equal(a.store.uploads.current?.firstSeq, 1);
    assert.equal(a.store.uploads.current?.lastSeq, 5);
    a.comms.stop();
    // Restart with more records written meanwhile: the saved set goes first, unchanged.
    const b = meterWithComms(cells, preferences);
    b.records.appendOperation('test', 'after restart');
    b.comms.start();
    const again = decodeRecordsMessage(openFrame(crypto, keys.uplink, b.fake.sent[0]).body);
    assert.deepEqual(again.records.map(toHex), first.records.map(toHex));
    // Its ack marks the slot acknowledged on flash and the next set follows.
    b.fake.deliver(downlink(FrameType.Ack, encodeAckMessage({ seq: 5, hash: b.store.linkOf(5)! })));
    assert.equal(b.store.ledger.acknowledgedSeq, 5);
    assert.equal(b.store.uploads.current?.firstSeq, 6);
    assert.equal(b.fake.sent.length, 2);
  });

  it('discards an unacknowledged set only under a valid release token, and records it', () => {
    const cells = blank();
    const preferences = new MemoryPreferences();
    SecurityUnit.provision(preferences, keys);
    RecordStore.provisionReleaseKey(preferences, releaseKey);
    const clock = new VirtualClock('2026-03-02T09:00:00Z');
    const m = meterWithComms(cells, preferences, clock);
    for (let i = 0; i < 4; i++) m.records.appendOperation('test', `r${i}`);
    m.comms.start();
    const refused: string[] = [];
    m.bus.on('fault', (f) => refused.push((f.error as Error).name));
    const now = Math.floor(clock.now() / 1000);
    const token = (over: Partial<Parameters<typeof signReleaseToken>[2]> = {}, key = releaseKey) =>
      signReleaseToken(crypto, key, {
        meterId: METER,
        fromSeq: 1,
        toSeq: 4,
        issuedAt: now,
        operator: 'ops:alice',
        ...over,
      });

    // Refused: another key, a range not starting at the first unacknowledged record, another meter.
    m.fake.deliver(downlink(STORAGE_CONTROL_FRAME, token({}, new Uint8Array(32))));
    m.fake.deliver(downlink(STORAGE_CONTROL_FRAME, token({ fromSeq: 2 })));
    m.fake.deliver(downlink(STORAGE_CONTROL_FRAME, token({ meterId: 78 })));
    m.fake.deliver(downlink(STORAGE_CONTROL_FRAME, token({ toSeq: 99 })));
    assert.deepEqual(refused, [
      'ProtocolError',
      'ReleaseRefusedError',
      'ReleaseRefusedError',
      'ReleaseRefusedError',
    ]);
    assert.equal(m.store.ledger.acknowledgedSeq, 0);

    const released: MeterEvents['upload-released'][] = [];
    m.bus.on('upload-released', (e) => released.push(e));
    const sentBefore = m.fake.sent.length;
    const valid = token();
    m.fake.deliver(downlink(STORAGE_CONTROL_FRAME, valid));
    assert.deepEqual(released, [{ fromSeq: 1, toSeq: 4, operator: 'ops:alice' }]);
    assert.equal(m.store.ledger.acknowledgedSeq, 4);
    const last = decodeRecord(m.store.read(5, 5)[0].bytes) as MeterRecord;
    assert.equal(last.kind === RecordKind.Maintenance && last.data.code, MaintenanceCode.UploadReleased);
    assert.match(
      last.kind === RecordKind.Maintenance ? last.data.detail : '',
      /records 1\.\.4 released by ops:alice/,
    );
    // The queue moved on: the next set starts with the release's own record.
    const next = decodeRecordsMessage(
      openFrame(crypto, keys.uplink, m.fake.sent[m.fake.sent.length - 1]).body,
    );
    assert.ok(m.fake.sent.length > sentBefore);
    assert.equal(decodeRecord(next.records[0]).seq, 5);
    // The same token again is refused: the range no longer starts at the first unacknowledged record.
    assert.throws(() => m.records.applyRelease(valid), ReleaseRefusedError);
    assert.throws(
      () => m.records.applyRelease(new Uint8Array([0x82, 0x40, 0x40])),
      (e: unknown) => e instanceof ProtocolError,
    );
  });
});

describe('memory full (seed: "unavailable")', () => {
  it('stops selling, shows UNAVAILABLE and records why; resumes when acknowledged uploads free space', () => {
    const s = new TapScenario();
    s.platform.acking = false;
    const events: string[] = [];
    s.meter.bus.on('service-unavailable', () => events.push('unavailable'));
    s.meter.bus.on('service-available', () => events.push('available'));
    let filled = 0;
    while (s.meter.records.available) {
      s.meter.records.appendOperation('fill', 'x'.repeat(400));
      filled++;
      assert.ok(filled < 1000);
    }
    assert.deepEqual(events, ['unavailable']);
    assert.ok(codes(s.meter.log).includes(OperationCode.StorageFull));
    // A driver tries to buy: no sale starts, the screen says why, no card is touched.
    const before = s.meter.log.lastSeq;
    s.board.press('ok');
    assert.match(s.board.display.text, /unavailable/i);
    assert.equal(s.meter.transactions.state, 'idle');
    assert.equal(s.meter.log.lastSeq, before);
    assert.throws(
      () =>
        s.meter.records.appendTransaction({
          transactionNumber: 1,
          card: { token: new Uint8Array(16), last4: '0001' },
          cardExpiry: '2812',
          cardType: 1,
          bayId: 1,
          minutes: 15,
          paidFrom: 0,
          paidUntil: 900,
          charge: 60,
          currency: 826,
          remainingValue: 0,
        }),
      ServiceUnavailableError,
    );
    // Operation notices still fit in the reserve.
    assert.ok(s.meter.log.freeBytes > 0);

    s.platform.acking = true;
    s.clock.advance(20 * 60_000); // the retry timer fires; acks free sectors
    assert.deepEqual(
      events.slice(-2),
      ['unavailable', 'available'],
      'the key press re-announced it, then it ended',
    );
    assert.equal(s.meter.ledger.acknowledgedSeq, s.meter.log.lastSeq);
    const notProvided = s.meter.log
      .read(1)
      .map((r) => decodeRecord(r.bytes))
      .find((r) => r.kind === RecordKind.Operation && r.data.code === OperationCode.ServiceNotProvided);
    assert.ok(notProvided?.kind === RecordKind.Operation && notProvided.data.period);
    assert.doesNotMatch(s.board.display.text, /unavailable/i);
    assert.match(s.tap(0).display, /PAID/);
    assert.equal(s.platform.records(SCENARIO_METER_ID).length, s.meter.log.lastSeq);
  });

  it('never overwrites an unacknowledged record: a store with no room refuses the append', () => {
    const cells = blank(2);
    const m = boot(cells);
    assert.throws(() => {
      for (let i = 0; i < 1000; i++)
        m.store.append(m.store.lastSeq + 1, new Uint8Array(32), new Uint8Array(500), 1);
    }, StorageFullError);
    assert.equal(m.store.main.lastSeq, m.store.backup.lastSeq, 'neither store took the refused record');
  });
});

describe('claim 10 records', () => {
  it('round-trips operation periods and quantities and the transaction rate rule; refuses bad shapes', () => {
    const op: MeterRecord = {
      kind: RecordKind.Operation,
      seq: 9,
      time: 1_772_440_200,
      meterId: 1001,
      data: {
        code: OperationCode.DailyOperatingHours,
        detail: '23.50 h',
        card: null,
        period: { from: 1_772_409_600, to: 1_772_496_000 },
        quantity: 84_600,
      },
    };
    assert.deepEqual(decodeRecord(encodeRecord(op)), op);
    const battery: MeterRecord = {
      ...op,
      data: { code: OperationCode.BatteryLow, detail: 'pack 2', card: null, quantity: 12 },
    };
    assert.deepEqual(decodeRecord(encodeRecord(battery)), battery);
    const plain: MeterRecord = {
      ...op,
      data: {
        code: OperationCode.CardBlacklisted,
        detail: 'stolen',
        card: { token: new Uint8Array(16).fill(1), last4: '6280' },
      },
    };
    assert.equal(
      (decodeCbor(encodeRecord(plain)) as unknown[][])[5].length,
      3,
      'no period, no quantity: 3 fields',
    );
    const tx: MeterRecord = {
      kind: RecordKind.Transaction,
      seq: 1,
      time: 1_772_440_200,
      meterId: 1001,
      data: {
        transactionNumber: 1,
        card: { token: new Uint8Array(16).fill(0x17), last4: '0017' },
        cardExpiry: '2812',
        cardType: 1,
        bayId: 2,
        minutes: 60,
        paidFrom: 1_772_440_200,
        paidUntil: 1_772_443_800,
        charge: 240,
        currency: 826,
        remainingValue: 19_760,
        tariffRule: 7,
      },
    };
    assert.deepEqual(decodeRecord(encodeRecord(tx)), tx);
    const maintenance: MeterRecord = {
      ...op,
      kind: RecordKind.Maintenance,
      data: { code: MaintenanceCode.BatteryReplaced, detail: 'pack 1' },
    };
    assert.deepEqual(decodeRecord(encodeRecord(maintenance)), maintenance);
    // A period with one end, or ending before it starts, is refused.
    const bad = encodeRecord({ ...op, data: { ...op.data, period: { from: 10, to: 5 } } } as MeterRecord);
    assert.throws(
      () => decodeRecord(bad),
      (e: unknown) => e instanceof ProtocolError && e.code === 'bad-field',
    );
  });

  it('dates the downtime before a restart and keeps cumulative daily operating hours', () => {
    const cells = blank();
    const preferences = new MemoryPreferences();
    const clock = new VirtualClock('2026-03-02T22:00:00Z');
    const a = boot(cells, preferences, clock);
    a.records.recordBoot('first', 'test');
    a.records.startOperatingLog(clock);
    clock.advance(3 * 3_600_000); // past midnight
    const daily = a.store
      .read(1)
      .map((r) => decodeRecord(r.bytes))
      .filter((r) => r.kind === RecordKind.Operation && r.data.code === OperationCode.DailyOperatingHours);
    assert.equal(daily.length, 1);
    const d = daily[0];
    assert.ok(d.kind === RecordKind.Operation);
    assert.equal(d.data.quantity, 2 * 3600, '22:00 to midnight');
    assert.equal(d.data.period?.to, Date.parse('2026-03-03T00:00:00Z') / 1000);
    // Power goes at 01:00; back at 05:00: the boot record carries the downtime since the last checkpoint.
    const off = Math.floor(clock.now() / 1000);
    const back = new Date(clock.now() + 4 * 3_600_000).toISOString();
    // (a new clock: the powered-off meter's timers do not run on)
    const later = new VirtualClock(back);
    const b = boot(cells, preferences, later);
    b.records.recordBoot('abnormal', 'test');
    const last = decodeRecord(b.store.read(b.store.lastSeq)[0].bytes);
    assert.ok(last.kind === RecordKind.Operation && last.data.code === OperationCode.Boot);
    assert.match(last.data.detail, /^abnormal restart/);
    assert.deepEqual(last.data.period, { from: off, to: off + 4 * 3600 });
  });
});
