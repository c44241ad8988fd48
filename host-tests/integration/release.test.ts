// An operator's release end to end: a meter provisioned as `npm start` provisions it (keys and
// release key from the platform, tools/factory.ts) loses its uploads on the way; a supervisor logs
// in and releases the unacknowledged set through the API; the meter verifies the token, records who
// released what, and uploads on; the platform shows the gap as released by that supervisor.
import assert from 'node:assert/strict';
import type { MeterEvents } from '../../firmware/events';
import { Meter } from '../../firmware/meter';
import { VirtualBoard } from '../../hal/mock/board';
import { VirtualClock } from '../../hal/mock/clock';
import { meterClientId, NodeMqttLink } from '../../hal/mock/mqtt.node';
import type { MqttEvents, MqttLink } from '../../hal/mqtt';
import { decodeRecord, MaintenanceCode, RecordKind } from '../../protocol/records';
import type { Platform } from '../../platform-server/platform';
import { provisionVirtualMeter } from '../../tools/factory';
import { forEachBackend, operatorLogin, randomMeterId, startPlatform } from '../../sim/fleet/platform';
import { until } from '../support/until';

/** A link whose uplinks are lost on the way while `losing` (the broker never sees them). */
class LosingLink implements MqttLink {
  losing = false;
  lost = 0;
  constructor(readonly inner: MqttLink) {}
  get connected(): boolean {
    return this.inner.connected;
  }
  open(events: MqttEvents): void {
    this.inner.open(events);
  }
  subscribe(topic: string): void {
    this.inner.subscribe(topic);
  }
  publish(topic: string, payload: Uint8Array): boolean {
    if (!this.losing) return this.inner.publish(topic, payload);
    this.lost++;
    return true;
  }
  close(): void {
    this.inner.close();
  }
}

forEachBackend('operator release of an unacknowledged upload set', (backend) => {
  let platform: Platform;
  let drop: () => Promise<void>;
  let meter: Meter | undefined;

  before(async () => {
    ({ platform, drop } = await startPlatform(backend));
  });

  after(async () => {
    meter?.stop();
    await platform?.close();
    await drop?.();
  });

  it('a factory-provisioned meter accepts a supervisor’s release from the API and records who gave it', async () => {
    const meterId = randomMeterId();
    // The meter's clock near the platform's: a token is current for a week after it is issued.
    const clock = new VirtualClock(new Date().toISOString());
    const link = new LosingLink(
      new NodeMqttLink({
        url: platform.brokerUrl,
        clientId: meterClientId(meterId),
        ...platform.meterMqttCredentials(meterId),
      }),
    );
    const board = new VirtualBoard({ mqtt: link, clock });
    await provisionVirtualMeter(platform, board.hardware, meterId, 'Release Row');
    const m = new Meter(board.hardware, {
      meterId,
      bays: [1],
      rate: { currency: 978, perHour: 300, minMinutes: 15, maxMinutes: 120, stepMinutes: 15 },
    });
    meter = m;
    const released: MeterEvents['upload-released'][] = [];
    const faults: string[] = [];
    m.bus.on('upload-released', (e) => released.push(e));
    m.bus.on('fault', (f) => faults.push(String((f.error as Error).message)));

    // Everything the meter sends is lost: its first set stays unacknowledged. The virtual clock
    // stands still, so nothing is sent again until the release arrives.
    link.losing = true;
    m.start();
    await until(() => link.connected && link.lost > 0, 'the first upload to be lost');
    for (let i = 0; i < 3; i++) m.records.appendOperation('test', `written while uploads are lost ${i}`);
    const toSeq = m.log.lastSeq;
    assert.equal(m.ledger.acknowledgedSeq, 0);
    link.losing = false;

    const supervisor = await operatorLogin(platform.operators, 'supervisor');
    const res = await platform.app.inject({
      method: 'POST',
      url: `/api/meters/${meterId}/releases`,
      headers: supervisor.headers,
      payload: { fromSeq: 1, toSeq, reason: 'upload set lost with a broken modem' },
    });
    assert.equal(res.statusCode, 201, res.body);
    assert.equal(res.json().sent, true);

    await until(() => released.length + faults.length > 0, 'the meter to apply or refuse the release');
    assert.deepEqual(faults, []);
    assert.deepEqual(released, [{ fromSeq: 1, toSeq, operator: supervisor.username }]);
    // The meter's maintenance record names the supervisor, and it reaches the platform.
    await until(
      () => m.ledger.acknowledgedSeq === m.log.lastSeq,
      'the maintenance record to be acknowledged',
    );
    const held = await platform.db.query<{ bytes: Uint8Array }>(
      'SELECT bytes FROM records WHERE meter_id = $1 AND seq = $2',
      [meterId, toSeq + 1],
    );
    const record = decodeRecord(held.rows[0].bytes);
    assert.equal(record.kind, RecordKind.Maintenance);
    assert.equal(record.kind === RecordKind.Maintenance && record.data.code, MaintenanceCode.UploadReleased);
    assert.match(
      record.kind === RecordKind.Maintenance ? record.data.detail : '',
      new RegExp(`records 1\\.\\.${toSeq} released by ${supervisor.username.replace(/\./g, '\\.')} `),
    );
    // The platform never saw records 1..toSeq: a gap, marked released.
    const viewer = await operatorLogin(platform.operators, 'viewer');
    const gaps = await platform.app.inject({
      method: 'GET',
      url: `/api/meters/${meterId}/gaps`,
      headers: viewer.headers,
    });
    assert.deepEqual(
      gaps
        .json()
        .gaps.map((g: { fromSeq: number; toSeq: number; released: boolean }) => [
          g.fromSeq,
          g.toSeq,
          g.released,
        ]),
      [[1, toSeq, true]],
    );
  });
});
