// The officer web app at /enforcement/ in real Chromium on a phone viewport (390x844): sign in, the
// beat with each bay's validity, issuing a notice, a plate looked up, two notices issued offline (context.setOffline)
// and synchronised once back online (each stored exactly once), the driver's appeal page and the
// supervisor's decision shown to the driver. Screenshots under test-artifacts/enforcement/.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type Browser, chromium, type Page } from 'playwright-core';
import { createPlatform, type Platform } from '../../platform-server/platform';
import { FRAME_VERSION, sealFrame } from '../../protocol/frame';
import { encodeStatusMessage, STATUS_FRAME, type StatusMessage } from '../../protocol/status';
import { uplinkTopic } from '../../protocol/topics';
import {
  CapturingLogger,
  crypto,
  forEachBackend,
  operatorLogin,
  randomMeterId,
  TestMeter,
} from '../../sim/fleet/platform';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = join(import.meta.dirname, '..', '..', 'test-artifacts', 'enforcement');

forEachBackend('enforcement officer app in Chromium', (backend) => {
  let platform: Platform;
  let drop: () => Promise<void>;
  let browser: Browser;
  let page: Page;
  let base: string;
  let meter: TestMeter;
  const password = randomBytes(12).toString('base64url');
  const username = `officer-${randomBytes(3).toString('hex')}`;
  const shot = (p: Page, name: string) =>
    p.screenshot({ path: join(ARTIFACTS, `${backend.name.split(' ')[0]}-${name}.png`), fullPage: true });

  before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    const fresh = await backend.fresh();
    drop = fresh.drop;
    platform = await createPlatform({
      ...fresh.config,
      httpLogger: false,
      logger: new CapturingLogger(),
      operators: { scrypt: { logN: 10, r: 8, p: 1 } },
    });
    await platform.operators.create(
      { username, role: 'enforcement', password },
      { id: null, username: 'test-setup' },
    );
    const id = randomMeterId();
    meter = new TestMeter(id, await platform.provisionMeter(id, 'High Street 1'));
    const at = Math.floor(Date.now() / 1000);
    const report: StatusMessage = {
      kind: 'status',
      at,
      battery: { source: 'disposable', packs: { disposable: 80, backup: 100 }, millivolts: 3600 },
      sensors: { temperature: 215 },
      modules: { reader: 'ok' },
      faults: [],
      bays: [
        { bayId: 1, occupied: false, since: 0, paid: false },
        { bayId: 2, occupied: true, since: at - 3600, paid: false },
        { bayId: 3, occupied: true, since: at - 3600, paid: false },
      ],
      fan: false,
      settings: 1,
    };
    const frame = sealFrame(
      crypto,
      meter.keys.uplink,
      { version: FRAME_VERSION, type: STATUS_FRAME, meterId: meter.id, epoch: 1, seq: ++meter.frameSeq },
      encodeStatusMessage(report),
    );
    assert.equal((await platform.ingest.handleUplink(uplinkTopic(meter.id), frame)).ok, true);
    base = await platform.listen(0);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    const context = await browser.newContext({ viewport: { width: 390, height: 844 } });
    page = await context.newPage();
  });

  after(async () => {
    await browser?.close();
    await platform?.close();
    await drop?.();
  });

  const issue = async (bay: number, plate: string) => {
    await page.locator(`li[data-bay="${meter.id}/${bay}"] button`).click();
    await page.getByLabel('Plate', { exact: true }).fill(plate);
    await page.getByRole('button', { name: 'Issue notice' }).click();
    await page.locator('#bays').waitFor();
  };

  it('signs in and shows the beat with each bay validity', async () => {
    await page.goto(`${base}/enforcement/`);
    await page.getByLabel('User name').fill(username);
    await page.getByLabel('Password').fill(password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByLabel(/^Beat/).fill(String(meter.id));
    await page.getByRole('button', { name: 'Load beat' }).click();
    await page.locator('#bays li').nth(2).waitFor();
    const rows = await page.locator('#bays li').evaluateAll((els) => els.map((e) => e.className));
    assert.deepEqual(rows, ['free', 'unpaid', 'unpaid']);
    const manifest = (await (await page.request.get(`${base}/enforcement/manifest.webmanifest`)).json()) as {
      start_url: string;
    };
    assert.equal(manifest.start_url, '/enforcement/');
    await shot(page, 'beat');
  });

  it('issues a notice online: stored with its code', async () => {
    await issue(2, 'ab12cde');
    await page.locator('#issued li').first().waitFor();
    await page.getByText('queued 0').waitFor();
    const { rows } = await platform.db.query<{ plate: string }>(
      'SELECT plate FROM penalty_notices WHERE meter_id = $1',
      [meter.id],
    );
    assert.deepEqual(
      rows.map((r) => r.plate),
      ['AB12CDE'],
    );
    await shot(page, 'issued');
  });

  it('looks a plate up on the platform, and says so when offline', async () => {
    await page.getByLabel('Look up a plate (online)').fill('ab12 cde');
    await page.getByRole('button', { name: 'Find' }).click();
    const result = page.getByRole('list', { name: 'Plate lookup' });
    await result.getByText('AB12CDE: no parking paid from the phone').waitFor();
    await result.getByText('1 notice(s) issued to AB12CDE').waitFor();
    await shot(page, 'plate-lookup');
    await page.context().setOffline(true);
    await page.getByRole('button', { name: 'Find' }).click();
    await result.getByText(/^Offline: a plate is looked up on the platform/).waitFor();
    await page.context().setOffline(false);
    await page.locator('#plateResult').evaluate((el) => {
      el.textContent = '';
    });
  });

  it('issues two notices offline and synchronises each exactly once', async () => {
    const context = page.context();
    await context.setOffline(true);
    await issue(3, 'OFF1');
    await issue(2, 'OFF2');
    await page.getByText('queued 2').waitFor();
    await shot(page, 'offline-queued');
    // The queue as the app keeps it in IndexedDB (a page script: the test's tsconfig has no DOM types).
    const queued = (await page.evaluate(`new Promise((ok) => {
      const req = indexedDB.open('parklink-enforcement');
      req.onsuccess = () => {
        const all = req.result.transaction('queue').objectStore('queue').getAllKeys();
        all.onsuccess = () => ok(all.result);
      };
    })`)) as string[];
    assert.equal(queued.length, 2);
    await context.setOffline(false);
    await page.getByRole('button', { name: 'Sync' }).click();
    await page.getByText('queued 0').waitFor();
    // Sync again: nothing left to send, nothing stored twice.
    await page.getByRole('button', { name: 'Sync' }).click();
    const stored = await platform.db.query<{ id: string }>(
      'SELECT id FROM penalty_notices WHERE id = ANY($1)',
      [queued],
    );
    const ids = stored.rows.map((r) => r.id);
    const duplicates = ids.length - new Set(ids).size;
    console.log(
      `      issued offline ${queued.length}, synchronised ${new Set(ids).size}, duplicates ${duplicates}`,
    );
    assert.deepEqual([...ids].sort(), [...queued].sort());
    await shot(page, 'synchronised');
  });

  it("takes the driver's appeal on the notice page and shows the supervisor's decision", async () => {
    const { rows } = await platform.db.query<{ id: string; code: string }>(
      "SELECT id, code FROM penalty_notices WHERE plate = 'OFF1'",
    );
    const notice = rows[0];
    assert.ok(notice);
    const driver = await page.context().newPage();
    await driver.goto(`${base}/enforcement/notices/${notice.code}`);
    await driver.getByLabel('Your statement').fill('My ticket from the meter was on the dashboard.');
    await driver.getByRole('button', { name: 'Submit appeal' }).click();
    await driver.getByText('Appeal received.').waitFor();
    await shot(driver, 'appeal');
    const supervisor = await operatorLogin(platform.operators, 'supervisor');
    const decided = await platform.app.inject({
      method: 'POST',
      url: `/api/enforcement/notices/${notice.id}/decision`,
      headers: supervisor.headers,
      payload: { decision: 'upheld', reason: 'No payment stored for the bay at the time.' },
    });
    assert.equal(decided.statusCode, 200);
    await driver.reload();
    await driver.getByText('No payment stored for the bay at the time.').waitFor();
    assert.equal(await driver.locator('#appeal').isHidden(), true);
    await shot(driver, 'decision');
  });
});
