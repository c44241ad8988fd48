// The downlink outbox on PGlite (platform-server/ingest/outbox.ts): the newest frame of a kind that
// replaces the ones before, every frame of a kind that counts on its own up to the bound, in
// sequence order; dropped once the meter's key epoch or acknowledgement shows it is not needed, or
// past the retention period.
import assert from 'node:assert/strict';
import { encodeCbor } from '../../protocol/cbor';
import { type Database, openDatabase } from '../../platform-server/core/db';
import { migrate } from '../../platform-server/core/migrations';
import { DownlinkOutbox, OUTBOX_PER_METER, supersessionKind } from '../../platform-server/ingest/outbox';

const METER = 5150;
const OTHER = 5151;
const body = (k: string) => encodeCbor({ k, v: 1 });

describe('downlink outbox (PGlite)', () => {
  let db: Database;
  let outbox: DownlinkOutbox;
  let seq = 0;

  /** Keeps a frame of `type` whose bytes name its own sequence number. */
  const keep = async (type: number, kind: string, meterId = METER, epoch = 1) => {
    const s = ++seq;
    await outbox.keep({ meterId, seq: s, type, epoch, frame: Uint8Array.of(1, type, s & 0xff) }, body(kind));
    return s;
  };
  const waiting = async (meterId = METER) =>
    (await outbox.pending([meterId])).map((d) => [d.type, d.seq] as [number, number]);

  before(async () => {
    db = await openDatabase();
    await migrate(db);
    for (const id of [METER, OTHER])
      await db.query('INSERT INTO meters (id, name, key_epoch) VALUES ($1, $2, 1)', [id, 'outbox']);
    outbox = new DownlinkOutbox(db);
  });
  after(async () => {
    await db.close();
  });
  beforeEach(async () => {
    await db.query('DELETE FROM downlink_outbox');
    await db.query('UPDATE meters SET key_epoch = 1, previous_key_epoch = NULL, previous_epoch_until = NULL');
  });

  it('names the kinds a newer frame replaces, and none for the kinds that each count', () => {
    assert.equal(supersessionKind(0x85, body('tariff')), '133:tariff');
    assert.equal(supersessionKind(0x85, body('message')), '133:message');
    assert.equal(supersessionKind(0x83, Uint8Array.of(0xff)), '131:', 'not CBOR: the type alone');
    assert.equal(supersessionKind(0x8a, body('delta')), undefined);
    assert.equal(supersessionKind(0x87, body('chunk')), undefined);
    assert.equal(supersessionKind(0x82, new Uint8Array(40)), undefined);
  });

  it('keeps the newest of each kind and every frame that counts, in sequence order, per meter', async () => {
    await keep(0x85, 'tariff');
    const message = await keep(0x85, 'message');
    const delta1 = await keep(0x8a, 'delta');
    const other = await keep(0x85, 'tariff', OTHER);
    const tariff = await keep(0x85, 'tariff');
    const delta2 = await keep(0x8a, 'delta');
    assert.deepEqual(await waiting(), [
      [0x85, message],
      [0x8a, delta1],
      [0x85, tariff],
      [0x8a, delta2],
    ]);
    assert.deepEqual(await waiting(OTHER), [[0x85, other]]);
    const both = await outbox.pending([METER, OTHER]);
    assert.deepEqual(
      both.map((d) => d.meterId),
      [METER, METER, METER, METER, OTHER],
    );
  });

  it('keeps at most the newest 64 of the frames that each count', async () => {
    const rotation = await keep(0x83, 'rotation');
    const seqs: number[] = [];
    for (let i = 0; i < OUTBOX_PER_METER + 6; i++) seqs.push(await keep(0x87, 'chunk'));
    const kept = await waiting();
    assert.equal(kept.length, OUTBOX_PER_METER + 1);
    assert.deepEqual(kept[0], [0x83, rotation], 'a superseding kind does not count towards the bound');
    assert.deepEqual(
      kept.slice(1).map(([, s]) => s),
      seqs.slice(6),
    );
  });

  it('drops a rotation once the epoch moved past it, other frames once the previous epoch closed', async () => {
    await keep(0x83, 'rotation');
    const settings = await keep(0x84, 'settings');
    await db.query(
      `UPDATE meters SET key_epoch = 2, previous_key_epoch = 1, previous_epoch_until = now() + interval '10 minutes'
        WHERE id = $1`,
      [METER],
    );
    assert.deepEqual(await waiting(), [[0x84, settings]], 'the meter still opens epoch 1 for a while');
    await db.query("UPDATE meters SET previous_epoch_until = now() - interval '1 second' WHERE id = $1", [
      METER,
    ]);
    assert.deepEqual(await waiting(), []);
  });

  it('drops a tariff push the meter acknowledged, and blacklist frames up to an acknowledged push', async () => {
    await db.query(
      `INSERT INTO tariffs (id, version, document) VALUES ('outbox-zone', 1, '{}'), ('outbox-zone', 2, '{}')
       ON CONFLICT DO NOTHING`,
    );
    const tariff = await keep(0x85, 'tariff');
    await db.query(
      `INSERT INTO meter_tariffs (meter_id, tariff_id, version, downlink_seq) VALUES ($1, 'outbox-zone', 2, $2)
       ON CONFLICT (meter_id) DO UPDATE SET version = 2, downlink_seq = $2, pushed_at = now(),
         acked_version = NULL, acked_at = NULL`,
      [METER, tariff],
    );
    const delta = await keep(0x8a, 'delta');
    await db.query(
      `INSERT INTO blacklist_meters (meter_id, pushed_version, pushed_seq, pushed_at) VALUES ($1, 7, $2, now())
       ON CONFLICT (meter_id) DO UPDATE SET pushed_version = 7, pushed_seq = $2, pushed_at = now(),
         acked_version = NULL, acked_at = NULL`,
      [METER, delta],
    );
    const later = await keep(0x8a, 'delta');
    // An older version acknowledged: nothing goes.
    await db.query(
      'UPDATE meter_tariffs SET acked_tariff_id = tariff_id, acked_version = 1, acked_ok = true, acked_at = now() WHERE meter_id = $1',
      [METER],
    );
    await db.query('UPDATE blacklist_meters SET acked_version = 6, acked_at = now() WHERE meter_id = $1', [
      METER,
    ]);
    assert.deepEqual(await waiting(), [
      [0x85, tariff],
      [0x8a, delta],
      [0x8a, later],
    ]);
    // Another tariff acknowledged in the version pushed: the push has not arrived, so it stays.
    await db.query(
      "UPDATE meter_tariffs SET acked_tariff_id = 'other-zone', acked_version = 2, acked_ok = true, acked_at = now() WHERE meter_id = $1",
      [METER],
    );
    assert.deepEqual((await waiting())[0], [0x85, tariff]);
    // The versions pushed acknowledged: the tariff and the blacklist frames up to that push go.
    await db.query(
      'UPDATE meter_tariffs SET acked_tariff_id = tariff_id, acked_version = 2, acked_ok = false, acked_at = now() WHERE meter_id = $1',
      [METER],
    );
    await db.query('UPDATE blacklist_meters SET acked_version = 7, acked_at = now() WHERE meter_id = $1', [
      METER,
    ]);
    assert.deepEqual(await waiting(), [[0x8a, later]], 'a frame kept after the acknowledged push stays');
  });

  it('drops what is past the retention period', async () => {
    const old = await keep(0x84, 'settings');
    const fresh = await keep(0x8a, 'delta', OTHER);
    await db.query("UPDATE downlink_outbox SET created_at = now() - interval '31 days' WHERE seq = $1", [
      old,
    ]);
    assert.equal(await outbox.prune([METER]), 1);
    assert.deepEqual(await waiting(), []);
    assert.deepEqual(await waiting(OTHER), [[0x8a, fresh]]);
    assert.deepEqual(await outbox.known([OTHER, 999_999, METER]), [OTHER, METER]);
  });
});
