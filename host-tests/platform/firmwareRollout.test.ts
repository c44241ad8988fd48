// The firmware registry and rollouts (platform-server/firmware/service.ts) driving real meter-side
// update units (firmware/units/update.ts on virtual A/B slots) in process: uploads are refused
// unless the release signature verifies; a rollout goes stage by stage as meters confirm, halts by
// itself when a stage's failure rate passes the threshold, and pauses, resumes and aborts.
import assert from 'node:assert/strict';
import Fastify from 'fastify';
import { firmwareRoutes } from '../../platform-server/firmware/routes';
import { FirmwareError, FirmwareService } from '../../platform-server/firmware/service';
import type { Platform } from '../../platform-server/platform';
import { decodeFirmwareDownlink, FIRMWARE_DOWNLINK } from '../../protocol/firmware';
import { forEachBackend, operatorLogin, startPlatform } from '../../sim/fleet/platform';
import {
  IMAGE_FAILS_SELF_TEST,
  makeImage,
  RELEASE_KEY,
  signImage,
  TARGET,
  UpdateRig,
} from '../../tools/updatePowercut';

const PAYLOAD = 6000;

forEachBackend('firmware registry and staged rollouts', (backend) => {
  let platform: Platform;
  let drop: () => Promise<void>;
  let service: FirmwareService;
  const outbox: { meterId: number; body: Uint8Array }[] = [];
  const rigs = new Map<number, UpdateRig>();

  before(async () => {
    ({ platform, drop } = await startPlatform(backend));
    service = new FirmwareService({
      db: platform.db,
      releaseKey: RELEASE_KEY,
      chunkBytes: 1000,
      sendDownlink: async (meterId, type, body) => {
        assert.equal(type, FIRMWARE_DOWNLINK);
        outbox.push({ meterId, body });
        return outbox.length;
      },
    });
    for (let id = 9001; id <= 9010; id++) {
      await platform.db.query('INSERT INTO meters (id, name) VALUES ($1, $2)', [id, `m${id}`]);
      const rig = new UpdateRig(makeImage(1, PAYLOAD));
      assert.ok(rig.boot());
      rig.appendRecord('in service');
      rigs.set(id, rig);
    }
  });
  after(async () => {
    await platform?.close();
    await drop?.();
  });

  /** Delivers downlinks to the meters and their progress to the platform until both are quiet. */
  async function pump(): Promise<void> {
    for (let steps = 0; steps < 10_000; steps++) {
      for (const [meterId, rig] of rigs) {
        for (const p of rig.sent.splice(0)) await service.onProgress(meterId, p);
      }
      const next = outbox.shift();
      if (!next) return;
      const rig = rigs.get(next.meterId);
      assert.ok(rig);
      try {
        rig.unit?.handle(next.body);
      } catch {
        // a refusal is reported in the meter's progress
      }
      // a switch or a rollback restarts the meter: what it said before goes out, then it boots again
      for (let boots = 0; rig.down && boots < 5; boots++) {
        for (const p of rig.sent.splice(0)) await service.onProgress(next.meterId, p);
        assert.ok(rig.boot(), 'the meter boots again');
      }
    }
    assert.fail('delivery did not settle');
  }

  const upload = (version: number, flags = 0, sign = signImage) => {
    const image = makeImage(version, PAYLOAD, flags);
    return service.upload({
      version,
      target: TARGET,
      image,
      signature: sign(image, version).signature,
      by: 'rel',
      notes: 'n',
    });
  };

  it('stores an image only when the release signature verifies, for its target and version', async () => {
    const image = makeImage(2, PAYLOAD);
    const other = signImage(image, 2, TARGET, new Uint8Array(32).fill(3));
    const refusals = [
      () => service.upload({ version: 2, target: TARGET, image, signature: other.signature, by: 'x' }),
      () =>
        service.upload({
          version: 3,
          target: TARGET,
          image,
          signature: signImage(image, 2).signature,
          by: 'x',
        }),
      () =>
        service.upload({
          version: 2,
          target: 'esp32-other',
          image,
          signature: signImage(image, 2).signature,
          by: 'x',
        }),
    ];
    for (const f of refusals)
      await assert.rejects(
        f(),
        (e: unknown) => e instanceof FirmwareError && e.status === 422 && e.code === 'bad-signature',
      );
    assert.deepEqual(await service.images(), []);
    const stored = await upload(2);
    assert.equal(stored.version, 2);
    assert.equal(stored.length, image.length);
    await assert.rejects(upload(2), (e: unknown) => e instanceof FirmwareError && e.status === 409);
  });

  it('rolls out stage by stage: the second stage is offered only after the first confirmed', async () => {
    const [image] = await service.images();
    const meters = [9001, 9002, 9003, 9004];
    const { id } = await service.createRollout({
      imageId: image.id,
      target: { meters },
      stages: [25, 100],
      maxFailureRate: 0.25,
      by: 'sup',
    });
    assert.deepEqual(
      outbox.map((o) => [o.meterId, decodeFirmwareDownlink(o.body).k]),
      [[9001, 'offer']],
      'only the first stage (25%) is offered',
    );
    await pump();
    const view = await service.rollout(id);
    assert.equal(view.state, 'done');
    assert.deepEqual(
      view.meters.map((m) => [m.meterId, m.stage, m.state]),
      [
        [9001, 0, 'confirmed'],
        [9002, 1, 'confirmed'],
        [9003, 1, 'confirmed'],
        [9004, 1, 'confirmed'],
      ],
    );
    for (const m of meters) assert.equal(rigs.get(m)?.image?.version, 2);
    assert.equal(rigs.get(9005)?.image?.version, 1, 'a meter outside the rollout is untouched');
    for (const m of meters) assert.equal(rigs.get(m)?.recordsLost(), 0);
    const events = view.events.map((e) => e.event);
    assert.ok(events.indexOf('stage') > events.indexOf('confirmed'), events.join());
    assert.deepEqual(
      view.events.filter((e) => e.meterId === 9001).map((e) => e.event),
      ['offer-sent', 'offered', 'downloading', 'verified', 'booted-pending', 'confirmed'],
    );
  });

  it('halts by itself when a stage fails past its threshold; resumes, pauses and aborts on request', async () => {
    const bad = await upload(3, IMAGE_FAILS_SELF_TEST);
    const { id } = await service.createRollout({
      imageId: bad.id,
      target: { meters: [9005, 9006, 9007, 9008] },
      stages: [50, 100],
      maxFailureRate: 0.4,
      by: 'sup',
    });
    await pump();
    let view = await service.rollout(id);
    assert.equal(view.state, 'halted');
    assert.match(view.reason, /stage 0: [12] of 2 meters failed/);
    assert.ok(view.meters.filter((m) => m.stage === 0).some((m) => m.state === 'rolled-back'));
    assert.deepEqual(
      view.meters.filter((m) => m.stage === 1).map((m) => m.state),
      ['waiting', 'waiting'],
      'the next stage was never offered',
    );
    for (const m of [9005, 9006])
      assert.equal(rigs.get(m)?.image?.version, 1, 'rolled back to the old image');
    await assert.rejects(service.pause(id), (e: unknown) => e instanceof FirmwareError && e.status === 409);
    await service.abort(id);
    view = await service.rollout(id);
    assert.equal(view.state, 'aborted');
    await assert.rejects(
      service.resume(id),
      (e: unknown) => e instanceof FirmwareError && e.code === 'bad-state',
    );

    const good = await upload(4);
    const { id: next } = await service.createRollout({
      imageId: good.id,
      target: { meters: [9009, 9010] },
      stages: [100],
      maxFailureRate: 0,
      by: 'sup',
    });
    await service.pause(next);
    await pump(); // offers went out before the pause: the meters answer, no chunk follows
    assert.equal(
      (await service.rollout(next)).meters.every((m) => m.state === 'offered'),
      true,
    );
    await service.resume(next); // offers again: each meter answers with the offset it wants
    await pump();
    assert.equal((await service.rollout(next)).state, 'done');
  });

  it('HTTP: upload needs an admin, rollouts a supervisor, reading a viewer; every change is audited', async () => {
    const app = Fastify();
    await app.register(firmwareRoutes, { service, guard: platform.operators });
    try {
      const viewer = await operatorLogin(platform.operators, 'viewer');
      const admin = await operatorLogin(platform.operators, 'admin');
      const supervisor = await operatorLogin(platform.operators, 'supervisor');
      const image = makeImage(5, PAYLOAD);
      const payload = {
        version: 5,
        target: TARGET,
        notes: 'release 5',
        image: Buffer.from(image).toString('base64'),
        signature: Buffer.from(signImage(image, 5).signature).toString('hex'),
      };
      const post = (url: string, headers: object, body?: object) =>
        app.inject({ method: 'POST', url, headers: headers as Record<string, string>, payload: body });
      assert.equal((await post('/api/firmware/images', {}, payload)).statusCode, 401);
      assert.equal((await post('/api/firmware/images', viewer.headers, payload)).statusCode, 403);
      const forged = { ...payload, signature: '00'.repeat(64) };
      const refused = await post('/api/firmware/images', admin.headers, forged);
      assert.equal(refused.statusCode, 422);
      const created = await post('/api/firmware/images', admin.headers, payload);
      assert.equal(created.statusCode, 201);
      const imageId = created.json().id as number;
      const listed = await app.inject({
        method: 'GET',
        url: '/api/firmware/images',
        headers: viewer.headers,
      });
      assert.ok(listed.json().images.some((i: { id: number }) => i.id === imageId));
      const rolloutBody = { imageId, target: { meters: [9001] }, stages: [100], maxFailureRate: 0 };
      assert.equal(
        (await post('/api/firmware/rollouts', admin.headers, { ...rolloutBody, stages: [50] })).statusCode,
        400,
      );
      assert.equal((await post('/api/firmware/rollouts', viewer.headers, rolloutBody)).statusCode, 403);
      const rollout = await post('/api/firmware/rollouts', supervisor.headers, rolloutBody);
      assert.equal(rollout.statusCode, 201);
      const id = rollout.json().id as number;
      const paused = await post(`/api/firmware/rollouts/${id}/pause`, supervisor.headers, {});
      assert.equal(paused.statusCode, 200);
      assert.equal(paused.json().state, 'paused');
      assert.equal(
        (await post(`/api/firmware/rollouts/${id}/pause`, supervisor.headers, {})).statusCode,
        409,
      );
      const audit = await platform.operators.auditLog({ operator: supervisor.username });
      assert.deepEqual(
        audit.entries.map((e) => e.action).filter((a) => a.startsWith('firmware.')),
        ['firmware.pause', 'firmware.rollout'],
      );
      const uploads = await platform.operators.auditLog({ operator: admin.username });
      assert.deepEqual(
        uploads.entries.map((e) => e.action).filter((a) => a.startsWith('firmware.')),
        ['firmware.upload'],
      );
      await post(`/api/firmware/rollouts/${id}/abort`, supervisor.headers, { reason: 'done with it' });
      outbox.length = 0;
    } finally {
      await app.close();
    }
  });
});
