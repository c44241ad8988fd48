// Daily sales totals: the revenue report gives the same rows from the totals as from the sales, and
// reads the totals once a day is rolled up; a sale arriving for a rolled-up day marks it stale, the
// report counts it at once and the next roll-up takes it in; a sale of today marks nothing; two
// instances rolling up at once do each day once; and days are New York's, across a DST change.
import assert from 'node:assert/strict';
import { type Database, openDatabase } from '../../platform-server/core/db';
import { CityDays, cityDate, cityDayStart } from '../../platform-server/history/cityDay';
import { rollUpDays } from '../../platform-server/history/rollup';
import type { Platform } from '../../platform-server/platform';
import { type Report, type ReportRequest, ReportingService } from '../../platform-server/reporting/service';
import { forEachBackend, randomMeterId, type TestMeter } from '../../sim/fleet/platform';
import { type CityPlatform, cityCalendar, cityPlatform } from '../support/cityPlatform';

const TZ = 'America/New_York';
const HOUR = 3_600_000;
const seconds = (ms: number) => Math.floor(ms / 1000);

describe('the city day in JavaScript', () => {
  it('starts New York days at their midnight, across both DST changes', () => {
    assert.equal(cityDayStart(Date.parse('2026-11-01T12:00:00Z'), TZ), Date.parse('2026-11-01T04:00:00Z'));
    // 1 November is 25 hours long: 23:30 EST is still that day.
    assert.equal(cityDayStart(Date.parse('2026-11-02T04:30:00Z'), TZ), Date.parse('2026-11-01T04:00:00Z'));
    assert.equal(cityDayStart(Date.parse('2026-11-02T05:30:00Z'), TZ), Date.parse('2026-11-02T05:00:00Z'));
    assert.equal(cityDayStart(Date.parse('2026-03-08T12:00:00Z'), TZ), Date.parse('2026-03-08T05:00:00Z'));
    assert.equal(cityDayStart(Date.parse('2026-03-09T03:59:59Z'), TZ), Date.parse('2026-03-08T05:00:00Z'));
    assert.equal(cityDayStart(Date.parse('2026-03-09T04:00:00Z'), TZ), Date.parse('2026-03-09T04:00:00Z'));
    assert.equal(
      cityDayStart(Date.parse('2026-06-01T23:30:00Z'), 'Europe/London'),
      Date.parse('2026-06-01T23:00:00Z'),
    );
    assert.equal(cityDayStart(Date.parse('2026-06-01T23:30:00Z'), 'UTC'), Date.parse('2026-06-01T00:00:00Z'));
  });

  it("names the city's date as PostgreSQL's AT TIME ZONE does", () => {
    assert.equal(cityDate(Date.parse('2026-11-02T04:30:00Z'), TZ), '2026-11-01', '23:30 EST');
    assert.equal(cityDate(Date.parse('2026-11-02T05:00:00Z'), TZ), '2026-11-02');
    assert.equal(cityDate(Date.parse('2026-06-01T23:30:00Z'), 'Europe/London'), '2026-06-02');
    assert.equal(cityDate(Date.parse('2026-06-01T23:30:00Z'), 'UTC'), '2026-06-01');
  });

  it('keeps today until the next midnight, then moves on', () => {
    const days = new CityDays(TZ);
    assert.equal(days.todayStart(Date.parse('2026-11-02T04:59:59Z')), Date.parse('2026-11-01T04:00:00Z'));
    assert.equal(days.todayStart(Date.parse('2026-11-02T05:00:00Z')), Date.parse('2026-11-02T05:00:00Z'));
    assert.equal(days.todayStart(Date.parse('2026-11-01T03:00:00Z')), Date.parse('2026-10-31T04:00:00Z'));
    assert.throws(() => new CityDays('Mars/Olympus'), RangeError);
  });
});

forEachBackend('daily sales roll-up', (backend) => {
  let city: CityPlatform;
  let platform: Platform;
  let reports: ReportingService;
  const now = Date.now();
  const { todayStart, dayStart, day, at } = cityCalendar(now, TZ);
  const north = randomMeterId();
  const south = north + 1;
  const east = north + 2;
  const send = (id: number, from: number, to: number) => city.send(id, from, to);

  before(async () => {
    city = await cityPlatform(backend, TZ, [
      [north, 'North'],
      [south, 'South'],
      [east, 'East'],
    ]);
    platform = city.platform;
    reports = new ReportingService(platform.db, TZ);
  });
  after(async () => city?.close());

  const revenue = (request: Partial<ReportRequest> = {}): Promise<Report> =>
    reports.report('revenue', { from: day(-5), to: day(1), ...request });
  const dayRow = async (d: string) =>
    (
      await platform.db.query<{ stale: boolean; rolled: boolean; time_zone: string }>(
        `SELECT stale, rolled_up_at IS NOT NULL AS rolled, time_zone FROM daily_sales_days WHERE day = $1::date`,
        [d],
      )
    ).rows[0];

  it('gives the same rows from the totals as from the sales, and reads the totals once rolled up', async () => {
    const n = city.meters.get(north) as TestMeter;
    const s = city.meters.get(south) as TestMeter;
    n.transaction({ cardType: 1, minutes: 60, charge: 120 }, at(-4, 10));
    // Half an hour before and after New York's midnight: two days.
    n.transaction({ cardType: 2, minutes: 30, charge: 70 }, seconds(dayStart(-3) - HOUR / 2));
    n.transaction({ cardType: 1, minutes: 20, charge: 40 }, seconds(dayStart(-3) + HOUR / 2));
    n.transaction({ cardType: 3, minutes: 90, charge: 180 }, at(-3, 14));
    n.transaction({ cardType: 1, minutes: 10, charge: 20 }, seconds(now));
    s.transaction({ cardType: 1, minutes: 45, charge: 90 }, at(-4, 12));
    s.transaction({ cardType: 2, minutes: 15, charge: 30 }, at(-2, 9));
    s.transaction({ cardType: 2, minutes: 15, charge: 35 }, at(-2, 11));
    await send(north, 1, 5);
    await send(south, 1, 3);

    // The late days wait for their roll-up; today's sale wrote nothing there.
    for (const d of [day(-4), day(-3), day(-2)])
      assert.deepEqual(await dayRow(d), { stale: true, rolled: false, time_zone: TZ });
    assert.equal(await dayRow(day(0)), undefined);

    const before = await revenue();
    const pick = (report: Report, d: string, meterId: number, method: string) =>
      report.rows.find((r) => r.day === d && r.meterId === meterId && r.method === method);
    assert.equal(pick(before, day(-4), north, 'card: debit')?.amount, 120);
    assert.equal(pick(before, day(-4), north, 'card: credit')?.amount, 70, '23:30 the evening before');
    assert.equal(pick(before, day(-3), north, 'card: debit')?.amount, 40, '00:30');
    assert.deepEqual(pick(before, day(-2), south, 'card: credit'), {
      day: day(-2),
      area: 'South',
      meterId: south,
      method: 'card: credit',
      currency: 826,
      payments: 2,
      minutes: 30,
      amount: 65,
    });
    assert.equal(pick(before, day(0), north, 'card: debit')?.amount, 20);
    assert.equal(before.totals.amount, 120 + 70 + 40 + 180 + 20 + 90 + 30 + 35);
    const southBefore = await revenue({ area: 'South' });
    const northBefore = await revenue({ meterId: north });

    const done = await rollUpDays(platform.db, TZ, now);
    for (const d of [day(-4), day(-3), day(-2)]) {
      assert.ok(done.includes(d), `${d} rolled up: ${done.join()}`);
      assert.deepEqual(await dayRow(d), { stale: false, rolled: true, time_zone: TZ });
    }
    assert.ok(!done.includes(day(0)), 'today is not closed');
    assert.deepEqual(await rollUpDays(platform.db, TZ, now), [], 'nothing left to do');

    assert.deepEqual(await revenue(), before);
    assert.deepEqual(await revenue({ area: 'South' }), southBefore);
    assert.deepEqual(await revenue({ meterId: north }), northBefore);
    assert.deepEqual(
      (await revenue({ pageDays: 2 })).rows,
      before.rows.filter((r) => String(r.day) < day(-3)),
    );

    // The report reads the totals for those days, not the sales.
    await platform.db.query(
      `UPDATE daily_sales SET amount = amount + 1000 WHERE day = $1::date AND meter_id = $2 AND card_type = 2`,
      [day(-2), south],
    );
    try {
      assert.equal(pick(await revenue(), day(-2), south, 'card: credit')?.amount, 1065);
    } finally {
      await platform.db.query(
        `UPDATE daily_sales SET amount = amount - 1000 WHERE day = $1::date AND meter_id = $2 AND card_type = 2`,
        [day(-2), south],
      );
    }
  });

  it('marks a rolled-up day stale when a sale of it arrives late, and counts it before and after the next roll-up', async () => {
    const before = await revenue();
    const n = city.meters.get(north) as TestMeter;
    // The meter uploads a sale made three days ago (it was offline).
    n.transaction({ cardType: 1, minutes: 25, charge: 55 }, at(-3, 16));
    await send(north, 6, 6);
    assert.deepEqual(await dayRow(day(-3)), { stale: true, rolled: true, time_zone: TZ });
    assert.equal((await dayRow(day(-2))).stale, false, 'other days stay fresh');

    const stale = await revenue();
    const row = (report: Report) =>
      report.rows.find((r) => r.day === day(-3) && r.meterId === north && r.method === 'card: debit');
    assert.deepEqual(row(stale), { ...row(before), payments: 2, minutes: 45, amount: 95 });
    assert.equal(stale.totals.amount, before.totals.amount + 55);

    assert.deepEqual(await rollUpDays(platform.db, TZ, now), [day(-3)]);
    assert.deepEqual(await dayRow(day(-3)), { stale: false, rolled: true, time_zone: TZ });
    assert.deepEqual(await revenue(), stale);
    const totals = await platform.db.query<{ payments: number; amount: number }>(
      `SELECT payments::int, amount::int FROM daily_sales WHERE day = $1::date AND meter_id = $2 AND card_type = 1`,
      [day(-3), north],
    );
    assert.deepEqual(totals.rows, [{ payments: 2, amount: 95 }]);
  });

  it('does each day once when two instances roll up at once', async () => {
    const report = await revenue();
    await platform.db.query('UPDATE daily_sales_days SET stale = true');
    const expected = (
      await platform.db.query<{ day: string }>(
        `SELECT to_char(day, 'YYYY-MM-DD') AS day FROM daily_sales_days ORDER BY day`,
      )
    ).rows.map((r) => r.day);
    assert.ok(expected.length >= 3, expected.join());
    // A second instance: its own pool on the same database (PGlite has one connection).
    const other: Database = city.url ? await openDatabase({ url: city.url }) : platform.db;
    try {
      const [a, b] = await Promise.all([rollUpDays(platform.db, TZ, now), rollUpDays(other, TZ, now)]);
      assert.deepEqual([...a, ...b].sort(), expected, `first ${a.join()}, second ${b.join()}`);
      assert.deepEqual(
        a.filter((d) => b.includes(d)),
        [],
      );
    } finally {
      if (other !== platform.db) await other.close();
    }
    assert.deepEqual(await revenue(), report);
    // One row per day, meter, card type and currency: as many as the sales make.
    const counts = await platform.db.query<{ kept: number; made: number }>(
      `SELECT (SELECT count(*)::int FROM daily_sales) AS kept,
              (SELECT count(*)::int FROM (SELECT DISTINCT (recorded_at AT TIME ZONE $1)::date, meter_id, card_type, currency
                                            FROM transactions WHERE recorded_at < $2) g) AS made`,
      [TZ, new Date(todayStart)],
    );
    assert.equal(counts.rows[0].kept, counts.rows[0].made);
  });

  it("uses New York's days across the end of DST, and a zone change rolls every day up again", async () => {
    const e = city.meters.get(east) as TestMeter;
    e.transaction({ cardType: 1, charge: 10 }, seconds(Date.parse('2026-11-01T03:30:00Z'))); // 31 Oct 23:30 EDT
    e.transaction({ cardType: 1, charge: 20 }, seconds(Date.parse('2026-11-01T04:30:00Z'))); // 1 Nov 00:30 EDT
    e.transaction({ cardType: 1, charge: 40 }, seconds(Date.parse('2026-11-02T04:30:00Z'))); // 1 Nov 23:30 EST
    e.transaction({ cardType: 1, charge: 80 }, seconds(Date.parse('2026-11-02T05:30:00Z'))); // 2 Nov 00:30 EST
    await send(east, 1, 4);
    const request = { from: '2026-10-31', to: '2026-11-03', meterId: east };
    const before = await reports.report('revenue', request);
    assert.deepEqual(
      before.rows.map((r) => [r.day, r.payments, r.amount]),
      [
        ['2026-10-31', 1, 10],
        ['2026-11-01', 2, 60],
        ['2026-11-02', 1, 80],
      ],
    );
    const done = await rollUpDays(platform.db, TZ, now);
    assert.deepEqual(done, ['2026-10-31', '2026-11-01', '2026-11-02']);
    const kept = await platform.db.query<{ day: string; amount: number }>(
      `SELECT to_char(day, 'YYYY-MM-DD') AS day, amount::int FROM daily_sales WHERE meter_id = $1 ORDER BY day`,
      [east],
    );
    assert.deepEqual(kept.rows, [
      { day: '2026-10-31', amount: 10 },
      { day: '2026-11-01', amount: 60 },
      { day: '2026-11-02', amount: 80 },
    ]);
    assert.deepEqual(await reports.report('revenue', request), before);

    // Totals made in New York's days are not London's: a report in London reads the sales until
    // its own roll-up has done the days again.
    const london = new ReportingService(platform.db, 'Europe/London');
    const inLondon = await london.report('revenue', request);
    assert.deepEqual(
      inLondon.rows.map((r) => [r.day, r.amount]),
      [
        ['2026-11-01', 30],
        ['2026-11-02', 120],
      ],
    );
    const redone = await rollUpDays(platform.db, 'Europe/London', now);
    assert.ok(redone.includes('2026-11-01') && redone.includes(day(-2)), redone.join());
    assert.deepEqual(await london.report('revenue', request), inLondon);
    assert.equal((await dayRow('2026-11-01')).time_zone, 'Europe/London');
  });
});
