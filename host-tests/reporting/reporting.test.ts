// The city's reports over a small known history: two meters in two areas, card sales stored through
// ingest (one after midnight UTC that is the next day in London), a renewal paid by phone and applied,
// status reports with occupied bays, alarms with their response times, a downtime record. The totals
// add up, the days are London's, the CSV parses back to the same rows, the PDF is a PDF with the
// figures in it, a range is paged by days, and bad requests get their typed errors.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'csv-parse/sync';
import type { Platform } from '../../platform-server/platform';
import { uplinkTopic } from '../../protocol/topics';
import { buildConsole } from '../../tools/buildConsole';
import { launchChromium, requireChromium } from '../support/chromium';
import { storeAppliedRenewal } from '../support/phoneRenewal';
import { RecordKind } from '../../protocol/records';
import {
  forEachBackend,
  type OperatorLogin,
  operatorLogin,
  randomMeterId,
  startPlatform,
  TestMeter,
} from '../../sim/fleet/platform';
import { pdfText } from '../support/pdf';

/** The PDFs are kept for a person to look at (gitignored). */
const ARTIFACTS = 'test-artifacts/reporting';
const at = (iso: string) => Math.floor(Date.parse(iso) / 1000);

forEachBackend('city reports (revenue, occupancy, events, uptime)', (backend) => {
  let platform: Platform;
  let drop: () => Promise<void>;
  let viewer: OperatorLogin;
  const north = randomMeterId();
  const south = north + 1;
  const get = (url: string, who: OperatorLogin | null = viewer) =>
    platform.app.inject({ method: 'GET', url, headers: who ? who.headers : {} });

  before(async () => {
    ({ platform, drop } = await startPlatform(backend, { apds: { timeZone: 'Europe/London' } }));
    viewer = await operatorLogin(platform.operators, 'viewer');
    const meters = new Map<number, TestMeter>();
    for (const [id, area] of [
      [north, 'North'],
      [south, 'South'],
    ] as const) {
      meters.set(id, new TestMeter(id, await platform.provisionMeter(id, `meter ${id}`)));
      await platform.db.query('UPDATE meters SET area = $2, bays = 4 WHERE id = $1', [id, area]);
    }
    const a = meters.get(north)!;
    a.transaction({ cardType: 1, minutes: 60, charge: 120, bayId: 1 }, at('2026-06-01T10:00:00Z'));
    a.transaction({ cardType: 2, minutes: 100, charge: 200, bayId: 2 }, at('2026-06-01T12:00:00Z'));
    // 00:30 on 2 June in London.
    a.transaction({ cardType: 1, minutes: 25, charge: 50, bayId: 1 }, at('2026-06-01T23:30:00Z'));
    a.append({
      kind: RecordKind.Operation,
      seq: a.nextSeq,
      time: at('2026-06-02T10:00:00Z'),
      meterId: north,
      data: {
        code: 'downtime',
        detail: 'modem',
        card: null,
        period: { from: at('2026-06-02T08:00:00Z'), to: at('2026-06-02T10:00:00Z') },
      },
    });
    const b = meters.get(south)!;
    b.transaction({ cardType: 3, minutes: 150, charge: 300, bayId: 3 }, at('2026-06-02T09:00:00Z'));
    for (const meter of [a, b])
      await platform.ingest.handleUplink(uplinkTopic(meter.id), meter.frame(1, meter.nextSeq - 1));

    // A renewal paid by phone (SMS) and applied by the north meter.
    await storeAppliedRenewal(platform.db, {
      id: 'rep1',
      meterId: north,
      bayId: 2,
      minutes: 30,
      charge: 60,
      cardType: 2,
      channel: 'sms',
      appliedAt: '2026-06-01T13:31:00Z',
    });
    for (const [reportedAt, occupied] of [
      ['2026-06-01T09:00:00Z', 1],
      ['2026-06-01T12:00:00Z', 3],
    ] as const)
      await platform.db.query(
        `INSERT INTO meter_status_history (meter_id, reported_at, occupied_bays, faults) VALUES ($1, $2, $3, 0)`,
        [north, reportedAt, occupied],
      );
    await platform.db.query(
      `INSERT INTO alarms (meter_id, kind, severity, source, detail, occurred_at, raised_at, last_at, acknowledged_at, resolved_at)
       VALUES ($1, 'cover-opened', 'security', 'security-event', 'cover', $2, $2, $2, '2026-06-01T10:10:00Z', '2026-06-01T11:00:00Z'),
              ($1, 'module-fault', 'partial-fault', 'status-event', 'modem', '2026-06-02T08:00:00Z', '2026-06-02T08:00:00Z', '2026-06-02T08:00:00Z', NULL, '2026-06-02T10:00:00Z')`,
      [north, '2026-06-01T10:00:00Z'],
    );
  });

  after(async () => {
    await platform?.close();
    await drop?.();
  });

  it('adds up revenue by London day, area, meter and payment method, phone renewals included', async () => {
    const response = await get('/api/reporting/revenue?from=2026-06-01&to=2026-06-03');
    assert.equal(response.statusCode, 200, response.body);
    const report = response.json();
    const mine = report.rows.filter((r: { meterId: number }) => r.meterId === north || r.meterId === south);
    assert.deepEqual(
      mine.map((r: Record<string, unknown>) => [
        r.day,
        r.area,
        r.meterId,
        r.method,
        r.payments,
        r.minutes,
        r.amount,
      ]),
      [
        ['2026-06-01', 'North', north, 'card: debit', 1, 60, 120],
        ['2026-06-01', 'North', north, 'card: credit', 1, 100, 200],
        ['2026-06-01', 'North', north, 'phone: sms', 1, 30, 60],
        ['2026-06-02', 'North', north, 'card: debit', 1, 25, 50],
        ['2026-06-02', 'South', south, 'card: prepaid', 1, 150, 300],
      ],
    );
    assert.deepEqual(report.totals, { payments: 5, minutes: 365, amount: 730 });
    assert.equal(report.timeZone, 'Europe/London');
    assert.equal(report.next, null);

    const southOnly = (await get('/api/reporting/revenue?from=2026-06-01&to=2026-06-03&area=South')).json();
    assert.deepEqual(southOnly.totals, { payments: 1, minutes: 150, amount: 300 });

    // The city summary: a row per day, area and method, each the sum of its meters' rows.
    const summary = (await get('/api/reporting/revenue?from=2026-06-01&to=2026-06-03&by=area')).json();
    type Row = {
      day: string;
      area: string | null;
      meterId: number | null;
      method: string;
      currency: number;
      payments: number;
      minutes: number;
      amount: number;
    };
    const summed = new Map<string, Row>();
    for (const r of report.rows as Row[]) {
      const key = `${r.day}|${r.area}|${r.method}|${r.currency}`;
      const into = summed.get(key) ?? { ...r, meterId: null, payments: 0, minutes: 0, amount: 0 };
      into.payments += r.payments;
      into.minutes += r.minutes;
      into.amount += r.amount;
      summed.set(key, into);
    }
    const order = (rows: Row[]) => rows.map((r) => JSON.stringify(r)).sort();
    assert.deepEqual(order(summary.rows), order([...summed.values()]));
    assert.deepEqual(summary.totals, report.totals);
    const refused = await get('/api/reporting/occupancy?from=2026-06-01&to=2026-06-03&by=area');
    assert.equal(refused.statusCode, 400);
    assert.equal(refused.json().code, 'not-by-area');
  });

  it('pages a range by days, each page saying where the next starts', async () => {
    const first = (await get('/api/reporting/revenue?from=2026-06-01&to=2026-06-03&pageDays=1')).json();
    assert.equal(first.to, '2026-06-02');
    assert.equal(first.next, '2026-06-02');
    assert.equal(first.totals.amount, 380);
    const second = (await get(`/api/reporting/revenue?from=${first.next}&to=2026-06-03&pageDays=1`)).json();
    assert.equal(second.next, null);
    assert.equal(second.totals.amount, 350);
  });

  it('pages rows per meter by meters in the rows order, the pages together the whole report', async () => {
    type Page = { rows: { meterId: number }[]; next: string | null; nextMeters: string | null };
    for (const kind of ['revenue', 'occupancy', 'events', 'uptime']) {
      const range = `/api/reporting/${kind}?from=2026-06-01&to=2026-06-03`;
      const whole = (await get(`${range}&pageMeters=5000`)).json() as Page;
      assert.equal(whole.nextMeters, null);
      const pages: Page[] = [];
      let after: string | null = null;
      do {
        const response = await get(`${range}&pageMeters=1${after ? `&afterMeter=${after}` : ''}`);
        assert.equal(response.statusCode, 200, response.body);
        const page = response.json() as Page;
        assert.ok(new Set(page.rows.map((r) => r.meterId)).size <= 1, `${kind}: one meter a page`);
        pages.push(page);
        after = page.nextMeters;
      } while (after !== null && pages.length < 1000);
      assert.deepEqual(
        pages.flatMap((p) => p.rows),
        whole.rows,
        `${kind}: the pages of meters are the report`,
      );
      assert.ok(pages.length >= 2, `${kind}: more than one page`);
      // In the order of the CSV, which is not paged and sorts by area in the database.
      const csv: string[][] = parse((await get(`${range}&format=csv`)).body);
      const meterColumn = csv[0].indexOf('Meter');
      assert.deepEqual(
        pages.flatMap((p) => p.rows.map((r) => String(r.meterId))),
        csv.slice(1, -1).map((line) => line[meterColumn]),
        `${kind}: the rows in the CSV's order`,
      );
    }
    // By area: North's meter, then South's; the area filter pages within the area.
    const first = (
      await get('/api/reporting/uptime?from=2026-06-01&to=2026-06-03&pageMeters=1&area=North')
    ).json();
    assert.deepEqual(
      first.rows.map((r: { meterId: number }) => r.meterId),
      [north],
    );
    assert.equal(first.nextMeters, null);
    // A meter moved to another area after its page was read: the meters after it are neither hidden
    // nor repeated, as the page's end is kept with its area.
    const page = (await get('/api/reporting/uptime?from=2026-06-01&to=2026-06-03&pageMeters=1')).json();
    const cursorAt = page.rows[0].meterId;
    await platform.db.query("UPDATE meters SET area = 'AAA moved' WHERE id = $1", [cursorAt]);
    try {
      const rest: number[] = [];
      let after: string | null = page.nextMeters;
      while (after !== null) {
        const next = (
          await get(`/api/reporting/uptime?from=2026-06-01&to=2026-06-03&pageMeters=1&afterMeter=${after}`)
        ).json();
        rest.push(...next.rows.map((r: { meterId: number }) => r.meterId));
        after = next.nextMeters;
      }
      const all = (await get('/api/reporting/uptime?from=2026-06-01&to=2026-06-03&pageMeters=5000')).json();
      assert.deepEqual(
        rest,
        all.rows.map((r: { meterId: number }) => r.meterId).filter((id: number) => id !== cursorAt),
      );
    } finally {
      await platform.db.query('UPDATE meters SET area = $2 WHERE id = $1', [
        cursorAt,
        cursorAt === north ? 'North' : 'South',
      ]);
    }
  });

  it('refuses a page of meters it did not give, and one where rows are not per meter', async () => {
    for (const [url, code, field] of [
      [
        '/api/reporting/revenue?from=2026-06-01&to=2026-06-03&afterMeter=bm90IGEgY3Vyc29y',
        'bad-cursor',
        'afterMeter',
      ],
      [
        '/api/reporting/revenue?from=2026-06-01&to=2026-06-03&afterMeter=WyJOb3J0aCIsLTFd',
        'bad-cursor',
        'afterMeter',
      ],
      [
        '/api/reporting/revenue?from=2026-06-01&to=2026-06-03&by=area&afterMeter=WyJOb3J0aCIsMV0',
        'not-paged-by-meter',
        'afterMeter',
      ],
      [
        `/api/reporting/revenue?from=2026-06-01&to=2026-06-03&meterId=${north}&afterMeter=WyJOb3J0aCIsMV0`,
        'not-paged-by-meter',
        'afterMeter',
      ],
      [
        '/api/reporting/revenue?from=2026-06-01&to=2026-06-03&format=csv&afterMeter=WyJOb3J0aCIsMV0',
        'not-paged-by-meter',
        'afterMeter',
      ],
    ]) {
      const response = await get(url);
      assert.equal(response.statusCode, 400, url);
      assert.equal(response.json().code, code, url);
      assert.equal(response.json().field, field, url);
    }
    const tooMany = await get('/api/reporting/revenue?from=2026-06-01&to=2026-06-03&pageMeters=5001');
    assert.equal(tooMany.statusCode, 400);
  });

  it('reports occupancy from the status reports, alarms with their response times, and uptime from downtime', async () => {
    const occupancy = (
      await get(`/api/reporting/occupancy?from=2026-06-01&to=2026-06-02&meterId=${north}`)
    ).json();
    assert.deepEqual(occupancy.rows, [
      {
        day: '2026-06-01',
        area: 'North',
        meterId: north,
        bays: 4,
        reports: 2,
        averageOccupied: 2,
        maxOccupied: 3,
        utilisation: 50,
      },
    ]);
    const events = (await get(`/api/reporting/events?from=2026-06-01&to=2026-06-03&meterId=${north}`)).json();
    assert.deepEqual(
      events.rows.map((r: Record<string, unknown>) => [
        r.day,
        r.severity,
        r.kind,
        r.raised,
        r.resolved,
        r.minutesToAcknowledge,
        r.minutesToRepair,
      ]),
      [
        ['2026-06-01', 'security', 'cover-opened', 1, 1, 10, 60],
        ['2026-06-02', 'partial-fault', 'module-fault', 1, 1, null, 120],
      ],
    );
    const uptime = (await get(`/api/reporting/uptime?from=2026-06-02&to=2026-06-03&meterId=${north}`)).json();
    assert.deepEqual(uptime.rows, [
      { area: 'North', meterId: north, downtimeMinutes: 120, uptime: 91.67, faults: 1, minutesToRepair: 120 },
    ]);
  });

  it('gives the same report as CSV and as a PDF with its figures and page numbers', async () => {
    const url = `/api/reporting/revenue?from=2026-06-01&to=2026-06-03&area=North`;
    const json = (await get(url)).json();
    const csv = await get(`${url}&format=csv`);
    assert.equal(csv.statusCode, 200);
    assert.match(csv.headers['content-type'] as string, /^text\/csv/);
    const lines: string[][] = parse(csv.body);
    assert.deepEqual(
      lines[0],
      json.columns.map((c: { title: string }) => c.title),
    );
    assert.equal(lines.length, json.rows.length + 2);
    assert.deepEqual(lines[1], [
      '2026-06-01',
      'North',
      String(north),
      'card: debit',
      '826',
      '1',
      '60',
      '1.20',
    ]);
    assert.deepEqual(lines.at(-1), ['Total', '', '', '', '', '4', '215', '4.30']);

    const pdf = await get(`${url}&format=pdf`);
    assert.equal(pdf.statusCode, 200);
    assert.equal(pdf.headers['content-type'], 'application/pdf');
    const bytes = pdf.rawPayload;
    mkdirSync(ARTIFACTS, { recursive: true });
    writeFileSync(join(ARTIFACTS, `revenue-${backend.real ? 'postgresql' : 'pglite'}.pdf`), bytes);
    assert.equal(bytes.subarray(0, 5).toString('latin1'), '%PDF-');
    const text = pdfText(bytes);
    for (const expected of [
      'Revenue by day, area, meter and payment method',
      'phone: sms',
      '4.30',
      'Page 1 of 1',
    ])
      assert.ok(text.includes(expected), `the PDF shows ${expected}`);
  });

  it('shows a report in the console, downloads it as CSV, and switches to another report', async function () {
    requireChromium(this);
    await buildConsole({ quiet: true });
    const username = `reader-${randomBytes(3).toString('hex')}`;
    const password = randomBytes(12).toString('base64url');
    await platform.operators.create(
      { username, role: 'viewer', password, displayName: 'Report reader' },
      { id: null, username: 'test-setup' },
    );
    const base = await platform.listen(0);
    const browser = await launchChromium();
    try {
      const context = await browser.newContext({
        acceptDownloads: true,
        viewport: { width: 1280, height: 900 },
      });
      const page = await context.newPage();
      await page.goto(`${base}/console/`);
      await page.getByLabel('User name', { exact: true }).fill(username);
      await page.getByLabel('Password', { exact: true }).fill(password);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByRole('link', { name: 'Reports' }).click();
      await page.getByLabel('From').fill('2026-06-01');
      await page.getByLabel('To (the day after the last)').fill('2026-06-03');
      const table = page.getByRole('table', { name: 'Revenue by day, area, meter and payment method' });
      await table.getByRole('cell', { name: 'phone: sms' }).waitFor();
      assert.equal(await table.locator('tfoot td').last().textContent(), '7.30');
      mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: join(ARTIFACTS, 'reports-revenue.png'), fullPage: true });

      const [download] = await Promise.all([
        page.waitForEvent('download'),
        page.getByRole('button', { name: 'Download CSV' }).click(),
      ]);
      const lines: string[][] = parse(readFileSync((await download.path()) as string, 'utf8'));
      assert.deepEqual(lines.at(-1), ['Total', '', '', '', '', '5', '365', '7.30']);
      // The city is shown per area first; per meter on asking, with the same total.
      assert.equal(await table.getByRole('cell', { name: String(north), exact: true }).count(), 0);
      await page.getByRole('combobox', { name: 'Rows' }).selectOption('meter');
      await table
        .getByRole('cell', { name: String(north), exact: true })
        .first()
        .waitFor();
      assert.equal(await table.locator('tfoot td').last().textContent(), '7.30');

      await page.getByRole('combobox', { name: 'Report' }).selectOption('events');
      await page
        .getByRole('table', { name: 'Security and operational events (alarms raised)' })
        .getByRole('cell', { name: 'cover-opened' })
        .waitFor();
      await page.screenshot({ path: join(ARTIFACTS, 'reports-events.png'), fullPage: true });

      // More meters than a page holds: the first 500 in area order, then the rest, then back.
      const extra = await platform.db.query<{ id: string }>(
        `INSERT INTO meters (id, name, key_epoch, area)
         SELECT id, 'paging ' || id, 1, 'Zz paging' FROM generate_series($1::bigint, $1::bigint + 599) AS id
         RETURNING id`,
        [south + 1000],
      );
      try {
        await page.getByRole('combobox', { name: 'Report' }).selectOption('uptime');
        const uptime = page.getByRole('table', { name: 'Uptime and time to repair per meter' });
        await uptime.getByRole('cell', { name: String(north), exact: true }).waitFor();
        const bodyRows = uptime.locator('tbody tr');
        const meters = Number(
          (await platform.db.query<{ n: string }>('SELECT count(*) AS n FROM meters')).rows[0].n,
        );
        assert.equal(await bodyRows.count(), 500);
        assert.equal(await uptime.locator('tfoot td').first().textContent(), 'Total, this page');
        await page.getByRole('button', { name: 'Next page' }).click();
        await uptime.getByRole('cell', { name: String(south + 1599), exact: true }).waitFor();
        assert.equal(await bodyRows.count(), meters - 500);
        assert.equal(await uptime.getByRole('cell', { name: String(north), exact: true }).count(), 0);
        assert.ok(await page.getByRole('button', { name: 'Next page' }).isDisabled());
        await page.screenshot({ path: join(ARTIFACTS, 'reports-uptime-page-2.png'), fullPage: true });
        await page.getByRole('button', { name: 'Previous page' }).click();
        await uptime.getByRole('cell', { name: String(north), exact: true }).waitFor();
        assert.equal(await bodyRows.count(), 500);
      } finally {
        await platform.db.query('DELETE FROM meters WHERE id = ANY($1::bigint[])', [
          extra.rows.map((r) => r.id),
        ]);
      }
    } finally {
      await browser.close();
    }
  });

  it('refuses bad ranges, unknown areas and anyone not signed in, with typed errors', async () => {
    const refused = async (url: string, status: number, code: string) => {
      const response = await get(url);
      assert.equal(response.statusCode, status, response.body);
      assert.equal(response.json().code, code);
    };
    await refused('/api/reporting/revenue?from=2026-06-03&to=2026-06-01', 400, 'bad-range');
    await refused('/api/reporting/revenue?from=2026-02-30&to=2026-03-01', 400, 'bad-date');
    await refused('/api/reporting/revenue?from=2025-01-01&to=2026-06-01', 400, 'range-too-long');
    await refused('/api/reporting/revenue?from=2026-06-01&to=2026-06-02&area=Atlantis', 404, 'unknown-area');
    const invalid = await get('/api/reporting/profit?from=2026-06-01&to=2026-06-02');
    assert.equal(invalid.statusCode, 400);
    assert.equal((await get('/api/reporting/revenue?from=2026-06-01&to=2026-06-02', null)).statusCode, 401);
  });
});
