// The ledger of credit and prepaid accounts (seed step 711: accounts updated directly on the
// platform), double-entry: see migrations/090_ledger.sql for the tables and the rules the database
// itself enforces (entries balance, balances within limits, postings never changed).
import type { Database, Queryable } from '../core/db';

export type DriverAccountKind = 'credit' | 'prepaid';

export interface LedgerAccount {
  id: number;
  kind: DriverAccountKind | 'revenue' | 'top-ups';
  cardId: number | null;
  currency: number;
  /** Minor units; negative on a credit account that has been spent. */
  balance: number;
  /** The balance never goes below this (null: no limit, the platform's own accounts). */
  lowerLimit: number | null;
}

export interface LedgerPosting {
  entryId: number;
  kind: 'charge' | 'refund' | 'reversal' | 'top-up';
  reference: string;
  amount: number;
  createdAt: Date;
}

/** A refusal the caller turns into an answer: over the limit, nothing left to refund, bad amount. */
export class LedgerError extends Error {
  override readonly name: string = 'LedgerError';
  constructor(
    readonly code: 'insufficient-funds' | 'bad-amount' | 'no-entry' | 'over-refund' | 'already-reversed',
    message: string,
  ) {
    super(message);
  }
}

type AccountRow = {
  id: number;
  kind: LedgerAccount['kind'];
  card_id: number | null;
  currency: number;
  balance: number;
  lower_limit: number | null;
};
type EntryRow = {
  id: number;
  kind: string;
  reference: string;
  amount: number;
  currency: number;
  undoes: number | null;
};

const accountOf = (r: AccountRow): LedgerAccount => ({
  id: r.id,
  kind: r.kind,
  cardId: r.card_id,
  currency: r.currency,
  balance: Number(r.balance),
  lowerLimit: r.lower_limit === null ? null : Number(r.lower_limit),
});

export interface LedgerOptions {
  /** The credit limit a credit account opens with, minor units (default 100.00). */
  defaultCreditLimit?: number;
}

export class Ledger {
  readonly defaultCreditLimit: number;

  constructor(
    readonly db: Database,
    options: LedgerOptions = {},
  ) {
    this.defaultCreditLimit = options.defaultCreditLimit ?? 10_000;
    if (!Number.isSafeInteger(this.defaultCreditLimit) || this.defaultCreditLimit < 0)
      throw new RangeError('the default credit limit is a whole number of minor units, at least 0');
  }

  /** The card's account in `currency`, opened on first use (credit with the default limit, prepaid at 0). */
  async accountFor(
    card: { id: number; kind: DriverAccountKind },
    currency: number,
    q: Queryable = this.db,
  ): Promise<LedgerAccount> {
    const limit = card.kind === 'credit' ? -this.defaultCreditLimit : 0;
    await q.query(
      `INSERT INTO ledger_accounts (kind, card_id, currency, lower_limit) VALUES ($1, $2, $3, $4)
       ON CONFLICT (card_id, currency) WHERE card_id IS NOT NULL DO NOTHING`,
      [card.kind, card.id, currency, limit],
    );
    const row = await q.query<AccountRow>(
      'SELECT * FROM ledger_accounts WHERE card_id = $1 AND currency = $2',
      [card.id, currency],
    );
    return accountOf(row.rows[0]);
  }

  async account(id: number): Promise<LedgerAccount | undefined> {
    const row = await this.db.query<AccountRow>('SELECT * FROM ledger_accounts WHERE id = $1', [id]);
    return row.rows[0] && accountOf(row.rows[0]);
  }

  /** The platform's own account of `kind` in `currency` (revenue, top-ups), opened on first use. */
  async platformAccount(
    kind: 'revenue' | 'top-ups',
    currency: number,
    q: Queryable = this.db,
  ): Promise<number> {
    await q.query(
      `INSERT INTO ledger_accounts (kind, currency) VALUES ($1, $2)
       ON CONFLICT (kind, currency) WHERE card_id IS NULL DO NOTHING`,
      [kind, currency],
    );
    const row = await q.query<{ id: number }>(
      'SELECT id FROM ledger_accounts WHERE kind = $1 AND currency = $2 AND card_id IS NULL',
      [kind, currency],
    );
    return row.rows[0].id;
  }

  /**
   * Charges `amount` to the account for `reference` (a renewal): account minus, revenue plus. The
   * same reference charged again returns the first entry. LedgerError insufficient-funds when it
   * would take the account below its limit.
   */
  async charge(accountId: number, amount: number, reference: string): Promise<number> {
    checkAmount(amount);
    try {
      return await this.#charge(accountId, amount, reference);
    } catch (error) {
      // The same reference charged at the same moment: the other one's entry is the charge.
      if (!/ledger_entries_reference/.test((error as Error).message ?? '')) throw error;
      const existing = await this.db.query<{ id: number }>(
        "SELECT id FROM ledger_entries WHERE kind = 'charge' AND reference = $1",
        [reference],
      );
      if (!existing.rows[0]) throw error;
      return existing.rows[0].id;
    }
  }

  async #charge(accountId: number, amount: number, reference: string): Promise<number> {
    return this.#guarded(async (tx) => {
      const existing = await tx.query<{ id: number }>(
        "SELECT id FROM ledger_entries WHERE kind = 'charge' AND reference = $1",
        [reference],
      );
      if (existing.rows[0]) return existing.rows[0].id;
      const account = await this.#lockedAccount(tx, accountId);
      const revenue = await this.platformAccount('revenue', account.currency, tx);
      return this.#post(tx, 'charge', reference, amount, account.currency, null, [
        [account.id, -amount],
        [revenue, amount],
      ]);
    });
  }

  /** Undoes a charge whole (a voided or refused renewal): its postings posted back, once. */
  async reverse(chargeEntryId: number, reference: string): Promise<number> {
    return this.#guarded(async (tx) => {
      const charge = await this.#lockedEntry(tx, chargeEntryId);
      const done = await tx.query<{ id: number; kind: string }>(
        "SELECT id, kind FROM ledger_entries WHERE undoes = $1 AND kind IN ('reversal', 'refund')",
        [chargeEntryId],
      );
      const reversal = done.rows.find((r) => r.kind === 'reversal');
      if (reversal) return reversal.id;
      if (done.rows.length > 0)
        throw new LedgerError(
          'already-reversed',
          `entry ${chargeEntryId} was refunded in part: refund the rest`,
        );
      const postings = await tx.query<{ account_id: number; amount: number }>(
        'SELECT account_id, amount FROM ledger_postings WHERE entry_id = $1 ORDER BY id',
        [chargeEntryId],
      );
      return this.#post(
        tx,
        'reversal',
        reference,
        Number(charge.amount),
        charge.currency,
        chargeEntryId,
        postings.rows.map((p) => [p.account_id, -Number(p.amount)]),
      );
    });
  }

  /** Refunds part (or all) of a charge: revenue minus, the account plus; never more than was charged. */
  async refund(chargeEntryId: number, amount: number, reference: string): Promise<number> {
    checkAmount(amount);
    return this.#guarded(async (tx) => {
      const charge = await this.#lockedEntry(tx, chargeEntryId);
      const back = await tx.query<{ total: number | string | null; reversed: boolean }>(
        "SELECT sum(amount) AS total, bool_or(kind = 'reversal') AS reversed FROM ledger_entries WHERE undoes = $1",
        [chargeEntryId],
      );
      if (back.rows[0]?.reversed)
        throw new LedgerError('already-reversed', `entry ${chargeEntryId} was reversed whole`);
      const refunded = Number(back.rows[0]?.total ?? 0);
      if (refunded + amount > Number(charge.amount))
        throw new LedgerError(
          'over-refund',
          `only ${Number(charge.amount) - refunded} of entry ${chargeEntryId} is left to refund`,
        );
      const postings = await tx.query<{ account_id: number; amount: number }>(
        'SELECT account_id, amount FROM ledger_postings WHERE entry_id = $1 ORDER BY id',
        [chargeEntryId],
      );
      const payer = postings.rows.find((p) => Number(p.amount) < 0);
      const payee = postings.rows.find((p) => Number(p.amount) > 0);
      if (!payer || !payee) throw new Error(`entry ${chargeEntryId} is not a charge`);
      return this.#post(tx, 'refund', reference, amount, charge.currency, chargeEntryId, [
        [payee.account_id, -amount],
        [payer.account_id, amount],
      ]);
    });
  }

  /** Money paid into a prepaid account (top-ups account minus, the card's account plus). */
  async topUp(accountId: number, amount: number, reference: string): Promise<number> {
    checkAmount(amount);
    return this.#guarded(async (tx) => {
      const account = await this.#lockedAccount(tx, accountId);
      const source = await this.platformAccount('top-ups', account.currency, tx);
      return this.#post(tx, 'top-up', reference, amount, account.currency, null, [
        [source, -amount],
        [account.id, amount],
      ]);
    });
  }

  /** Sets a credit account's limit; refused (insufficient-funds) below what is already spent. */
  async setCreditLimit(accountId: number, limit: number): Promise<void> {
    if (!Number.isSafeInteger(limit) || limit < 0)
      throw new LedgerError('bad-amount', 'a credit limit is a whole number of minor units, at least 0');
    await this.#guarded(async (tx) => {
      const updated = await tx.query(
        "UPDATE ledger_accounts SET lower_limit = $2 WHERE id = $1 AND kind = 'credit'",
        [accountId, -limit],
      );
      if (updated.rowCount === 0)
        throw new LedgerError('no-entry', `account ${accountId} is not a credit account`);
    });
  }

  /** The account's postings, newest first. */
  async postings(accountId: number, limit = 100): Promise<LedgerPosting[]> {
    const rows = await this.db.query<{
      entry_id: number;
      kind: LedgerPosting['kind'];
      reference: string;
      amount: number;
      created_at: Date;
    }>(
      `SELECT p.entry_id, e.kind, e.reference, p.amount, e.created_at FROM ledger_postings p
         JOIN ledger_entries e ON e.id = p.entry_id WHERE p.account_id = $1 ORDER BY p.id DESC LIMIT $2`,
      [accountId, limit],
    );
    return rows.rows.map((r) => ({
      entryId: r.entry_id,
      kind: r.kind,
      reference: r.reference,
      amount: Number(r.amount),
      createdAt: r.created_at,
    }));
  }

  /**
   * Checks the books: every entry's postings add up to zero, every balance is the sum of its
   * postings, all balances together are zero per currency. Returns what does not hold (none: []).
   */
  async check(): Promise<string[]> {
    const problems: string[] = [];
    const entries = await this.db.query<{ entry_id: number; total: string | number }>(
      'SELECT entry_id, sum(amount) AS total FROM ledger_postings GROUP BY entry_id HAVING sum(amount) <> 0',
    );
    for (const e of entries.rows) problems.push(`entry ${e.entry_id} adds up to ${e.total}`);
    const balances = await this.db.query<{ id: number; balance: number; total: string | number }>(
      `SELECT a.id, a.balance, COALESCE((SELECT sum(amount) FROM ledger_postings p WHERE p.account_id = a.id), 0) AS total
         FROM ledger_accounts a`,
    );
    for (const a of balances.rows)
      if (Number(a.balance) !== Number(a.total))
        problems.push(`account ${a.id} says ${a.balance}, its postings ${a.total}`);
    const books = await this.db.query<{ currency: number; total: string | number }>(
      'SELECT currency, sum(balance) AS total FROM ledger_accounts GROUP BY currency HAVING sum(balance) <> 0',
    );
    for (const c of books.rows) problems.push(`currency ${c.currency} adds up to ${c.total}`);
    return problems;
  }

  async #lockedAccount(tx: Queryable, id: number): Promise<AccountRow> {
    const row = await tx.query<AccountRow>('SELECT * FROM ledger_accounts WHERE id = $1', [id]);
    if (!row.rows[0]) throw new LedgerError('no-entry', `no ledger account ${id}`);
    return row.rows[0];
  }

  async #lockedEntry(tx: Queryable, id: number): Promise<EntryRow> {
    const row = await tx.query<EntryRow>(
      "SELECT * FROM ledger_entries WHERE id = $1 AND kind = 'charge' FOR UPDATE",
      [id],
    );
    if (!row.rows[0]) throw new LedgerError('no-entry', `no charge entry ${id}`);
    return row.rows[0];
  }

  async #post(
    tx: Queryable,
    kind: LedgerPosting['kind'],
    reference: string,
    amount: number,
    currency: number,
    undoes: number | null,
    postings: [accountId: number, amount: number][],
  ): Promise<number> {
    const entry = await tx.query<{ id: number }>(
      'INSERT INTO ledger_entries (kind, reference, amount, currency, undoes) VALUES ($1, $2, $3, $4, $5) RETURNING id',
      [kind, reference, amount, currency, undoes],
    );
    const id = entry.rows[0].id;
    // Accounts in id order: two entries touching the same accounts lock them in the same order.
    for (const [account, value] of [...postings].sort((a, b) => a[0] - b[0]))
      await tx.query(
        'INSERT INTO ledger_postings (entry_id, account_id, amount, currency) VALUES ($1, $2, $3, $4)',
        [id, account, value, currency],
      );
    return id;
  }

  /** Runs `fn` in a transaction; the database's limit check becomes LedgerError insufficient-funds. */
  async #guarded<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    try {
      return await this.db.transaction(fn);
    } catch (error) {
      const e = error as { code?: string; constraint?: string; message?: string };
      if (
        e.constraint === 'ledger_accounts_within_limit' ||
        /ledger_accounts_within_limit/.test(e.message ?? '')
      )
        throw new LedgerError('insufficient-funds', 'the account has not enough left within its limit');
      throw error;
    }
  }
}

function checkAmount(amount: number): void {
  if (!Number.isSafeInteger(amount) || amount <= 0)
    throw new LedgerError('bad-amount', `an amount is a whole number of minor units above 0, not ${amount}`);
}
