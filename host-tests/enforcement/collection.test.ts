// The officer app collecting from a meter with no coverage, in real Chromium on a phone viewport:
// the visit prepared online (a maintenance token, the downlinks the platform keeps), the meter's
// sets collected over Web Bluetooth with the network cut, handed in once back online (each record
// stored once), and the platform's acks carried to the meter on the next visit, which then lets its
// records go. The browser's Bluetooth is a Node bridge to the meter's virtual BLE link: a stand-in
// for navigator.bluetooth with the calls the app makes (requestDevice, GATT connect, the service's
// control writes and data notifications). Screenshots under test-artifacts/enforcement/.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { VirtualClock } from '../../hal/mock/clock';
import { PaymentSimulator } from '../../platform-server/payments/simulator';
import { createPlatform, type Platform } from '../../platform-server/platform';
import { CapturingLogger, randomMeterId } from '../../sim/fleet/platform';
import { launchChromium, PHONE, requireChromium } from '../support/chromium';
import { offlineMeter } from '../support/offlineMeter';

const ARTIFACTS = join(import.meta.dirname, '..', '..', 'test-artifacts', 'enforcement');

/** navigator.bluetooth as the app uses it, over the functions the test exposes from Node. */
const BLUETOOTH_BRIDGE = `
Object.defineProperty(navigator, 'bluetooth', { value: {
  async requestDevice() {
    const name = await window.__bleConnect();
    const data = new EventTarget();
    data.startNotifications = async () => data;
    const control = {
      async writeValueWithResponse(chunk) {
        for (const note of await window.__bleWrite(Array.from(chunk))) {
          data.value = new DataView(Uint8Array.from(note).buffer);
          data.dispatchEvent(new Event('characteristicvaluechanged'));
        }
      },
    };
    const service = { async getCharacteristic(uuid) { return uuid.startsWith('5041524b-0002') ? control : data; } };
    return { name, gatt: { async connect() { return { async getPrimaryService() { return service; } }; },
                           disconnect() { window.__bleDisconnect(); } } };
  },
} });`;

describe('officer app: collection where a meter has no coverage, in Chromium', function () {
  this.timeout(120_000);
  let platform: Platform;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let base: string;
  let r: ReturnType<typeof offlineMeter>;
  const meterId = randomMeterId();
  const username = `collector-${randomBytes(3).toString('hex')}`;
  const password = randomBytes(12).toString('base64url');
  const shot = (name: string) =>
    page.screenshot({ path: join(ARTIFACTS, `collect-${name}.png`), fullPage: true });
  const records = async () =>
    (
      await platform.db.query<{ n: number; seqs: number }>(
        'SELECT count(*)::int AS n, count(DISTINCT seq)::int AS seqs FROM records WHERE meter_id = $1',
        [meterId],
      )
    ).rows[0];
  const info = () => page.locator('#collectInfo').textContent();

  before(async function () {
    requireChromium(this);
    mkdirSync(ARTIFACTS, { recursive: true });
    platform = await createPlatform({
      httpLogger: false,
      logger: new CapturingLogger(),
      operators: { scrypt: { logN: 10, r: 8, p: 1 } },
      phone: { gateway: false, paymentProvider: new PaymentSimulator() },
    });
    await platform.operators.create(
      { username, role: 'operator', password },
      { id: null, username: 'test-setup' },
    );
    const keys = await platform.provisionMeter(meterId, 'Harbour Road (no coverage)');
    // The meter's clock is the platform's, so the tokens the platform issues are current for it.
    r = offlineMeter({
      meterId,
      keys,
      cardTokenKey: keys.cardTokenKey,
      clock: new VirtualClock(new Date().toISOString()),
    });
    r.sell(3);
    base = await platform.listen(0);
    browser = await launchChromium();
    context = await browser.newContext(PHONE);
    const notes: number[][] = [];
    await context.exposeFunction('__bleConnect', () => {
      if (!r.board.ble.connect()) throw new Error('the meter is not advertising');
      r.board.ble.onNotify = (chunk) => notes.push(Array.from(chunk));
      return `ParkLink ${meterId}`;
    });
    await context.exposeFunction('__bleWrite', (bytes: number[]) => {
      r.board.ble.write(Uint8Array.from(bytes));
      return notes.splice(0);
    });
    await context.exposeFunction('__bleDisconnect', () => r.board.ble.disconnect());
    await context.addInitScript(BLUETOOTH_BRIDGE);
    page = await context.newPage();
  });

  after(async () => {
    await browser?.close();
    r?.meter.stop();
    await platform?.close();
  });

  it('collects offline, hands in online exactly once, and carries the ack back on the next visit', async () => {
    await page.goto(`${base}/enforcement/`);
    await page.getByLabel('User name').fill(username);
    await page.getByLabel('Password').fill(password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Meters without coverage' }).waitFor();

    const sales = r.meter.log.lastSeq;
    assert.ok(sales >= 3, `the meter holds ${sales} records`);
    await page.getByLabel('Meter id', { exact: true }).fill(String(meterId));
    await page.getByRole('button', { name: 'Prepare visit' }).click();
    await page.getByText(`Visit to meter ${meterId} prepared`).waitFor();

    // At the meter: no network, the mode key switches the link on, the app collects over Bluetooth.
    await context.setOffline(true);
    r.modeKey();
    await page.getByRole('button', { name: 'Collect over Bluetooth' }).click();
    await page.getByText(new RegExp(`^Meter ${meterId}: \\d+ sets`)).waitFor();
    assert.match((await info()) ?? '', /: [1-9]\d* sets/);
    assert.equal((await records()).n, 0, 'nothing reached the platform yet');
    assert.equal(r.meter.ledger.acknowledgedSeq, 0, 'the meter lets nothing go before the ack');
    await shot('collected-offline');

    // Back online: handed in; every record stored once.
    await context.setOffline(false);
    await page.getByRole('button', { name: 'Hand in collected' }).click();
    await page.getByText(/^Handed in: /).waitFor();
    assert.match(
      (await info()) ?? '',
      new RegExp(`^Handed in: ${sales} records stored, 0 duplicates, 0 refused`),
    );
    assert.deepEqual(await records(), { n: sales, seqs: sales });
    assert.match((await page.locator('#held').textContent()) ?? '', /^held 0 sets, 0 other frames/);
    await shot('handed-in');

    // The next visit carries the platform's ack in: the meter lets its records go.
    await page.getByRole('button', { name: 'Prepare visit' }).click();
    await page.getByText(/prepared: [1-9]\d* downlinks to carry/).waitFor();
    await context.setOffline(true);
    r.clock.advance(60_000);
    r.modeKey();
    await page.getByRole('button', { name: 'Collect over Bluetooth' }).click();
    await page.getByText(new RegExp(`^Meter ${meterId}: \\d+ sets`)).waitFor();
    assert.match((await info()) ?? '', /([1-9]\d*) of \1 downlinks taken/);
    assert.equal(r.meter.ledger.acknowledgedSeq, sales, 'the ack reached the meter by hand');
    // Only what the meter recorded since (the first visit's maintenance session) travels again.
    await context.setOffline(false);
    await page.getByRole('button', { name: 'Hand in collected' }).click();
    await page.getByText(/^Handed in: /).waitFor();
    const after = await records();
    assert.equal(after.n, after.seqs, 'nothing stored twice');
    assert.ok(after.n > sales && after.n <= r.meter.log.lastSeq);
    assert.match(
      (await info()) ?? '',
      new RegExp(`^Handed in: ${after.n - sales} records stored, 0 duplicates, 0 refused`),
    );
    await shot('ack-carried');
  });
});
