// The driver web app in Debian's headless Chromium (playwright-core, never a downloaded browser),
// on a phone-sized viewport: register, add a card, tap it at a virtual meter, watch the paired
// session count down, extend by a button, see the meter's new expiry, the receipt and the
// confirmation, and park at another bay by the code on the meter. Screenshots go to
// test-artifacts/driver/app-*.png. Skipped without chromium unless CI=true.
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { launchChromium, requireChromium } from '../support/chromium';
import { VirtualClock } from '../../hal/mock/clock';
import type { Platform } from '../../platform-server/platform';
import { randomMeterId } from '../../sim/fleet/platform';
import { type BootedMeter, bootMeter, card, phonePlatform, tapBay2 } from './support';

describe('driver web app in headless Chromium', function () {
  this.timeout(30_000);
  let platform: Platform;
  let browser: Browser;
  let page: Page;
  let m: BootedMeter;
  let base: string;
  const clock = new VirtualClock('2026-06-01T09:00:00Z');
  const meterId = randomMeterId();
  const shot = (name: string) =>
    page.screenshot({ path: join('test-artifacts', 'driver', `app-${name}.png`), fullPage: true });
  /** The driver's own API call from the page's token, for what the page should show. */
  const api = async (url: string, body: unknown) => {
    const token = await page.evaluate<string>('localStorage.getItem("parklink.token")');
    const response = await platform.app.inject({
      method: 'POST',
      url,
      payload: body as object,
      headers: { authorization: `Bearer ${token}` },
    });
    return response.json();
  };

  before(async function () {
    requireChromium(this);
    mkdirSync(join('test-artifacts', 'driver'), { recursive: true });
    platform = await phonePlatform({}, clock);
    base = await platform.listen(0);
    m = await bootMeter(platform, meterId, clock);
    browser = await launchChromium();
    const context = await browser.newContext({
      viewport: { width: 390, height: 844 },
      deviceScaleFactor: 1,
      isMobile: true,
      hasTouch: true,
    });
    page = await context.newPage();
    page.on('dialog', (dialog) => dialog.accept());
  });

  after(async () => {
    await browser?.close();
    m?.meter.stop();
    await platform?.close();
  });

  it('registers a driver and adds a card, with labelled fields and a clear message on a bad request', async () => {
    await page.goto(`${base}/app/#/register`);
    await page.getByLabel('Your name').fill('Grace Driver');
    await page.getByLabel('Mobile phone (with country code)').fill('+44 7700 900456');
    await page.getByLabel('E-mail').fill('grace@example.org');
    await page.getByLabel('Password (at least 10 characters)').fill('correct horse battery');
    await shot('register');
    await page.getByRole('button', { name: 'Create account' }).click();
    await page.getByRole('heading', { name: 'Your cards' }).waitFor();
    assert.match((await page.getByRole('status').textContent()) ?? '', /account number is PL\d{10}/);

    // A card number the platform refuses: the message from the 4xx is shown beside the field.
    await page.getByLabel('Card number').fill('1234 5678 901');
    await page.getByRole('button', { name: 'Add card' }).click();
    await page.getByText('A card number has 12 to 19 digits; this one has 11.').waitFor();

    // The kind of card is not asked: the first tap at a meter reads it from the card.
    await page.getByLabel('Card number').fill('6280 1234 0003 0035');
    await page.getByLabel('Name for this card (optional)').fill('Work card');
    await page.getByRole('button', { name: 'Add card' }).click();
    await page.getByRole('heading', { name: /^Maestro ending 0035/ }).waitFor();
    await shot('cards');
  });

  it('shows the session paired by a tap, counting down on the platform clock, and extends it', async () => {
    tapBay2(m, clock, card('6280123400030035'));
    await page.getByRole('link', { name: 'Parking' }).click();
    const session = page.getByRole('region', { name: 'Bay 2' });
    await session.waitFor({ timeout: 15_000 });
    const timer = session.getByRole('timer');
    // 30 minutes paid at 09:00; the page follows the platform's (virtual) clock, not the browser's.
    assert.match((await timer.textContent()) ?? '', /^(30:00|29:5\d)$/);
    await shot('session');

    const before = m.meter.bays.paidUntil(2);
    await session.getByRole('button', { name: /^\+30 min for £/ }).click();
    await page.getByText(/Confirmed: bay 2 is paid until/).waitFor({ timeout: 15_000 });
    assert.equal(m.meter.bays.paidUntil(2), before + 30 * 60);
    assert.match(m.board.display.text, /RENEWED bay 2\nuntil 10:00/);
    await page
      .getByRole('region', { name: 'Bay 2' })
      .getByText(/60 min so far/)
      .waitFor({ timeout: 10_000 });
    assert.match(
      (await page.getByRole('region', { name: 'Bay 2' }).getByRole('timer').textContent()) ?? '',
      /^(1:00:00|59:5\d)$/,
    );
    await shot('extended');
  });

  it('lists the renewal with its receipt, and the confirmation among the messages', async () => {
    await page.getByRole('link', { name: 'History' }).click();
    await page.getByText('Bay 2 +30 min').click();
    // A credit card's renewal: its authorisation is the ledger entry that charged it.
    const receipt = page.getByRole('definition').filter({ hasText: /^L[0-9]+$/ });
    assert.equal(await receipt.count(), 1);
    await page.getByText('confirmed', { exact: true }).waitFor();
    await shot('history');
    await page.getByRole('link', { name: 'Messages' }).click();
    await page.getByText(/confirmed\. Bay 2 at meter \d+ now paid until 10:00/).waitFor();
    await shot('messages');
    await page.getByRole('link', { name: 'Settings' }).click();
    await page.getByLabel('Alert me by').selectOption('voice');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByText('Settings saved.').waitFor();
    await shot('settings');
  });

  it('parks at another bay by the code on the meter: the price shown, then paid, then on the meter', async () => {
    await page.getByRole('link', { name: 'Parking' }).click();
    const form = page.getByRole('form', { name: 'Park at a bay' });
    await form.getByLabel('Bay code (printed on the meter)').fill('99-1');
    await form.getByLabel('Number plate').fill('ab12 cde');
    await form.getByRole('button', { name: 'See prices' }).click();
    await form.locator('#e-code').waitFor();
    assert.match((await form.locator('#e-code').textContent()) ?? '', /No ParkLink meter has the number 99/);

    await form.getByLabel('Bay code (printed on the meter)').fill(`${meterId}-1`);
    await form.getByRole('button', { name: 'See prices' }).click();
    const choices = form.getByRole('radio');
    await choices.first().waitFor();
    const offered = await api('/api/driver/parking/quote', { code: `${meterId}-1` });
    assert.equal(await choices.count(), offered.choices.length, 'the choices the tariff sells');
    await form.getByRole('radio', { name: /^30 min · £/ }).check();
    const pay = form.getByRole('button', { name: /^Pay £[0-9.]+ and park$/ });
    const price = offered.choices.find((c: { minutes: number }) => c.minutes === 30);
    assert.equal(await pay.textContent(), `Pay £${(price.amount / 100).toFixed(2)} and park`);
    await shot('park-price');
    await pay.click();
    await page.getByRole('region', { name: 'Bay 1' }).waitFor({ timeout: 15_000 });
    await page
      .getByRole('region', { name: 'Bay 1' })
      .getByText(/30 min so far · AB12CDE/)
      .waitFor({ timeout: 15_000 });
    assert.match(m.board.display.text, /RENEWED bay 1/);
    await shot('parked-by-code');
  });
});
