// End to end with no radio: a meter whose only way to the platform is a handheld. Over several
// visits (with the link dropping mid-transfer) the handheld collects the meter's sets, hands them
// to the platform (PGlite + aedes, or PostgreSQL + Mosquitto), among them a frame it hands in twice
// and a set it collected again; it carries the acks back, and the meter lets each set go only then.
// Every record is stored exactly once; the figures are printed.
import assert from 'node:assert/strict';
import { VirtualClock } from '../../hal/mock/clock';
import { nobleCrypto as crypto } from '../../hal/nobleCrypto';
import { fromHex, toHex } from '../../protocol/bytes';
import type { Platform } from '../../platform-server/platform';
import { forEachBackend, operatorLogin, randomMeterId, startPlatform } from '../../sim/fleet/platform';
import { Handheld, type UploadSummary, uploadOverHttp } from '../../sim/handheld/client';
import { offlineMeter } from '../support/offlineMeter';

forEachBackend('a meter reached only through a handheld', (backend) => {
  let platform: Platform;
  let drop: () => Promise<void>;

  before(async () => {
    ({ platform, drop } = await startPlatform(backend));
  });

  after(async () => {
    await platform?.close();
    await drop?.();
  });

  it('stores every record exactly once after visits with disconnects and duplicate deliveries', async () => {
    const meterId = randomMeterId();
    const keys = await platform.provisionMeter(meterId, 'no radio');
    // The meter's clock near the platform's: the platform's tokens are valid from now on.
    const {
      board,
      meter,
      sell: sellOnBays,
    } = offlineMeter({
      meterId,
      keys,
      cardTokenKey: keys.cardTokenKey,
      clock: new VirtualClock(new Date().toISOString()),
    });
    const sell = (n: number) => sellOnBays(n, { alternate: true, gapMs: 20_000 });

    const { headers } = await operatorLogin(platform.operators, 'operator');
    const token = async () => {
      const response = await platform.app.inject({
        method: 'POST',
        url: `/api/meters/${meterId}/maintenance-tokens`,
        headers,
        payload: { staff: 'warden.kim', seconds: 3600 },
      });
      assert.equal(response.statusCode, 201, response.body);
      const issued = response.json() as { token: string; secret: string };
      return { token: fromHex(issued.token), secret: fromHex(issued.secret), meterId };
    };
    // The handheld hands its frames in over HTTP, as an operator.
    const post = uploadOverHttp(await platform.listen(0), headers.authorization.replace(/^Bearer /, ''));
    const modeKey = () => {
      for (let i = 0; i < 3; i++) board.press('cancel');
    };

    const handheld = new Handheld(crypto, { mtu: 64 });
    const totals = { visits: 0, dropped: 0, frames: 0, stored: 0, duplicates: 0, refused: 0 };
    const add = (u: UploadSummary) => {
      totals.frames += u.frames;
      totals.stored += u.stored;
      totals.duplicates += u.duplicates;
      totals.refused += u.refused.length;
    };
    const visit = async (options: { dropAfter?: number } = {}) => {
      modeKey();
      const peripheral = board.ble.peripheral;
      const notify = peripheral.notify;
      let sent = 0;
      if (options.dropAfter !== undefined) {
        peripheral.notify = (data) => {
          if (++sent > options.dropAfter!) {
            board.ble.disconnect();
            return false;
          }
          return notify(data);
        };
      }
      try {
        const report = handheld.visit(board.ble, await token());
        totals.visits++;
        if (report.dropped) totals.dropped++;
        return report;
      } finally {
        peripheral.notify = notify;
      }
    };

    // Round 1: sales; a visit cut short mid-transfer, then one that finishes; the upload, handed in
    // twice (the first answer lost, say).
    sell(70);
    const first = await visit({ dropAfter: 50 }); // in the middle of the second set
    assert.equal(first.dropped, true);
    await visit();
    assert.ok(handheld.uplinks.length >= 2, 'several sets');
    assert.equal(meter.ledger.acknowledgedSeq, 0, 'nothing is let go before an ack');
    const again = handheld.uplinks.map((s) => toHex(s.frame));
    add(await handheld.upload(post));
    const replayed = await post(again); // the very same frames, a second time
    assert.ok(replayed.every((r) => !r.ok && r.reason === 'replay'));
    totals.frames += replayed.length;
    totals.refused += replayed.length;

    // Round 2: more sales; the acks go back on the next visit, which collects the new sets. Its
    // answer is lost too: the handheld collects the same records again on the visit after.
    sell(40);
    const second = await visit();
    assert.ok(second.delivered >= 2);
    assert.ok(meter.ledger.acknowledgedSeq > 0, 'the acks carried back released the first sets');
    const lostAnswer = handheld.uplinks.splice(0); // collected, but the upload's answer never came
    const lost = await post(lostAnswer.map((s) => toHex(s.frame)));
    totals.frames += lost.length;
    totals.stored += lost.reduce((n, r) => n + (r.stored ?? 0), 0);
    sell(20);
    await visit(); // the same records again (sealed afresh), and the new ones
    add(await handheld.upload(post));

    // Round 3: the last acks go back. Each visit ends with its own session record on the meter,
    // which the next visit collects: those of the last visits wait on the meter, not lost.
    const last = await visit();
    assert.ok(last.delivered >= 1);
    assert.equal(meter.ledger.acknowledgedSeq, last.acked);
    const waiting = meter.log.lastSeq - meter.ledger.acknowledgedSeq;
    assert.ok(waiting <= 2, `${waiting} records of the last visits wait for the next one`);
    assert.equal(
      meter.log.read(meter.ledger.acknowledgedSeq + 1).length,
      waiting,
      'and the meter holds them',
    );

    const rows = await platform.db.query<{ n: number; distinct_seqs: number; lo: number; hi: number }>(
      `SELECT count(*)::int AS n, count(DISTINCT seq)::int AS distinct_seqs, min(seq)::int AS lo, max(seq)::int AS hi
         FROM records WHERE meter_id = $1`,
      [meterId],
    );
    const held = rows.rows[0];
    const acked = meter.ledger.acknowledgedSeq;
    const stored = held.n;
    const duplicates = held.n - held.distinct_seqs;
    const losses = acked - held.distinct_seqs;
    console.log(
      `      handheld only: ${acked} records acknowledged, ${stored} stored, duplicates ${duplicates}, ` +
        `losses ${losses}; ${totals.visits} visits (${totals.dropped} cut short), ${totals.frames} frames handed in, ` +
        `${totals.duplicates} records delivered twice and absorbed, ${totals.refused} frames refused as replays; ` +
        `${waiting} records of the last visits wait on the meter`,
    );
    // The records the platform holds are the meter's, byte for byte.
    const bytes = await platform.db.query<{ seq: number; bytes: Uint8Array }>(
      'SELECT seq, bytes FROM records WHERE meter_id = $1 ORDER BY seq',
      [meterId],
    );
    const mine = meter.log.read(1, acked);
    assert.equal(bytes.rows.length, mine.length);
    bytes.rows.forEach((row, i) => {
      assert.equal(row.seq, mine[i].seq);
      assert.deepEqual(new Uint8Array(row.bytes), mine[i].bytes);
    });
    assert.equal(duplicates, 0);
    assert.equal(losses, 0);
    assert.equal(held.lo, 1);
    assert.equal(held.hi, acked);
    assert.ok(acked >= 130, 'every sale and the records around them');
    assert.ok(totals.duplicates > 0, 'a set collected twice reached the platform twice');
    meter.stop();
  });
});
