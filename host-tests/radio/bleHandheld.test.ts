// The handheld link on whole meters: off until the mode key, authentication before collection,
// messages cut to the MTU, collection resumed after a disconnect, the ack carried back releasing
// the set (and nothing released before it), release tokens carried by hand, duplicate deliveries
// absorbed by the platform, and bad input refused with a typed error while nothing stored is lost.
import assert from 'node:assert/strict';
import { OFFLINE_RATE, offlineMeter } from '../support/offlineMeter';
import { deriveCardTokenKey } from '../../protocol/cardToken';
import { VirtualClock } from '../../hal/mock/clock';
import { nobleCrypto as crypto } from '../../hal/nobleCrypto';
import { fromHex, toHex as toHexString } from '../../protocol/bytes';
import { encodeCbor } from '../../protocol/cbor';
import { FrameType, openFrame, sealFrame } from '../../protocol/frame';
import {
  ChunkAssembler,
  CHUNK_FINAL,
  CHUNK_FIRST,
  chunkMessage,
  HandheldChunkError,
} from '../../protocol/handheld';
import {
  deriveMeterKeys,
  encodeMaintenanceToken,
  maintenanceSecret,
  type MeterKeys,
} from '../../protocol/keys';
import { decodeRecordsMessage, encodeAckMessage } from '../../protocol/messages';
import { deriveReleaseKey, signReleaseToken } from '../../protocol/release';
import { chainLink } from '../../protocol/chain';
import { decodeRecord } from '../../protocol/records';
import type { Platform } from '../../platform-server/platform';
import { forEachBackend, operatorLogin, randomMeterId, startPlatform } from '../../sim/fleet/platform';
import {
  type DownlinkFetch,
  downlinksOverHttp,
  framesOf,
  Handheld,
  HandheldConnection,
  type MeterDownlinks,
  type UploadResult,
  uploadOverHttp,
} from '../../sim/handheld/client';
import { statusEvent } from '../../protocol/status';
import { uplinkTopic } from '../../protocol/topics';
import { flatTariff } from '../../protocol/tariff';
import { TARIFF_DOWNLINK } from '../../protocol/tariff/messages';
import type { Role } from '../../platform-server/operators/service';
import { KeyFrame } from '../../protocol/keys';

const METER = 7301;
const MASTER = new Uint8Array(32).fill(0x17);

function rig(options: { meterId?: number; keys?: MeterKeys; clock?: VirtualClock; wifi?: boolean } = {}) {
  const meterId = options.meterId ?? METER;
  const keys = options.keys ?? deriveMeterKeys(crypto, MASTER, meterId, 1);
  const r = offlineMeter({ ...options, meterId, keys, cardTokenKey: deriveCardTokenKey(crypto, MASTER) });
  let tokenId = 0;
  /** A fresh maintenance token and its secret, as the platform issues them. */
  const token = () => {
    const now = Math.floor(r.clock.now() / 1000);
    const bytes = encodeMaintenanceToken({
      meterId,
      staff: 'bob',
      tokenId: ++tokenId,
      notBefore: now - 10,
      expiresAt: now + 900,
    });
    return { token: bytes, secret: maintenanceSecret(crypto, keys.secrets!.m, bytes), meterId };
  };
  return { ...r, token };
}

/** The platform's ack of a set frame, sealed as ingest seals it (for the tests without a database). */
function ackFor(keys: MeterKeys, frame: Uint8Array, downlinkSeq: number): Uint8Array {
  const { header, body } = openFrame(crypto, keys.uplink, frame);
  const set = decodeRecordsMessage(body);
  let link = set.previous;
  for (const record of set.records) link = chainLink(crypto, link, record);
  return sealFrame(
    crypto,
    keys.downlink,
    { version: 1, type: FrameType.Ack, meterId: header.meterId, epoch: header.epoch, seq: downlinkSeq },
    encodeAckMessage({ seq: collectedSeqs(frame, keys).last, hash: link }),
  );
}

/** The record sequence numbers a set frame carries (read from its records). */
function collectedSeqs(frame: Uint8Array, keys: MeterKeys): { first: number; last: number } {
  const set = decodeRecordsMessage(openFrame(crypto, keys.uplink, frame).body);
  const first = decodeRecord(set.records[0]).seq;
  return { first, last: decodeRecord(set.records[set.records.length - 1]).seq };
}

describe('handheld link on the meter', () => {
  it('is off until the mode key, advertises for five minutes, then is off again', () => {
    const r = rig();
    assert.equal(r.board.ble.advertising, false);
    assert.equal(r.board.ble.connect(), false);
    r.modeKey();
    assert.equal(r.board.ble.advertising, true);
    r.clock.advance(5 * 60_000);
    assert.equal(r.board.ble.advertising, false);
  });

  it('the entry signal alone, again and again, guesses no code and never locks the link out', () => {
    const r = rig();
    const refused: unknown[] = [];
    r.meter.bus.on('maintenance-refused', (e) => refused.push(e));
    r.meter.bus.on('maintenance-locked', (e) => refused.push(e));
    for (let i = 0; i < 6; i++) {
      r.modeKey();
      r.clock.advance(11_000); // the code entry times out with no code press
    }
    assert.deepEqual(refused, []);
    r.modeKey();
    assert.equal(r.board.ble.advertising, true);
  });

  it('refuses collection and downlinks until the token is proven, then collects the sealed set', () => {
    const r = rig();
    r.sell(2);
    r.modeKey();
    const conn = new HandheldConnection(r.board.ble, 185);
    assert.deepEqual(conn.request({ t: 'next' }), { t: 'refused', why: 'not authorised' });
    assert.deepEqual(conn.request({ t: 'down', frame: new Uint8Array(40) }), {
      t: 'refused',
      why: 'not authorised',
    });
    const t = r.token();
    conn.authenticate(crypto, t.token, t.secret, r.meterId);
    const reply = conn.request({ t: 'next' });
    assert.equal(reply.t, 'set');
    const frame = reply.frame as Uint8Array;
    assert.equal(frame[1], FrameType.Records);
    const seqs = collectedSeqs(frame, r.keys);
    assert.equal(seqs.first, 1);
    assert.equal(seqs.last, reply.last);
    assert.equal(r.meter.ledger.acknowledgedSeq, 0, 'collected is not acknowledged');
  });

  it('cuts every message to the negotiated MTU; the set comes whole at 23 and at 185', () => {
    const r = rig();
    r.sell(3);
    const bodies: Uint8Array[] = [];
    for (const mtu of [23, 185]) {
      r.modeKey();
      const conn = new HandheldConnection(r.board.ble, mtu);
      assert.equal(conn.mtu, mtu);
      const t = r.token();
      conn.authenticate(crypto, t.token, t.secret, r.meterId);
      const reply = conn.request({ t: 'next' });
      assert.ok(conn.largestChunk <= mtu - 3, `chunks of ${conn.largestChunk} bytes fit MTU ${mtu}`);
      const frame = reply.frame as Uint8Array;
      assert.ok(frame.length > mtu, 'the set needs several chunks');
      bodies.push(openFrame(crypto, r.keys.uplink, frame).body);
      conn.disconnect();
    }
    // Sealed afresh on each collection (a new frame sequence number), the same records inside.
    assert.deepEqual(bodies[0], bodies[1]);
  });

  it('resumes after a disconnect: the next visit goes on from the last set held', () => {
    const r = rig();
    r.sell(40); // several sets of at most 2 KiB
    const handheld = new Handheld(crypto, { mtu: 64 });
    // First visit: the link drops in the middle of the second set.
    r.modeKey();
    let chunks = 0;
    let firstSetChunks = 0;
    const original = r.board.ble.peripheral.notify;
    r.board.ble.peripheral.notify = (data) => {
      chunks++;
      if (handheld.sets.length === 1 && firstSetChunks === 0) firstSetChunks = chunks;
      if (firstSetChunks > 0 && chunks > firstSetChunks + 5) {
        r.board.ble.disconnect();
        return false;
      }
      return original(data);
    };
    const first = handheld.visit(r.board.ble, r.token());
    r.board.ble.peripheral.notify = original;
    assert.equal(first.dropped, true);
    assert.equal(first.collected, 1);
    // Second visit: a new token (one session each); the collection goes on after what is held.
    const before = r.meter.log.lastSeq;
    r.modeKey();
    const second = handheld.visit(r.board.ble, r.token());
    assert.equal(second.dropped, false);
    assert.ok(second.collected >= 1);
    const ranges = handheld.sets.map((s) => collectedSeqs(s.frame, r.keys));
    assert.equal(ranges[0].first, 1);
    for (let i = 1; i < ranges.length; i++) assert.equal(ranges[i].first, ranges[i - 1].last + 1);
    assert.equal(ranges[ranges.length - 1].last, before, 'every record up to the visit collected');
  });

  it('the ack carried back releases the set, and only the ack does', () => {
    const r = rig();
    r.sell(3);
    r.modeKey();
    const conn = new HandheldConnection(r.board.ble);
    const t = r.token();
    conn.authenticate(crypto, t.token, t.secret, r.meterId);
    const set = conn.request({ t: 'next' });
    const frame = set.frame as Uint8Array;
    assert.equal(r.meter.ledger.acknowledgedSeq, 0);
    assert.equal(r.meter.log.uploads.current?.acknowledged, false);
    const reply = conn.request({ t: 'down', frame: ackFor(r.keys, frame, 1) });
    assert.equal(reply.ok, true);
    assert.equal(reply.acked, set.last);
    assert.equal(r.meter.ledger.acknowledgedSeq, set.last);
    assert.equal(r.meter.log.uploads.current?.acknowledged, true);
  });

  it('carries a release token: the set is released with its maintenance record', () => {
    const r = rig();
    r.sell(2);
    r.modeKey();
    const conn = new HandheldConnection(r.board.ble);
    const t = r.token();
    conn.authenticate(crypto, t.token, t.secret, r.meterId);
    const set = conn.request({ t: 'next' });
    const token = signReleaseToken(crypto, deriveReleaseKey(crypto, r.keys.downlink, r.meterId), {
      meterId: r.meterId,
      fromSeq: 1,
      toSeq: Number(set.last),
      issuedAt: Math.floor(r.clock.now() / 1000),
      operator: 'sup',
    });
    const reply = conn.request({ t: 'release', token });
    assert.equal(reply.ok, true);
    assert.equal(r.meter.ledger.acknowledgedSeq, set.last);
    const text = r.meter.log
      .read(1)
      .map((x) => new TextDecoder().decode(x.bytes))
      .join('|');
    assert.match(text, new RegExp(`records 1\\.\\.${set.last} released by sup`));
    const again = conn.request({ t: 'release', token });
    assert.equal(again.ok, false, 'a token applies once');
  });

  it('refuses bad input with a typed error and loses nothing stored', () => {
    const r = rig();
    r.sell(2);
    const lastSeq = r.meter.log.lastSeq;
    r.modeKey();
    const conn = new HandheldConnection(r.board.ble, 23);
    // A chunk without the first of its message, and one out of order.
    assert.deepEqual(conn.writeChunk(Uint8Array.of(3, 0xa0)), { t: 'refused', why: 'bad-chunk' });
    assert.equal(conn.writeChunk(Uint8Array.of(CHUNK_FIRST, 0xa1)), undefined);
    assert.deepEqual(conn.writeChunk(Uint8Array.of(CHUNK_FINAL | 5, 0x00)), {
      t: 'refused',
      why: 'bad-chunk',
    });
    // Not CBOR, not a map, an unknown message.
    assert.deepEqual(conn.writeChunk(Uint8Array.of(CHUNK_FIRST | CHUNK_FINAL, 0xff)), {
      t: 'refused',
      why: 'malformed',
    });
    assert.deepEqual(conn.writeChunk(chunkMessage(encodeCbor([1, 2]), 20)[0]), {
      t: 'refused',
      why: 'malformed',
    });
    assert.deepEqual(conn.request({ t: 'shout' }), { t: 'refused', why: 'unexpected' });
    const t = r.token();
    conn.authenticate(crypto, t.token, t.secret, r.meterId);
    // A downlink that does not authenticate, one too short, a bad `after`.
    const forged = sealFrame(
      crypto,
      new Uint8Array(16).fill(9),
      { version: 1, type: FrameType.Ack, meterId: r.meterId, epoch: 1, seq: 5 },
      new Uint8Array(8),
    );
    assert.deepEqual(conn.request({ t: 'down', frame: forged }), {
      t: 'down',
      ok: false,
      why: 'decrypt-failed',
      acked: 0,
    });
    assert.equal(conn.request({ t: 'down', frame: new Uint8Array(3) }).why, 'truncated');
    assert.equal(conn.request({ t: 'next', after: -1 }).why, 'bad after');
    assert.equal(conn.request({ t: 'uplink', after: 'x' }).why, 'bad after');
    assert.equal(conn.request({ t: 'held', upTo: -2 }).why, 'bad upTo');
    assert.equal(conn.request({ t: 'held' }).why, 'bad upTo');
    assert.equal(conn.request({ t: 'release', token: new Uint8Array(4) }).ok, false);
    // Nothing lost: every record is still there and unacknowledged, and collection still works.
    assert.equal(r.meter.log.lastSeq >= lastSeq, true);
    assert.equal(r.meter.log.read(1).length, r.meter.log.lastSeq);
    assert.equal(r.meter.ledger.acknowledgedSeq, 0);
    assert.equal(conn.request({ t: 'next' }).t, 'set');
  });

  it('other uplinks are kept only while a proven handheld is there; one it did not take goes by radio when the link returns, the same bytes', () => {
    const r = rig();
    const event = () =>
      r.meter.bus.emit(
        'status-event',
        statusEvent(r.clock.now(), 'door-open', 'alarm', true, 'service door'),
      );
    event();
    assert.equal(r.meter.comms.kept, 0, 'no handheld: the status channel keeps its events itself');
    const waiting = r.meter.status.pending;
    r.modeKey();
    const conn = new HandheldConnection(r.board.ble);
    assert.equal(conn.request({ t: 'uplink' }).why, 'not authorised');
    const t = r.token();
    conn.authenticate(crypto, t.token, t.secret, r.meterId);
    const first = conn.request({ t: 'uplink' });
    assert.equal(first.t, 'uplink');
    assert.equal(r.meter.status.pending, 0, 'moved into the outbox, sealed');
    assert.equal(r.meter.comms.kept, waiting);
    event(); // while the handheld is there: sealed straight into the outbox
    assert.equal(r.meter.comms.kept, waiting + 1);
    const read: Uint8Array[] = [];
    for (let after = 0; ; ) {
      const reply = conn.request({ t: 'uplink', after });
      if (reply.t !== 'uplink') {
        assert.equal(reply.t, 'no-uplink');
        break;
      }
      read.push(reply.frame as Uint8Array);
      after = Number(reply.id);
    }
    assert.equal(read.length, waiting + 1);
    assert.deepEqual(conn.request({ t: 'held', upTo: Number(first.id) }), { t: 'held', kept: waiting });
    conn.disconnect(); // it left without saying it held the rest
    assert.equal(r.meter.comms.kept, waiting, 'kept until someone takes them');
    r.link.setSignal(true);
    r.clock.advance(1_000);
    assert.equal(r.meter.comms.kept, 0, 'published once the link was up');
    const sent = r.broker.published
      .filter((p) => p.topic === uplinkTopic(r.meterId))
      .map((p) => toHexString(p.payload));
    for (const frame of read.slice(1)) assert.ok(sent.includes(toHexString(frame)), 'the same sealed bytes');
  });

  it('the chunk codec: round trip, and typed errors for what does not fit', () => {
    const message = new Uint8Array(1000).map((_, i) => i & 0xff);
    const chunks = chunkMessage(message, 20);
    assert.ok(chunks.every((c) => c.length <= 20));
    const assembler = new ChunkAssembler();
    let out: Uint8Array | undefined;
    for (const c of chunks) out = assembler.push(c);
    assert.deepEqual(out, message);
    assert.throws(() => assembler.push(chunks[1]), HandheldChunkError);
    assert.throws(() => new ChunkAssembler().push(Uint8Array.of(CHUNK_FIRST)), HandheldChunkError);
    const huge = new ChunkAssembler();
    huge.push(chunkMessage(new Uint8Array(8192), 4096)[0]);
    assert.throws(() => {
      for (let i = 0; i < 3; i++) huge.push(Uint8Array.of(i + 1, ...new Uint8Array(4095)));
    }, HandheldChunkError);
    assert.throws(() => chunkMessage(new Uint8Array(0), 20), RangeError);
  });

  it('the Wi-Fi port serves the same service (larger chunks), one handheld at a time', () => {
    const r = rig({ wifi: true });
    r.sell(2);
    r.modeKey();
    const wifi = r.board.wifi!;
    assert.equal(wifi.advertising, true);
    const conn = new HandheldConnection(wifi, 1024);
    assert.equal(r.meter.handheld?.connectedOn, 'ble:wifi');
    assert.equal(r.board.ble.connect(), false, 'BLE stops advertising while Wi-Fi has the handheld');
    const t = r.token();
    conn.authenticate(crypto, t.token, t.secret, r.meterId);
    const reply = conn.request({ t: 'next' });
    assert.equal(reply.t, 'set');
    assert.ok(conn.chunksIn <= 4, `a set in ${conn.chunksIn} chunks`);
  });
});

forEachBackend('handheld uploads on the platform', (backend) => {
  let platform: Platform;
  let drop: () => Promise<void>;

  before(async () => {
    ({ platform, drop } = await startPlatform(backend));
  });

  after(async () => {
    await platform?.close();
    await drop?.();
  });

  async function post(frames: string[]): Promise<UploadResult[]> {
    const { headers } = await operatorLogin(platform.operators, 'operator');
    const response = await platform.app.inject({
      method: 'POST',
      url: '/api/handheld/uplinks',
      headers,
      payload: { frames },
    });
    assert.equal(response.statusCode, 200, response.body);
    return (response.json() as { results: UploadResult[] }).results;
  }

  it('needs an operator, and refuses a frame that is no frame with a reason', async () => {
    const anonymous = await platform.app.inject({
      method: 'POST',
      url: '/api/handheld/uplinks',
      payload: { frames: ['00'.repeat(40)] },
    });
    assert.equal(anonymous.statusCode, 401);
    const { headers } = await operatorLogin(platform.operators, 'viewer');
    const viewer = await platform.app.inject({
      method: 'POST',
      url: '/api/handheld/uplinks',
      headers,
      payload: { frames: ['00'.repeat(40)] },
    });
    assert.equal(viewer.statusCode, 403);
    const [result] = await post(['00'.repeat(40)]);
    assert.equal(result.ok, false);
    assert.equal(result.reason, 'bad-version');
  });

  it('a duplicate delivery (the same frame, and the set sealed again) is stored once; the ack releases the set', async () => {
    const meterId = randomMeterId();
    const keys = await platform.provisionMeter(meterId, 'handheld');
    const r = rig({ meterId, keys });
    r.sell(3);
    r.modeKey();
    const conn = new HandheldConnection(r.board.ble);
    const t = r.token();
    conn.authenticate(crypto, t.token, t.secret, r.meterId);
    const a = conn.request({ t: 'next' }).frame as Uint8Array;
    const b = conn.request({ t: 'next' }).frame as Uint8Array; // the same set, sealed again
    const hex = (f: Uint8Array) => Buffer.from(f).toString('hex');
    const results = await post([hex(a), hex(a), hex(b)]);
    assert.equal(results[0].ok, true);
    assert.equal(results[0].stored, r.meter.log.uploads.current!.records.length);
    assert.equal(results[1].ok, false);
    assert.equal(results[1].reason, 'replay');
    assert.equal(results[2].ok, true);
    assert.equal(results[2].stored, 0);
    assert.equal(results[2].duplicates, results[0].stored);
    const rows = await platform.db.query<{ n: number; distinct_seqs: number }>(
      'SELECT count(*)::int AS n, count(DISTINCT seq)::int AS distinct_seqs FROM records WHERE meter_id = $1',
      [meterId],
    );
    assert.equal(rows.rows[0].n, results[0].stored);
    assert.equal(rows.rows[0].distinct_seqs, results[0].stored);
    // Before the ack reaches it, the meter holds on; after, the set is released.
    assert.equal(r.meter.ledger.acknowledgedSeq, 0);
    const reply = conn.request({ t: 'down', frame: fromHex(results[0].downlink!) });
    assert.equal(reply.ok, true);
    assert.equal(r.meter.ledger.acknowledgedSeq, r.meter.log.uploads.current!.lastSeq);
    assert.equal(r.meter.log.uploads.current!.acknowledged, true);
  });

  /** GET /api/handheld/meters/:id/downlinks as `role`: the HTTP answer. */
  async function getDownlinks(meterId: number, role: Role = 'operator') {
    const { headers } = await operatorLogin(platform.operators, role);
    return platform.app.inject({ method: 'GET', url: `/api/handheld/meters/${meterId}/downlinks`, headers });
  }

  /** The handheld's fetch of a meter's downlinks from the platform's route (as an operator). */
  const fetchFromPlatform: DownlinkFetch = async (meterId) => {
    const response = await getDownlinks(meterId);
    assert.equal(response.statusCode, 200, response.body);
    return framesOf(response.json() as MeterDownlinks);
  };

  /** A maintenance token and its secret from the platform, for `meterId`. */
  async function issueToken(meterId: number) {
    const { headers } = await operatorLogin(platform.operators, 'operator');
    const issued = await platform.app.inject({
      method: 'POST',
      url: `/api/meters/${meterId}/maintenance-tokens`,
      headers,
      payload: { staff: 'bob', seconds: 900 },
    });
    assert.equal(issued.statusCode, 201, issued.body);
    const { token, secret } = issued.json() as { token: string; secret: string };
    return { token: fromHex(token), secret: fromHex(secret), meterId };
  }

  it('status events reach the platform through a handheld, exactly once; the meter lets them go once the handheld holds them', async () => {
    const meterId = randomMeterId();
    const keys = await platform.provisionMeter(meterId, 'handheld status');
    const r = rig({ meterId, keys });
    const at = r.clock.now();
    r.meter.bus.emit('status-event', statusEvent(at, 'battery-low', 'warning', true, 'pack at 14 %', 14));
    r.meter.bus.emit('status-event', statusEvent(at + 1_000, 'door-open', 'alarm', true, 'service door'));
    const waiting = r.meter.status.pending;
    assert.ok(waiting >= 2, 'kept on the meter while it has no link');
    r.modeKey();
    const handheld = new Handheld(crypto);
    const report = handheld.visit(r.board.ble, r.token());
    assert.equal(report.frames, waiting, 'every kept event collected as a sealed frame');
    assert.equal(r.meter.status.pending, 0);
    assert.equal(r.meter.comms.kept, 0, 'the meter let them go once the handheld held them');
    const frames = handheld.uplinks.filter((u) => u.kind === 'uplink').map((u) => toHexString(u.frame));
    assert.ok(
      handheld.uplinks.filter((u) => u.kind === 'uplink').every((u) => u.frame[1] === 0x04),
      'status frames (0x04)',
    );
    const summary = await handheld.upload(post);
    assert.equal(summary.refused.length, 0, summary.refused.join(', '));
    // The upload's answer was lost: the same frames handed in again are refused as replays.
    const again = await post(frames);
    assert.ok(again.every((res) => !res.ok && res.reason === 'replay'));
    const rows = await platform.db.query<{ event: string; n: number }>(
      'SELECT event, count(*)::int AS n FROM meter_events WHERE meter_id = $1 GROUP BY event ORDER BY event',
      [meterId],
    );
    const counts = Object.fromEntries(rows.rows.map((row) => [row.event, row.n]));
    assert.equal(counts['battery-low'], 1);
    assert.equal(counts['door-open'], 1);
    assert.ok(
      rows.rows.every((row) => row.n === 1),
      'each event stored once',
    );
  });

  it('a key rotation completed entirely through a handheld: the push carried in, the ack carried out, both ends on epoch 2', async () => {
    const meterId = randomMeterId();
    const keys = await platform.provisionMeter(meterId, 'handheld rotation');
    // The platform issues the tokens, valid from its own clock: the meter's starts there too.
    const r = rig({ meterId, keys, clock: new VirtualClock(new Date().toISOString()) });
    const issue = () => issueToken(meterId);
    r.sell(1);
    const { headers } = await operatorLogin(platform.operators, 'supervisor');
    const pushed = await platform.app.inject({
      method: 'POST',
      url: `/api/meters/${meterId}/key-rotation`,
      headers,
    });
    assert.equal(pushed.statusCode, 202, pushed.body);
    const { downlinkSeq } = pushed.json() as { downlinkSeq: number };
    // The handheld takes the push from the platform's outbox, not from the meter's MQTT topic.
    const waiting = (await getDownlinks(meterId)).json() as MeterDownlinks;
    assert.deepEqual(
      waiting.downlinks.map((d) => [d.type, d.seq, d.epoch]),
      [[KeyFrame.ROTATION, downlinkSeq, 1]],
    );
    const handheld = new Handheld(crypto);
    assert.equal(await handheld.fetchDownlinks(meterId, fetchFromPlatform), 1);
    r.modeKey();
    const visit = handheld.visit(r.board.ble, await issue());
    assert.equal(visit.delivered, 1);
    assert.deepEqual(visit.downlinkReplies, [{ seq: downlinkSeq, ok: true, type: KeyFrame.ROTATION }]);
    assert.equal(r.meter.security.epoch, 2, 'the meter switched: its ack was taken by the handheld');
    const acks = handheld.uplinks.filter((u) => u.kind === 'uplink' && u.frame[1] === KeyFrame.SECURITY);
    assert.equal(acks.length, 1, 'the 0x03 ack collected as a sealed frame');
    const epochOf = async () =>
      Number(
        (
          await platform.db.query<{ key_epoch: number }>('SELECT key_epoch FROM meters WHERE id = $1', [
            meterId,
          ])
        ).rows[0].key_epoch,
      );
    assert.equal(await epochOf(), 1, 'the platform waits for the ack');
    const summary = await handheld.upload(post);
    assert.equal(summary.refused.length, 0, summary.refused.join(', '));
    assert.equal(await epochOf(), 2, 'the ack carried out moved the platform on');
    assert.deepEqual(
      ((await getDownlinks(meterId)).json() as MeterDownlinks).downlinks,
      [],
      'the rotation left the outbox once the meter was on its epoch',
    );
    const events = await platform.db.query<{ event: string }>(
      'SELECT event FROM security_events WHERE meter_id = $1',
      [meterId],
    );
    assert.deepEqual(
      events.rows.map((row) => row.event),
      ['key-epoch'],
    );
    // Both ends on epoch 2: a set sealed now under the new keys is stored, and its ack carried back
    // releases it (the token now under the new epoch's maintenance key).
    r.sell(1);
    r.modeKey();
    const next = handheld.visit(r.board.ble, await issue());
    assert.ok(next.collected > 0);
    const lastCollected = handheld.sets[handheld.sets.length - 1].last;
    const stored = await handheld.upload(post);
    assert.equal(stored.refused.length, 0, stored.refused.join(', '));
    assert.ok(stored.stored > 0);
    r.modeKey();
    handheld.visit(r.board.ble, await issue());
    assert.equal(
      r.meter.ledger.acknowledgedSeq,
      lastCollected,
      'acknowledged up to the set collected under epoch 2',
    );
  });

  it('a tariff pushed to a meter that never had coverage is carried in by hand; its 0x05 ack comes back the same way; a second delivery is refused as a replay and changes nothing', async () => {
    const meterId = randomMeterId();
    const keys = await platform.provisionMeter(meterId, 'handheld tariff');
    const r = rig({ meterId, keys, clock: new VirtualClock(new Date().toISOString()) });
    assert.equal(r.broker.published.length, 0, 'the meter never reached a broker');
    const { headers } = await operatorLogin(platform.operators, 'operator');
    const stored = await platform.app.inject({
      method: 'POST',
      url: '/api/tariffs',
      headers,
      payload: { ...flatTariff(OFFLINE_RATE), id: 'handheld-zone', version: 3 },
    });
    assert.ok([201, 409].includes(stored.statusCode), stored.body);
    const pushed = await platform.app.inject({
      method: 'POST',
      url: `/api/meters/${meterId}/tariff`,
      headers,
      payload: { tariffId: 'handheld-zone' },
    });
    assert.equal(pushed.statusCode, 202, pushed.body);
    const { downlinkSeq } = pushed.json() as { downlinkSeq: number };
    const waiting = (await getDownlinks(meterId)).json() as MeterDownlinks;
    assert.deepEqual(
      waiting.downlinks.map((d) => [d.type, d.seq]),
      [[TARIFF_DOWNLINK, downlinkSeq]],
    );

    // First visit: the push carried in and applied; the ack collected.
    const handheld = new Handheld(crypto);
    assert.equal(await handheld.fetchDownlinks(meterId, fetchFromPlatform), 1);
    r.modeKey();
    const first = handheld.visit(r.board.ble, await issueToken(meterId));
    assert.deepEqual(first.downlinkReplies, [{ seq: downlinkSeq, ok: true, type: TARIFF_DOWNLINK }]);
    assert.equal(r.meter.charging.tariff.id, 'handheld-zone');
    assert.equal(r.meter.charging.tariff.version, 3);
    const acks = handheld.uplinks.filter((u) => u.kind === 'uplink' && u.frame[1] === 0x05);
    assert.equal(acks.length, 1, 'the 0x05 ack collected as a sealed frame');

    // The platform has not heard the ack yet: the push is still listed, and the handheld carries it
    // again on a second visit. The meter refuses it as a replay; nothing changes, no second ack.
    assert.equal(await handheld.fetchDownlinks(meterId, fetchFromPlatform), 1);
    r.modeKey();
    const second = handheld.visit(r.board.ble, await issueToken(meterId));
    assert.equal(second.downlinkReplies.length, 1);
    assert.equal(second.downlinkReplies[0].ok, false);
    assert.equal(second.downlinkReplies[0].why, 'replay');
    assert.equal(r.meter.charging.tariff.version, 3);
    assert.equal(
      handheld.uplinks.filter((u) => u.kind === 'uplink' && u.frame[1] === 0x05).length,
      1,
      'no second ack',
    );

    // The ack handed in: the platform records the tariff applied, and the push leaves the outbox.
    const summary = await handheld.upload(post);
    assert.equal(summary.refused.length, 0, summary.refused.join(', '));
    const status = await platform.app.inject({
      method: 'GET',
      url: `/api/meters/${meterId}/tariff`,
      headers,
    });
    assert.equal(status.statusCode, 200, status.body);
    assert.equal((status.json() as { appliedVersion: number }).appliedVersion, 3);
    assert.deepEqual(((await getDownlinks(meterId)).json() as MeterDownlinks).downlinks, []);
  });

  it('the bridge over HTTP: one errand fetches what waits for the meter, carries it in, and hands the answers back', async () => {
    const meterId = randomMeterId();
    const keys = await platform.provisionMeter(meterId, 'handheld errand');
    const r = rig({ meterId, keys, clock: new VirtualClock(new Date().toISOString()) });
    const login = await operatorLogin(platform.operators, 'operator');
    const stored = await platform.app.inject({
      method: 'POST',
      url: '/api/tariffs',
      headers: login.headers,
      payload: { ...flatTariff(OFFLINE_RATE), id: 'errand-zone', version: 5 },
    });
    assert.equal(stored.statusCode, 201, stored.body);
    const pushed = await platform.app.inject({
      method: 'POST',
      url: `/api/meters/${meterId}/tariff`,
      headers: login.headers,
      payload: { tariffId: 'errand-zone' },
    });
    assert.equal(pushed.statusCode, 202, pushed.body);
    const base = await platform.listen(0);
    const bearer = login.headers.authorization.replace(/^Bearer /, '');
    r.sell(1);
    r.modeKey();
    const handheld = new Handheld(crypto);
    const { visit, upload } = await handheld.serve(r.board.ble, await issueToken(meterId), {
      fetch: downlinksOverHttp(base, bearer),
      post: uploadOverHttp(base, bearer),
    });
    assert.deepEqual(
      visit.downlinkReplies.map((d) => [d.ok, d.type]),
      [[true, TARIFF_DOWNLINK]],
    );
    assert.equal(r.meter.charging.tariff.id, 'errand-zone');
    assert.ok(visit.collected >= 1, 'the sale collected too');
    assert.deepEqual(upload.refused, []);
    assert.ok(upload.stored >= 1);
    const status = await platform.app.inject({
      method: 'GET',
      url: `/api/meters/${meterId}/tariff`,
      headers: login.headers,
    });
    assert.equal((status.json() as { appliedVersion: number }).appliedVersion, 5);
    assert.deepEqual(await downlinksOverHttp(base, bearer)(meterId), [], 'nothing waits any more');
    // The acks of the sets just handed in wait in the handheld for the next visit.
    assert.ok((handheld.downlinks.get(meterId) ?? []).length >= 1);
  });

  it('keeps only the newest push of a kind, in sequence order; fetches a beat of meters in one call', async () => {
    const a = randomMeterId();
    const b = randomMeterId();
    await platform.provisionMeter(a, 'beat a');
    await platform.provisionMeter(b, 'beat b');
    const { headers } = await operatorLogin(platform.operators, 'operator');
    await platform.app.inject({
      method: 'POST',
      url: '/api/tariffs',
      headers,
      payload: { ...flatTariff(OFFLINE_RATE), id: 'beat-zone', version: 1 },
    });
    const push = async (meterId: number) => {
      const pushed = await platform.app.inject({
        method: 'POST',
        url: `/api/meters/${meterId}/tariff`,
        headers,
        payload: { tariffId: 'beat-zone' },
      });
      assert.equal(pushed.statusCode, 202, pushed.body);
      return (pushed.json() as { downlinkSeq: number }).downlinkSeq;
    };
    await push(a);
    const newest = await push(a); // pushed again: the first is superseded
    const { headers: supervisor } = await operatorLogin(platform.operators, 'supervisor');
    const rotation = await platform.app.inject({
      method: 'POST',
      url: `/api/meters/${a}/key-rotation`,
      headers: supervisor,
    });
    assert.equal(rotation.statusCode, 202, rotation.body);
    const rotationSeq = (rotation.json() as { downlinkSeq: number }).downlinkSeq;
    const forB = await push(b);
    const unknown = randomMeterId();
    const beat = await platform.app.inject({
      method: 'GET',
      url: `/api/handheld/downlinks?meters=${a},${b},${unknown}`,
      headers,
    });
    assert.equal(beat.statusCode, 200, beat.body);
    const answer = beat.json() as { meters: MeterDownlinks[]; unknown: number[] };
    assert.deepEqual(
      answer.meters.map((m) => [m.meterId, m.downlinks.map((d) => [d.type, d.seq])]),
      [
        [
          a,
          [
            [TARIFF_DOWNLINK, newest],
            [KeyFrame.ROTATION, rotationSeq],
          ],
        ],
        [b, [[TARIFF_DOWNLINK, forB]]],
      ],
    );
    assert.deepEqual(answer.unknown, [unknown]);
    const single = (await getDownlinks(a)).json() as MeterDownlinks;
    assert.deepEqual(single.downlinks, answer.meters[0].downlinks, 'the same frames one meter at a time');
    const bad = await platform.app.inject({
      method: 'GET',
      url: '/api/handheld/downlinks?meters=1,x',
      headers,
    });
    assert.equal(bad.statusCode, 400);
  });

  it('refuses a viewer and an anonymous caller, and answers 404 for an unknown meter', async () => {
    const meterId = randomMeterId();
    await platform.provisionMeter(meterId, 'handheld guard');
    const viewer = await getDownlinks(meterId, 'viewer');
    assert.equal(viewer.statusCode, 403);
    const { headers } = await operatorLogin(platform.operators, 'viewer');
    const viewerBeat = await platform.app.inject({
      method: 'GET',
      url: `/api/handheld/downlinks?meters=${meterId}`,
      headers,
    });
    assert.equal(viewerBeat.statusCode, 403);
    const anonymous = await platform.app.inject({
      method: 'GET',
      url: `/api/handheld/meters/${meterId}/downlinks`,
    });
    assert.equal(anonymous.statusCode, 401);
    let unknown = randomMeterId();
    while (unknown === meterId) unknown = randomMeterId();
    const missing = await getDownlinks(unknown);
    assert.equal(missing.statusCode, 404);
    assert.equal((missing.json() as { code: string }).code, 'unknown-meter');
    const audit = await platform.db.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM operator_audit WHERE action = 'handheld.downlinks'",
    );
    assert.ok(audit.rows[0].n > 0, 'fetches are audited');
  });
});
