// The second half of migration 015 (card tokens), which needs the card-token key the database does
// not hold: every stored card number becomes its token and last four digits, records received in
// format 1 are kept converted to format 2, and card_number is dropped. Run by the platform after
// the SQL migrations, each start; once the column is gone there is nothing to do. One transaction
// under an advisory lock, so two instances starting at once convert once and a failure leaves the
// rows as they were.
import { toHex } from '../../protocol/bytes';
import { encodeRecord, LEGACY_RECORD_FORMAT, legacyRecordToCurrent } from '../../protocol/records';
import type { Database, Queryable } from '../core/db';
import type { CardTokens } from '../keys/cardToken';

/** Arbitrary constant identifying this conversion among the database's advisory locks. */
const CONVERSION_LOCK = 0x504c4354; // "PLCT"
const CHUNK = 2000;

export interface CardConversion {
  transactions: number;
  operations: number;
  records: number;
}

export async function convertStoredCards(
  db: Database,
  tokens: CardTokens,
): Promise<CardConversion | undefined> {
  return db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [CONVERSION_LOCK]);
    const column = await tx.query(
      `SELECT 1 FROM information_schema.columns
        WHERE table_schema = current_schema() AND table_name = 'transactions' AND column_name = 'card_number'`,
    );
    if (column.rows.length === 0) return undefined;
    const done: CardConversion = {
      transactions: await convertTable(tx, 'transactions', tokens),
      operations: await convertTable(tx, 'operations', tokens),
      records: await convertRecords(tx, tokens),
    };
    await tx.exec(
      `ALTER TABLE transactions DROP COLUMN card_number,
         ALTER COLUMN card_token SET NOT NULL, ALTER COLUMN card_last4 SET NOT NULL;
       ALTER TABLE operations DROP COLUMN card_number;`,
    );
    return done;
  });
}

/** Rows of `table` still holding a number; a number that is not 8-19 digits stops the conversion. */
async function convertTable(
  tx: Queryable,
  table: 'transactions' | 'operations',
  tokens: CardTokens,
): Promise<number> {
  let converted = 0;
  for (;;) {
    const rows = await tx.query<{ meter_id: number; seq: number; card_number: string }>(
      `SELECT meter_id, seq, card_number FROM ${table} WHERE card_number IS NOT NULL ORDER BY meter_id, seq LIMIT ${CHUNK}`,
    );
    if (rows.rows.length === 0) return converted;
    const refs = rows.rows.map((r) => {
      try {
        return tokens.ref(r.card_number);
      } catch {
        throw new Error(
          `${table} row (meter ${r.meter_id}, seq ${r.seq}) holds a card number that is not 8-19 digits`,
        );
      }
    });
    await tx.query(
      `UPDATE ${table} t SET card_token = u.token, card_last4 = u.last4, card_number = NULL
         FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[]) AS u(meter_id, seq, token, last4)
        WHERE t.meter_id = u.meter_id AND t.seq = u.seq`,
      [
        rows.rows.map((r) => r.meter_id),
        rows.rows.map((r) => r.seq),
        refs.map((r) => toHex(r.token)),
        refs.map((r) => r.last4),
      ],
    );
    converted += rows.rows.length;
  }
}

/** Records whose bytes are format 1: [0x86, 0x01, ...] (an array of 6, format 1). */
async function convertRecords(tx: Queryable, tokens: CardTokens): Promise<number> {
  let converted = 0;
  for (;;) {
    const rows = await tx.query<{ meter_id: number; seq: number; bytes: Uint8Array }>(
      `SELECT meter_id, seq, bytes FROM records
        WHERE NOT redacted AND get_byte(bytes, 0) = 134 AND get_byte(bytes, 1) = ${LEGACY_RECORD_FORMAT}
        ORDER BY meter_id, seq LIMIT ${CHUNK}`,
    );
    if (rows.rows.length === 0) return converted;
    const bytes = rows.rows.map((r) => encodeRecord(legacyRecordToCurrent(r.bytes, (n) => tokens.ref(n))));
    for (let i = 0; i < rows.rows.length; i++) {
      await tx.query('UPDATE records SET bytes = $3, redacted = true WHERE meter_id = $1 AND seq = $2', [
        rows.rows[i].meter_id,
        rows.rows[i].seq,
        Buffer.from(bytes[i]),
      ]);
    }
    converted += rows.rows.length;
  }
}
