// The operator console with a generated fleet (10,000 meters by default) in headless Chromium:
// the fleet summary query on the platform, the console's first render of the fleet, the latency
// of a status change from the database to the row on screen (one meter, then a thousand at once),
// a search over the whole fleet, and the page's JavaScript heap.
// Options: --meters=N --updates=N --poll-ms=N (the live feed's poll period, default 1000).
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';
import { FleetView } from '../../platform-server/console/fleet';
import { createPlatform } from '../../platform-server/platform';
import { FRAME_VERSION, sealFrame } from '../../protocol/frame';
import { encodeStatusMessage, STATUS_FRAME } from '../../protocol/status';
import { uplinkTopic } from '../../protocol/topics';
import { crypto, TEST_GATEWAY_SECRET, TestMeter } from '../../sim/fleet/platform';
import { buildConsole } from '../buildConsole';
import { PaymentSimulator } from '../../platform-server/payments/simulator';

export const description =
  '10,000-meter fleet in Chromium: summary query, first render, update latency, search, JS heap';

const CHROMIUM = '/usr/bin/chromium';

function option(args: string[], name: string, fallback: number): number {
  const found = args.find((a) => a.startsWith(`--${name}=`));
  return found ? Number(found.split('=')[1]) : fallback;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const percentile = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))];

type PageDocument = { querySelector(selector: string): { textContent: string | null } | null };
/** Runs in the page: whether the meter's row shows this battery text. */
const batteryShown = ({ meterId, text }: { meterId: number; text: string }) =>
  (globalThis as unknown as { document: PageDocument }).document.querySelector(
    `tr[data-meter="${meterId}"] .battery`,
  )?.textContent === text;

export async function run(args: string[]): Promise<void> {
  const meterCount = option(args, 'meters', 10_000);
  const updates = option(args, 'updates', 20);
  const pollMs = option(args, 'poll-ms', 1000);
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing (apt-get install -y chromium)`);
  const buildMs = await buildConsole({ quiet: true });
  console.log(`console build (esbuild): ${Math.round(buildMs)} ms`);

  const platform = await createPlatform({
    httpLogger: false,
    logger: { info() {}, warn() {}, error() {} },
    consolePollMs: pollMs,
    phone: { gatewaySecret: TEST_GATEWAY_SECRET, paymentProvider: new PaymentSimulator() },
  });
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--no-first-run',
    ],
  });
  try {
    // A generated fleet: meters in 20 areas on a grid, each with a status report, two bays, a
    // sale today, and one meter in 20 with a raised alarm.
    const db = platform.db;
    const started = performance.now();
    await db.query(
      `INSERT INTO meters (id, name, key_epoch, area, latitude, longitude, bays, contact_seconds, last_seen_at)
       SELECT 100000 + g, 'Bench meter ' || g, 1, 'Area ' || (g % 20), 51.45 + (g / 100) * 0.001,
              -0.2 + (g % 100) * 0.002, 2, 900, now() - make_interval(secs => g % 1200)
         FROM generate_series(1, $1) g`,
      [meterCount],
    );
    await db.query(
      `INSERT INTO meter_status (meter_id, reported_at, battery, sensors, modules, faults, fan, settings_version)
       SELECT 100000 + g, now(), jsonb_build_object('source', 'disposable', 'packs', jsonb_build_object('disposable', 20 + g % 80)),
              '{}'::jsonb, '{}'::jsonb, '[]'::jsonb, false, 1
         FROM generate_series(1, $1) g`,
      [meterCount],
    );
    await db.query(
      `INSERT INTO bay_occupancy (meter_id, bay_id, occupied, since, paid, updated_at)
       SELECT 100000 + g, b, (g + b) % 3 = 0, now(), true, now() FROM generate_series(1, $1) g, generate_series(1, 2) b`,
      [meterCount],
    );
    await db.query(
      `INSERT INTO meter_events (meter_id, frame_seq, occurred_at, event, severity, active, detail)
       SELECT 100000 + g, 1, now(), 'tilt', 'alarm', true, 'bench' FROM generate_series(1, $1) g WHERE g % 20 = 0`,
      [meterCount],
    );
    await db.query(
      `INSERT INTO records (meter_id, seq, kind, recorded_at, bytes, link)
       SELECT 100000 + g, 1, 1, now(), '\\x00'::bytea, decode(repeat('00', 32), 'hex') FROM generate_series(1, $1) g`,
      [meterCount],
    );
    await db.query(
      `INSERT INTO transactions (meter_id, seq, transaction_number, card_token, card_last4, card_expiry, card_type, bay_id, minutes,
                                 paid_from, paid_until, charge, currency, remaining_value, recorded_at)
       SELECT 100000 + g, 1, 1, repeat('ab', 16), '0017', '2812', 1, 1, 30, now(), now() + interval '30 minutes', 120, 826, 1000, now()
         FROM generate_series(1, $1) g`,
      [meterCount],
    );
    console.log(
      `generated ${meterCount.toLocaleString('en')} meters (status, 2 bays, a sale, 1 in 20 alarmed) in ${Math.round(performance.now() - started)} ms (${db.kind})`,
    );

    const view = new FleetView(db);
    const queryMs: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t = performance.now();
      await view.rows();
      queryMs.push(performance.now() - t);
    }
    const body = JSON.stringify(await view.rows());
    console.log(
      `fleet summary query (${meterCount.toLocaleString('en')} rows): median ${median(queryMs).toFixed(0)} ms of 5; ` +
        `snapshot ${(body.length / 1e6).toFixed(1)} MB of JSON`,
    );

    const password = randomBytes(12).toString('base64url');
    await platform.operators.create(
      { username: 'bench-admin', role: 'admin', password },
      { id: null, username: 'bench' },
    );
    const { token } = await platform.operators.login('bench-admin', password);
    const base = await platform.listen(0);

    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    await context.addInitScript(`sessionStorage.setItem('parklink.console.token', ${JSON.stringify(token)})`);
    const page = await context.newPage();
    const cdp = await context.newCDPSession(page);
    await cdp.send('Performance.enable');
    await page.goto(`${base}/console/#/fleet`);
    await page.waitForFunction(() => performance.getEntriesByName('fleet-rendered').length > 0, null, {
      timeout: 120_000,
    });
    const firstRender = await page.evaluate(
      () => performance.getEntriesByName('fleet-rendered')[0].startTime,
    );
    const rendered = await page.locator('tr[data-meter]').count();
    console.log(
      `first render of the fleet: ${firstRender.toFixed(0)} ms from navigation (login check, snapshot over SSE, parse, render; ${rendered} rows in the page of ${meterCount.toLocaleString('en')})`,
    );

    // One meter's status changes; time until its row shows it.
    const latencies: number[] = [];
    for (let i = 0; i < updates; i++) {
      const id = 100001 + (i % 15);
      const battery = 1 + (i % 9);
      const t = Date.now();
      await db.query(
        `UPDATE meter_status SET battery = jsonb_build_object('source', 'disposable', 'packs', jsonb_build_object('disposable', $2::int)),
                received_at = now() WHERE meter_id = $1`,
        [id, battery],
      );
      await page.waitForFunction(
        batteryShown,
        { meterId: id, text: `${battery} %` },
        { polling: 'raf', timeout: 30_000 },
      );
      latencies.push(Date.now() - t);
    }
    console.log(
      `update latency, a row changed in the database by another instance to row on screen (${updates} single-meter changes, feed polls every ${pollMs} ms): ` +
        `median ${median(latencies)} ms, p95 ${percentile(latencies, 0.95)} ms, max ${Math.max(...latencies)} ms`,
    );

    // The same through ingest: a sealed status frame (0x04) from a meter, accepted on this
    // instance, which nudges the feed instead of waiting for its period.
    const viaIngest: number[] = [];
    for (let i = 0; i < updates; i++) {
      const id = 100001 + (i % 15);
      const meter = new TestMeter(id, platform.keystore.meterKeys(id, 1));
      meter.frameSeq = 1000 + i;
      const battery = 10 + (i % 9);
      const at = Math.floor(Date.now() / 1000) + i;
      const frame = sealFrame(
        crypto,
        meter.keys.uplink,
        { version: FRAME_VERSION, type: STATUS_FRAME, meterId: id, epoch: 1, seq: meter.frameSeq },
        encodeStatusMessage({
          kind: 'status',
          at,
          battery: { source: 'disposable', packs: { disposable: battery } },
          sensors: {},
          modules: {},
          faults: [],
          bays: [],
          fan: false,
          settings: 1,
        }),
      );
      const t = Date.now();
      const outcome = await platform.ingest.handleUplink(uplinkTopic(id), frame);
      if (!outcome.ok) throw new Error(`status frame refused: ${JSON.stringify(outcome)}`);
      await page.waitForFunction(
        batteryShown,
        { meterId: id, text: `${battery} %` },
        { polling: 'raf', timeout: 30_000 },
      );
      viaIngest.push(Date.now() - t);
    }
    console.log(
      `update latency, status frame into ingest to row on screen (${updates} frames; the accepted uplink nudges the feed): ` +
        `median ${median(viaIngest)} ms, p95 ${percentile(viaIngest, 0.95)} ms, max ${Math.max(...viaIngest)} ms`,
    );

    // A thousand meters at once (a fleet-wide event): time until the first visible one shows it.
    const t = Date.now();
    await db.query(
      `UPDATE meter_status SET battery = jsonb_build_object('source', 'disposable', 'packs', jsonb_build_object('disposable', 99)),
              received_at = now() WHERE meter_id BETWEEN 100001 AND 101000`,
    );
    await page.waitForFunction(
      batteryShown,
      { meterId: 100001, text: '99 %' },
      { polling: 'raf', timeout: 60_000 },
    );
    console.log(`1,000 meters changed at once: ${Date.now() - t} ms until on screen`);

    // Search the whole fleet: time from typing to the filtered list.
    const s = Date.now();
    await page.getByLabel('Search meters').fill('Bench meter 4242');
    await page.getByText('1 shown').waitFor();
    console.log(
      `search over ${meterCount.toLocaleString('en')} meters: ${Date.now() - s} ms from typing to the list`,
    );

    const { metrics } = await cdp.send('Performance.getMetrics');
    const metric = (name: string) => metrics.find((m) => m.name === name)?.value ?? 0;
    console.log(
      `page memory: JS heap used ${(metric('JSHeapUsedSize') / 1e6).toFixed(1)} MB (total ${(metric('JSHeapTotalSize') / 1e6).toFixed(1)} MB), ` +
        `${metric('Nodes').toLocaleString('en')} DOM nodes`,
    );
    await context.close();
  } finally {
    await browser.close();
    await platform.close();
  }
}
