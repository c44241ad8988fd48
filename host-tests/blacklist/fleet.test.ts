// The fleet blacklist end to end: the real firmware on virtual boards, over MQTT (aedes in process,
// or the real Mosquitto), with the platform (PGlite, or the real PostgreSQL). A card blocked through
// the API is refused by every online meter; a clone a meter detects reaches the review queue.
// (How fast: `npm run bench -- blacklist`.)
import assert from 'node:assert/strict';
import { Meter } from '../../firmware/meter';
import { provisionBoard } from '../../firmware/units/security';
import { VirtualBoard } from '../../hal/mock/board';
import { purseCard } from '../../hal/mock/cards';
import { VirtualClock } from '../../hal/mock/clock';
import { meterClientId, NodeMqttLink } from '../../hal/mock/mqtt.node';
import type { Platform } from '../../platform-server/platform';
import { forEachBackend, operatorLogin, randomMeterId, startPlatform } from '../../sim/fleet/platform';
import { until } from '../support/until';

const purse = (cardNumber: string) => ({
  cardNumber,
  expiry: { year: 2030, month: 1 },
  cardType: 1 as const,
  balance: 10_000,
  limit: 0,
  counter: 0,
  currency: 978,
});

forEachBackend('fleet blacklist', (backend) => {
  let platform: Platform;
  let drop: () => Promise<void>;
  const meters: { meter: Meter; board: VirtualBoard; clock: VirtualClock }[] = [];

  before(async () => {
    ({ platform, drop } = await startPlatform(backend));
    for (let i = 0; i < 3; i++) {
      const meterId = randomMeterId();
      const clock = new VirtualClock('2026-06-01T09:00:00Z');
      const link = new NodeMqttLink({
        url: platform.brokerUrl,
        clientId: meterClientId(meterId),
        ...platform.meterMqttCredentials(meterId),
      });
      const board = new VirtualBoard({ mqtt: link, clock });
      provisionBoard(board.hardware, await platform.provisionMeter(meterId, `blacklist ${i}`), meterId);
      const meter = new Meter(board.hardware, {
        meterId,
        bays: [1, 2],
        rate: { currency: 978, perHour: 300, minMinutes: 15, maxMinutes: 120, stepMinutes: 15 },
      });
      meter.start();
      meters.push({ meter, board, clock });
    }
    // Online: each has uploaded its boot record (and so reported the list version it holds).
    for (const { meter } of meters)
      await until(
        () => meter.ledger.acknowledgedSeq === meter.log.lastSeq,
        'the boot record to be acknowledged',
      );
  });

  after(async () => {
    for (const { meter } of meters) meter.stop();
    await platform?.blacklist.settled();
    await platform?.close();
    await drop?.();
  });

  function tap(m: (typeof meters)[number], card: ReturnType<typeof purseCard>['card']): string {
    m.board.press('ok');
    m.board.press('up');
    m.board.press('ok');
    m.board.field.add(card);
    m.clock.advance(300);
    m.board.field.remove(card);
    const shown = m.board.display.text;
    m.clock.advance(60_000);
    return shown;
  }

  it('a card blocked at the platform is refused at every online meter', async () => {
    const number = '6280555500000019';
    const { card } = purseCard([0x04, 5, 5, 5], purse(number));
    assert.match(tap(meters[0], card), /PAID/, 'the card pays before it is blocked');
    const { headers } = await operatorLogin(platform.operators, 'operator');
    const added = await platform.app.inject({
      method: 'POST',
      url: '/api/blacklist',
      headers,
      payload: { cardNumber: number, reason: 'stolen' },
    });
    assert.equal(added.statusCode, 201, added.body);
    const { version } = added.json() as { version: number };
    for (const m of meters) {
      await until(
        () => m.meter.blacklist.version === version,
        `meter ${m.meter.config.meterId} to hold the list`,
      );
      assert.match(tap(m, card), /Card blocked/);
    }
    await until(async () => {
      const stale = await platform.blacklist.stale();
      return meters.every((m) => !stale.meters.some((s) => s.meterId === m.meter.config.meterId));
    }, 'every meter to acknowledge the version');
  });

  it("a clone a meter detects reaches the platform's review queue", async () => {
    const m = meters[1];
    // Right UID, wrong key: the meter refuses it as card-cloned and records the UID.
    const { card } = purseCard([0x04, 0x0c, 0x1e, 0x0d], purse('6280555500000027'), {
      key: new Uint8Array(16).fill(1),
    });
    assert.match(tap(m, card), /Card not accepted/);
    await until(async () => {
      const queue = await platform.blacklist.reviews('pending');
      return queue.some((r) => r.meterId === m.meter.config.meterId && r.cardUid === '040c1e0d');
    }, 'the cloned-card report in the review queue');
  });
});
