// The console's alarm inbox, tariff, account and audit screens in Debian's headless Chromium
// (playwright-core): alarms raised by a meter shown and filtered, acknowledged, assigned, resolved
// with their history, a new alarm arriving live, forwarding rules; a tariff edited with the
// validator's message on its path, quoted live, saved twice, assigned to an area and its push
// watched to applied and timed out; an admin setting up the authenticator, signing in with a code
// and with a recovery code, managing accounts; the audit log filtered and paged; each role seeing
// only its controls. Screenshots go to test-artifacts/console/ (gitignored). Skipped without
// chromium unless CI=true.
import assert from 'node:assert/strict';
import QRCode from 'qrcode';
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { launchChromium, requireChromium } from '../support/chromium';
import { base32Decode, totp } from '../../platform-server/operators/totp';
import type { Role } from '../../platform-server/operators/service';
import { PaymentSimulator } from '../../platform-server/payments/simulator';
import { createPlatform, type Platform } from '../../platform-server/platform';
import { FRAME_VERSION, sealFrame } from '../../protocol/frame';
import { encodeStatusMessage, STATUS_FRAME, type StatusMessage } from '../../protocol/status';
import { encodeTariffAck, TARIFF_ACK_UPLINK } from '../../protocol/tariff';
import { uplinkTopic } from '../../protocol/topics';
import { crypto, quietLogger, randomMeterId, TEST_GATEWAY_SECRET, TestMeter } from '../../sim/fleet/platform';
import { buildConsole } from '../../tools/buildConsole';

const ARTIFACTS = join(import.meta.dirname, '..', '..', 'test-artifacts', 'console');
/** A push no meter acknowledges times out after this (short, so the test sees it happen). */
const PUSH_TIMEOUT_S = 6;

const UNLABELLED = `[...document.querySelectorAll('input, select, textarea, button')]
  .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label') &&
    !el.getAttribute('aria-labelledby') && !(el.tagName === 'BUTTON' && el.textContent.trim()))
  .map((el) => el.outerHTML.slice(0, 120))`;
const unlabelledControls = (page: Page) => page.evaluate(UNLABELLED) as Promise<string[]>;

describe('console alarm, tariff, account and audit screens in headless Chromium', function () {
  this.timeout(120_000);
  let platform: Platform;
  let browser: Browser;
  let base: string;
  const passwords = new Map<Role, string>();
  const users = new Map<Role, string>();
  const ids = [randomMeterId(), randomMeterId(), randomMeterId()].sort((a, b) => a - b);
  let meter: TestMeter;
  let other: TestMeter;
  const nowS = () => Math.floor(Date.now() / 1000);
  /** The page of the running test, for a screenshot when it fails. */
  let current: Page | undefined;
  const mailed: { to: string; subject: string }[] = [];

  const send = async (m: TestMeter, type: number, body: Uint8Array) => {
    const frame = sealFrame(
      crypto,
      m.keys.uplink,
      { version: FRAME_VERSION, type, meterId: m.id, epoch: 1, seq: ++m.frameSeq },
      body,
    );
    const outcome = await platform.ingest.handleUplink(uplinkTopic(m.id), frame);
    assert.equal(outcome.ok, true, JSON.stringify(outcome));
  };
  const event = (m: TestMeter, name: string, severity: 'alarm' | 'warning' | 'fault', detail: string) =>
    send(
      m,
      STATUS_FRAME,
      encodeStatusMessage({
        kind: 'event',
        at: nowS(),
        event: name,
        severity,
        active: true,
        detail,
      } as StatusMessage),
    );

  async function signIn(page: Page, role: Role): Promise<void> {
    await page.goto(`${base}/console/`);
    await page.getByLabel('User name', { exact: true }).fill(users.get(role)!);
    await page.getByLabel('Password', { exact: true }).fill(passwords.get(role)!);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Fleet' }).waitFor();
  }
  async function signedIn(role: Role): Promise<Page> {
    const context = await browser.newContext({
      viewport: { width: 1280, height: 900 },
      deviceScaleFactor: 1,
    });
    const page = await context.newPage();
    current = page;
    await signIn(page, role);
    return page;
  }
  const shot = (page: Page, name: string) =>
    page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
  /** Opens an alarm's details (again if a refresh of the list raced the click). */
  const openDetails = async (row: ReturnType<Page['locator']>) => {
    const button = row.getByRole('button', { name: /details/ });
    for (let i = 0; i < 5; i++) {
      if ((await button.getAttribute('aria-expanded')) !== 'true') await button.click();
      try {
        await row
          .page()
          .getByRole('list', { name: /^History of alarm/ })
          .waitFor({ timeout: 5000 });
        return;
      } catch {}
    }
    assert.fail('the details did not open');
  };
  const alarmRow = (page: Page, kind: string) =>
    page.getByRole('table', { name: 'Alarm inbox' }).locator('tr[data-alarm]').filter({ hasText: kind });

  before(async function () {
    requireChromium(this);
    mkdirSync(ARTIFACTS, { recursive: true });
    await buildConsole({ quiet: true });
    platform = await createPlatform({
      httpLogger: false,
      logger: quietLogger,
      consolePollMs: 200,
      operators: { scrypt: { logN: 10, r: 8, p: 1 } },
      tariffs: { pushTimeoutSeconds: PUSH_TIMEOUT_S },
      // A mail sender that keeps the messages (the test's stand-in for SMTP), so e-mail rules are allowed.
      alarmForwarding: { mail: { send: async (message) => void mailed.push(message) }, pollSeconds: 0 },
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
    meter = new TestMeter(ids[0], await platform.provisionMeter(ids[0], 'Market Square'));
    other = new TestMeter(ids[1], await platform.provisionMeter(ids[1], 'Quay Road'));
    await platform.provisionMeter(ids[2], 'Castle Hill');
    for (const [id, area] of [
      [ids[0], 'Old Town'],
      [ids[1], 'Harbour'],
      [ids[2], 'Old Town'],
    ] as const)
      await platform.db.query('UPDATE meters SET area = $2, bays = 2 WHERE id = $1', [id, area]);
    await event(meter, 'cover-opened', 'alarm', 'cover sensor 40.0 lx');
    await event(meter, 'battery-low', 'warning', 'disposable pack at 12 %');
    // An archived page of the audit log: 60 entries on one past day by one actor.
    for (let i = 0; i < 60; i++)
      await platform.db.query(
        `INSERT INTO operator_audit (username, action, meter_id, target, detail, at)
         VALUES ('archive-clerk', 'archive.note', $1, $2, '{}', '2026-01-10T12:00:00Z')`,
        [ids[2], `note ${i}`],
      );
    base = await platform.listen(0);
    browser = await launchChromium();
  });

  afterEach(async function () {
    if (this.currentTest?.state === 'failed' && current && !current.isClosed())
      await shot(current, `failed-${this.currentTest.title.slice(0, 40).replace(/\W+/g, '-')}`).catch(
        () => {},
      );
  });

  after(async () => {
    await browser?.close();
    await platform?.close();
  });

  it('works the alarm inbox as an admin: filters, acknowledge, assign, resolve with a note, history, live arrival', async () => {
    const page = await signedIn('admin');
    await page.getByRole('link', { name: 'Open the alarm inbox' }).click();
    await page.getByRole('heading', { name: 'Alarms', exact: true }).waitFor();
    await alarmRow(page, 'cover-opened').waitFor();
    await alarmRow(page, 'battery-low').waitFor();
    const counts = page.getByRole('list', { name: 'Unresolved alarms per severity' });
    assert.match((await counts.textContent()) ?? '', /1\s*Warning/);

    await page.getByLabel(/^Severity/).selectOption('warning');
    await page.getByRole('table', { name: 'Alarm inbox' }).locator('tr[data-alarm]').first().waitFor();
    await alarmRow(page, 'cover-opened').waitFor({ state: 'detached' });
    assert.equal(await alarmRow(page, 'battery-low').count(), 1);
    await page.getByLabel(/^Severity/).selectOption('');
    await page.getByLabel(/^Area/).selectOption('Harbour');
    await page.getByText('No alarms match.').waitFor();
    await page.getByLabel(/^Area/).selectOption('');

    // Acknowledge, then assign to the operator, then resolve: refused without a note, then with one.
    const row = alarmRow(page, 'battery-low');
    await openDetails(row);
    await page.getByRole('button', { name: 'Acknowledge' }).click();
    await page.getByText('Acknowledged.').waitFor();
    await row.filter({ hasText: `acknowledged by ${users.get('admin')}` }).waitFor();
    await page.getByLabel('Assign to (user name)').fill(users.get('operator')!);
    await page.getByRole('button', { name: 'Assign', exact: true }).click();
    await page.getByText(`Assigned to ${users.get('operator')}.`).waitFor();
    await row.filter({ hasText: users.get('operator')! }).waitFor();
    await page.getByRole('button', { name: 'Resolve' }).click();
    await page.getByRole('alert').filter({ hasText: 'a resolution needs a note' }).waitFor();
    await page.getByLabel('Note', { exact: true }).fill('pack replaced on site');
    await page.getByRole('button', { name: 'Resolve' }).click();
    await row.waitFor({ state: 'detached' });
    await page.getByLabel(/^Alarm state/).selectOption('resolved');
    const resolved = alarmRow(page, 'battery-low').filter({ hasText: 'resolved by' });
    await openDetails(resolved);
    const history = page.getByRole('list', { name: /^History of alarm/ });
    await history.getByText(/resolve.* — pack replaced on site/).waitFor();
    assert.ok((await history.getByRole('listitem').count()) >= 4, (await history.textContent()) ?? '');
    const stored = await platform.db.query<{
      resolution: string;
      assigned_to: string;
      resolved_at: Date | null;
    }>(
      `SELECT resolution, assigned_to, resolved_at FROM alarms WHERE meter_id = $1 AND kind = 'battery-low'`,
      [ids[0]],
    );
    assert.notEqual(stored.rows[0].resolved_at, null);
    assert.equal(stored.rows[0].resolution, 'pack replaced on site');
    await page.getByLabel(/^Alarm state/).selectOption('active');

    // A new alarm stored now reaches the open inbox through the fleet's event stream.
    await event(other, 'cover-opened', 'alarm', 'cover sensor 61.0 lx');
    await alarmRow(page, 'Quay Road').waitFor({ timeout: 20_000 });

    // Response times per meter and per area.
    const times = page.getByRole('table', { name: 'Response times' });
    await times.getByRole('rowheader', { name: String(ids[0]) }).waitFor();
    await page.getByLabel(/^Per/).selectOption('area');
    await times.getByRole('rowheader', { name: 'Old Town' }).waitFor();
    assert.deepEqual(await unlabelledControls(page), []);
    await shot(page, 'alarms-admin');

    // Forwarding rules: create one by e-mail, disable it.
    await page.getByLabel('Rule name').fill('Night desk');
    await page.getByLabel(/^Channel/).selectOption('email');
    await page.getByLabel('E-mail address').fill('night-desk@example.org');
    await page.getByLabel(/^From severity/).selectOption('security');
    await page.getByRole('button', { name: 'Create rule' }).click();
    await page.getByText('Rule Night desk created.').waitFor();
    const rule = page.getByRole('table', { name: 'Forwarding rules' }).locator('tr[data-rule]').filter({
      hasText: 'Night desk',
    });
    await rule.filter({ hasText: 'enabled' }).waitFor();
    await page.getByRole('button', { name: 'Disable rule Night desk' }).click();
    await rule.filter({ hasText: 'disabled' }).waitFor();
    await shot(page, 'alarm-rules-admin');

    // The meter page's alarm link opens the inbox on that meter.
    await page.goto(`${base}/console/#/meters/${ids[1]}`);
    await page.getByRole('link', { name: "This meter's alarms in the inbox" }).click();
    await page.getByRole('heading', { name: 'Alarms', exact: true }).waitFor();
    assert.equal(await page.getByLabel('Meter id', { exact: true }).inputValue(), String(ids[1]));
    await alarmRow(page, 'Quay Road').waitFor();
    assert.equal(await alarmRow(page, 'Market Square').count(), 0);
    await page.context().close();
  });

  for (const [role, visible, hidden] of [
    ['viewer', [], ['Acknowledge', 'Resolve', 'Assign']],
    ['operator', ['Acknowledge', 'Resolve'], ['Assign']],
    ['supervisor', ['Acknowledge', 'Resolve', 'Assign'], []],
  ] as [Role, string[], string[]][]) {
    it(`shows a ${role} only the alarm controls the role may use`, async () => {
      const page = await signedIn(role);
      await page.getByRole('link', { name: 'Alarms' }).click();
      const row = alarmRow(page, 'Quay Road');
      await openDetails(row);
      await page
        .getByRole('list', { name: /^History of alarm/ })
        .getByText(/raised/)
        .waitFor();
      for (const control of visible)
        assert.equal(
          await page.getByRole('button', { name: control, exact: true }).count(),
          1,
          `${role}: ${control}`,
        );
      for (const control of hidden)
        assert.equal(
          await page.getByRole('button', { name: control, exact: true }).count(),
          0,
          `${role}: ${control}`,
        );
      const rules = await page.getByRole('table', { name: 'Forwarding rules' }).count();
      assert.equal(rules, role === 'supervisor' ? 1 : 0, `${role}: forwarding rules`);
      assert.equal(await page.getByRole('button', { name: 'Create rule' }).count(), 0);
      assert.deepEqual(await unlabelledControls(page), []);
      await shot(page, `alarms-${role}`);
      await page.context().close();
    });
  }

  it("edits a tariff with the validator's message on its path, quotes it live, saves it twice, pushes it to an area and watches the push", async () => {
    const page = await signedIn('operator');
    await page.getByRole('link', { name: 'Tariffs' }).click();
    await page.getByRole('heading', { name: 'Tariffs', exact: true }).waitFor();
    const text = page.getByLabel('Tariff document (JSON)');
    const draft = JSON.parse(await text.inputValue());
    draft.id = 'old-town';
    draft.rates.hourly[0].price = -5;
    await text.fill(JSON.stringify(draft, null, 2));
    const problem = page.getByRole('alert').filter({ hasText: /price/ });
    await problem.waitFor();
    assert.match((await problem.getAttribute('data-field')) ?? '', /^rates\.hourly.*price$/);
    assert.equal(await text.getAttribute('aria-invalid'), 'true');
    await problem.getByRole('button', { name: 'Show in the text' }).click();
    const selected = await page.evaluate(
      "(() => { const el = document.getElementById('tariff-text'); return el.value.slice(el.selectionStart, el.selectionEnd); })()",
    );
    assert.equal(selected, '"price"');

    draft.rates.hourly[0].price = 300;
    await text.fill(JSON.stringify(draft, null, 2));
    await page.getByText('The validator accepts this document.').waitFor();
    // The quote: an hour on a weekday morning at 3.00 an hour (the template charges 08:00–18:00).
    await page.getByLabel('Minutes', { exact: true }).fill('60');
    const quote = page.getByRole('status', { name: 'Quote' });
    await quote.filter({ hasText: '£3.00' }).waitFor();
    assert.match((await quote.textContent()) ?? '', /for 60 min/);
    await page.getByLabel(/^Quote by/).selectOption('amount');
    await page.getByLabel('Amount', { exact: true }).fill('150');
    await quote.filter({ hasText: 'for 30 min' }).waitFor();

    await page.getByRole('button', { name: 'Save version' }).click();
    await page.getByText('Saved old-town version 1.').waitFor();
    // The same document again is the same version, not a conflict.
    await text.fill(`${JSON.stringify(draft)}\n`);
    await page.getByRole('button', { name: 'Save version' }).click();
    await page.getByText('Saved old-town version 1.').waitFor();
    assert.equal(await page.getByRole('alert').count(), 0);
    await page.getByRole('table', { name: 'Stored tariffs' }).locator('tr[data-tariff="old-town"]').waitFor();

    await page.getByLabel('Area to push to').selectOption('Old Town');
    await page.getByRole('button', { name: 'Assign and push' }).click();
    await page.getByText('Version 1 sent to 2 meters.').waitFor();
    const push = page.getByRole('table', { name: 'Tariff push' });
    await push.locator(`tr[data-push="${ids[0]}"]`).filter({ hasText: 'pending' }).waitFor();
    await shot(page, 'tariffs-push-pending');
    // One meter applies it; the other never answers and times out, on the page.
    await send(meter, TARIFF_ACK_UPLINK, encodeTariffAck({ kind: 'tariff', version: 1, ok: true }));
    await push
      .locator(`tr[data-push="${ids[0]}"]`)
      .filter({ hasText: 'applied' })
      .waitFor({ timeout: 30_000 });
    await push
      .locator(`tr[data-push="${ids[2]}"]`)
      .filter({ hasText: 'timed out' })
      .waitFor({ timeout: (PUSH_TIMEOUT_S + 30) * 1000 });
    await page.getByText('1 applied, 0 pending, 0 refused, 1 timed out').waitFor({ timeout: 30_000 });
    // The stored tariffs' list counts the meters it was pushed to.
    await page
      .getByRole('table', { name: 'Stored tariffs' })
      .locator('tr[data-tariff="old-town"] td:nth-child(4)')
      .filter({ hasText: /^2$/ })
      .waitFor();
    assert.deepEqual(await unlabelledControls(page), []);
    await shot(page, 'tariffs-operator');
    await page.context().close();
  });

  it('shows a viewer the tariffs read-only', async () => {
    const page = await signedIn('viewer');
    await page.goto(`${base}/console/#/tariffs/old-town`);
    const text = page.getByLabel('Tariff document (JSON)');
    await page.getByRole('heading', { name: 'Tariff old-town' }).waitFor();
    await page.waitForFunction(`document.getElementById('tariff-text')?.value.includes('"old-town"')`);
    assert.equal(await text.getAttribute('readonly'), '');
    // The stored version quoted through the public quote: an hour at 3.00.
    await page.getByLabel('Minutes', { exact: true }).fill('60');
    await page.getByRole('status', { name: 'Quote' }).filter({ hasText: '£3.00' }).waitFor();
    for (const control of ['Save version', 'Assign and push', 'Start a new tariff'])
      assert.equal(await page.getByRole('button', { name: control }).count(), 0, control);
    assert.deepEqual(await unlabelledControls(page), []);
    await shot(page, 'tariffs-viewer');
    await page.context().close();
  });

  it('lets an admin set up the authenticator, sign in with its code and with a recovery code, and manage accounts', async () => {
    // The supervisor has set up an authenticator (through the API), for the admin to reset below.
    const sup = await platform.operators.login(users.get('supervisor')!, passwords.get('supervisor')!);
    const supHeaders = { authorization: `Bearer ${sup.token}` };
    const started = await platform.app.inject({
      method: 'POST',
      url: '/api/operators/me/totp',
      headers: supHeaders,
    });
    assert.equal(started.statusCode, 201, started.body);
    const confirmed = await platform.app.inject({
      method: 'POST',
      url: '/api/operators/me/totp/confirm',
      headers: supHeaders,
      payload: { code: totp(base32Decode(started.json().secret), nowS()) },
    });
    assert.equal(confirmed.statusCode, 200, confirmed.body);

    const page = await signedIn('admin');
    await page.getByRole('link', { name: 'Accounts' }).click();
    await page.getByRole('heading', { name: 'Accounts', exact: true }).waitFor();
    await page.getByRole('button', { name: 'Set up an authenticator' }).click();
    const uri = (await page.getByTestId('totp-uri').textContent()) ?? '';
    const secret = (await page.getByTestId('totp-secret').textContent()) ?? '';
    assert.match(uri, /^otpauth:\/\/totp\//);
    assert.ok(uri.includes(`secret=${secret}`), uri);
    // The QR code on the page is exactly the link's: the same library draws it here from the URI.
    const drawn = await page.getByTestId('totp-qr').locator('svg path[stroke]').getAttribute('d');
    const expected = await QRCode.toString(uri, { type: 'svg', errorCorrectionLevel: 'M', margin: 2 });
    assert.ok(drawn && drawn.length > 100, 'the page draws the modules');
    assert.equal(drawn, /stroke="#000000" d="([^"]+)"/.exec(expected)?.[1]);
    await shot(page, 'accounts-totp-qr');
    await page.getByLabel('Code from the app').fill(totp(base32Decode(secret), nowS()));
    await page.getByRole('button', { name: 'Confirm' }).click();
    const recovery = page.getByRole('status', { name: 'Recovery codes' });
    await recovery.waitFor();
    const codes = await recovery.locator('code').allTextContents();
    assert.equal(codes.length >= 5, true, codes.join());
    await shot(page, 'accounts-enrolled-admin');
    await page.getByRole('button', { name: 'I have kept them' }).click();
    // Shown once: gone from the page once kept.
    await page.getByRole('status', { name: 'Recovery codes' }).waitFor({ state: 'detached' });

    // Sign out; signing in now asks for the code: the next step's code is taken.
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('User name', { exact: true }).fill(users.get('admin')!);
    await page.getByLabel('Password', { exact: true }).fill(passwords.get('admin')!);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').filter({ hasText: 'authenticator' }).waitFor();
    await page.getByLabel('Authenticator code').fill(totp(base32Decode(secret), nowS() + 30));
    await page.getByRole('button', { name: 'Sign in' }).click();
    // Signed in again on the screen the address names.
    await page.getByRole('heading', { name: 'Accounts', exact: true }).waitFor();
    await page.getByText('Your authenticator is set up; 10 recovery codes left.').waitFor();
    await shot(page, 'login-totp-admin');
    // And with a recovery code instead.
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('User name', { exact: true }).fill(users.get('admin')!);
    await page.getByLabel('Password', { exact: true }).fill(passwords.get('admin')!);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('button', { name: 'Use a recovery code instead' }).click();
    await page.getByLabel('Recovery code').fill(codes[0]);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText('Your authenticator is set up; 9 recovery codes left.').waitFor();
    const accounts = page.getByRole('table', { name: 'Operator accounts' });
    await accounts
      .locator(`tr[data-account="${users.get('admin')}"]`)
      .filter({ hasText: 'authenticator' })
      .waitFor();
    // Create an account, make it a supervisor, disable it.
    const name = `clerk-${randomBytes(2).toString('hex')}`;
    await page.getByLabel('New user name').fill(name);
    await page.getByLabel('Display name').fill('Night clerk');
    await page.getByLabel(/^New account's role/).selectOption('operator');
    await page.getByLabel('Initial password').fill(randomBytes(12).toString('base64url'));
    await page.getByRole('button', { name: 'Create account' }).click();
    await page.getByText(`Account ${name} created.`).waitFor();
    await page.getByLabel(`Role of ${name}`).selectOption('supervisor');
    await page.getByText(`${name} is now supervisor.`).waitFor();
    await page.getByRole('button', { name: `Disable ${name}` }).click();
    await accounts.locator(`tr[data-account="${name}"]`).filter({ hasText: 'disabled' }).waitFor();
    const stored = await platform.db.query<{ role: string; disabled_at: Date | null }>(
      'SELECT role, disabled_at FROM operators WHERE username = $1',
      [name],
    );
    assert.equal(stored.rows[0].role, 'supervisor');
    assert.notEqual(stored.rows[0].disabled_at, null);
    assert.deepEqual(await unlabelledControls(page), []);
    await shot(page, 'accounts-admin');
    // The supervisor's lost phone: the admin removes its second factor.
    const supervisorRow = accounts.locator(`tr[data-account="${users.get('supervisor')}"]`);
    await supervisorRow.filter({ hasText: 'authenticator' }).waitFor();
    await page.getByRole('button', { name: `Reset second factor of ${users.get('supervisor')}` }).click();
    await page
      .getByText(`${users.get('supervisor')}'s second factor removed; they set it up again.`)
      .waitFor();
    await supervisorRow.getByRole('button', { name: /Reset second factor/ }).waitFor({ state: 'detached' });
    const after = await platform.db.query<{ totp_enabled_at: Date | null }>(
      'SELECT totp_enabled_at FROM operators WHERE username = $1',
      [users.get('supervisor')!],
    );
    assert.equal(after.rows[0].totp_enabled_at, null);
    await page.context().close();
  });

  it('shows a supervisor the audit log filtered by actor, action and dates, paged', async () => {
    const page = await signedIn('supervisor');
    await page.getByRole('link', { name: 'Accounts' }).click();
    await page.getByRole('button', { name: 'Set up an authenticator' }).waitFor();
    assert.equal(await page.getByRole('table', { name: 'Operator accounts' }).count(), 0);
    await page.getByRole('link', { name: 'Audit' }).click();
    await page.getByRole('heading', { name: 'Audit log' }).waitFor();
    const table = page.getByRole('table', { name: 'Audit log' });
    await table.locator('tr[data-audit]').first().waitFor();
    await page.getByLabel('Actor', { exact: true }).fill('archive-clerk');
    await page.getByLabel('Actor', { exact: true }).press('Tab');
    await page.getByText('Page 1, 50 entries').waitFor();
    await page.getByRole('button', { name: 'Older entries' }).click();
    await page.getByText('Page 2, 10 entries').waitFor();
    await table.getByRole('cell', { name: 'note 0', exact: true }).waitFor();
    await page.getByRole('button', { name: 'Newer entries' }).click();
    await page.getByText('Page 1, 50 entries').waitFor();
    await page.getByLabel('From', { exact: true }).fill('2026-01-11');
    await page.getByText('Page 1, 0 entries').waitFor();
    await page.getByLabel('From', { exact: true }).fill('2026-01-10');
    await page.getByLabel('To', { exact: true }).fill('2026-01-10');
    await page.getByText('Page 1, 50 entries').waitFor();
    await page.getByLabel('Actor', { exact: true }).fill(users.get('admin')!);
    await page.getByLabel('Action', { exact: true }).fill('alarm.resolve');
    await page.getByLabel('Action', { exact: true }).press('Tab');
    await page.getByText('Page 1, 0 entries').waitFor();
    await page.getByLabel('From', { exact: true }).fill('');
    await page.getByLabel('To', { exact: true }).fill('');
    await table.locator('tr[data-audit]').filter({ hasText: 'alarm.resolve' }).waitFor();
    assert.equal(await table.locator('tr[data-audit]').count(), 1);
    assert.deepEqual(await unlabelledControls(page), []);
    await shot(page, 'audit-supervisor');
    await page.context().close();
  });

  it('hides the account and audit screens from viewers and operators, even by their address', async () => {
    for (const role of ['viewer', 'operator'] as Role[]) {
      const page = await signedIn(role);
      for (const link of ['Accounts', 'Audit'])
        assert.equal(await page.getByRole('link', { name: link }).count(), 0, `${role}: ${link}`);
      for (const hash of ['#/accounts', '#/audit']) {
        await page.goto(`${base}/console/${hash}`);
        await page.getByRole('heading', { name: 'Fleet' }).waitFor();
      }
      await page.context().close();
    }
  });
});
