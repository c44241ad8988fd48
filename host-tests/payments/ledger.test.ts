// The double-entry ledger of credit and prepaid accounts, on both backends: charges, refunds,
// reversals, top-ups, limits held under concurrent charges, and the database refusing entries that
// do not balance, postings changed, balances written around the postings.
import assert from 'node:assert/strict';
import { type Database, openDatabase } from '../../platform-server/core/db';
import { migrate } from '../../platform-server/core/migrations';
import { Ledger, LedgerError } from '../../platform-server/payments/ledger';
import { forEachBackend } from '../../sim/fleet/platform';

async function cardOf(db: Database, n: number, cardType: 2 | 3): Promise<number> {
  const driver = await db.query<{ id: number }>(
    `INSERT INTO drivers (account_number, name, phone, email, password_hash)
     VALUES ($1, 'Driver', $2, $3, 'x') RETURNING id`,
    [`PL${String(n).padStart(10, '0')}`, `+4477009${String(n).padStart(5, '0')}`, `d${n}@example.org`],
  );
  const card = await db.query<{ id: number }>(
    `INSERT INTO driver_cards (driver_id, token, last4, card_type, verified_at) VALUES ($1, $2, '0001', $3, now())
     RETURNING id`,
    [driver.rows[0].id, n.toString(16).padStart(32, '0'), cardType],
  );
  return card.rows[0].id;
}

const refused = (code: string) => (error: unknown) => error instanceof LedgerError && error.code === code;

forEachBackend('payments: the ledger of credit and prepaid accounts', (backend) => {
  let db: Database;
  let drop: () => Promise<void>;
  let ledger: Ledger;

  // One database for the suite (migrating PGlite is slow); each test has its own cards and accounts.
  before(async function () {
    this.timeout(120_000);
    const fresh = await backend.fresh();
    drop = fresh.drop;
    db = await openDatabase({ url: fresh.config.databaseUrl, maxConnections: 8 });
    await migrate(db);
    ledger = new Ledger(db, { defaultCreditLimit: 5_000 });
  });
  after(async () => {
    await db?.close();
    await drop?.();
  });

  it('a charge posts the account minus and revenue plus; the books add up to zero', async () => {
    const account = await ledger.accountFor({ id: await cardOf(db, 1, 2), kind: 'credit' }, 826);
    assert.equal(account.lowerLimit, -5_000);
    const entry = await ledger.charge(account.id, 240, 'renewal-a');
    assert.equal((await ledger.account(account.id))?.balance, -240);
    const revenue = await ledger.platformAccount('revenue', 826);
    assert.equal((await ledger.account(revenue))?.balance, 240);
    assert.equal(
      await ledger.charge(account.id, 240, 'renewal-a'),
      entry,
      'the same renewal is charged once',
    );
    assert.equal((await ledger.account(account.id))?.balance, -240);
    assert.deepEqual(
      (await ledger.postings(account.id)).map((p) => [p.kind, p.amount, p.reference]),
      [['charge', -240, 'renewal-a']],
    );
    assert.deepEqual(await ledger.check(), []);
  });

  it('never below the limit: a credit account refuses the charge that would cross it', async () => {
    const account = await ledger.accountFor({ id: await cardOf(db, 2, 2), kind: 'credit' }, 826);
    await ledger.charge(account.id, 4_000, 'r1');
    await assert.rejects(ledger.charge(account.id, 1_001, 'r2'), refused('insufficient-funds'));
    await ledger.charge(account.id, 1_000, 'r3');
    assert.equal((await ledger.account(account.id))?.balance, -5_000);
    await assert.rejects(ledger.setCreditLimit(account.id, 4_000), refused('insufficient-funds'));
    await ledger.setCreditLimit(account.id, 6_000);
    await ledger.charge(account.id, 1_000, 'r4');
    assert.deepEqual(await ledger.check(), []);
  });

  it('a prepaid account spends only what was topped up', async () => {
    const account = await ledger.accountFor({ id: await cardOf(db, 3, 3), kind: 'prepaid' }, 826);
    assert.equal(account.lowerLimit, 0);
    await assert.rejects(ledger.charge(account.id, 1, 'p1'), refused('insufficient-funds'));
    await ledger.topUp(account.id, 500, 'cash-1');
    await ledger.charge(account.id, 300, 'p2');
    await assert.rejects(ledger.charge(account.id, 201, 'p3'), refused('insufficient-funds'));
    assert.equal((await ledger.account(account.id))?.balance, 200);
    assert.equal((await ledger.account(await ledger.platformAccount('top-ups', 826)))?.balance, -500);
    assert.deepEqual(await ledger.check(), []);
  });

  it('concurrent charges never take an account past its limit', async () => {
    const account = await ledger.accountFor({ id: await cardOf(db, 4, 2), kind: 'credit' }, 826);
    const results = await Promise.allSettled(
      Array.from({ length: 16 }, (_, i) => ledger.charge(account.id, 1_000, `c${i}`)),
    );
    const ok = results.filter((r) => r.status === 'fulfilled').length;
    const over = results.filter(
      (r) => r.status === 'rejected' && refused('insufficient-funds')(r.reason),
    ).length;
    assert.equal(ok, 5, 'exactly the charges that fit in 5 000');
    assert.equal(over, 11);
    assert.equal((await ledger.account(account.id))?.balance, -5_000);
    assert.deepEqual(await ledger.check(), []);
  });

  it('the same reference charged concurrently is charged once', async () => {
    const account = await ledger.accountFor({ id: await cardOf(db, 9, 2), kind: 'credit' }, 826);
    const entries = await Promise.all(
      Array.from({ length: 6 }, () => ledger.charge(account.id, 100, 'same-renewal')),
    );
    assert.equal(new Set(entries).size, 1);
    assert.equal((await ledger.account(account.id))?.balance, -100);
  });

  it('concurrent charges on a prepaid account never take it below zero', async () => {
    const account = await ledger.accountFor({ id: await cardOf(db, 5, 3), kind: 'prepaid' }, 826);
    await ledger.topUp(account.id, 1_000, 'cash');
    const results = await Promise.allSettled(
      Array.from({ length: 12 }, (_, i) => ledger.charge(account.id, 300, `q${i}`)),
    );
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 3);
    assert.equal((await ledger.account(account.id))?.balance, 100);
    assert.deepEqual(await ledger.check(), []);
  });

  it('a reversal undoes a charge whole, once; refunds never exceed the charge', async () => {
    const account = await ledger.accountFor({ id: await cardOf(db, 6, 2), kind: 'credit' }, 826);
    const revenue = await ledger.platformAccount('revenue', 826);
    const revenueBefore = (await ledger.account(revenue))?.balance;
    const charge = await ledger.charge(account.id, 600, 'v1');
    const reversal = await ledger.reverse(charge, 'void-v1');
    assert.equal(await ledger.reverse(charge, 'void-v1'), reversal, 'reversed once');
    assert.equal((await ledger.account(account.id))?.balance, 0);
    await assert.rejects(ledger.refund(charge, 1, 'late'), refused('already-reversed'));

    const other = await ledger.charge(account.id, 600, 'v2');
    await ledger.refund(other, 200, 'refund-v2-a');
    await assert.rejects(ledger.refund(other, 401, 'refund-v2-b'), refused('over-refund'));
    await ledger.refund(other, 400, 'refund-v2-c');
    await assert.rejects(ledger.reverse(other, 'void-v2'), refused('already-reversed'));
    assert.equal((await ledger.account(account.id))?.balance, 0);
    assert.equal((await ledger.account(revenue))?.balance, revenueBefore);
    assert.deepEqual(await ledger.check(), []);
  });

  it('bad amounts are refused before anything is posted', async () => {
    const account = await ledger.accountFor({ id: await cardOf(db, 7, 2), kind: 'credit' }, 826);
    for (const amount of [0, -5, 1.5, Number.NaN])
      await assert.rejects(ledger.charge(account.id, amount, `b${amount}`), refused('bad-amount'));
    assert.deepEqual(await ledger.postings(account.id), []);
  });

  it('the database refuses an unbalanced entry, a changed posting and a balance written directly', async () => {
    const account = await ledger.accountFor({ id: await cardOf(db, 8, 2), kind: 'credit' }, 826);
    const entry = await ledger.charge(account.id, 100, 'd1');
    await assert.rejects(
      db.transaction(async (tx) => {
        const e = await tx.query<{ id: number }>(
          "INSERT INTO ledger_entries (kind, reference, amount, currency) VALUES ('charge', 'lopsided', 5, 826) RETURNING id",
        );
        await tx.query(
          'INSERT INTO ledger_postings (entry_id, account_id, amount, currency) VALUES ($1, $2, -5, 826)',
          [e.rows[0].id, account.id],
        );
      }),
      /does not balance/,
    );
    await assert.rejects(
      db.query('UPDATE ledger_postings SET amount = -1 WHERE entry_id = $1', [entry]),
      /never changed/,
    );
    await assert.rejects(
      db.query('DELETE FROM ledger_postings WHERE entry_id = $1', [entry]),
      /never changed/,
    );
    await assert.rejects(
      db.query('UPDATE ledger_accounts SET balance = 0 WHERE id = $1', [account.id]),
      /only through postings/,
    );
    assert.equal((await ledger.account(account.id))?.balance, -100);
    assert.deepEqual(await ledger.check(), []);
  });
});
