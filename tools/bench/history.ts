// Years of history on the real PostgreSQL: a generated city (10,000 meters, records spread evenly
// over the 12 months before this one and this month's days so far, every 25th an operation, the
// rest sales with their transactions rows) in its own database, then the console's and the
// reports' HTTP routes timed against it through a platform instance, each repeated for p50 and p95, and the plan of each route's slowest SQL statement
// (EXPLAIN ANALYZE of the statement the route really sent). The database is kept for the next run
// (generation resumes month by month); --drop removes it at the end.
//
//   npm run bench -- history --records=100000000 --runs=20
import pg from 'pg';
import type { Database } from '../../platform-server/core/db';
import { rollUpDays } from '../../platform-server/history';
import { monthStart } from '../../platform-server/history/partitions';
import { PaymentSimulator } from '../../platform-server/payments/simulator';
import { createPlatform } from '../../platform-server/platform';
import { encodeMeterCursor } from '../../platform-server/reporting/service';
import { ADMIN_DATABASE_URL, adminQuery, operatorLogin, quietLogger } from '../../sim/fleet/platform';

export const description =
  'generated history (default 100 million records) and the console and report routes on it: p50/p95 and plans';

const FIRST_METER = 50_000_000;

function option(args: string[], name: string, fallback: string): string {
  const found = args.find((a) => a.startsWith(`--${name}=`));
  return found ? found.slice(name.length + 3) : fallback;
}

export async function run(args: string[]): Promise<void> {
  const total = Number(option(args, 'records', '100000000'));
  const meters = Number(option(args, 'meters', '10000'));
  const months = Number(option(args, 'months', '12'));
  const runs = Number(option(args, 'runs', '20'));
  const name = option(args, 'database', 'parklink_history');
  const url = new URL(ADMIN_DATABASE_URL);
  url.pathname = `/${name}`;
  const admin = new pg.Client({ connectionString: ADMIN_DATABASE_URL });
  await admin.connect();
  try {
    const exists = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (exists.rows.length === 0) await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }

  const config = {
    databaseUrl: url.toString(),
    httpLogger: false as const,
    logger: quietLogger,
    phone: { gateway: false as const, paymentProvider: new PaymentSimulator() },
  };
  // The platform's own start migrates the database and makes this month's partitions.
  let platform = await createPlatform(config);
  const now = Date.now();
  const perMonth = Math.floor(total / months / meters) * meters;
  const perMeterMonth = perMonth / meters;
  try {
    await platform.db.query(
      `INSERT INTO meters (id, name, key_epoch) SELECT id, 'history ' || id, 1
         FROM generate_series($1::bigint, $2::bigint) AS id ON CONFLICT DO NOTHING`,
      [FIRST_METER, FIRST_METER + meters - 1],
    );
    // The city in 40 areas, as a console's area filter and the per-area revenue see it.
    await platform.db.query(
      `UPDATE meters SET area = 'Area ' || lpad((id % 40)::text, 2, '0')
        WHERE id BETWEEN $1 AND $2 AND area IS NULL`,
      [FIRST_METER, FIRST_METER + meters - 1],
    );
    const started = performance.now();
    // `months` whole months before this one, then this month's days so far at the same density.
    for (let index = 0; index <= months; index++) {
      const from = monthStart(now, index - months);
      const until = index === months ? new Date(now) : monthStart(now, index - months + 1);
      const share = (until.getTime() - from.getTime()) / (monthStart(from, 1).getTime() - from.getTime());
      const perMeter = Math.max(1, Math.floor(perMeterMonth * share));
      // Sequence numbers by calendar month, so a later run (another month) resumes without overlap.
      await generateMonth(platform.db, {
        index: from.getUTCFullYear() * 12 + from.getUTCMonth() - 2020 * 12,
        from,
        until,
        perMonth: perMeter * meters,
        perMeterMonth,
        meters,
      });
    }
    const held = await platform.db.query<{ n: string }>(
      "SELECT reltuples::bigint AS n FROM pg_class WHERE relname = 'records'",
    );
    const count = await platform.db.query<{ n: number }>(
      `SELECT sum(c.reltuples)::bigint AS n FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'records'`,
    );
    console.log(
      `history: ${Number(count.rows[0].n ?? held.rows[0].n).toLocaleString('en-GB')} records (estimate) ` +
        `over ${months} months and this one's days for ${meters.toLocaleString('en-GB')} meters; ` +
        `generation this run ${((performance.now() - started) / 1000).toFixed(0)} s`,
    );
    await platform.db.query("SELECT parklink_live_sales_seed('UTC', $1)", [new Date()]);
    const size = await platform.db.query<{ size: string }>(
      'SELECT pg_size_pretty(pg_database_size(current_database())) AS size',
    );
    console.log(`database size: ${size.rows[0].size}`);
    // The daily totals of every closed day (the platform starts the same in the background): timed,
    // and done before the routes are.
    const rolling = performance.now();
    const days = await rollUpDays(platform.db, 'UTC', Date.now());
    console.log(
      `daily sales rolled up: ${days.length} days in ${((performance.now() - rolling) / 1000).toFixed(0)} s`,
    );
    await platform.close();
    platform = await createPlatform(config);
    await measure(platform, { now, meters, runs });
  } finally {
    await platform.close();
    if (args.includes('--drop')) await adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  }
}

/** One month of records (and their sales and operations rows), in one transaction; skipped when there. */
async function generateMonth(
  db: Database,
  m: { index: number; from: Date; until: Date; perMonth: number; perMeterMonth: number; meters: number },
): Promise<void> {
  const { index, from, until, perMonth, perMeterMonth, meters } = m;
  await db.query("SELECT parklink_month_partition('records', 'recorded_at', $1)", [from]);
  await db.query("SELECT parklink_month_partition('transactions', 'recorded_at', $1)", [from]);
  const partition = `records_p${from.getUTCFullYear()}${String(from.getUTCMonth() + 1).padStart(2, '0')}`;
  const there = await db.query(`SELECT 1 FROM ${partition} WHERE meter_id >= $1 LIMIT 1`, [FIRST_METER]);
  if (there.rows.length > 0) return;
  const t0 = performance.now();
  await db.transaction(async (tx) => {
    // Without triggers: the sales are generated, not stored by ingest; today's running totals are
    // recomputed from them once the months are made.
    await tx.query('SET LOCAL session_replication_role = replica');
    // Record g of the month: meter g mod M, its (g div M)-th record of the month, times spread evenly.
    await tx.query(
      `INSERT INTO records (meter_id, seq, kind, recorded_at, bytes, link, received_at)
       SELECT $1::bigint + g % $3, $4::bigint * $5 + g / $3 + 1,
              CASE WHEN ($4::bigint * $5 + g / $3 + 1) % 25 = 0 THEN 2 ELSE 1 END,
              at, decode(md5(g::text) || md5((g + 1)::text) || md5((g + 2)::text) || md5((g + 3)::text) || md5((g + 4)::text), 'hex'),
              sha256(int8send($4::bigint * 1000000000 + g)), at + interval '2 minutes'
         FROM generate_series(0, $2::bigint - 1) AS g,
              LATERAL (SELECT $6::timestamptz + ($7::timestamptz - $6::timestamptz) * (g::float8 / $2)) AS t(at)`,
      [FIRST_METER, perMonth, meters, index, perMeterMonth, from, until],
    );
    await tx.query(
      `INSERT INTO transactions (meter_id, seq, transaction_number, card_token, card_last4, card_expiry, card_type,
         bay_id, minutes, paid_from, paid_until, charge, currency, remaining_value, recorded_at)
       SELECT meter_id, seq, seq, md5((meter_id * 7919 + seq % 4000)::text), '0017', '2812', 1 + seq % 3,
              1 + seq % 4, 30, recorded_at, recorded_at + interval '30 minutes', 120, 826, 0, recorded_at
         FROM ${partition} WHERE kind = 1 AND meter_id >= $1`,
      [FIRST_METER],
    );
    await tx.query(
      `INSERT INTO operations (meter_id, seq, code, detail)
       SELECT meter_id, seq, 'card-refused', 'blacklisted' FROM ${partition} WHERE kind = 2 AND meter_id >= $1`,
      [FIRST_METER],
    );
    // The platform started above rolls days up in the background: a day it rolled up before its
    // sales were generated is marked stale, as ingest marks a day a late sale arrives for.
    await tx.query(
      `INSERT INTO daily_sales_days AS d (day, time_zone, stale)
       SELECT day::date, 'UTC', true FROM generate_series($1::timestamptz, $2::timestamptz, interval '1 day') AS day
       ON CONFLICT (day) DO UPDATE SET stale = true`,
      [from, until],
    );
  });
  await db.query(`ANALYZE ${partition}`);
  console.log(
    `  ${from.toISOString().slice(0, 7)}: ${perMonth.toLocaleString('en-GB')} records in ${((performance.now() - t0) / 1000).toFixed(0)} s`,
  );
}

interface Route {
  name: string;
  url: string;
  /** A download of bulk data: its time is printed, not held to the 200 ms target. */
  bulk?: boolean;
}

/** Each route `runs` times (after one warm-up): p50, p95, and the plan of its slowest statement. */
async function measure(
  platform: Awaited<ReturnType<typeof createPlatform>>,
  { now, meters, runs }: { now: number; meters: number; runs: number },
): Promise<void> {
  const admin = await operatorLogin(platform.operators);
  const day = (offset: number) => new Date(now + offset * 86_400_000).toISOString().slice(0, 10);
  const meter = FIRST_METER + Math.floor(meters / 2);
  const routes: Route[] = [
    { name: 'console fleet overview', url: '/api/console/fleet' },
    { name: "a meter's latest records", url: `/api/meters/${meter}/records` },
    {
      name: "a meter's records, a day 6 months back",
      url: `/api/meters/${meter}/records?from=${day(-182)}T00:00:00Z&to=${day(-181)}T00:00:00Z`,
    },
    // The console's Reports screen asks for the city per area; per meter is the bulk view.
    {
      name: 'revenue per area, yesterday',
      url: `/api/reporting/revenue?from=${day(-1)}&to=${day(0)}&by=area`,
    },
    {
      name: 'revenue per area, last 7 days',
      url: `/api/reporting/revenue?from=${day(-7)}&to=${day(0)}&by=area`,
    },
    {
      name: 'revenue per area, 7 days with today',
      url: `/api/reporting/revenue?from=${day(-6)}&to=${day(1)}&by=area`,
    },
    // Per meter, a page of the default 500 meters at a time: the first, and one from the middle of
    // the city (after a meter of area 20, half-way through the areas' order).
    {
      name: 'revenue per meter, yesterday (first 500 meters)',
      url: `/api/reporting/revenue?from=${day(-1)}&to=${day(0)}`,
    },
    {
      name: 'revenue per meter, last 7 days (first 500 meters)',
      url: `/api/reporting/revenue?from=${day(-7)}&to=${day(0)}`,
    },
    {
      name: 'revenue per meter, last 7 days (500 meters mid-city)',
      url: `/api/reporting/revenue?from=${day(-7)}&to=${day(0)}&afterMeter=${encodeMeterCursor({ area: 'Area 20', id: FIRST_METER + 20 + 40 * Math.floor(meters / 80) })}`,
    },
    // The whole city per meter is a download: timed, but bulk data, not held to 200 ms.
    {
      name: 'revenue per meter, yesterday, every meter as CSV',
      url: `/api/reporting/revenue?from=${day(-1)}&to=${day(0)}&format=csv`,
      bulk: true,
    },
    {
      name: 'revenue, one meter, 30 days',
      url: `/api/reporting/revenue?from=${day(-30)}&to=${day(0)}&meterId=${meter}`,
    },
    { name: 'occupancy, yesterday', url: `/api/reporting/occupancy?from=${day(-1)}&to=${day(0)}` },
    { name: 'events, yesterday', url: `/api/reporting/events?from=${day(-1)}&to=${day(0)}` },
    { name: 'uptime, yesterday', url: `/api/reporting/uptime?from=${day(-1)}&to=${day(0)}` },
  ];
  // Every statement a route sends, with its parameters and time, for the plan of the slowest.
  let sent: { sql: string; params: unknown[] | undefined; ms: number }[] = [];
  const db = platform.db as Database & { query: Database['query'] };
  const query = db.query.bind(db);
  const timed = (run: Database['query']) =>
    (async (sql: string, params?: unknown[]) => {
      const t = performance.now();
      const result = await run(sql, params as never);
      sent.push({ sql, params, ms: performance.now() - t });
      return result;
    }) as Database['query'];
  db.query = timed(query);
  // The report's statements run in a transaction of their own: timed there too (their plans are
  // taken outside it, on the same data).
  const transaction = db.transaction.bind(db);
  db.transaction = ((work: (tx: Database) => Promise<unknown>) =>
    transaction((tx) => {
      const inside = tx as Database;
      inside.query = timed(inside.query.bind(inside));
      return work(inside);
    })) as Database['transaction'];

  const rows: string[] = [];
  const plans: string[] = [];
  for (const route of routes) {
    const call = async () => {
      const response = await platform.app.inject({ method: 'GET', url: route.url, headers: admin.headers });
      if (response.statusCode !== 200)
        throw new Error(`${route.url} answered ${response.statusCode}: ${response.body.slice(0, 300)}`);
      return response;
    };
    const warm = await call();
    // A CSV's rows are its lines but the header and the totals.
    const first = route.bulk
      ? { rows: warm.body.trimEnd().split('\n').slice(2) }
      : (warm.json() as { rows?: unknown[]; meters?: unknown[]; records?: unknown[] });
    const answered = (first.rows ?? first.meters ?? first.records ?? []).length;
    const times: number[] = [];
    const inSql: number[] = [];
    let slowest: (typeof sent)[number] | undefined;
    for (let i = 0; i < runs; i++) {
      sent = [];
      const t = performance.now();
      await call();
      times.push(performance.now() - t);
      inSql.push(sent.reduce((sum, s) => sum + s.ms, 0));
      for (const s of sent)
        if (!/^\s*(SET|BEGIN|COMMIT)/i.test(s.sql) && (!slowest || s.ms > slowest.ms)) slowest = s;
    }
    times.sort((a, b) => a - b);
    inSql.sort((a, b) => a - b);
    const p = (q: number) => times[Math.min(times.length - 1, Math.ceil(q * times.length) - 1)];
    rows.push(
      `| ${route.name} | \`${route.url.replace(/\?.*/, '?…')}\` | ${answered.toLocaleString('en-GB')} | ${p(0.5).toFixed(1)} | ${inSql[Math.floor(inSql.length / 2)].toFixed(1)} | ${p(0.95).toFixed(1)} | ${route.bulk ? 'bulk' : p(0.95) < 200 ? 'yes' : 'NO'} |`,
    );
    if (slowest) {
      const plan = await query<{ 'QUERY PLAN': string }>(
        `EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) ${slowest.sql}`,
        slowest.params as never,
      );
      plans.push(
        `### ${route.name} — slowest statement ${slowest.ms.toFixed(1)} ms\n\n\`\`\`sql\n${slowest.sql.replace(/\s+/g, ' ').trim()}\n\`\`\`\n\n\`\`\`\n${plan.rows.map((r) => r['QUERY PLAN']).join('\n')}\n\`\`\``,
      );
    }
  }
  console.log(
    `\n| route | path | rows | p50 ms | of it in SQL (p50) | p95 ms | p95 < 200 ms |\n| --- | --- | --- | --- | --- | --- | --- |\n${rows.join('\n')}\n`,
  );
  console.log(plans.join('\n\n'));
}
