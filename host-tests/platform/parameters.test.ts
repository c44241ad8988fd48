// Operating parameters on the platform, on both backends, with virtual meters on the broker: an
// admin defines a set (a value out of range refused, naming it) and pushes it to an area; every
// meter of the area and only those apply it and acknowledge; a set a meter refuses is recorded with
// the reason while the meter keeps its set; a local change is reported; meters behind are listed.
import assert from 'node:assert/strict';
import { VirtualClock } from '../../hal/mock/clock';
import { encodeMaintenanceToken, maintenanceProof, maintenanceSecret } from '../../protocol/keys';
import { encodeParametersPush, PARAMETERS_DOWNLINK } from '../../protocol/parameters';
import { HandheldConnection } from '../../sim/handheld/client';
import { ParameterService } from '../../platform-server/parameters/service';
import type { Platform } from '../../platform-server/platform';
import { forEachBackend, type OperatorLogin, operatorLogin, randomMeterId } from '../../sim/fleet/platform';
import { type BootedMeter, bootMeter, phonePlatform, until } from '../phone/support';

forEachBackend('operating parameters (0x89/0x09)', (backend) => {
  const clock = new VirtualClock('2026-06-01T09:00:00Z');
  let platform: Platform;
  let drop: () => Promise<void>;
  let admin: OperatorLogin;
  let operator: OperatorLogin;
  let viewer: OperatorLogin;
  const meters: BootedMeter[] = [];
  const ids: number[] = [];

  const api = (method: 'GET' | 'POST' | 'PUT', url: string, who: OperatorLogin, payload?: object) =>
    platform.app.inject({ method, url, headers: who.headers, ...(payload === undefined ? {} : { payload }) });
  const ofMeter = async (id: number) => (await api('GET', `/api/meters/${id}/parameters`, viewer)).json();

  before(async () => {
    const fresh = await backend.fresh();
    drop = fresh.drop;
    platform = await phonePlatform(fresh.config, clock);
    admin = await operatorLogin(platform.operators, 'admin');
    operator = await operatorLogin(platform.operators, 'operator');
    viewer = await operatorLogin(platform.operators, 'viewer');
    while (ids.length < 3) {
      const id = randomMeterId();
      if (!ids.includes(id)) ids.push(id);
    }
    for (const id of ids) meters.push(await bootMeter(platform, id, clock));
    for (const id of ids.slice(0, 2))
      assert.equal((await api('PUT', `/api/meters/${id}/area`, admin, { area: 'Harbour' })).statusCode, 200);
  });

  after(async () => {
    for (const m of meters) m.meter.stop();
    await platform?.close();
    await drop?.();
  });

  it('refuses a set with a value out of range (400 naming it) and an operator (403)', async () => {
    const bad = await api('POST', '/api/parameter-sets', admin, { values: { uploadIntervalSeconds: 5 } });
    assert.equal(bad.statusCode, 400);
    assert.equal(bad.json().field, 'values.uploadIntervalSeconds');
    const none = await api('GET', '/api/parameter-sets/latest', viewer);
    assert.equal(none.statusCode, 404, 'nothing was stored');
    const forbidden = await api('POST', '/api/parameter-sets', operator, {
      values: { uploadBatchBytes: 1024 },
    });
    assert.equal(forbidden.statusCode, 403);
  });

  it('a push to an area reaches every meter in it and only those; each acknowledgement is recorded', async function () {
    this.timeout(60_000); // the meters' acknowledgements come over the broker, slower on a loaded machine
    const defined = await api('POST', '/api/parameter-sets', admin, {
      values: { uploadBatchBytes: 1024, sleepIdleSeconds: 120 },
      note: 'smaller sets',
    });
    assert.equal(defined.statusCode, 201, defined.body);
    const { version } = defined.json();
    const pushed = await api('POST', `/api/parameter-sets/${version}/push`, admin, {
      target: { area: 'Harbour' },
    });
    assert.equal(pushed.statusCode, 202, pushed.body);
    assert.deepEqual(
      pushed.json().meters.map((m: { meterId: number }) => m.meterId),
      ids.slice(0, 2).sort((a, b) => a - b),
    );
    for (const id of ids.slice(0, 2))
      await until(async () => (await ofMeter(id)).appliedVersion === version, `meter ${id} to acknowledge`);
    assert.deepEqual((await ofMeter(ids[0])).values, { uploadBatchBytes: 1024, sleepIdleSeconds: 120 });
    assert.equal(meters[0].meter.parameters.version, version);
    assert.equal(meters[2].meter.parameters.version, 0, 'the meter outside the area got nothing');
    assert.equal((await api('GET', `/api/meters/${ids[2]}/parameters`, viewer)).statusCode, 404);
    const behind = await api('POST', '/api/parameter-sets/behind', viewer, { target: { fleet: true } });
    assert.deepEqual(
      behind.json().meters.map((m: { meterId: number }) => m.meterId),
      [ids[2]],
    );
    const audit = await platform.operators.auditLog({ action: 'parameters.push' });
    assert.equal(audit.entries.length, 1);
    assert.equal(audit.entries[0].target, 'area Harbour');
  });

  it('a set the meter refuses is recorded with its reason; the meter keeps the set in force', async () => {
    const id = ids[0];
    const held = meters[0].meter.parameters.version;
    // A set the platform would not store, sent as a downlink: the meter checks it itself.
    await platform.ingest.sendDownlink(
      id,
      PARAMETERS_DOWNLINK,
      encodeParametersPush({
        version: held + 50,
        values: { uploadBatchBytes: 1024, statusIntervalSeconds: 1 },
      }),
    );
    await until(async () => (await ofMeter(id)).refused !== null, 'the refusal to be recorded');
    const view = await ofMeter(id);
    assert.equal(view.refused.version, held + 50);
    assert.match(view.refused.why, /statusIntervalSeconds/);
    assert.equal(view.appliedVersion, held);
    assert.deepEqual(meters[0].meter.parameters.values, { uploadBatchBytes: 1024, sleepIdleSeconds: 120 });
  });

  it('a change in the maintenance session of a handheld is reported as local and the meter listed as behind', async () => {
    const m = meters[1];
    // The technician's handheld proves a maintenance token, then changes a value in that session.
    const now = Math.floor(clock.now() / 1000);
    const token = encodeMaintenanceToken({
      meterId: ids[1],
      staff: 'alice',
      tokenId: 1,
      notBefore: now - 10,
      expiresAt: now + 600,
    });
    const secret = maintenanceSecret(
      platform.ingest.crypto,
      platform.keystore.meterKeys(ids[1], 1).secrets!.m,
      token,
    );
    m.meter.bus.emit('maintenance-entry', {}); // the mode key switches the handheld link on
    const conn = new HandheldConnection(m.board.ble);
    const challenge = conn.request({ t: 'hello', token }) as { t: string; c: Uint8Array };
    conn.request({ t: 'proof', p: maintenanceProof(platform.ingest.crypto, secret, challenge.c, ids[1]) });
    const answer = conn.request({ t: 'params', set: { sleepIdleSeconds: 300 } }) as { ok: boolean };
    assert.equal(answer.ok, true);
    await until(async () => (await ofMeter(ids[1])).localChange === true, 'the local change to be reported');
    assert.deepEqual((await ofMeter(ids[1])).values, { uploadBatchBytes: 1024, sleepIdleSeconds: 300 });
    const behind = await api('POST', '/api/parameter-sets/behind', viewer, { target: { area: 'Harbour' } });
    assert.deepEqual(
      behind.json().meters.map((v: { meterId: number }) => v.meterId),
      [ids[1]],
    );
  });

  it('refuses a push naming an unknown meter (404) and an unknown set (404)', async () => {
    const latest = (await api('GET', '/api/parameter-sets/latest', viewer)).json().version;
    const unknownMeter = await api('POST', `/api/parameter-sets/${latest}/push`, admin, {
      target: { meters: [4_000_000_001] },
    });
    assert.equal(unknownMeter.statusCode, 404);
    const unknownSet = await api('POST', `/api/parameter-sets/${latest + 9}/push`, admin, {
      target: { fleet: true },
    });
    assert.equal(unknownSet.statusCode, 404);
  });

  it('a push the broker cannot take leaves the meter as it was: its earlier push, or none', async () => {
    const latest = (await api('GET', '/api/parameter-sets/latest', viewer)).json().version;
    const unreachable = new ParameterService({
      db: platform.db,
      sendDownlink: async () => {
        throw new Error('broker down');
      },
    });
    const row = async (id: number) =>
      (
        await platform.db.query<Record<string, unknown>>(
          'SELECT pushed_version, pushed_at, downlink_seq FROM meter_parameters WHERE meter_id = $1',
          [id],
        )
      ).rows[0];
    // ids[0] took the area push above; ids[2] has never been pushed to.
    const earlier = await row(ids[0]);
    assert.ok(earlier);
    const neverPushed = await row(ids[2]);
    const outcome = await unreachable.push(latest, { meters: [ids[0], ids[2]] });
    assert.deepEqual(
      [...outcome.meters].sort((a, b) => a.meterId - b.meterId),
      [ids[0], ids[2]].sort((a, b) => a - b).map((meterId) => ({ meterId, error: 'broker down' })),
    );
    assert.deepEqual(await row(ids[0]), earlier);
    assert.deepEqual(await row(ids[2]), neverPushed);
  });

  it('a push sent while an earlier one waits on the broker keeps its own downlink number', async () => {
    const older = (await api('GET', '/api/parameter-sets/latest', viewer)).json().version;
    const defined = await api('POST', '/api/parameter-sets', admin, { values: { sleepIdleSeconds: 300 } });
    assert.equal(defined.statusCode, 201, defined.body);
    const newer = defined.json().version;
    let release = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const slow = new ParameterService({
      db: platform.db,
      sendDownlink: async () => {
        await held;
        return 1001;
      },
    });
    const quick = new ParameterService({ db: platform.db, sendDownlink: async () => 2002 });
    const first = slow.push(older, { meters: [ids[2]] });
    // The older push has recorded itself and waits on the broker; the newer one goes through.
    await until(async () => {
      const { rows } = await platform.db.query<{ pushed_version: number }>(
        'SELECT pushed_version FROM meter_parameters WHERE meter_id = $1',
        [ids[2]],
      );
      return Number(rows[0]?.pushed_version) === older;
    }, 'the older push to be recorded');
    assert.deepEqual((await quick.push(newer, { meters: [ids[2]] })).meters, [
      { meterId: ids[2], downlinkSeq: 2002 },
    ]);
    release();
    assert.deepEqual((await first).meters, [{ meterId: ids[2], downlinkSeq: 1001 }]);
    const { rows } = await platform.db.query<{ pushed_version: number; downlink_seq: number }>(
      'SELECT pushed_version, downlink_seq FROM meter_parameters WHERE meter_id = $1',
      [ids[2]],
    );
    assert.deepEqual(
      { version: Number(rows[0].pushed_version), seq: Number(rows[0].downlink_seq) },
      { version: newer, seq: 2002 },
      'the row is the newer push with its own number',
    );
  });
});
