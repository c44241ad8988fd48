// Areas and push targets, on both backends: an admin places meters in areas; a target of listed
// meters, an area or the fleet resolves to the registered meters it addresses, and a list naming an
// unknown meter is refused rather than quietly shrunk.
import assert from 'node:assert/strict';
import { resolveTarget, UnknownMetersError } from '../../platform-server/fleet/targets';
import { createPlatform, type Platform } from '../../platform-server/platform';
import {
  CapturingLogger,
  forEachBackend,
  type OperatorLogin,
  operatorLogin,
  randomMeterId,
} from '../../sim/fleet/platform';

forEachBackend('areas and push targets', (backend) => {
  let platform: Platform;
  let drop: () => Promise<void>;
  let admin: OperatorLogin;
  let viewer: OperatorLogin;
  const ids: number[] = [];

  const place = (id: number, area: unknown, who = admin) =>
    platform.app.inject({
      method: 'PUT',
      url: `/api/meters/${id}/area`,
      headers: who.headers,
      payload: { area },
    });

  before(async () => {
    const fresh = await backend.fresh();
    drop = fresh.drop;
    platform = await createPlatform({ ...fresh.config, httpLogger: false, logger: new CapturingLogger() });
    admin = await operatorLogin(platform.operators, 'admin');
    viewer = await operatorLogin(platform.operators, 'viewer');
    while (ids.length < 3) {
      const id = randomMeterId();
      if (ids.includes(id)) continue;
      ids.push(id);
      await platform.provisionMeter(id, `Meter ${ids.length}`);
    }
    ids.sort((a, b) => a - b);
  });

  after(async () => {
    await platform?.close();
    await drop?.();
  });

  it('places meters in areas, lists the areas and shows each meter its area', async () => {
    assert.equal((await place(ids[0], 'Harbour')).statusCode, 200);
    assert.equal((await place(ids[1], 'Harbour')).statusCode, 200);
    const moved = await place(ids[2], 'Old Town');
    assert.deepEqual(moved.json(), { meterId: ids[2], area: 'Old Town' });
    const areas = await platform.app.inject({ method: 'GET', url: '/api/areas', headers: viewer.headers });
    assert.deepEqual(areas.json().areas, [
      { area: 'Harbour', meters: 2 },
      { area: 'Old Town', meters: 1 },
    ]);
    const list = await platform.app.inject({ method: 'GET', url: '/api/meters', headers: viewer.headers });
    const byId = new Map(list.json().meters.map((m: { id: number; area: string | null }) => [m.id, m.area]));
    assert.equal(byId.get(ids[2]), 'Old Town');
  });

  it('refuses a viewer, an unknown meter, an empty or control-character name, and keeps the area', async () => {
    assert.equal((await place(ids[0], 'Elsewhere', viewer)).statusCode, 403);
    assert.equal((await place(999_999_999, 'Harbour')).statusCode, 404);
    for (const bad of ['', 'a'.repeat(65), 'tab\there', { name: 'Harbour' }])
      assert.equal((await place(ids[0], bad)).statusCode, 400);
    const target = await resolveTarget(platform.db, { area: 'Harbour' });
    assert.deepEqual(target, [ids[0], ids[1]]);
  });

  it('takes a meter out of its area with null, and audits the change', async () => {
    assert.equal((await place(ids[1], null)).statusCode, 200);
    assert.deepEqual(await resolveTarget(platform.db, { area: 'Harbour' }), [ids[0]]);
    const audit = await platform.db.query<{ action: string }>(
      "SELECT action FROM operator_audit WHERE action = 'meter.area'",
    );
    assert.equal(audit.rows.length, 4);
  });

  it('resolves listed meters, an area, the fleet, and refuses a list naming an unknown meter', async () => {
    assert.deepEqual(await resolveTarget(platform.db, { meters: [ids[2], ids[0], ids[2]] }), [
      ids[0],
      ids[2],
    ]);
    assert.deepEqual(await resolveTarget(platform.db, { area: 'Nowhere' }), []);
    const fleet = await resolveTarget(platform.db, { fleet: true });
    for (const id of ids) assert.ok(fleet.includes(id));
    await assert.rejects(
      resolveTarget(platform.db, { meters: [ids[0], 4_000_000_001] }),
      (error: unknown) => {
        assert.ok(error instanceof UnknownMetersError);
        assert.deepEqual(error.meterIds, [4_000_000_001]);
        return true;
      },
    );
  });
});
