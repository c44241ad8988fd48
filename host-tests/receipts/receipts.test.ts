// A sale's receipt, from the meter's receipt key to the driver's inbox: the code the meter shows
// opens the uploaded record with its chain proof (checked here with Node's own SHA-256), as JSON,
// as a PDF and by e-mail through a real SMTP server (Debian's aiosmtpd), on both backends; a wrong
// check, a code that cannot be one and too many guesses are refused without saying anything.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Fastify from 'fastify';
import { VirtualClock } from '../../hal/mock/clock';
import { SmtpMailSender } from '../../platform-server/core/mail';
import { RateLimiter } from '../../platform-server/core/rateLimiter';
import type { Platform } from '../../platform-server/platform';
import { defaultReceiptLimits, type ReceiptService, receiptRoutes } from '../../platform-server/receipts';
import type { Outbox } from '../../platform-server/phone/channels';
import { forEachBackend, randomMeterId } from '../../sim/fleet/platform';
import type { Browser, Page } from 'playwright-core';
import { launchChromium, PHONE, requireChromium } from '../support/chromium';
import { pdfText } from '../support/pdf';
import { startSmtpServer } from '../support/smtp';
import { type BootedMeter, bootMeter, card, phonePlatform, tapBay2, until } from '../phone/support';

/** Crockford base32 of the link's first 40 bits, worked with BigInt (not the code under test). */
function checkOf(linkHex: string): string {
  const alphabet = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
  let bits = BigInt(`0x${linkHex.slice(0, 10)}`);
  let out = '';
  for (let i = 0; i < 8; i++) {
    out = alphabet[Number(bits & 31n)] + out;
    bits >>= 5n;
  }
  return out;
}

/** The PDFs are kept for a person to look at (gitignored). */
const ARTIFACTS = 'test-artifacts/receipts';

forEachBackend('receipts', (backend) => {
  let platform: Platform;
  let drop: () => Promise<void>;
  let m: BootedMeter;
  let smtp: Awaited<ReturnType<typeof startSmtpServer>>;
  let mail: SmtpMailSender;
  let code: string;
  const clock = new VirtualClock('2026-06-01T09:00:00Z');
  const meterId = randomMeterId();
  const number = '6280123400040018';
  const lookupNow = { t: 0 };

  before(async function () {
    this.timeout(60_000);
    smtp = await startSmtpServer();
    mail = new SmtpMailSender(`smtp://127.0.0.1:${smtp.port}`, 'receipts@parklink.test');
    const fresh = await backend.fresh();
    drop = fresh.drop;
    platform = await phonePlatform(
      {
        ...fresh.config,
        mail,
        receiptLimits: { ...defaultReceiptLimits(), lookups: new RateLimiter(40, 60_000, () => lookupNow.t) },
      },
      clock,
    );
    m = await bootMeter(platform, meterId, clock);
  });

  after(async () => {
    m?.meter.stop();
    await platform?.close();
    await drop?.();
    mail?.close();
    smtp?.stop();
  });

  const get = (url: string) => platform.app.inject({ method: 'GET', url });

  it('the meter shows a code after a sale, and the code opens the uploaded sale with a proof that checks', async function () {
    this.timeout(60_000);
    tapBay2(m, clock, card(number));
    m.board.press('ok');
    const shown = /Code (\d+)-(\d+)\nCheck ([0-9A-Z]{4})-([0-9A-Z]{4})/.exec(m.board.display.text);
    assert.ok(shown, m.board.display.text);
    code = `${shown[1]}-${shown[2]}-${shown[3]}-${shown[4]}`;
    assert.equal(Number(shown[1]), meterId);

    // Found once the meter has uploaded the sale; the same refusal until then.
    let response = await get(`/api/receipts/${code}`);
    await until(async () => {
      response = await get(`/api/receipts/${code}`);
      return response.statusCode === 200;
    }, 'the sale to reach the platform');
    const r = response.json();
    assert.equal(r.code, code);
    assert.equal(r.meter.id, meterId);
    assert.equal(r.bayId, 2);
    assert.equal(r.minutes, 30);
    assert.equal(r.charge, 120, '30 min at 2.40 an hour');
    assert.equal(r.currency, 826);
    assert.equal(r.cardLast4, number.slice(-4));
    assert.equal(r.cardType, 'credit');
    assert.equal(Date.parse(r.paidUntil) - Date.parse(r.paidFrom), 30 * 60_000);

    // The proof, recomputed without the platform's code: SHA-256(previous link ‖ record) = link,
    // the link is the one stored for that record, and the code's check is its first 40 bits.
    const p = r.proof;
    assert.equal(p.seq, Number(shown[2]));
    const link = createHash('sha256')
      .update(Buffer.from(p.previousLink, 'hex'))
      .update(Buffer.from(p.record, 'hex'))
      .digest('hex');
    assert.equal(link, p.link);
    assert.equal(p.verified, true);
    assert.equal(checkOf(p.link), `${shown[3]}${shown[4]}`);
    const stored = await platform.db.query<{ link: Uint8Array; previous: Uint8Array | null }>(
      `SELECT r.link, (SELECT link FROM records WHERE meter_id = $1 AND seq = $2 - 1) AS previous
         FROM records r WHERE r.meter_id = $1 AND r.seq = $2`,
      [meterId, p.seq],
    );
    assert.equal(Buffer.from(stored.rows[0].link).toString('hex'), p.link);
    if (p.seq > 1) assert.equal(Buffer.from(stored.rows[0].previous ?? []).toString('hex'), p.previousLink);
    assert.ok(p.latestSeq >= p.seq);
  });

  it('gives the receipt as a PDF', async () => {
    const response = await get(`/api/receipts/${code}/pdf`);
    assert.equal(response.statusCode, 200);
    assert.equal(response.headers['content-type'], 'application/pdf');
    assert.match(
      String(response.headers['content-disposition']),
      new RegExp(`parklink-receipt-${code}\\.pdf`),
    );
    assert.equal(response.rawPayload.subarray(0, 5).toString(), '%PDF-');
    const text = pdfText(response.rawPayload);
    assert.match(text, new RegExp(`Receipt code ${code}`));
    assert.match(text, /Chain proof/);
    assert.match(text, /the link matches/);
    const { proof } = (await get(`/api/receipts/${code}`)).json();
    for (const hex of [proof.link, proof.previousLink]) assert.ok(text.includes(hex), `${hex} in the PDF`);
    mkdirSync(ARTIFACTS, { recursive: true });
    writeFileSync(join(ARTIFACTS, `receipt-${backend.name.split(' ')[0]}.pdf`), response.rawPayload);
  });

  it('e-mails the receipt with its PDF through SMTP, and refuses an address that is not one', async function () {
    this.timeout(30_000);
    const bad = await platform.app.inject({
      method: 'POST',
      url: `/api/receipts/${code}/email`,
      payload: { to: 'not an address' },
    });
    assert.equal(bad.statusCode, 400);
    assert.equal(bad.json().field, 'to');
    const sent = await platform.app.inject({
      method: 'POST',
      url: `/api/receipts/${code}/email`,
      payload: { to: 'driver@example.org' },
    });
    assert.equal(sent.statusCode, 202, sent.body);
    const subject = `Subject: Your ParkLink parking receipt ${code}`;
    await until(() => smtp.messageWith(subject) !== undefined, 'the e-mail');
    const output = smtp.messageWith(subject) ?? '';
    assert.ok(output.includes('driver@example.org'));
    assert.ok(output.includes('Content-Type: application/pdf'), output.slice(0, 2000));
    assert.ok(output.includes(`parklink-receipt-${code}.pdf`));
    assert.ok(output.includes(`bay 2`), 'the text says what was bought');
    // The server prints the message before the platform has marked it delivered.
    const outboxRow = () =>
      platform.db.query<{ status: string; adapter: string; receipt_code: string }>(
        "SELECT status, adapter, receipt_code FROM outbox WHERE recipient = 'driver@example.org'",
      );
    await until(async () => (await outboxRow()).rows[0]?.status === 'delivered', 'the delivery recorded');
    const row = await outboxRow();
    assert.deepEqual(row.rows, [{ status: 'delivered', adapter: 'smtp', receipt_code: code }]);
  });

  it('refuses a wrong check like an unknown record, a malformed code with why, and too many guesses', async () => {
    const [meter, seq, a, b] = code.split('-');
    const flipped = `${meter}-${seq}-${a}-${b.slice(0, 3)}${b[3] === '0' ? '1' : '0'}`;
    const wrong = await get(`/api/receipts/${flipped}`);
    const unknown = await get(`/api/receipts/${meter}-999999-${a}-${b}`);
    assert.equal(wrong.statusCode, 404);
    assert.equal(unknown.statusCode, 404);
    assert.equal(wrong.json().message, unknown.json().message, 'a wrong check says nothing more');
    assert.ok(!wrong.body.includes(number.slice(-4)));
    const malformed = await get('/api/receipts/1001-42');
    assert.equal(malformed.statusCode, 400);
    assert.equal(malformed.json().code, 'bad-receipt-code');
    assert.equal(malformed.json().field, 'code');
    lookupNow.t = 120_000;
    const answers: number[] = [];
    for (let i = 0; i < 41; i++)
      answers.push((await get(`/api/receipts/${meter}-${seq}-0000-000${i % 10}`)).statusCode);
    assert.equal(answers.filter((s) => s === 404).length, 40);
    assert.equal(answers[40], 429);
  });
});

describe('receipts without a mail server', () => {
  it('says e-mail is not set up instead of pretending to send', async () => {
    const app = Fastify();
    const outbox = { enqueue: async () => assert.fail('nothing is queued') } as unknown as Outbox;
    const service = { find: async () => assert.fail('not looked up') } as unknown as ReceiptService;
    await app.register(receiptRoutes, {
      service,
      timeZone: 'UTC',
      outbox,
      db: {} as never,
      emailEnabled: false,
    });
    const response = await app.inject({
      method: 'POST',
      url: '/api/receipts/1001-42-7KQ4-M2XD/email',
      payload: { to: 'driver@example.org' },
    });
    assert.equal(response.statusCode, 503);
    assert.equal(response.json().code, 'email-unavailable');
    await app.close();
  });
});

describe('the receipt page in headless Chromium, on a phone', function () {
  this.timeout(60_000);
  let platform: Platform;
  let m: BootedMeter;
  let smtp: Awaited<ReturnType<typeof startSmtpServer>>;
  let mail: SmtpMailSender;
  let browser: Browser;
  let page: Page;
  let base: string;
  const clock = new VirtualClock('2026-06-01T09:00:00Z');
  const meterId = randomMeterId();
  const shot = (name: string) => page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });

  before(async function () {
    requireChromium(this);
    mkdirSync(ARTIFACTS, { recursive: true });
    smtp = await startSmtpServer();
    mail = new SmtpMailSender(`smtp://127.0.0.1:${smtp.port}`, 'receipts@parklink.test');
    platform = await phonePlatform({ mail }, clock);
    m = await bootMeter(platform, meterId, clock);
    base = await platform.listen(0);
    browser = await launchChromium();
    const context = await browser.newContext(PHONE);
    page = await context.newPage();
  });

  after(async () => {
    await browser?.close();
    m?.meter.stop();
    await platform?.close();
    mail?.close();
    smtp?.stop();
  });

  it('takes the code from the meter, shows the receipt with its proof, and e-mails it', async () => {
    tapBay2(m, clock, card('6280123400050017'));
    m.board.press('ok');
    const shown = /Code (\d+-\d+)\nCheck ([0-9A-Z]{4}-[0-9A-Z]{4})/.exec(m.board.display.text);
    assert.ok(shown, m.board.display.text);
    const code = `${shown[1]}-${shown[2]}`;
    await until(
      async () =>
        (await platform.app.inject({ method: 'GET', url: `/api/receipts/${code}` })).statusCode === 200,
      'the upload',
    );

    await page.goto(`${base}/app/#/login`);
    await page.getByRole('link', { name: 'Get your receipt with its code' }).click();
    const input = page.getByLabel('Receipt code from the meter');
    // Typed as a person reads it off the display: lower case, spaces for dashes.
    await input.fill(code.toLowerCase().replaceAll('-', ' '));
    await page.getByRole('button', { name: 'Show receipt' }).click();
    const receipt = page.getByRole('region', { name: 'Receipt' });
    await receipt.getByRole('heading', { name: `Receipt ${code}` }).waitFor();
    const text = await receipt.textContent();
    assert.match(text ?? '', /Bay2/);
    assert.match(text ?? '', /£1\.20 for 30 min/);
    assert.match(text ?? '', /credit, ending 0017/);
    assert.match(text ?? '', /checked/);
    assert.equal(
      await receipt.getByRole('link', { name: 'Download PDF' }).getAttribute('href'),
      `/api/receipts/${code}/pdf`,
    );
    await shot('receipt');

    await receipt.getByLabel('E-mail it to').fill('nia@example.org');
    await receipt.getByRole('button', { name: 'Send' }).click();
    await page.getByText('Receipt sent to nia@example.org.').waitFor();
    await until(
      () => smtp.messageWith(`Subject: Your ParkLink parking receipt ${code}`) !== undefined,
      'the e-mail',
    );
    await shot('receipt-sent');

    // A mistyped check: the refusal beside the field, and no receipt shown.
    await page.goto(`${base}/app/#/receipt`);
    await input.fill(`${shown[1]}-ZZZZ-ZZZZ`);
    await page.getByRole('button', { name: 'Show receipt' }).click();
    await page.locator('#e-code').waitFor();
    assert.match((await page.locator('#e-code').textContent()) ?? '', /^No receipt has this code yet/);
    assert.equal(await page.getByRole('region', { name: 'Receipt' }).count(), 0);
    await shot('receipt-not-found');
  });
});
