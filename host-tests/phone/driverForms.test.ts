// The driver app's forms in Debian's headless Chromium on a phone viewport: no navigation before
// logging in, a national phone number taken as the city's country reads it, refused fields answered
// in plain words beside the field (not on a status line, not as a schema pattern), and a card added
// without being asked its kind. Screenshots go to test-artifacts/driver/.
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { VirtualClock } from '../../hal/mock/clock';
import type { Platform } from '../../platform-server/platform';
import { launchChromium, PHONE, requireChromium } from '../support/chromium';
import { apiOf, phonePlatform } from './support';

const ARTIFACTS = join('test-artifacts', 'driver');

describe('driver app forms in headless Chromium', function () {
  this.timeout(60_000);
  let platform: Platform;
  let browser: Browser;
  let page: Page;
  let base: string;
  const clock = new VirtualClock('2026-06-01T09:00:00Z');
  const shot = (name: string) => page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
  const nav = () => page.getByRole('navigation', { name: 'Main' });

  before(async function () {
    requireChromium(this);
    mkdirSync(ARTIFACTS, { recursive: true });
    platform = await phonePlatform({}, clock);
    base = await platform.listen(0);
    browser = await launchChromium();
    const context = await browser.newContext(PHONE);
    page = await context.newPage();
  });

  after(async () => {
    await browser?.close();
    await platform?.close();
  });

  it('shows no navigation while logged out', async () => {
    await page.goto(`${base}/app/#/login`);
    await page.getByRole('button', { name: 'Log in' }).last().waitFor();
    assert.equal(await nav().isVisible(), false);
    await shot('logged-out');
  });

  it('answers a refused e-mail beside the field, then registers with a national phone number', async () => {
    await page.goto(`${base}/app/#/register`);
    await page.getByLabel('Your name').fill('Nia Driver');
    await page.getByLabel('Mobile phone (with country code)').fill('07700 900777');
    // The browser's own check lets "name@host" through; the platform wants a domain with a dot.
    await page.getByLabel('E-mail').fill('nia@example');
    await page.getByLabel('Password (at least 10 characters)').fill('correct horse battery');
    await page.getByRole('button', { name: 'Create account' }).click();
    const email = page.getByLabel('E-mail');
    const note = page.locator('#e-email');
    await note.waitFor();
    assert.equal(await note.textContent(), 'Enter an e-mail address such as name@example.com.');
    assert.equal(await email.getAttribute('aria-invalid'), 'true');
    assert.equal(await email.getAttribute('aria-describedby'), 'e-email');
    assert.equal(await nav().isVisible(), false);
    await shot('register-field-error');

    await email.fill('nia@example.org');
    await page.getByRole('button', { name: 'Create account' }).click();
    await page.getByRole('heading', { name: 'Your cards' }).waitFor();
    assert.equal(await nav().isVisible(), true);
    const token = await page.evaluate<string>('localStorage.getItem("parklink.token")');
    const me = await apiOf(platform, token)('GET', '/api/driver/me');
    assert.equal(me.json.driver.phone, '+447700900777');
  });

  it('answers a mistyped card number beside it, and adds a card without asking its kind', async () => {
    assert.equal(await page.getByLabel('Card type').count(), 0);
    const number = page.getByLabel('Card number');
    await number.fill('4111 1111 1111 1112');
    await page.getByRole('button', { name: 'Add card' }).click();
    const note = page.locator('#e-cardNumber');
    await note.waitFor();
    assert.match((await note.textContent()) ?? '', /typing error: please check the digits/);
    assert.equal(await number.getAttribute('aria-invalid'), 'true');
    await shot('card-typo');

    await number.fill('4111 1111 1111 1111');
    await page.getByRole('button', { name: 'Add card' }).click();
    await page.getByRole('heading', { name: /^Visa ending 1111/ }).waitFor();
    await page.getByText('Tap it once at any ParkLink meter').waitFor();
    assert.equal(await page.locator('.field-error').count(), 0);
    await shot('card-added');
  });

  it('logs out, hides the navigation, and logs in with the number written with its country code', async () => {
    await page.getByRole('link', { name: 'Settings' }).click();
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.getByRole('button', { name: 'Log in' }).last().waitFor();
    assert.equal(await nav().isVisible(), false);
    await page.getByLabel('Phone, e-mail or account number').fill('+44 7700 900777');
    await page.getByLabel('Password').fill('correct horse battery');
    await page.getByRole('button', { name: 'Log in' }).last().click();
    await page.getByRole('heading', { name: 'Your parking' }).waitFor();
    assert.equal(await nav().isVisible(), true);
  });
});
