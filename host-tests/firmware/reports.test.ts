// Reports on demand (414b, 0x8C/0x0C) on a whole virtual meter whose platform side is a test double
// on the virtual broker that acknowledges every record set: a status request sends the status
// uplink now; a records request re-sends the acknowledged records of the range as ordinary record
// sets and answers with the part it could not send and why (released from storage, not yet
// acknowledged, not recorded); a time range picks records by their time; a bad request is refused
// with a typed reason and leaves storage as it was; a request handed in by the handheld's path is answered too.
import assert from 'node:assert/strict';
import { Meter } from '../../firmware/meter';
import { provisionBoard } from '../../firmware/units/security';
import { VirtualBoard } from '../../hal/mock/board';
import { VirtualClock } from '../../hal/mock/clock';
import { VirtualBroker } from '../../hal/mock/mqtt';
import { nobleCrypto as crypto } from '../../hal/nobleCrypto';
import { deriveCardTokenKey } from '../../protocol/cardToken';
import { chainLink } from '../../protocol/chain';
import { encodeCbor } from '../../protocol/cbor';
import { FrameType, openFrame, sealFrame } from '../../protocol/frame';
import { deriveMeterKeys } from '../../protocol/keys';
import { decodeRecordsMessage, encodeAckMessage } from '../../protocol/messages';
import { recordHeader } from '../../protocol/records';
import {
  decodeReportAnswer,
  encodeReportRequest,
  REPORT_ANSWER_UPLINK,
  REPORT_REQUEST_DOWNLINK,
  type ReportRequest,
} from '../../protocol/reports';
import { decodeStatusMessage, STATUS_FRAME } from '../../protocol/status';
import { downlinkTopic, uplinkTopic } from '../../protocol/topics';

const METER = 4747;
const MASTER = new Uint8Array(32).fill(0x47);
const RATE = { currency: 826, perHour: 240, minMinutes: 15, maxMinutes: 240, stepMinutes: 15 };

function rig(options: { sensors?: boolean } = {}) {
  const clock = new VirtualClock('2026-05-01T08:00:00Z');
  const broker = new VirtualBroker(clock);
  const board = new VirtualBoard({ mqtt: broker.link(), clock, sensors: options.sensors ?? false });
  const keys = deriveMeterKeys(crypto, MASTER, METER, 1);
  provisionBoard(board.hardware, { ...keys, cardTokenKey: deriveCardTokenKey(crypto, MASTER) }, METER);
  const meter = new Meter(board.hardware, { meterId: METER, bays: [1, 2], rate: RATE });
  const platform = broker.link();
  const uplinks: { type: number; body: Uint8Array }[] = [];
  let downSeq = 1000;
  let acking = true;
  const down = (type: number, body: Uint8Array) => {
    const frame = sealFrame(
      crypto,
      keys.downlink,
      { version: 1, type, meterId: METER, epoch: 1, seq: ++downSeq },
      body,
    );
    platform.publish(downlinkTopic(METER), frame);
    clock.advance(10);
    return frame;
  };
  platform.open({
    onConnect() {},
    onDisconnect() {},
    onMessage: (_t, frame) => {
      const opened = openFrame(crypto, keys.uplink, frame);
      uplinks.push({ type: opened.header.type, body: opened.body });
      if (opened.header.type === FrameType.Records && acking) {
        // The platform double acknowledges every set with its last record and chain link.
        const set = decodeRecordsMessage(opened.body);
        let link = set.previous;
        for (const r of set.records) link = chainLink(crypto, link, r);
        const seq = recordHeader(set.records[set.records.length - 1]).seq;
        queueMicrotask(() => down(FrameType.Ack, encodeAckMessage({ seq, hash: link })));
      }
    },
  });
  platform.subscribe(uplinkTopic(METER));
  meter.start();
  clock.advance(10);
  const answers = () =>
    uplinks.filter((u) => u.type === REPORT_ANSWER_UPLINK).map((u) => decodeReportAnswer(u.body));
  /** Record sequence numbers re-sent or sent in record sets since `from` (an index into uplinks). */
  const recordSeqs = (from: number) =>
    uplinks
      .slice(from)
      .filter((u) => u.type === FrameType.Records)
      .flatMap((u) => decodeRecordsMessage(u.body).records.map((r) => recordHeader(r).seq));
  const request = (r: ReportRequest) => down(REPORT_REQUEST_DOWNLINK, encodeReportRequest(r));
  const settle = async () => {
    for (let i = 0; i < 50; i++) {
      await Promise.resolve();
      clock.advance(10);
    }
  };
  return {
    clock,
    board,
    meter,
    uplinks,
    answers,
    recordSeqs,
    request,
    down,
    settle,
    stopAcking: () => {
      acking = false;
    },
  };
}

describe('reports on demand on a meter (0x8C/0x0C)', () => {
  it('a status request sends the status report now and answers that it went', async () => {
    const r = rig({ sensors: true });
    const before = r.uplinks.length;
    r.request({ requestId: 7, kind: 'status' });
    const sent = r.uplinks.slice(before);
    const status = sent.filter((u) => u.type === STATUS_FRAME).map((u) => decodeStatusMessage(u.body));
    assert.equal(status.length, 1);
    assert.equal(status[0].kind, 'status');
    assert.deepEqual(r.answers(), [{ requestId: 7, kind: 'status', ok: true, statusSent: true }]);
  });

  it('without the guard, the status report carries the monitor’s module states', () => {
    const r = rig({ sensors: false });
    const before = r.uplinks.length;
    r.request({ requestId: 8, kind: 'status' });
    const status = r.uplinks
      .slice(before)
      .filter((u) => u.type === STATUS_FRAME)
      .map((u) => decodeStatusMessage(u.body));
    assert.equal(status.length, 1);
    assert.ok(status[0].kind === 'status' && status[0].modules.storage !== undefined);
  });

  it('re-sends the acknowledged records of a range and names the part not recorded yet', async () => {
    const r = rig();
    for (let i = 0; i < 6; i++) r.meter.records.appendMaintenance('test', `entry ${i}`);
    await r.settle();
    const last = r.meter.log.lastSeq;
    assert.equal(r.meter.ledger.acknowledgedSeq, last, 'the platform double acknowledged them all');
    const before = r.uplinks.length;
    r.request({ requestId: 11, kind: 'records', fromSeq: 2, toSeq: last + 3 });
    assert.deepEqual(
      r.recordSeqs(before),
      Array.from({ length: last - 1 }, (_, i) => i + 2),
    );
    const answer = r.answers().at(-1);
    assert.deepEqual(answer, {
      requestId: 11,
      kind: 'records',
      ok: true,
      held: { from: 1, to: last },
      acknowledged: last,
      sent: [{ from: 2, to: last }],
      missing: [{ from: last + 1, to: last + 3, reason: 'not-recorded' }],
    });
    await r.settle();
    assert.equal(r.meter.ledger.acknowledgedSeq, last, 'the acks of the re-sent sets change nothing');
  });

  it('does not send unacknowledged records twice: they are named pending-upload', async () => {
    const r = rig();
    await r.settle();
    const acked = r.meter.log.lastSeq;
    r.stopAcking();
    for (let i = 0; i < 3; i++) r.meter.records.appendMaintenance('test', `late ${i}`);
    await r.settle(); // the ordinary upload's first set reaches the platform double, which does not ack
    const last = r.meter.log.lastSeq;
    const before = r.uplinks.length;
    r.request({ requestId: 12, kind: 'records', fromSeq: 1, toSeq: last });
    const answer = r.answers().at(-1);
    assert.deepEqual(answer?.sent, [{ from: 1, to: acked }]);
    assert.deepEqual(answer?.missing, [{ from: acked + 1, to: last, reason: 'pending-upload' }]);
    assert.deepEqual(
      r.recordSeqs(before),
      Array.from({ length: acked }, (_, i) => i + 1),
    );
  });

  it('names records released from storage once acknowledged, and re-sends the rest', async () => {
    const r = rig();
    // Enough acknowledged records that the store erases its oldest sectors to take new ones.
    let n = 0;
    while (r.meter.log.firstSeq <= 1 && n < 4000) {
      r.meter.records.appendMaintenance('test', `filler ${n++} ${'x'.repeat(200)}`);
      await Promise.resolve();
      r.clock.advance(10);
    }
    await r.settle();
    const first = r.meter.log.firstSeq;
    assert.ok(first > 1, 'the oldest records were released');
    const before = r.uplinks.length;
    r.request({ requestId: 13, kind: 'records', fromSeq: first - 2, toSeq: first + 1 });
    const answer = r.answers().at(-1);
    // The oldest held record's predecessor is gone, so no set can start at it.
    assert.deepEqual(answer?.missing, [
      { from: first - 2, to: first - 1, reason: 'released' },
      { from: first, to: first, reason: 'no-chain-link' },
    ]);
    assert.deepEqual(answer?.sent, [{ from: first + 1, to: first + 1 }]);
    assert.deepEqual(r.recordSeqs(before), [first + 1]);
  });

  it('a time range re-sends the records whose time falls in it', async () => {
    const r = rig();
    await r.settle();
    const t0 = Math.floor(r.clock.now() / 1000);
    r.clock.advance(3_600_000);
    r.meter.records.appendMaintenance('test', 'in the hour');
    const inside = r.meter.log.lastSeq;
    r.clock.advance(3_600_000);
    r.meter.records.appendMaintenance('test', 'after it');
    await r.settle();
    const before = r.uplinks.length;
    r.request({ requestId: 14, kind: 'records', since: t0 + 3000, until: t0 + 4000 });
    assert.deepEqual(r.recordSeqs(before), [inside]);
    assert.deepEqual(r.answers().at(-1)?.sent, [{ from: inside, to: inside }]);
  });

  it('refuses a bad request with a typed reason and leaves storage as it was', async () => {
    const r = rig();
    await r.settle();
    const lastSeq = r.meter.log.lastSeq;
    const acked = r.meter.ledger.acknowledgedSeq;
    r.down(REPORT_REQUEST_DOWNLINK, encodeCbor({ r: 21, k: 'records', from: 9, to: 3 }));
    r.down(REPORT_REQUEST_DOWNLINK, encodeCbor({ r: 22, k: 'records' }));
    r.down(REPORT_REQUEST_DOWNLINK, encodeCbor({ r: 23, k: 'status', from: 1, to: 2 }));
    r.down(REPORT_REQUEST_DOWNLINK, encodeCbor({ r: 24, k: 'everything' }));
    r.down(REPORT_REQUEST_DOWNLINK, new Uint8Array([0xff, 0x00]));
    const refused = r.answers().map((a) => [a.requestId, a.ok, a.code]);
    assert.deepEqual(refused, [
      [21, false, 'bad-range'],
      [22, false, 'bad-range'],
      [23, false, 'bad-range'],
      [24, false, 'bad-request'],
      [0, false, 'bad-request'],
    ]);
    assert.match(r.answers()[0].why ?? '', /9\.\.3 is empty/);
    assert.equal(r.meter.log.lastSeq, lastSeq);
    assert.equal(r.meter.ledger.acknowledgedSeq, acked);
    assert.equal(r.meter.log.read(1).length, lastSeq, 'every record still held');
  });

  it('answers a sealed request handed to receiveDownlink, the path a handheld’s downlinks take', async () => {
    const r = rig();
    await r.settle();
    const sealed = sealFrame(
      crypto,
      deriveMeterKeys(crypto, MASTER, METER, 1).downlink,
      { version: 1, type: REPORT_REQUEST_DOWNLINK, meterId: METER, epoch: 1, seq: 5000 },
      encodeReportRequest({ requestId: 31, kind: 'records', fromSeq: 1, toSeq: 1 }),
    );
    const outcome = r.meter.comms.receiveDownlink(sealed);
    assert.deepEqual(outcome, { ok: true, type: REPORT_REQUEST_DOWNLINK, seq: 5000 });
    await r.settle();
    assert.deepEqual(r.answers().at(-1)?.sent, [{ from: 1, to: 1 }]);
  });
});
