// Keys at the platform: rotation pushed over the broker to a real virtual meter, acknowledged
// under the old key, the old epoch accepted for the window; maintenance tokens by route.
import assert from 'node:assert/strict';
import { Meter } from '../../firmware/meter';
import { provisionBoard } from '../../firmware/units/security';
import { VirtualBoard } from '../../hal/mock/board';
import { VirtualClock } from '../../hal/mock/clock';
import { meterClientId, NodeMqttLink } from '../../hal/mock/mqtt.node';
import { fromHex } from '../../protocol/bytes';
import { decodeMaintenanceToken } from '../../protocol/keys';
import type { Platform } from '../../platform-server/platform';
import { forEachBackend, type OperatorLogin, operatorLogin, startPlatform } from '../../sim/fleet/platform';

async function until(check: () => boolean | Promise<boolean>, what: string, ms = 5000) {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

forEachBackend('key rotation and maintenance tokens at the platform', (backend) => {
  let platform: Platform;
  let drop: () => Promise<void>;
  let meter: Meter | undefined;
  let supervisor: OperatorLogin;

  before(async () => {
    ({ platform, drop } = await startPlatform(backend));
    supervisor = await operatorLogin(platform.operators, 'supervisor');
  });

  after(async () => {
    meter?.stop();
    await platform?.close();
    await drop?.();
  });

  it('rotates a live meter to epoch 2: ack under epoch 1, both ends switch, uploads go on', async () => {
    const meterId = 700_000 + Math.floor(Math.random() * 100_000);
    const clock = new VirtualClock('2026-06-01T09:00:00Z');
    const link = new NodeMqttLink({
      url: platform.brokerUrl,
      clientId: meterClientId(meterId),
      ...platform.meterMqttCredentials(meterId),
    });
    const board = new VirtualBoard({ mqtt: link, clock });
    provisionBoard(board.hardware, await platform.provisionMeter(meterId, 'rotation'), meterId);
    meter = new Meter(board.hardware, {
      meterId,
      bays: [1],
      rate: { currency: 826, perHour: 240, minMinutes: 15, maxMinutes: 60, stepMinutes: 15 },
    });
    meter.start();
    await until(() => link.connected, 'the meter to connect');
    const pushed = await platform.app.inject({
      method: 'POST',
      url: `/api/meters/${meterId}/key-rotation`,
      headers: supervisor.headers,
    });
    assert.equal(pushed.statusCode, 202);
    assert.equal(pushed.json().epoch, 2);
    const m = meter;
    await until(() => m.security.epoch === 2, 'the meter to switch');
    const epochOf = async () =>
      Number(
        (
          await platform.db.query<{ key_epoch: number }>('SELECT key_epoch FROM meters WHERE id = $1', [
            meterId,
          ])
        ).rows[0].key_epoch,
      );
    await until(async () => (await epochOf()) === 2, 'the platform to switch');
    const events = await platform.db.query<{ event: string }>(
      'SELECT event FROM security_events WHERE meter_id = $1',
      [meterId],
    );
    assert.deepEqual(
      events.rows.map((r) => r.event),
      ['key-epoch'],
    );
    m.records.appendMaintenance('after-rotation', 'epoch 2');
    await until(() => m.ledger.acknowledgedSeq === m.log.lastSeq, 'the epoch 2 upload to be acknowledged');
    const missing = await platform.app.inject({
      method: 'POST',
      url: '/api/meters/4294967295/key-rotation',
      headers: supervisor.headers,
    });
    assert.equal(missing.statusCode, 404);
  });

  it('issues increasing, short-lived maintenance tokens; refuses bad requests with 4xx', async () => {
    const meterId = 800_000 + Math.floor(Math.random() * 100_000);
    await platform.provisionMeter(meterId, 'tokens');
    const one = await platform.app.inject({
      method: 'POST',
      url: `/api/meters/${meterId}/maintenance-tokens`,
      headers: supervisor.headers,
      payload: { staff: 'alice', seconds: 600 },
    });
    const two = await platform.app.inject({
      method: 'POST',
      url: `/api/meters/${meterId}/maintenance-tokens`,
      headers: supervisor.headers,
      payload: { staff: 'bob' },
    });
    assert.equal(one.statusCode, 201);
    const a = decodeMaintenanceToken(fromHex(one.json().token));
    const b = decodeMaintenanceToken(fromHex(two.json().token));
    assert.equal(a.meterId, meterId);
    assert.equal(b.tokenId, a.tokenId + 1);
    assert.ok(a.expiresAt - a.notBefore <= 630);
    assert.equal(one.json().secret.length, 64);
    for (const payload of [{}, { staff: 'x', seconds: 999_999 }, { staff: 'bad name!' }]) {
      const r = await platform.app.inject({
        method: 'POST',
        url: `/api/meters/${meterId}/maintenance-tokens`,
        headers: supervisor.headers,
        payload,
      });
      assert.equal(r.statusCode, 400, JSON.stringify(payload));
    }
    const unknown = await platform.app.inject({
      method: 'POST',
      url: '/api/meters/4294967295/maintenance-tokens',
      headers: supervisor.headers,
      payload: { staff: 'a' },
    });
    assert.equal(unknown.statusCode, 404);
  });
});
