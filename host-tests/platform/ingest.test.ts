import assert from 'node:assert/strict';
import { NodeMqttLink } from '../../hal/mock/mqtt.node';
import { toHex } from '../../protocol/bytes';
import { FrameType } from '../../protocol/frame';
import { encodeTimeRequest, TIME_ANSWER_DOWNLINK, TIME_REQUEST_UPLINK, TimeState } from '../../protocol/time';
import { until } from '../support/until';
import { encodeCbor } from '../../protocol/cbor';
import { encodeRecord, RecordKind } from '../../protocol/records';
import { downlinkTopic, meterClientId, meterIdOfTopic, uplinkTopic } from '../../protocol/topics';
import {
  BrokerCredentials,
  PLATFORM_MQTT_USER,
  withCredentials,
} from '../../platform-server/core/brokerAuth';
import {
  type Accepted,
  Ingest,
  type IngestOutcome,
  type Refusal,
  type StoredRecord,
} from '../../platform-server/ingest/gate';
import { createPlatform, type Platform } from '../../platform-server/platform';
import {
  CapturingLogger,
  forEachBackend,
  randomMeterId,
  TestMeter,
  waitForEvent,
} from '../../sim/fleet/platform';

forEachBackend('ingest', (backend) => {
  let platform: Platform;
  let drop: () => Promise<void>;
  let logger: CapturingLogger;
  const stored: StoredRecord[] = [];

  before(async () => {
    const fresh = await backend.fresh();
    drop = fresh.drop;
    logger = new CapturingLogger();
    platform = await createPlatform({
      ...fresh.config,
      httpLogger: false,
      logger,
      onStored: (s) => stored.push(s),
    });
  });

  after(async () => {
    await platform?.close();
    await drop?.();
  });

  async function newMeter(name = 'test meter'): Promise<TestMeter> {
    const id = randomMeterId();
    return new TestMeter(id, await platform.provisionMeter(id, name));
  }

  /** A meter on its own MQTT link, as a virtual meter would be. */
  async function connect(meter: TestMeter) {
    const link = new NodeMqttLink({
      url: platform.brokerUrl,
      clientId: `parklink-meter-${meter.id}`,
      ...platform.meterMqttCredentials(meter.id),
      cleanSession: backend.real, // leave no session behind on a shared broker
    });
    const acks: Uint8Array[] = [];
    const waiters: ((frame: Uint8Array) => void)[] = [];
    link.open({
      onConnect() {},
      onDisconnect() {},
      onMessage(topic, payload) {
        if (topic !== downlinkTopic(meter.id)) return;
        const waiter = waiters.shift();
        if (waiter) waiter(payload);
        else acks.push(payload);
      },
    });
    await link.waitConnected();
    await link.subscribeAsync(downlinkTopic(meter.id));
    const nextAck = () => acks.shift() ?? new Promise<Uint8Array>((resolve) => waiters.push(resolve));
    return {
      link,
      /** Publishes a frame and resolves with the ack downlink it brings, opened. */
      async sendForAck(frame: Uint8Array) {
        await link.publishAsync(uplinkTopic(meter.id), frame);
        return meter.openAck(await nextAck());
      },
      /**
       * Publishes a frame and resolves with ingest's outcome and, when accepted, the ack downlink.
       * On another meter's topic the frame is published by that meter (logged in as itself: the
       * broker lets no meter publish on another's topic), as a meter claiming to be this one would.
       */
      async send(frame: Uint8Array, topic = uplinkTopic(meter.id)) {
        const outcome = waitForEvent<IngestOutcome>(
          platform.ingest,
          'outcome',
          (o) => o.meterId === meter.id || ('topic' in o && o.topic === topic),
        );
        const owner = meterIdOfTopic(topic);
        if (owner !== undefined && owner !== meter.id) {
          const claimant = new NodeMqttLink({
            url: platform.brokerUrl,
            clientId: meterClientId(owner),
            ...platform.meterMqttCredentials(owner),
            cleanSession: true,
          });
          claimant.open({ onConnect() {}, onDisconnect() {}, onMessage() {} });
          try {
            await claimant.waitConnected();
            await claimant.publishAsync(topic, frame);
          } finally {
            await claimant.closeAsync();
          }
        } else await link.publishAsync(topic, frame);
        const result = await outcome;
        if (!result.ok) return { outcome: result };
        return { outcome: result, ack: meter.openAck(await nextAck()) };
      },
    };
  }

  async function count(table: string, meterId: number): Promise<number> {
    const r = await platform.db.query<{ n: number }>(
      `SELECT count(*) AS n FROM ${table} WHERE meter_id = $1`,
      [meterId],
    );
    return r.rows[0].n;
  }

  async function snapshot(meterId: number) {
    const meter = await platform.db.query<{ last_uplink_seq: number; downlink_seq: number }>(
      'SELECT last_uplink_seq, downlink_seq FROM meters WHERE id = $1',
      [meterId],
    );
    return {
      records: await count('records', meterId),
      transactions: await count('transactions', meterId),
      gaps: await count('record_gaps', meterId),
      meter: meter.rows[0],
    };
  }

  it("keeps taking a meter's frames while a routed frame's follow-up publishes its answer on the same connection", async () => {
    const meter = await newMeter();
    const downlinkTypes: number[] = [];
    const link = new NodeMqttLink({
      url: platform.brokerUrl,
      clientId: `parklink-meter-${meter.id}`,
      ...platform.meterMqttCredentials(meter.id),
      cleanSession: backend.real,
    });
    link.open({
      onConnect() {},
      onDisconnect() {},
      onMessage(topic, payload) {
        if (topic === downlinkTopic(meter.id)) downlinkTypes.push(payload[1]);
      },
    });
    try {
      await link.waitConnected();
      await link.subscribeAsync(downlinkTopic(meter.id));
      // A time request: its follow-up seals the 0x88 answer and waits for the broker to take it, which
      // it does over ingest's own connection.
      const request = encodeTimeRequest({ id: 7, t1: Date.now(), state: TimeState.Unset });
      await link.publishAsync(
        uplinkTopic(meter.id),
        meter.frame(0, 0, { type: TIME_REQUEST_UPLINK, body: request }),
      );
      meter.transactions(1);
      await link.publishAsync(uplinkTopic(meter.id), meter.frame(1, 1));
      await until(
        async () => (await count('records', meter.id)) === 1,
        'the set sent after the time request to be stored',
        15_000,
      );
      await until(
        () => downlinkTypes.includes(TIME_ANSWER_DOWNLINK) && downlinkTypes.includes(FrameType.Ack),
        'the time answer and the ack',
        15_000,
      );
    } finally {
      await link.closeAsync();
    }
  });

  it('stores a valid set once and acknowledges it with the last seq and its link', async () => {
    const meter = await newMeter();
    const { link, send } = await connect(meter);
    try {
      meter.transactions(2);
      meter.operation();
      const before = stored.length;
      const { outcome, ack } = await send(meter.frame(1, 3));
      assert.equal(outcome.ok, true);
      assert.ok(ack);
      assert.equal(ack.header.type, FrameType.Ack);
      assert.equal(ack.header.meterId, meter.id);
      assert.equal(ack.header.epoch, 1);
      assert.equal(ack.header.seq, 1);
      assert.equal(ack.ack.seq, 3);
      assert.deepEqual(ack.ack.hash, meter.link(3));

      const rows = await platform.db.query<{
        seq: number;
        kind: number;
        bytes: Uint8Array;
        link: Uint8Array;
      }>('SELECT seq, kind, bytes, link FROM records WHERE meter_id = $1 ORDER BY seq', [meter.id]);
      assert.deepEqual(
        rows.rows.map((r) => r.seq),
        [1, 2, 3],
      );
      assert.deepEqual(
        rows.rows.map((r) => r.kind),
        [RecordKind.Transaction, RecordKind.Transaction, RecordKind.Operation],
      );
      rows.rows.forEach((r) => {
        assert.deepEqual(r.bytes, meter.bytes(r.seq));
        assert.deepEqual(r.link, meter.link(r.seq));
      });
      const tx = await platform.db.query<{ seq: number; minutes: number; charge: number; paid_until: Date }>(
        'SELECT seq, minutes, charge, paid_until FROM transactions WHERE meter_id = $1 ORDER BY seq',
        [meter.id],
      );
      assert.equal(tx.rows.length, 2);
      assert.equal(tx.rows[0].minutes, 30);
      assert.equal(tx.rows[0].charge, 120);
      assert.equal(tx.rows[0].paid_until.getTime(), (1_767_600_000 + 60 + 30 * 60) * 1000);
      const op = await platform.db.query<{ code: string; card_token: string; card_last4: string }>(
        'SELECT code, card_token, card_last4 FROM operations WHERE meter_id = $1',
        [meter.id],
      );
      assert.deepEqual(op.rows, [
        { code: 'card-refused', card_token: toHex(meter.card('6280000000000099').token), card_last4: '0099' },
      ]);
      const events = stored.slice(before).filter((s) => s.meterId === meter.id);
      assert.deepEqual(
        events.map((s) => s.record.seq),
        [1, 2, 3],
      );
      const state = await snapshot(meter.id);
      assert.equal(state.meter.last_uplink_seq, 1);
      assert.equal(state.meter.downlink_seq, 1);
    } finally {
      await link.closeAsync();
    }
  });

  it('stores nothing new for a re-sent set in a new frame and acknowledges it again', async () => {
    const meter = await newMeter();
    const { link, send } = await connect(meter);
    try {
      meter.transactions(3);
      const first = await send(meter.frame(1, 3));
      assert.equal(first.outcome.ok, true);
      const before = stored.length;
      const again = await send(meter.frame(1, 3));
      assert.equal(again.outcome.ok, true);
      assert.equal((again.outcome as Accepted).stored.length, 0);
      assert.equal((again.outcome as Accepted).duplicates, 3);
      assert.ok(again.ack);
      assert.equal(again.ack.header.seq, 2, 'the next downlink sequence number');
      assert.equal(again.ack.ack.seq, 3);
      assert.deepEqual(again.ack.ack.hash, meter.link(3));
      assert.equal(await count('records', meter.id), 3);
      assert.equal(await count('transactions', meter.id), 3);
      assert.equal(stored.filter((s, i) => i >= before && s.meterId === meter.id).length, 0);

      // A set overlapping what is held stores only the new records.
      meter.transactions(2);
      const overlap = await send(meter.frame(2, 5));
      assert.equal(overlap.outcome.ok, true);
      assert.deepEqual(
        (overlap.outcome as Accepted).stored.map((s) => s.record.seq),
        [4, 5],
      );
      assert.equal(overlap.ack?.ack.seq, 5);
      assert.deepEqual(overlap.ack?.ack.hash, meter.link(5));
      assert.equal(await count('records', meter.id), 5);
    } finally {
      await link.closeAsync();
    }
  });

  describe('refuses bad frames, logs the reason and stores nothing from them', () => {
    let meter: TestMeter;
    let other: TestMeter;
    let conn: Awaited<ReturnType<typeof connect>>;

    before(async () => {
      meter = await newMeter('refusals');
      other = await newMeter('other');
      conn = await connect(meter);
      meter.transactions(3);
      const { outcome } = await conn.send(meter.frame(1, 3));
      assert.equal(outcome.ok, true);
    });

    after(async () => {
      await conn?.link.closeAsync();
    });

    async function expectRefused(
      frame: () => Uint8Array,
      reason: Refusal['reason'],
      topic?: string,
      meterIdInLog = meter.id,
    ) {
      const before = await snapshot(meter.id);
      const logged = logger.refusals(meterIdInLog).length;
      const { outcome } = await conn.send(frame(), topic);
      assert.equal(outcome.ok, false, `expected a refusal (${reason})`);
      assert.equal((outcome as Refusal).reason, reason, (outcome as Refusal).detail);
      const log = logger.refusals(meterIdInLog).slice(logged);
      assert.equal(log.length, 1);
      assert.equal(log[0].obj.reason, reason);
      assert.equal(log[0].level, 'warn');
      const refused = await platform.db.query<{ reason: string }>(
        'SELECT reason FROM refused_frames WHERE meter_id = $1 ORDER BY id DESC LIMIT 1',
        [meterIdInLog],
      );
      assert.equal(refused.rows[0]?.reason, reason);
      assert.deepEqual(await snapshot(meter.id), before, 'nothing stored, no sequence number advanced');
    }

    it('malformed bytes', async () => {
      await expectRefused(() => Uint8Array.of(1, 1, 0, 0), 'truncated');
      await expectRefused(() => {
        const frame = meter.frame(1, 1);
        frame[0] = 9;
        return frame;
      }, 'bad-version');
      await expectRefused(() => meter.frame(1, 1, { body: Uint8Array.of(0xff, 0x00, 0x13) }), 'bad-cbor');
      await expectRefused(
        () => meter.frame(1, 1, { body: encodeCbor({ prev: meter.link(0) }) }),
        'bad-field',
      );
      await expectRefused(
        () =>
          meter.frame(4, 4, { records: [encodeCbor([1, RecordKind.Transaction, 4, 0, meter.id, ['x']])] }),
        'bad-field',
      );
      await expectRefused(() => meter.frame(1, 1, { type: FrameType.Ack }), 'bad-type');
    });

    it('wrong key', async () => {
      await expectRefused(() => meter.frame(1, 3, { key: other.keys.uplink }), 'decrypt-failed');
      // Tampered ciphertext under the right key.
      await expectRefused(() => {
        const frame = meter.frame(1, 3);
        frame[frame.length - 20] ^= 1;
        return frame;
      }, 'decrypt-failed');
    });

    it('wrong epoch', async () => {
      await expectRefused(() => meter.frame(1, 3, { epoch: 2 }), 'stale-epoch');
    });

    it('unknown meter', async () => {
      const stranger = new TestMeter(randomMeterId(), meter.keys);
      stranger.transactions(1);
      await expectRefused(() => stranger.frame(1, 1), 'unknown-meter', uplinkTopic(stranger.id), stranger.id);
    });

    it("topic naming another meter than the header's", async () => {
      await expectRefused(() => meter.frame(1, 3), 'topic-mismatch', uplinkTopic(other.id), meter.id);
    });

    it('replayed frame sequence number', async () => {
      const valid = meter.frame(1, 3);
      const { outcome } = await conn.send(valid);
      assert.equal(outcome.ok, true);
      await expectRefused(() => valid, 'replay');
      await expectRefused(() => meter.frame(1, 3, { seq: 1 }), 'replay');
    });

    it('records of another meter, or not contiguous', async () => {
      other.transactions(2);
      await expectRefused(() => meter.frame(4, 4, { records: [other.bytes(1)] }), 'record-meter-mismatch');
      const a = encodeRecord({ ...meter.transaction(), seq: 4 });
      const b = encodeRecord({ ...meter.transaction(), seq: 6 });
      await expectRefused(() => meter.frame(4, 5, { records: [a, b] }), 'not-contiguous');
    });

    it('broken chain', async () => {
      // meter now has records 1..5 locally; the platform holds 1..3.
      await expectRefused(() => meter.frame(4, 5, { previous: meter.link(2) }), 'chain-broken');
      await expectRefused(() => meter.frame(1, 2, { previous: other.link(0) }), 'chain-broken');
    });

    it('conflicting duplicate', async () => {
      const forged = encodeRecord({ ...meter.transaction(), seq: 2 }); // new bytes for seq 2
      await expectRefused(
        () => meter.frame(2, 2, { records: [forged], previous: meter.link(1) }),
        'duplicate-conflict',
      );
    });

    it('keeps the valid data and accepts the next valid set', async () => {
      const held = await platform.db.query<{ seq: number; bytes: Uint8Array }>(
        'SELECT seq, bytes FROM records WHERE meter_id = $1 ORDER BY seq',
        [meter.id],
      );
      assert.deepEqual(
        held.rows.map((r) => r.seq),
        [1, 2, 3],
      );
      for (const row of held.rows) assert.deepEqual(row.bytes, meter.bytes(row.seq));
      const last = meter.nextSeq - 1;
      const { outcome, ack } = await conn.send(meter.frame(4, last));
      assert.equal(outcome.ok, true, !outcome.ok ? outcome.detail : '');
      assert.equal(ack?.ack.seq, last);
      assert.deepEqual(ack?.ack.hash, meter.link(last));
      assert.equal(await count('records', meter.id), last);
    });
  });

  it('records a gap before a set that starts after missing records, and closes it when they arrive', async () => {
    const meter = await newMeter();
    const { link, send } = await connect(meter);
    try {
      meter.transactions(6);
      assert.equal((await send(meter.frame(1, 2))).outcome.ok, true);
      const late = await send(meter.frame(5, 6));
      assert.equal(late.outcome.ok, true);
      assert.deepEqual((late.outcome as Accepted).gap, { from: 3, to: 4 });
      assert.equal(late.ack?.ack.seq, 6);
      const gaps = await platform.db.query('SELECT from_seq, to_seq FROM record_gaps WHERE meter_id = $1', [
        meter.id,
      ]);
      assert.deepEqual(gaps.rows, [{ from_seq: 3, to_seq: 4 }]);
      assert.ok(
        logger.entries.some((e) => e.msg === 'records missing before this set' && e.obj.meterId === meter.id),
      );

      // A record 4 that does not lead into the held record 5 is refused.
      const liar = new TestMeter(meter.id, meter.keys);
      liar.frameSeq = meter.frameSeq;
      liar.transactions(3);
      liar.transaction({ charge: 1 });
      const forged = await send(liar.frame(3, 4, { previous: meter.link(2) }));
      meter.frameSeq = liar.frameSeq;
      assert.equal(forged.outcome.ok, false);
      assert.equal((forged.outcome as Refusal).reason, 'chain-broken');

      const fill = await send(meter.frame(3, 3));
      assert.equal(fill.outcome.ok, true);
      const after3 = await platform.db.query('SELECT from_seq, to_seq FROM record_gaps WHERE meter_id = $1', [
        meter.id,
      ]);
      assert.deepEqual(after3.rows, [{ from_seq: 4, to_seq: 4 }]);
      const fill4 = await send(meter.frame(4, 4));
      assert.equal(fill4.outcome.ok, true);
      assert.equal(await count('record_gaps', meter.id), 0);
      assert.equal(await count('records', meter.id), 6);
    } finally {
      await link.closeAsync();
    }
  });

  it('shares the load with a second ingest instance without storing anything twice', async () => {
    const second = new Ingest({
      db: platform.db,
      keystore: platform.keystore,
      logger: new CapturingLogger(),
      // A second platform instance logs in as the platform.
      brokerUrl: withCredentials(
        platform.broker.platformUrl,
        PLATFORM_MQTT_USER,
        new BrokerCredentials(platform.keystore).platformPassword(),
      ),
      sharedSubscription: platform.broker.sharedSubscriptions,
      group: platform.ingest.subscription.split('/')[1],
    });
    await second.start();
    const meter = await newMeter();
    const { link, sendForAck } = await connect(meter);
    const frames = 6;
    // Without shared subscriptions both instances get every frame and the loser sees a replay.
    const expected = platform.broker.sharedSubscriptions ? frames : 2 * frames;
    const outcomes: IngestOutcome[] = [];
    let allIn: () => void = () => {};
    const done = new Promise<void>((resolve) => {
      allIn = resolve;
    });
    const collect = (o: IngestOutcome) => {
      if (o.meterId !== meter.id) return;
      outcomes.push(o);
      if (outcomes.length === expected) allIn();
    };
    platform.ingest.on('outcome', collect);
    second.on('outcome', collect);
    try {
      meter.transactions(frames);
      for (let i = 1; i <= frames; i++) {
        const ack = await sendForAck(meter.frame(i, i));
        assert.equal(ack.ack.seq, i);
        assert.deepEqual(ack.ack.hash, meter.link(i));
        assert.equal(ack.header.seq, i, 'downlink sequence allocated once per accepted frame');
      }
      await done;
      const accepted = outcomes.filter((o) => o.ok);
      assert.equal(accepted.length, frames, 'each frame accepted by exactly one instance');
      const refusals = outcomes.filter((o): o is { ok: false } & Refusal => !o.ok);
      assert.equal(refusals.length, expected - frames);
      assert.ok(refusals.every((r) => r.reason === 'replay'));
      assert.equal(await count('records', meter.id), frames);
    } finally {
      platform.ingest.off('outcome', collect);
      second.off('outcome', collect);
      await second.close();
      await link.closeAsync();
    }
  });
});
