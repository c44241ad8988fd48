// Today's running sales totals (live_sales, kept by a trigger on transactions): they equal the sales
// summed per city day, meter, card type and currency after ingest, after a rolled-back insert, and
// when today is seeded again in another zone while sales keep arriving; the fleet overview and the
// revenue report read them for the days they cover and the sales for the days they do not; the
// roll-up drops the days it has and moves where they are whole from; and the city's revenue per area
// over closed days comes from their per-area totals, equal to the per-meter ones summed.
import assert from 'node:assert/strict';
import { type Database, openDatabase } from '../../platform-server/core/db';
import { FleetView } from '../../platform-server/console/fleet';
import { cityDayStart } from '../../platform-server/history/cityDay';
import { liveSalesState, prepareLiveSales, pruneLiveSales } from '../../platform-server/history/liveSales';
import { rollUpDays } from '../../platform-server/history/rollup';
import type { Platform } from '../../platform-server/platform';
import { type ReportRequest, ReportingService } from '../../platform-server/reporting/service';
import { forEachBackend, randomMeterId, type TestMeter } from '../../sim/fleet/platform';
import { type CityPlatform, cityCalendar, cityPlatform } from '../support/cityPlatform';

const TZ = 'America/New_York';
const HOUR = 3_600_000;
const seconds = (ms: number) => Math.floor(ms / 1000);
const dayOf = (ms: number) => new Date(ms).toISOString().slice(0, 10);

interface Totals {
  day: string;
  meter_id: string;
  card_type: number;
  currency: number;
  payments: string;
  minutes: string;
  amount: string;
}

forEachBackend('running sales totals', (backend) => {
  let city: CityPlatform;
  let platform: Platform;
  const now = Date.now();
  const { day, at } = cityCalendar(now, TZ);
  const north = randomMeterId();
  const south = north + 1;
  const meter = (id: number) => city.meters.get(id) as TestMeter;
  const send = (id: number, from: number, to: number) => city.send(id, from, to);

  before(async () => {
    city = await cityPlatform(backend, TZ, [
      [north, 'North'],
      [south, 'South'],
    ]);
    platform = city.platform;
  });
  after(async () => city?.close());

  const ORDER = 'ORDER BY day, meter_id, card_type, currency';
  // The running totals of the days they say are whole.
  const live = async (db: Database = platform.db) =>
    (
      await db.query<Totals>(
        `SELECT to_char(day, 'YYYY-MM-DD') AS day, meter_id, card_type, currency, payments, minutes, amount
           FROM live_sales WHERE day >= (SELECT since FROM live_sales_state) ${ORDER}`,
      )
    ).rows;
  // The same totals summed from the sales, for the days the running totals say are whole.
  const summed = async (db: Database = platform.db) =>
    (
      await db.query<Totals>(
        `SELECT to_char(day, 'YYYY-MM-DD') AS day, meter_id, card_type, currency, payments, minutes, amount FROM (
           SELECT (t.recorded_at AT TIME ZONE s.time_zone)::date AS day, t.meter_id, t.card_type, t.currency,
                  count(*)::bigint AS payments, sum(t.minutes)::bigint AS minutes, sum(t.charge)::bigint AS amount
             FROM transactions t, live_sales_state s
            WHERE (t.recorded_at AT TIME ZONE s.time_zone)::date >= s.since
            GROUP BY 1, t.meter_id, t.card_type, t.currency) g ${ORDER}`,
      )
    ).rows;
  const revenue = (request: Partial<ReportRequest> = {}) =>
    new ReportingService(platform.db, TZ).report('revenue', { from: day(-3), to: day(1), ...request });

  it("starts in the city's zone and adds every stored sale to its day as it is stored", async () => {
    assert.deepEqual(await liveSalesState(platform.db), { timeZone: TZ, since: day(0) });
    const n = meter(north);
    const s = meter(south);
    n.transaction({ cardType: 1, minutes: 60, charge: 120 }, at(0, 0.5));
    n.transaction({ cardType: 1, minutes: 30, charge: 60 }, seconds(now) - 60);
    n.transaction({ cardType: 2, minutes: 20, charge: 45 }, seconds(now) - 30);
    s.transaction({ cardType: 1, minutes: 15, charge: 30 }, seconds(now) - 10);
    // Yesterday's, uploaded late: before the totals began, so the day is not theirs to answer.
    s.transaction({ cardType: 1, minutes: 40, charge: 80 }, at(-1, 15));
    await send(north, 1, 3);
    await send(south, 1, 2);
    const rows = await live();
    assert.deepEqual(rows, await summed());
    const northDebit = rows.find(
      (r) => Number(r.meter_id) === north && r.card_type === 1 && r.day === day(0),
    );
    assert.deepEqual(
      [northDebit?.payments, northDebit?.minutes, northDebit?.amount].map(Number),
      [2, 90, 180],
      'two debit sales today, summed',
    );
    const late = await platform.db.query<{ amount: string }>(
      'SELECT amount FROM live_sales WHERE day = $1::date AND meter_id = $2',
      [day(-1), south],
    );
    assert.deepEqual(
      late.rows.map((r) => Number(r.amount)),
      [80],
      'a late sale is added to its own day',
    );

    // A sale whose transaction rolls back leaves the totals as they were.
    await assert.rejects(
      platform.db.transaction(async (tx) => {
        await tx.query(
          `INSERT INTO transactions (meter_id, seq, transaction_number, card_token, card_last4, card_expiry, card_type,
                                     bay_id, minutes, paid_from, paid_until, charge, currency, remaining_value, recorded_at)
           VALUES ($1, 9999, 9999, repeat('ab', 16), '0017', '2812', 1, 1, 10, now(), now(), 999, 826, 0, now())`,
          [north],
        );
        assert.notDeepEqual(await live(tx as unknown as Database), rows, 'counted inside the transaction');
        throw new Error('rolled back on purpose');
      }),
      /rolled back on purpose/,
    );
    assert.deepEqual(await live(), rows);
  });

  it('answers the fleet overview and the report from the running totals for the days they cover', async () => {
    const view = new FleetView(platform.db, () => new Date(now), TZ);
    const row = async (id: number) => (await view.rows([id]))[0];
    assert.equal((await row(north)).revenueToday, 120 + 60 + 45);
    assert.equal((await row(south)).revenueToday, 30);
    const report = await revenue();
    const pick = (d: string, meterId: number, method: string) =>
      report.rows.find((r) => r.day === d && r.meterId === meterId && r.method === method)?.amount;
    assert.equal(pick(day(0), north, 'card: debit'), 180);
    assert.equal(pick(day(-1), south, 'card: debit'), 80, 'yesterday from the sales');

    // What they read is the totals: changed behind their back, the answers change with them.
    await platform.db.query(
      'UPDATE live_sales SET amount = amount + 1000 WHERE meter_id = $1 AND card_type = 1 AND day = $2::date',
      [north, day(0)],
    );
    try {
      assert.equal((await row(north)).revenueToday, 1000 + 120 + 60 + 45);
      assert.equal((await revenue()).rows.find((r) => r.day === day(0) && r.meterId === north)?.amount, 1180);
    } finally {
      await platform.db.query(
        'UPDATE live_sales SET amount = amount - 1000 WHERE meter_id = $1 AND card_type = 1 AND day = $2::date',
        [north, day(0)],
      );
    }
    // A day before they began (the view asked a week ago) is summed from the sales, from that
    // day's start on: what the meter sold today, as there are no running totals for that day.
    const lastWeek = new FleetView(platform.db, () => new Date(now - 7 * 24 * HOUR), TZ);
    assert.equal((await lastWeek.rows([north]))[0].revenueToday, 120 + 60 + 45);
  });

  it('is seeded again in another zone while sales keep arriving, nothing counted twice or missed', async () => {
    const n = meter(north);
    const s = meter(south);
    const first = n.nextSeq;
    for (let i = 0; i < 20; i++)
      n.transaction({ cardType: 1 + (i % 3), charge: 10 + i }, seconds(now) - 100 + i);
    const firstSouth = s.nextSeq;
    for (let i = 0; i < 20; i++) s.transaction({ cardType: 1, charge: 5 + i }, seconds(now) - 100 + i);
    // A second instance's pool seeds in London while this one stores sets (PGlite has one connection).
    const other: Database = city.url ? await openDatabase({ url: city.url }) : platform.db;
    try {
      const sending = (async () => {
        for (let i = 0; i < 20; i += 2) {
          await send(north, first + i, first + i + 1);
          await send(south, firstSouth + i, firstSouth + i + 1);
        }
      })();
      const state = await prepareLiveSales(other, 'Europe/London', now);
      await sending;
      assert.deepEqual(state, {
        timeZone: 'Europe/London',
        since: dayOf(cityDayStart(now, 'Europe/London') + 12 * HOUR),
      });
      assert.deepEqual(await live(), await summed());
      assert.ok((await live()).every((r) => r.day >= state.since));
      // The report, in New York, no longer reads London's totals: it sums the sales, the same figures.
      const fromSales = await revenue();
      await prepareLiveSales(other, TZ, now);
      assert.deepEqual(await revenue(), fromSales);
      assert.deepEqual(await live(), await summed());
      assert.deepEqual(
        await prepareLiveSales(other, TZ, now),
        await liveSalesState(platform.db),
        'nothing to do',
      );
    } finally {
      if (other !== platform.db) await other.close();
    }
  });

  it('drops the days the roll-up has, and is whole from the day after', async () => {
    const n = meter(north);
    n.transaction({ cardType: 1, charge: 77 }, seconds(now));
    await send(north, n.nextSeq - 1, n.nextSeq - 1);
    const view = new FleetView(platform.db, () => new Date(now), TZ);
    const before = (await view.rows([north]))[0].revenueToday;
    const later = now + 2 * 24 * HOUR;
    await pruneLiveSales(platform.db, later);
    const state = await liveSalesState(platform.db);
    assert.equal(state?.since, day(1), 'whole from yesterday as seen two days on');
    assert.deepEqual(await live(), [], "today's totals, two days on, are dropped");
    // The dropped day is summed from the sales again: the same figure.
    assert.equal((await view.rows([north]))[0].revenueToday, before);
    assert.ok(before > 77);
    // Back to today for the next test: seeded again (another zone, then the city's).
    await prepareLiveSales(platform.db, 'UTC', now);
    await prepareLiveSales(platform.db, TZ, now);
  });

  it("sums the city's closed days per area from their per-area totals, equal to the per-meter ones", async () => {
    const n = meter(north);
    const s = meter(south);
    n.transaction({ cardType: 1, minutes: 25, charge: 50 }, at(-2, 10));
    n.transaction({ cardType: 2, minutes: 25, charge: 55 }, at(-2, 11));
    s.transaction({ cardType: 1, minutes: 35, charge: 70 }, at(-2, 12));
    s.transaction({ cardType: 1, minutes: 35, charge: 75 }, at(-1, 12));
    await send(north, n.nextSeq - 2, n.nextSeq - 1);
    await send(south, s.nextSeq - 2, s.nextSeq - 1);
    const before = await revenue({ by: 'area' });
    const southBefore = await revenue({ by: 'area', area: 'South' });
    await rollUpDays(platform.db, TZ, now);
    assert.deepEqual(await revenue({ by: 'area' }), before);
    assert.deepEqual(await revenue({ by: 'area', area: 'South' }), southBefore);
    const areas = await platform.db.query<{ area: string; amount: number }>(
      `SELECT area, sum(amount)::int AS amount FROM daily_area_sales WHERE day = $1::date GROUP BY area ORDER BY area`,
      [day(-2)],
    );
    assert.deepEqual(areas.rows, [
      { area: 'North', amount: 105 },
      { area: 'South', amount: 70 },
    ]);
    // The per-area report reads those rows for closed days.
    await platform.db.query(
      `UPDATE daily_area_sales SET amount = amount + 1000 WHERE day = $1::date AND area = 'South'`,
      [day(-2)],
    );
    const southArea = (await revenue({ by: 'area', area: 'South' })).rows.find((r) => r.day === day(-2));
    assert.equal(southArea?.amount, 1070);
  });
});
