// The operator console in Debian's headless Chromium (playwright-core, never a downloaded browser):
// sign-in by keyboard, the fleet view updated live, the map, a meter's page, registering a meter,
// and each role seeing only the controls it may use; every control on every screen has a label.
// Screenshots go to test-artifacts/console/ (gitignored). Skipped without chromium unless CI=true.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { launchChromium, requireChromium } from '../support/chromium';
import type { Role } from '../../platform-server/operators/service';
import { createPlatform, type Platform } from '../../platform-server/platform';
import { FRAME_VERSION, sealFrame } from '../../protocol/frame';
import { encodeStatusMessage, STATUS_FRAME, type StatusMessage } from '../../protocol/status';
import { uplinkTopic } from '../../protocol/topics';
import { crypto, quietLogger, randomMeterId, TEST_GATEWAY_SECRET, TestMeter } from '../../sim/fleet/platform';
import { buildConsole } from '../../tools/buildConsole';
import { PaymentSimulator } from '../../platform-server/payments/simulator';

const ARTIFACTS = join(import.meta.dirname, '..', '..', 'test-artifacts', 'console');

/** Every input, select, textarea and button in the page without an accessible name (runs in the page). */
const UNLABELLED = `[...document.querySelectorAll('input, select, textarea, button')]
  .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label') &&
    !el.getAttribute('aria-labelledby') && !(el.tagName === 'BUTTON' && el.textContent.trim()))
  .map((el) => el.outerHTML.slice(0, 120))`;
const unlabelledControls = (page: Page) => page.evaluate(UNLABELLED) as Promise<string[]>;
const focusedText = (page: Page) => page.evaluate('document.activeElement?.textContent') as Promise<string>;
const focusedHref = (page: Page) =>
  page.evaluate("document.activeElement?.getAttribute('href')") as Promise<string | null>;

describe('operator console in headless Chromium', function () {
  this.timeout(60_000);
  let platform: Platform;
  let browser: Browser;
  let base: string;
  const passwords = new Map<Role, string>();
  const users = new Map<Role, string>();
  const ids = [randomMeterId(), randomMeterId(), randomMeterId()].sort((a, b) => a - b);
  let reporting: TestMeter;
  const nowS = () => Math.floor(Date.now() / 1000);

  const statusFrame = (battery: number, at = nowS()) =>
    sealFrame(
      crypto,
      reporting.keys.uplink,
      {
        version: FRAME_VERSION,
        type: STATUS_FRAME,
        meterId: reporting.id,
        epoch: 1,
        seq: ++reporting.frameSeq,
      },
      encodeStatusMessage({
        kind: 'status',
        at,
        battery: { source: 'disposable', packs: { disposable: battery, backup: 100 }, millivolts: 3600 },
        sensors: { temperature: 215 },
        modules: { reader: 'ok' },
        faults: [],
        bays: [
          { bayId: 1, occupied: true, since: at - 60, paid: true },
          { bayId: 2, occupied: false, since: 0, paid: false },
        ],
        fan: false,
        settings: 1,
      } satisfies StatusMessage),
    );

  async function signedIn(role: Role): Promise<{ context: BrowserContext; page: Page }> {
    const context = await browser.newContext({
      viewport: { width: 1280, height: 900 },
      deviceScaleFactor: 1,
    });
    const page = await context.newPage();
    await page.goto(`${base}/console/`);
    // By keyboard: the user name field first, Tab to the password, Enter to sign in.
    await page.getByLabel('User name').focus();
    await page.keyboard.type(users.get(role)!);
    await page.keyboard.press('Tab');
    await page.keyboard.type(passwords.get(role)!);
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Fleet' }).waitFor();
    return { context, page };
  }
  const shot = (page: Page, name: string) =>
    page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });

  before(async function () {
    requireChromium(this);
    mkdirSync(ARTIFACTS, { recursive: true });
    await buildConsole({ quiet: true });
    platform = await createPlatform({
      httpLogger: false,
      logger: quietLogger,
      consolePollMs: 200,
      operators: { scrypt: { logN: 10, r: 8, p: 1 } },
      phone: { gatewaySecret: TEST_GATEWAY_SECRET, paymentProvider: new PaymentSimulator() },
    });
    for (const role of ['viewer', 'operator', 'supervisor', 'admin'] as Role[]) {
      const username = `${role}-${randomBytes(3).toString('hex')}`;
      const password = randomBytes(12).toString('base64url');
      await platform.operators.create(
        { username, role, password, displayName: `Test ${role}` },
        { id: null, username: 'test-setup' },
      );
      users.set(role, username);
      passwords.set(role, password);
    }
    reporting = new TestMeter(ids[0], await platform.provisionMeter(ids[0], 'Market Square'));
    await platform.provisionMeter(ids[1], 'Quay Road');
    await platform.provisionMeter(ids[2], 'Castle Hill');
    const place = [
      [ids[0], 'Old Town', 51.507, -0.128],
      [ids[1], 'Harbour', 51.504, -0.122],
      [ids[2], 'Old Town', 51.508, -0.126],
    ] as const;
    for (const [id, area, lat, lon] of place)
      await platform.db.query(
        'UPDATE meters SET area = $2, latitude = $3, longitude = $4, bays = 2 WHERE id = $1',
        [id, area, lat, lon],
      );
    await platform.ingest.handleUplink(uplinkTopic(reporting.id), statusFrame(80, nowS() - 600));
    const sale = reporting.transaction({ charge: 240 }, nowS() - 300);
    await platform.ingest.handleUplink(uplinkTopic(reporting.id), reporting.frame(sale.seq, sale.seq));
    await platform.ingest.handleUplink(uplinkTopic(reporting.id), statusFrame(72, nowS() - 60));
    base = await platform.listen(0);
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await platform?.close();
  });

  it('refuses a wrong password with a message, all controls labelled', async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    await page.goto(`${base}/console/`);
    await page.getByLabel('User name').fill(users.get('admin')!);
    await page.getByLabel('Password').fill('not the password at all');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page
      .getByRole('alert')
      .filter({ hasText: /password/i })
      .waitFor();
    assert.deepEqual(await unlabelledControls(page), []);
    await shot(page, 'login-refused');
    await context.close();
  });

  it('shows the fleet live to an admin: filters, search, and a status report arriving', async () => {
    const { context, page } = await signedIn('admin');
    const row = page.locator(`tr[data-meter="${ids[0]}"]`);
    await row.waitFor();
    assert.match((await row.textContent()) ?? '', /72 %/);
    assert.match((await row.textContent()) ?? '', /£2\.40/);
    assert.match((await row.textContent()) ?? '', /1\/2/);
    await page.getByText(/3 meters, 1 online/).waitFor();
    await page.getByText('Live', { exact: true }).waitFor();
    assert.deepEqual(await unlabelledControls(page), []);
    await shot(page, 'fleet-admin');

    await page.getByLabel('Area').selectOption('Harbour');
    await page.getByText('1 shown').waitFor();
    assert.equal(await page.locator('tr[data-meter]').count(), 1);
    await page.getByLabel('Area').selectOption('');
    await page.getByLabel('State').selectOption('never');
    await page.getByText('2 shown').waitFor();
    await page.getByLabel('State').selectOption('all');
    await page.getByLabel('Search meters').fill('castle');
    await page.getByText('1 shown').waitFor();
    assert.equal(await page.locator(`tr[data-meter="${ids[2]}"]`).count(), 1);
    await page.getByLabel('Search meters').fill('');

    // A status report stored now reaches the open page through the server-sent events.
    await platform.ingest.handleUplink(uplinkTopic(reporting.id), statusFrame(41));
    await row.filter({ hasText: '41 %' }).waitFor({ timeout: 10_000 });
    await context.close();
  });

  it('draws meters and areas on the map with no tiles; an admin draws an area by clicking', async () => {
    const { context, page } = await signedIn('admin');
    await page.getByRole('link', { name: 'Map' }).click();
    await page.getByRole('heading', { name: 'Map' }).waitFor();
    await page.getByText(/3 of 3 meters placed/).waitFor();
    await page.getByRole('button', { name: 'Draw an area' }).click();
    const map = page.getByRole('application', { name: 'Map of meters and areas' });
    const box = (await map.boundingBox())!;
    for (const [dx, dy] of [
      [0.3, 0.3],
      [0.7, 0.3],
      [0.7, 0.7],
      [0.3, 0.7],
    ])
      await page.mouse.click(box.x + box.width * dx, box.y + box.height * dy);
    await page.getByText('4 corners').waitFor();
    await page.getByLabel('Area name').fill('Old Town');
    await page.getByRole('button', { name: 'Save area' }).click();
    await page.getByText('Area Old Town saved.').waitFor();
    await page.getByRole('list', { name: 'Areas' }).getByText('Old Town: 2 meters').waitFor();
    assert.deepEqual(await unlabelledControls(page), []);
    await shot(page, 'map-admin');
    const stored = await platform.db.query<{ outline: number[][][] }>(
      "SELECT outline FROM area_shapes WHERE name = 'Old Town'",
    );
    assert.equal(stored.rows[0].outline[0].length, 5);
    await context.close();
  });

  it("shows a meter's page: status, history chart, records by kind, keys, tariff; an admin edits the registry", async () => {
    const { context, page } = await signedIn('admin');
    await page.getByRole('link', { name: new RegExp(`^${ids[0]} Market Square`) }).click();
    await page.getByRole('heading', { name: `Meter ${ids[0]}: Market Square` }).waitFor();
    await page.getByRole('img', { name: /Battery from 80 % to 41 %/ }).waitFor();
    const records = page.getByRole('region', { name: 'Records' });
    await records
      .getByRole('cell', { name: 'bay 1, 30 min' })
      .or(records.getByText(/bay \d, 30 min/))
      .first()
      .waitFor();
    await records.getByLabel('Kind').selectOption('maintenance');
    await records.getByText('No records match.').waitFor();
    await records.getByLabel('Kind').selectOption('transaction');
    await records.getByText('£2.40').waitFor();
    await page.getByText('Key epoch').waitFor();
    for (const control of ['Rotate key', 'Push tariff', 'Save registry entry'])
      assert.equal(await page.getByRole('button', { name: control }).count(), 1, control);
    assert.deepEqual(await unlabelledControls(page), []);
    await shot(page, 'meter-admin');

    const registry = page.getByRole('form', { name: 'Registry entry' });
    await registry.getByLabel('Street address').fill('1 Market Square');
    await registry.getByRole('button', { name: 'Save registry entry' }).click();
    await registry.getByText('Saved.').waitFor();
    const saved = await platform.db.query<{ address: string }>('SELECT address FROM meters WHERE id = $1', [
      ids[0],
    ]);
    assert.equal(saved.rows[0].address, '1 Market Square');
    await context.close();
  });

  it('registers a meter from the form by keyboard, with the refusal shown on the field', async () => {
    const { context, page } = await signedIn('admin');
    await page.getByRole('link', { name: 'Register a meter' }).click();
    await page.getByRole('heading', { name: 'Register a meter' }).waitFor();
    const newId = randomMeterId();
    await page.getByLabel('Meter id').fill(String(ids[1]));
    await page.getByLabel('Name').fill('Duplicate');
    await page.getByRole('button', { name: 'Register' }).press('Enter');
    await page.getByRole('alert').filter({ hasText: 'already registered' }).waitFor();
    assert.equal(await page.getByLabel('Meter id').getAttribute('aria-invalid'), 'true');
    await page.getByLabel('Meter id').fill(String(newId));
    await page.getByLabel('Name').fill('Station Approach');
    await page.getByLabel('Street address').fill('2 Station Approach');
    await page.getByLabel('Latitude').fill('51.5052');
    await page.getByLabel('Longitude').fill('-0.1201');
    await page.getByLabel('Area', { exact: true }).fill('Harbour');
    await page.getByLabel('Bays').fill('4');
    await page.getByLabel('Bays').press('Enter');
    await page.getByText(`Meter ${newId} registered; it waits for the factory.`).waitFor();
    assert.deepEqual(await unlabelledControls(page), []);
    await shot(page, 'register-admin');
    const row = await platform.db.query<{ provisioned_at: Date | null; area: string }>(
      'SELECT provisioned_at, area FROM meters WHERE id = $1',
      [newId],
    );
    assert.equal(row.rows[0].provisioned_at, null);
    assert.equal(row.rows[0].area, 'Harbour');
    await context.close();
  });

  for (const [role, visible, hidden] of [
    ['viewer', [], ['Rotate key', 'Push tariff', 'Save registry entry']],
    ['operator', ['Push tariff'], ['Rotate key', 'Save registry entry']],
    ['supervisor', ['Push tariff', 'Rotate key'], ['Save registry entry']],
  ] as [Role, string[], string[]][]) {
    it(`shows a ${role} only the controls the role may use`, async () => {
      const { context, page } = await signedIn(role);
      assert.equal(await page.getByRole('link', { name: 'Register a meter' }).count(), 0);
      await page.getByText(`(${role})`).waitFor();
      await shot(page, `fleet-${role}`);
      await page.goto(`${base}/console/#/meters/${ids[0]}`);
      await page.getByRole('heading', { name: /Market Square/ }).waitFor();
      await page.getByText('Key epoch').waitFor();
      for (const control of visible)
        assert.equal(await page.getByRole('button', { name: control }).count(), 1, `${role} sees ${control}`);
      for (const control of hidden)
        assert.equal(
          await page.getByRole('button', { name: control }).count(),
          0,
          `${role} does not see ${control}`,
        );
      assert.deepEqual(await unlabelledControls(page), []);
      await shot(page, `meter-${role}`);
      await page.getByRole('link', { name: 'Map' }).click();
      await page.getByRole('heading', { name: 'Map' }).waitFor();
      assert.equal(await page.getByRole('button', { name: 'Draw an area' }).count(), 0);
      // The register screen is not there for the role, even by its address.
      await page.goto(`${base}/console/#/register`);
      await page.getByRole('heading', { name: 'Fleet' }).waitFor();
      await context.close();
    });
  }

  it('moves through the main navigation and the fleet by keyboard alone', async () => {
    const { context, page } = await signedIn('viewer');
    await page.locator(`tr[data-meter="${ids[0]}"]`).waitFor();
    // Tab from the top: the navigation links come first, in order.
    await page.locator('body').focus();
    await page.keyboard.press('Tab');
    assert.equal(await focusedText(page), 'Fleet');
    await page.keyboard.press('Tab');
    assert.equal(await focusedText(page), 'Map');
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Map' }).waitFor();
    await page.goto(`${base}/console/#/fleet`);
    await page.getByLabel('Search meters').focus();
    await page.keyboard.type(String(ids[1]));
    // Tab onwards to the meter's link and open it with Enter.
    for (let i = 0; i < 10; i++) {
      await page.keyboard.press('Tab');
      const href = await focusedHref(page);
      if (href === `#/meters/${ids[1]}`) break;
    }
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: `Meter ${ids[1]}: Quay Road` }).waitFor();
    await shot(page, 'meter-viewer-keyboard');
    await context.close();
  });
});
