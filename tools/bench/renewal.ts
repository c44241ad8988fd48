// Pay by phone: renewal latency with many virtual meters on loopback — from the driver's
// request (priced, paid, downlink 0x86 published) through the meter applying it, recording it and
// acknowledging (0x06), to the confirmation queued in the outbox. Embedded platform (PGlite + aedes).
//
//   npm run bench -- renewal --meters=1000 --concurrency=32
import { Meter } from '../../firmware/meter';
import { VirtualBoard } from '../../hal/mock/board';
import { RealTimeClock } from '../../hal/mock/realtime.node';
import { meterClientId, NodeMqttLink } from '../../hal/mock/mqtt.node';
import { createPlatform } from '../../platform-server/platform';
import { RecordKind } from '../../protocol/records';
import { fromHex } from '../../protocol/bytes';
import { provisionVirtualMeter } from '../factory';
import { PaymentSimulator } from '../../platform-server/payments/simulator';
import { withCheckDigit } from '../../sim/fleet/cards';

export const description =
  'renewal latency request → meter applied → confirmation queued, p50/p99, 1,000 virtual meters on loopback';

function option(args: string[], name: string, fallback: number): number {
  const found = args.find((a) => a.startsWith(`--${name}=`));
  return found ? Number(found.split('=')[1]) : fallback;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

export async function run(args: string[]): Promise<void> {
  const meterCount = option(args, 'meters', 1000);
  const concurrency = option(args, 'concurrency', 32);
  const silent = { info() {}, warn() {}, error() {} };
  const platform = await createPlatform({
    httpLogger: false,
    logger: silent,
    phone: {
      passwordScrypt: { logN: 10, r: 8, p: 1 },
      tickMs: 3_600_000,
      gateway: false,
      // A benchmark: renewals are paid with the payment simulator, no money moves.
      paymentProvider: new PaymentSimulator(),
    },
  });
  const meters: { meter: Meter; link: NodeMqttLink; driverId: number }[] = [];
  try {
    const setup = performance.now();
    const phone = platform.phone.service;
    // Real time: the meters' timers (uploads, acks) must run for a renewal to come back.
    const clock = new RealTimeClock();
    for (let i = 0; i < meterCount; i++) {
      const meterId = 50_000 + i;
      const link = new NodeMqttLink({
        url: platform.brokerUrl,
        clientId: meterClientId(meterId),
        ...platform.meterMqttCredentials(meterId),
      });
      const board = new VirtualBoard({ mqtt: link, clock, seed: meterId });
      // As the factory loads a meter (keys into the secure parts): the preferences alone no longer hold them.
      await provisionVirtualMeter(platform, board.hardware, meterId, `bench ${i}`);
      const meter = new Meter(board.hardware, {
        meterId,
        bays: [1, 2],
        rate: { currency: 826, perHour: 240, minMinutes: 15, maxMinutes: 240, stepMinutes: 15 },
      });
      meter.start();
      const { driver } = await phone.register({
        name: `Driver ${i}`,
        phone: `+4470000${String(i).padStart(5, '0')}`,
        email: `driver${i}@bench.invalid`,
        password: 'bench password 123',
      });
      const cardNumber = withCheckDigit(`62809${String(i).padStart(10, '0')}`);
      await phone.addCard(driver.id, { cardNumber });
      // The first tap as ingest hands it over (the pairing path), without driving 1,000 card readers.
      const now = Math.floor(Date.now() / 1000);
      phone.onStored({
        meterId,
        bytes: new Uint8Array(),
        link: new Uint8Array(32),
        record: {
          kind: RecordKind.Transaction,
          seq: 1,
          time: now,
          meterId,
          data: {
            transactionNumber: 1,
            card: { token: fromHex(phone.tokenOf(cardNumber)), last4: cardNumber.slice(-4) },
            cardExpiry: '3001',
            cardType: 2,
            bayId: 1,
            minutes: 30,
            paidFrom: now,
            paidUntil: now + 1800,
            charge: 120,
            currency: 826,
            remainingValue: 0,
          },
        },
      });
      meters.push({ meter, link, driverId: driver.id });
    }
    await phone.settled();
    const deadline = Date.now() + 60_000;
    while (meters.some((m) => !m.link.connected) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 50));
    console.log(
      `set-up: ${meterCount} meters connected, drivers registered and paired in ${((performance.now() - setup) / 1000).toFixed(1)} s`,
    );

    const waiters = new Map<string, () => void>();
    phone.on('renewal-applied', ({ id }) => waiters.get(id)?.());
    const renewOnce = async (i: number): Promise<number> => {
      const started = performance.now();
      let resolveApplied!: () => void;
      const applied = new Promise<void>((resolve) => {
        resolveApplied = resolve;
      });
      // The id is known only once renew() returns and the ack can come first: check the row too.
      const renewal = await phone.renew(meters[i].driverId, { minutes: 15, channel: 'app' });
      waiters.set(renewal.id, resolveApplied);
      const row = await platform.db.query<{ status: string }>('SELECT status FROM renewals WHERE id = $1', [
        renewal.id,
      ]);
      if (row.rows[0].status === 'applied') resolveApplied();
      await applied;
      waiters.delete(renewal.id);
      return performance.now() - started;
    };

    for (const [label, count, parallel] of [
      ['one at a time', Math.min(200, meterCount), 1],
      [`${concurrency} in flight`, meterCount, concurrency],
    ] as const) {
      const latencies: number[] = [];
      let next = 0;
      const started = performance.now();
      await Promise.all(
        Array.from({ length: parallel }, async () => {
          while (next < count) {
            const i = next++;
            latencies.push(await renewOnce(i % meterCount));
          }
        }),
      );
      const seconds = (performance.now() - started) / 1000;
      latencies.sort((a, b) => a - b);
      console.log(
        `${label}: ${count} renewals over ${meterCount} meters, p50 ${percentile(latencies, 50).toFixed(1)} ms, ` +
          `p99 ${percentile(latencies, 99).toFixed(1)} ms, max ${latencies[latencies.length - 1].toFixed(1)} ms, ` +
          `${(count / seconds).toFixed(0)} renewals/s`,
      );
    }
    const applied = meters.filter((m) => m.meter.registration.handled.length > 0).length;
    console.log(`meters that applied at least one renewal: ${applied} of ${meterCount}`);
  } finally {
    for (const m of meters) {
      m.meter.stop();
    }
    await platform.close();
  }
}
