// The whole spine: the real firmware on a virtual board, over MQTT (aedes in process, or the real
// Mosquitto), into the platform (PGlite, or the real PostgreSQL): every tap arrives once, verified,
// and the meter holds the platform's acknowledgement of its last record.
import assert from 'node:assert/strict';
import { Meter } from '../../firmware/meter';
import { provisionBoard } from '../../firmware/units/security';
import { VirtualBoard } from '../../hal/mock/board';
import { purseCard } from '../../hal/mock/cards';
import { VirtualClock } from '../../hal/mock/clock';
import { meterClientId, NodeMqttLink } from '../../hal/mock/mqtt.node';
import { toHex } from '../../protocol/bytes';
import type { Platform } from '../../platform-server/platform';
import { forEachBackend, operatorLogin, randomMeterId, startPlatform } from '../../sim/fleet/platform';
import { until } from '../support/until';

forEachBackend('virtual meter to platform', (backend) => {
  let platform: Platform;
  let drop: () => Promise<void>;
  const meters: Meter[] = [];

  before(async () => {
    ({ platform, drop } = await startPlatform(backend));
  });

  after(async () => {
    for (const meter of meters) meter.stop();
    await platform?.close();
    await drop?.();
  });

  async function bootMeter(meterId: number, clock: VirtualClock, state?: VirtualBoard['state']) {
    const link = new NodeMqttLink({
      url: platform.brokerUrl,
      clientId: meterClientId(meterId),
      ...platform.meterMqttCredentials(meterId),
    });
    const board = new VirtualBoard({ mqtt: link, clock, state });
    if (!state)
      provisionBoard(board.hardware, await platform.provisionMeter(meterId, 'integration'), meterId);
    const meter = new Meter(board.hardware, {
      meterId,
      bays: [1, 2],
      rate: { currency: 978, perHour: 300, minMinutes: 15, maxMinutes: 120, stepMinutes: 15 },
    });
    meters.push(meter);
    meter.start();
    await until(() => link.connected, 'the meter to connect');
    return { board, meter, link };
  }

  it('stores every tap once, verified, and the meter holds the acks; a restart re-sends nothing twice', async () => {
    const meterId = randomMeterId();
    const clock = new VirtualClock('2026-06-01T09:00:00Z');
    const { board, meter, link } = await bootMeter(meterId, clock);
    const { card } = purseCard([0x04, 1, 2, 3], {
      cardNumber: '6280123400000019',
      expiry: { year: 2029, month: 1 },
      cardType: 1,
      balance: 10_000,
      limit: 0,
      counter: 0,
      currency: 978,
    });
    for (let i = 0; i < 5; i++) {
      board.press('ok');
      if (i % 2) board.press('bay');
      board.press('up');
      board.press('ok');
      board.field.add(card);
      clock.advance(300);
      board.field.remove(card);
      assert.match(board.display.text, /PAID/);
      clock.advance(60_000);
    }
    await until(() => meter.ledger.acknowledgedSeq === meter.log.lastSeq, 'every record to be acknowledged');

    const { headers } = await operatorLogin(platform.operators, 'viewer');
    const response = await platform.app.inject({
      method: 'GET',
      url: `/api/meters/${meterId}/transactions`,
      headers,
    });
    assert.equal(response.statusCode, 200);
    const { transactions } = response.json() as {
      transactions: { seq: number; bayId: number; charge: number }[];
    };
    assert.equal(transactions.length, 5);
    assert.deepEqual(
      transactions.map((t) => t.charge),
      [150, 150, 150, 150, 150],
    );
    assert.deepEqual(new Set(transactions.map((t) => t.bayId)), new Set([1, 2]));

    // The database holds exactly the meter's bytes and links.
    const rows = await platform.db.query<{ seq: number; bytes: Uint8Array; link: Uint8Array }>(
      'SELECT seq, bytes, link FROM records WHERE meter_id = $1 ORDER BY seq',
      [meterId],
    );
    const held = meter.log.read(1);
    assert.deepEqual(
      rows.rows.map((r) => [r.seq, toHex(r.bytes), toHex(r.link)]),
      held.map((r) => [r.seq, toHex(r.bytes), toHex(r.link)]),
    );

    // Power cut and reboot on the same flash: the boot record goes up, nothing is stored twice.
    link.close(); // no clean stop: the power simply goes
    const again = await bootMeter(meterId, clock, board.state);
    assert.equal(again.meter.boot.restart, 'abnormal');
    await until(
      () => again.meter.ledger.acknowledgedSeq === again.meter.log.lastSeq,
      'the reboot record to be acknowledged',
    );
    const count = await platform.db.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM records WHERE meter_id = $1',
      [meterId],
    );
    assert.equal(count.rows[0].n, again.meter.log.lastSeq);
  });
});
