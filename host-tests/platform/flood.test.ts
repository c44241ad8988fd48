// A flood of junk for one meter, on both backends: frames carrying the meter's id and current epoch
// but no valid tag are refused by the gate's checks without a database transaction (verify.ts), so
// 3,000 of them ahead of the meter's valid set do not keep it waiting: it is acknowledged while the
// junk is still arriving. Prints the time from publishing the valid set to its ack.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import mqtt from 'mqtt';
import { meterClientId } from '../../hal/mock/mqtt.node';
import { encodeHeader, FRAME_VERSION, FrameType } from '../../protocol/frame';
import { downlinkTopic, uplinkTopic } from '../../protocol/topics';
import type { IngestOutcome } from '../../platform-server/ingest/gate';
import type { Platform } from '../../platform-server/platform';
import { forEachBackend, randomMeterId, startPlatform, TestMeter } from '../../sim/fleet/platform';

const JUNK = 3000;
const CHUNK = 100;

async function until(check: () => boolean | Promise<boolean>, what: string, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

forEachBackend('a junk flood for one meter', (backend) => {
  let platform: Platform;
  let drop: () => Promise<void>;

  before(async () => {
    ({ platform, drop } = await startPlatform(backend));
  });

  after(async () => {
    await platform?.close();
    await drop?.();
  });

  it(`acknowledges the valid set after ${JUNK} junk frames while junk still arrives; no junk costs a transaction`, async () => {
    const id = randomMeterId();
    const meter = new TestMeter(id, await platform.provisionMeter(id, 'flooded'));
    meter.transactions(3);
    const valid = meter.frame(1, 3, { seq: 2 * JUNK + 10 });
    /** Header of the meter (type, id, epoch all right), then bytes that are no AES-GCM tag. */
    const junk = (seq: number) => {
      const header = encodeHeader({
        version: FRAME_VERSION,
        type: FrameType.Records,
        meterId: id,
        epoch: 1,
        seq,
      });
      return Buffer.concat([header, randomBytes(48)]);
    };

    let transactions = 0;
    const db = platform.db;
    const transaction = db.transaction.bind(db);
    db.transaction = (fn) => {
      transactions++;
      return transaction(fn);
    };
    let junkRefused = 0;
    const onOutcome = (o: IngestOutcome) => {
      if (o.meterId === id && !o.ok && o.reason === 'decrypt-failed') junkRefused++;
    };
    platform.ingest.on('outcome', onOutcome);

    // The broker lets only this meter's own login publish on its uplink topic, so the junk comes
    // through that login (leaked, or a meter gone wrong), on the connection the valid set takes too.
    const meterLink = await mqtt.connectAsync(platform.brokerUrl, {
      clientId: meterClientId(id),
      ...platform.meterMqttCredentials(id),
    });
    const attacker = meterLink;
    try {
      await meterLink.subscribeAsync(downlinkTopic(id), { qos: 1 });
      let junkRefusedAtAck = -1;
      const acked = new Promise<Uint8Array>((resolve) => {
        meterLink.on('message', (topic, payload) => {
          if (topic !== downlinkTopic(id)) return;
          junkRefusedAtAck = junkRefused;
          resolve(payload);
        });
      });
      const flood = async (from: number) => {
        for (let i = 0; i < JUNK; i += CHUNK) {
          await Promise.all(
            Array.from({ length: CHUNK }, (_, k) =>
              attacker.publishAsync(uplinkTopic(id), junk(from + i + k), { qos: 1 }),
            ),
          );
        }
      };

      await flood(1);
      const sentAt = performance.now();
      await meterLink.publishAsync(uplinkTopic(id), Buffer.from(valid), { qos: 1 });
      const trailing = flood(JUNK + 1);
      const ack = meter.openAck(await acked);
      const ackMs = performance.now() - sentAt;
      await trailing;
      await until(
        () => junkRefused === 2 * JUNK,
        `all ${2 * JUNK} junk frames refused (${junkRefused} so far)`,
      );
      console.log(
        `      time to acknowledge the valid set behind ${JUNK} junk frames (${backend.name}): ` +
          `${ackMs.toFixed(0)} ms; junk refused by then: ${junkRefusedAtAck} of ${2 * JUNK}; ` +
          `database transactions during the flood: ${transactions}`,
      );

      assert.equal(ack.ack.seq, 3);
      assert.deepEqual(ack.ack.hash, meter.link(3));
      assert.ok(
        junkRefusedAtAck < 2 * JUNK,
        `the ack came after the last junk frame was handled (${junkRefusedAtAck} refused at the ack)`,
      );
      // The valid set's batch is a transaction; the junk none (other rooms may run a few meanwhile).
      assert.ok(
        transactions >= 1 && transactions < 20,
        `${transactions} transactions for ${2 * JUNK} junk frames`,
      );

      // The trail: every junk frame counted, a bounded sample kept.
      await platform.ingest.refusals.flush();
      const counted = await platform.db.query<{ refused: number }>(
        "SELECT refused::int AS refused FROM refusal_counts WHERE meter_id = $1 AND reason = 'decrypt-failed'",
        [id],
      );
      assert.equal(counted.rows[0]?.refused, 2 * JUNK);
      const rows = await platform.db.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM refused_frames WHERE meter_id = $1',
        [id],
      );
      assert.ok(rows.rows[0].n <= 10, `${rows.rows[0].n} refused_frames rows for ${2 * JUNK} refusals`);
    } finally {
      db.transaction = transaction;
      platform.ingest.off('outcome', onOutcome);
      await meterLink.endAsync();
    }
  });
});
