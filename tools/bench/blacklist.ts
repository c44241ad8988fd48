// Fleet blacklist: how long from the operator's API call listing a stolen card to the last online
// meter refusing it — N virtual meters (the real firmware on virtual boards, real time) on the
// embedded platform (PGlite + aedes), each pushed a 0x8A delta, applying it and answering 0x0A.
// A meter refuses the card from the moment its blacklist unit holds the token (what the
// transaction unit checks); one meter is then tapped with the card to show the refusal itself.
//
//   npm run bench -- blacklist --meters=200
import { Meter } from '../../firmware/meter';
import { VIRTUAL_PINS, VirtualBoard } from '../../hal/mock/board';
import { purseCard } from '../../hal/mock/cards';
import { meterClientId, NodeMqttLink } from '../../hal/mock/mqtt.node';
import { RealTimeClock } from '../../hal/mock/realtime.node';
import { BLACKLIST_DOWNLINK } from '../../protocol/blacklist';
import { DEFAULT_SETTINGS } from '../../protocol/status';
import { createPlatform } from '../../platform-server/platform';
import { operatorLogin } from '../../sim/fleet/platform';
import { provisionVirtualMeter } from '../factory';
import { PaymentSimulator } from '../../platform-server/payments/simulator';

export const description =
  'API call listing a card → the last of N online virtual meters refusing it (embedded broker), against one status interval';

function option(args: string[], name: string, fallback: number): number {
  const found = args.find((a) => a.startsWith(`--${name}=`));
  return found ? Number(found.split('=')[1]) : fallback;
}

async function waitFor(condition: () => boolean, what: string, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export async function run(args: string[]): Promise<void> {
  const meterCount = option(args, 'meters', 200);
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
  const meters: { meter: Meter; board: VirtualBoard; link: NodeMqttLink; refusedAt?: number }[] = [];
  const cardNumber = '6280777700000013';
  try {
    const setup = performance.now();
    const clock = new RealTimeClock();
    for (let i = 0; i < meterCount; i++) {
      const meterId = 60_000 + i;
      const link = new NodeMqttLink({
        url: platform.brokerUrl,
        clientId: meterClientId(meterId),
        ...platform.meterMqttCredentials(meterId),
      });
      const board = new VirtualBoard({ mqtt: link, clock, seed: meterId });
      await provisionVirtualMeter(platform, board.hardware, meterId, `bench ${i}`);
      const meter = new Meter(board.hardware, {
        meterId,
        bays: [1, 2],
        rate: { currency: 978, perHour: 240, minMinutes: 15, maxMinutes: 240, stepMinutes: 15 },
      });
      meter.start();
      meters.push({ meter, board, link });
    }
    // Online: connected and the boot record acknowledged (which also reports the list version held).
    await waitFor(
      () => meters.every((m) => m.link.connected && m.meter.ledger.acknowledgedSeq === m.meter.log.lastSeq),
      'every meter online',
      120_000,
    );
    console.log(
      `set-up: ${meterCount} meters online in ${((performance.now() - setup) / 1000).toFixed(1)} s`,
    );

    const { headers } = await operatorLogin(platform.operators, 'operator');
    let started = 0;
    let token: Uint8Array | undefined;
    for (const m of meters) {
      // After the blacklist unit's own handler (subscribed first): the list is applied by now.
      m.meter.bus.on('downlink', ({ type }) => {
        if (
          type === BLACKLIST_DOWNLINK &&
          token &&
          m.refusedAt === undefined &&
          m.meter.blacklist.check(token)
        )
          m.refusedAt = performance.now();
      });
    }
    started = performance.now();
    const response = await platform.app.inject({
      method: 'POST',
      url: '/api/blacklist',
      headers,
      payload: { cardNumber, reason: 'stolen' },
    });
    const answered = performance.now();
    if (response.statusCode !== 201)
      throw new Error(`POST /api/blacklist: ${response.statusCode} ${response.body}`);
    token = Uint8Array.from(Buffer.from((response.json() as { token: string }).token, 'hex'));
    // A meter that applied the delta before the token was known here is caught by the check below.
    for (const m of meters) if (m.meter.blacklist.check(token)) m.refusedAt ??= performance.now();
    await waitFor(
      () => meters.every((m) => m.refusedAt !== undefined),
      'every meter to hold the card',
      120_000,
    );
    const times = meters.map((m) => (m.refusedAt ?? 0) - started).sort((a, b) => a - b);
    const last = times[times.length - 1];
    const statusMs = DEFAULT_SETTINGS.statusSeconds * 1000;
    console.log(
      `API answered in ${(answered - started).toFixed(1)} ms; meters refusing the card: first ${times[0].toFixed(1)} ms, ` +
        `median ${times[Math.floor(times.length / 2)].toFixed(1)} ms, last ${last.toFixed(1)} ms after the API call ` +
        `(${meterCount} meters)`,
    );
    console.log(
      `one status interval is ${DEFAULT_SETTINGS.statusSeconds} s: the last meter refused the card within it: ${last < statusMs ? 'yes' : 'NO'}`,
    );
    // The refusal itself, on the last meter to get the list: a tap with the card.
    const slowest = meters.reduce((a, b) => ((a.refusedAt ?? 0) >= (b.refusedAt ?? 0) ? a : b));
    const refused: string[] = [];
    slowest.meter.bus.on('payment-refused', (e) => refused.push(e.reason));
    const { card } = purseCard([0x04, 7, 7, 7], {
      cardNumber,
      expiry: { year: 2030, month: 1 },
      cardType: 1,
      balance: 10_000,
      limit: 0,
      counter: 0,
      currency: 978,
    });
    // Real time: each key held long enough for the key input's debounce (VirtualBoard.press
    // advances only a VirtualClock).
    for (let i = 0; i < 2; i++) {
      slowest.board.pins.drive(VIRTUAL_PINS.buttons.ok, 0);
      await new Promise((r) => setTimeout(r, 120));
      slowest.board.pins.drive(VIRTUAL_PINS.buttons.ok, 1);
      await new Promise((r) => setTimeout(r, 80));
    }
    slowest.board.field.add(card);
    await waitFor(() => refused.length > 0, 'the tap to be refused', 10_000);
    slowest.board.field.remove(card);
    console.log(`tap on meter ${slowest.meter.config.meterId}: ${refused[0]}`);
    let stale = await platform.blacklist.stale();
    const deadline = Date.now() + 60_000;
    while (stale.meters.length > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      stale = await platform.blacklist.stale();
    }
    console.log(
      `every meter acknowledged version ${stale.version} (0x0A) ${((performance.now() - started) / 1000).toFixed(1)} s ` +
        `after the API call; still behind: ${stale.meters.length}`,
    );
  } finally {
    for (const m of meters) m.meter.stop();
    await platform.blacklist.settled();
    await platform.close();
  }
}
