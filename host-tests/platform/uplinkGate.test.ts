// The one uplink gate (platform-server/ingest/gate.ts, verify.ts), on both backends: every uplink
// type — security events 0x03, status 0x04, tariff acks 0x05, renewal acks 0x06 and a type routed
// here for the test, as a feature added later would — passes the same checks before its handler
// runs (the previous key epoch only inside its window, authentication, the meter's one replay
// window); handlers get verified plaintext only; every refusal is counted and a bounded sample kept.
import assert from 'node:assert/strict';
import mqtt from 'mqtt';
import { meterClientId } from '../../hal/mock/mqtt.node';
import { FRAME_VERSION, sealFrame } from '../../protocol/frame';
import { encodeSecurityEvent, KeyFrame } from '../../protocol/keys';
import { encodeRenewalAck, RENEWAL_ACK_FRAME } from '../../protocol/renewal';
import { encodeStatusMessage, STATUS_FRAME } from '../../protocol/status';
import { encodeTariffAck, TARIFF_ACK_UPLINK } from '../../protocol/tariff';
import { uplinkTopic } from '../../protocol/topics';
import { Ingest, type IngestOutcome, type RoutedUplink } from '../../platform-server/ingest/gate';
import { MeterTables } from '../../platform-server/ingest/meters';
import type { Platform } from '../../platform-server/platform';
import {
  CapturingLogger,
  crypto,
  forEachBackend,
  randomMeterId,
  startPlatform,
  TestMeter,
} from '../../sim/fleet/platform';

const T0 = 1_772_440_200;
/** A frame type no feature owns, routed by the test as a feature added later would route its own. */
const LATER_TYPE = 0x7f; // the last uplink type byte; 0x07 is the firmware progress report

const BODIES: Record<number, Uint8Array> = {
  [KeyFrame.SECURITY]: encodeSecurityEvent({
    ev: 'tamper',
    epoch: 1,
    kcv: new Uint8Array(0),
    at: T0,
    detail: 'cover opened',
  }),
  [STATUS_FRAME]: encodeStatusMessage({
    kind: 'event',
    at: T0,
    event: 'vibration',
    severity: 'alarm',
    active: true,
    detail: 'gate test',
  }),
  [TARIFF_ACK_UPLINK]: encodeTariffAck({ kind: 'tariff', version: 1, ok: true }),
  [RENEWAL_ACK_FRAME]: encodeRenewalAck({ id: 'gatetest', status: 'applied', paidUntil: T0, reason: '' }),
  [LATER_TYPE]: Uint8Array.of(0xa1, 0x61, 0x78, 0x01),
};
const TYPES = Object.keys(BODIES).map(Number);

async function until(check: () => Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const reasonOf = (o: IngestOutcome) => (o.ok ? 'ok' : o.reason);

forEachBackend('one uplink gate for every frame type', (backend) => {
  let platform: Platform;
  let drop: () => Promise<void>;
  let logger: CapturingLogger;
  const laterFrames: RoutedUplink[] = [];

  before(async () => {
    logger = new CapturingLogger();
    ({ platform, drop } = await startPlatform(backend, { logger }));
    platform.ingest.route(LATER_TYPE, async (frame) => {
      laterFrames.push(frame);
    });
  });

  after(async () => {
    await platform?.close();
    await drop?.();
  });

  const seal = (meterId: number, type: number, epoch: number, seq: number, body = BODIES[type]) =>
    sealFrame(
      crypto,
      platform.keystore.meterKeys(meterId, epoch).uplink,
      { version: FRAME_VERSION, type, meterId, epoch, seq },
      body,
    );
  /** The meter moves to epoch 2; epoch 1 stays accepted `windowSeconds` (0: retired at once). */
  const rotate = (meterId: number, windowSeconds: number) =>
    platform.db.transaction((tx) => new MeterTables(platform.db).advanceEpoch(tx, meterId, 2, windowSeconds));
  const count = async (table: string, meterId: number) =>
    (
      await platform.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table} WHERE meter_id = $1`, [
        meterId,
      ])
    ).rows[0].n;
  const refusedRows = async (meterId: number) =>
    (
      await platform.db.query<{ reason: string; n: number }>(
        'SELECT reason, count(*)::int AS n FROM refused_frames WHERE meter_id = $1 GROUP BY reason ORDER BY reason',
        [meterId],
      )
    ).rows;
  const refusalCounts = async (meterId: number) => {
    await platform.ingest.refusals.flush();
    return (
      await platform.db.query<{ reason: string; refused: number }>(
        'SELECT reason, refused::int AS refused FROM refusal_counts WHERE meter_id = $1 ORDER BY reason',
        [meterId],
      )
    ).rows;
  };

  it("refuses a security event sealed under a retired epoch: no event stored, the meter's window untouched", async () => {
    const id = randomMeterId();
    const { cardTokenKey } = await platform.provisionMeter(id, 'retired epoch');
    await rotate(id, 0);
    // Through the broker, as an attacker holding the retired epoch's key C and the meter's own broker
    // login (both taken from a meter opened up) would send it: the highest sequence number there is,
    // to shut the meter's uplink window for good.
    const attacker = await mqtt.connectAsync(platform.brokerUrl, {
      clientId: meterClientId(id),
      ...platform.meterMqttCredentials(id),
    });
    try {
      await attacker.publishAsync(uplinkTopic(id), Buffer.from(seal(id, KeyFrame.SECURITY, 1, 0xffffffff)), {
        qos: 1,
      });
      await until(
        async () => (await count('refused_frames', id)) + (await count('security_events', id)) > 0,
        'the frame to be handled',
      );
    } finally {
      await attacker.endAsync();
    }
    assert.equal(await count('security_events', id), 0, 'no security event from a retired epoch');
    assert.deepEqual(await refusedRows(id), [{ reason: 'stale-epoch', n: 1 }]);
    const window = await platform.db.query<{ last_uplink_seq: number }>(
      'SELECT last_uplink_seq FROM meters WHERE id = $1',
      [id],
    );
    assert.equal(Number(window.rows[0].last_uplink_seq), 0, "the meter's uplink window did not move");
    // The meter's genuine frames under its current epoch still go through.
    const meter = new TestMeter(id, { ...platform.keystore.meterKeys(id, 2), cardTokenKey });
    meter.transactions(2);
    const set = await platform.ingest.handleUplink(uplinkTopic(id), meter.frame(1, 2));
    assert.equal(reasonOf(set), 'ok');
  });

  it('checks every uplink type alike before its handler: epoch policy, authentication, replay', async () => {
    const id = randomMeterId();
    await platform.provisionMeter(id, 'every type');
    await rotate(id, 600);
    const topic = uplinkTopic(id);
    let seq = 0;
    const send = async (frame: Uint8Array) => reasonOf(await platform.ingest.handleUplink(topic, frame));
    const expected = (reason: string) => TYPES.map(() => reason);

    // Inside the previous epoch's window: forged frames and an epoch never issued are refused...
    const forged: string[] = [];
    const unissued: string[] = [];
    for (const type of TYPES) {
      const frame = seal(id, type, 1, ++seq);
      frame[frame.length - 1] ^= 1;
      forged.push(await send(frame));
      unissued.push(await send(seal(id, type, 3, ++seq)));
    }
    assert.deepEqual(forged, expected('decrypt-failed'));
    assert.deepEqual(unissued, expected('stale-epoch'));
    // ...genuine ones under the previous epoch are accepted, once.
    const genuineSeq = new Map<number, number>();
    const genuine = TYPES.map((type) => {
      genuineSeq.set(type, ++seq);
      return seal(id, type, 1, seq);
    });
    const firstTime: string[] = [];
    for (const frame of genuine) firstTime.push(await send(frame));
    assert.deepEqual(firstTime, expected('ok'));
    const again: string[] = [];
    for (const frame of genuine) again.push(await send(frame));
    assert.deepEqual(again, expected('replay'));

    // The window closes: the previous epoch is refused for every type, its key or not.
    await platform.db.query(
      "UPDATE meters SET previous_epoch_until = now() - interval '1 second' WHERE id = $1",
      [id],
    );
    const closed: string[] = [];
    for (const type of TYPES) closed.push(await send(seal(id, type, 1, ++seq)));
    assert.deepEqual(closed, expected('stale-epoch'));
    assert.equal(await send(seal(id, LATER_TYPE, 2, ++seq)), 'ok', 'the current epoch goes on');

    // The handler of the later type saw the two accepted frames only, opened.
    const mine = laterFrames.filter((f) => f.meterId === id);
    assert.deepEqual(
      mine.map((f) => [f.topic, f.header.epoch, f.header.seq, f.currentEpoch, [...f.body]]),
      [
        [topic, 1, genuineSeq.get(LATER_TYPE), 2, [...BODIES[LATER_TYPE]]],
        [topic, 2, seq, 2, [...BODIES[LATER_TYPE]]],
      ],
    );
    // Nothing from a refused frame was stored; the accepted ones were.
    assert.equal(await count('security_events', id), 1);
    assert.equal(await count('meter_events', id), 1);

    // Every refusal left a row and a count, whatever its type.
    const refusals = [
      { reason: 'decrypt-failed', n: TYPES.length },
      { reason: 'replay', n: TYPES.length },
      { reason: 'stale-epoch', n: 2 * TYPES.length },
    ];
    assert.deepEqual(await refusedRows(id), refusals);
    assert.deepEqual(
      await refusalCounts(id),
      refusals.map((r) => ({ reason: r.reason, refused: r.n })),
    );
    assert.equal(logger.refusals(id).length, 4 * TYPES.length, 'one log line each');
  });

  it('follows a rotation another instance made: a frame under the new epoch is taken, junk under it is not', async () => {
    const id = randomMeterId();
    await platform.provisionMeter(id, 'rotated elsewhere');
    // A second gate on the same database, which hears of the rotation only through the frames.
    const other = new Ingest({ db: platform.db, keystore: platform.keystore, logger: new CapturingLogger() });
    other.route(STATUS_FRAME, async () => {});
    try {
      const topic = uplinkTopic(id);
      assert.equal(reasonOf(await other.handleUplink(topic, seal(id, STATUS_FRAME, 1, 1))), 'ok');
      await rotate(id, 600);
      const junk = seal(id, STATUS_FRAME, 2, 2);
      junk[junk.length - 1] ^= 1;
      assert.equal(reasonOf(await other.handleUplink(topic, junk)), 'stale-epoch');
      assert.equal(reasonOf(await other.handleUplink(topic, seal(id, STATUS_FRAME, 2, 3))), 'ok');
      assert.equal(
        reasonOf(await other.handleUplink(topic, seal(id, STATUS_FRAME, 1, 4))),
        'ok',
        'inside the window',
      );
      assert.equal(reasonOf(await other.handleUplink(topic, seal(id, STATUS_FRAME, 3, 5))), 'stale-epoch');
    } finally {
      await other.close();
    }
  });

  it('keeps a bounded trail of a flood of refusals: each counted, a sample kept, old rows pruned', async () => {
    const id = randomMeterId();
    const { cardTokenKey } = await platform.provisionMeter(id, 'bounded trail');
    const meter = new TestMeter(id, { ...platform.keystore.meterKeys(id, 1), cardTokenKey });
    meter.transactions(1);
    const junk = 50;
    const outcomes = await Promise.all(
      Array.from({ length: junk }, () => {
        const frame = meter.frame(1, 1);
        frame[frame.length - 1] ^= 1;
        return platform.ingest.handleUplink(uplinkTopic(id), frame);
      }),
    );
    assert.ok(outcomes.every((o) => reasonOf(o) === 'decrypt-failed'));
    const sampled = (await refusedRows(id))[0]?.n ?? 0;
    assert.ok(sampled >= 1 && sampled <= 10, `${sampled} rows kept of ${junk} refusals`);
    assert.deepEqual(await refusalCounts(id), [{ reason: 'decrypt-failed', refused: junk }]);
    assert.equal(logger.refusals(id).length, sampled, 'a log line for each row kept');
    assert.ok(
      logger.entries.some(
        (e) => e.msg === 'uplink refusals counted in refusal_counts, not logged one by one',
      ),
      'the others summed up in the log',
    );

    // Made-up meter ids are counted together, not one row each.
    const strangers = Array.from({ length: 20 }, () => randomMeterId());
    for (const stranger of strangers) {
      const frame = new TestMeter(stranger, meter.keys).frame(1, 1, { body: Uint8Array.of(0) });
      assert.equal(
        reasonOf(await platform.ingest.handleUplink(uplinkTopic(stranger), frame)),
        'unknown-meter',
      );
    }
    await platform.ingest.refusals.flush();
    const perStranger = await platform.db.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM refusal_counts WHERE meter_id = ANY($1::bigint[])',
      [strangers],
    );
    assert.equal(perStranger.rows[0].n, 0);
    const together = await platform.db.query<{ refused: number }>(
      "SELECT refused::int AS refused FROM refusal_counts WHERE meter_id IS NULL AND reason = 'unknown-meter'",
    );
    assert.ok(together.rows[0].refused >= strangers.length);

    // Rows past the retention period go.
    await platform.db.query(
      `INSERT INTO refused_frames (topic, meter_id, reason, detail, received_at)
       VALUES ($1, $2, 'decrypt-failed', 'old', now() - interval '400 days')`,
      [uplinkTopic(id), id],
    );
    assert.ok((await platform.ingest.refusals.prune()) >= 1);
    const old = await platform.db.query(
      "SELECT 1 FROM refused_frames WHERE meter_id = $1 AND detail = 'old'",
      [id],
    );
    assert.equal(old.rows.length, 0);
  });
});
