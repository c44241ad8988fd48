// Ledger charges per second: concurrent charges spread over credit accounts, on PGlite (default)
// or PostgreSQL (--database=postgres://…), then the books re-added (Ledger.check) and timed.
import { randomBytes } from 'node:crypto';
import { openDatabase } from '../../platform-server/core/db';
import { migrate } from '../../platform-server/core/migrations';
import { Ledger } from '../../platform-server/payments/ledger';

export const description = 'ledger charges per second (concurrent, over credit accounts) and the books check';

function option(args: string[], name: string, fallback: number): number {
  const found = args.find((a) => a.startsWith(`--${name}=`));
  return found ? Number(found.slice(name.length + 3)) : fallback;
}

export async function run(args: string[]): Promise<void> {
  const url = args.find((a) => a.startsWith('--database='))?.slice('--database='.length);
  const accounts = option(args, 'accounts', 50);
  const charges = option(args, 'charges', 2_000);
  const concurrency = option(args, 'concurrency', 16);
  const db = await openDatabase({ url, maxConnections: concurrency });
  try {
    await migrate(db);
    const ledger = new Ledger(db, { defaultCreditLimit: 10_000_000 });
    const tag = Date.now().toString(36);
    const driver = await db.query<{ id: number }>(
      `INSERT INTO drivers (account_number, name, phone, email, password_hash)
       VALUES ($1, 'bench', $2, $3, 'x') RETURNING id`,
      [`PL${Date.now() % 1e10}`.padEnd(12, '0'), `+44${Date.now() % 1e10}`, `bench-${tag}@example.org`],
    );
    const ids: number[] = [];
    for (let i = 0; i < accounts; i++) {
      const card = await db.query<{ id: number }>(
        `INSERT INTO driver_cards (driver_id, token, last4, card_type, verified_at) VALUES ($1, $2, '0000', 2, now())
         RETURNING id`,
        [driver.rows[0].id, randomBytes(16).toString('hex')],
      );
      ids.push((await ledger.accountFor({ id: card.rows[0].id, kind: 'credit' }, 826)).id);
    }
    let next = 0;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < charges) {
          const n = next++;
          await ledger.charge(ids[n % accounts], 240, `bench-${tag}-${n}`);
        }
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    const checkStarted = performance.now();
    const problems = await ledger.check();
    const checkSeconds = (performance.now() - checkStarted) / 1000;
    console.log(
      `${db.kind}: ${charges} charges over ${accounts} accounts, ${concurrency} at a time: ` +
        `${(charges / seconds).toFixed(0)} charges/s; books check ${checkSeconds.toFixed(2)} s, ${problems.length} problems`,
    );
  } finally {
    await db.close();
  }
}
