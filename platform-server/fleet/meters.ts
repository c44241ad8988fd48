// The fleet's meters and each meter's transactions (viewer role). Parameters are validated by JSON
// schema; bad requests get a 4xx in the platform's error shape (core/http.ts).
import type { FastifyPluginAsync } from 'fastify';
import type { Database } from '../core/db';
import type { OperatorGuard } from '../operators/service';

const U32_MAX = 0xffffffff;

export interface MeterSummary {
  id: number;
  name: string;
  keyEpoch: number;
  createdAt: string;
  lastSeenAt: string | null;
  recordsHeld: number;
  /** Highest record sequence number held, 0 when none. */
  lastSeq: number;
  /** Records known to be missing (recorded gaps). */
  missingRecords: number;
}

export interface TransactionView {
  seq: number;
  recordedAt: string;
  transactionNumber: number;
  /** The card's number with all but the last four digits masked. */
  cardNumberMasked: string;
  cardExpiry: string;
  cardType: number;
  bayId: number;
  minutes: number;
  paidFrom: string;
  paidUntil: string;
  charge: number;
  currency: number;
  remainingValue: number;
  receivedAt: string;
}

export function maskCardNumber(card: string): string {
  return card.length <= 4 ? card : `${'*'.repeat(card.length - 4)}${card.slice(-4)}`;
}

const meterIdParams = {
  type: 'object',
  properties: { id: { type: 'integer', minimum: 0, maximum: U32_MAX } },
  required: ['id'],
} as const;

const transactionsQuery = {
  type: 'object',
  properties: {
    limit: { type: 'integer', minimum: 1, maximum: 500, default: 50 },
    before: { type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER },
  },
  additionalProperties: false,
} as const;

export interface MetersRoutesOptions {
  db: Database;
  guard: OperatorGuard;
}

/** GET /api/meters and GET /api/meters/:id/transactions, for viewers and above. */
export const meterRoutes: FastifyPluginAsync<MetersRoutesOptions> = async (app, { db, guard }) => {
  const viewer = guard.requireRole('viewer');
  app.get('/api/meters', { onRequest: viewer }, async (): Promise<{ meters: MeterSummary[] }> => {
    const result = await db.query<{
      id: number;
      name: string;
      key_epoch: number;
      created_at: Date;
      last_seen_at: Date | null;
      records_held: number;
      last_seq: number | null;
      missing: number | null;
    }>(
      `SELECT m.id, m.name, m.key_epoch, m.created_at, m.last_seen_at,
              (SELECT count(*) FROM records r WHERE r.meter_id = m.id) AS records_held,
              (SELECT max(seq) FROM records r WHERE r.meter_id = m.id) AS last_seq,
              (SELECT sum(g.to_seq - g.from_seq + 1) FROM record_gaps g WHERE g.meter_id = m.id)::bigint AS missing
         FROM meters m ORDER BY m.id`,
    );
    return {
      meters: result.rows.map((row) => ({
        id: row.id,
        name: row.name,
        keyEpoch: row.key_epoch,
        createdAt: row.created_at.toISOString(),
        lastSeenAt: row.last_seen_at?.toISOString() ?? null,
        recordsHeld: row.records_held,
        lastSeq: row.last_seq ?? 0,
        missingRecords: row.missing ?? 0,
      })),
    };
  });

  app.get<{ Params: { id: number }; Querystring: { limit: number; before?: number } }>(
    '/api/meters/:id/transactions',
    { onRequest: viewer, schema: { params: meterIdParams, querystring: transactionsQuery } },
    async (request, reply) => {
      const { id } = request.params;
      const { limit, before } = request.query;
      const meter = await db.query('SELECT 1 FROM meters WHERE id = $1', [id]);
      if (meter.rows.length === 0) {
        return reply
          .code(404)
          .send({ statusCode: 404, error: 'Not Found', message: `meter ${id} is unknown` });
      }
      const result = await db.query<{
        seq: number;
        recorded_at: Date;
        received_at: Date;
        transaction_number: number;
        card_number: string;
        card_expiry: string;
        card_type: number;
        bay_id: number;
        minutes: number;
        paid_from: Date;
        paid_until: Date;
        charge: number;
        currency: number;
        remaining_value: number;
      }>(
        `SELECT t.*, r.recorded_at, r.received_at
           FROM transactions t JOIN records r ON r.meter_id = t.meter_id AND r.seq = t.seq
          WHERE t.meter_id = $1 AND ($2::bigint IS NULL OR t.seq < $2::bigint)
          ORDER BY t.seq DESC
          LIMIT $3`,
        [id, before ?? null, limit + 1],
      );
      const page = result.rows.slice(0, limit);
      const transactions: TransactionView[] = page.map((t) => ({
        seq: t.seq,
        recordedAt: t.recorded_at.toISOString(),
        transactionNumber: t.transaction_number,
        cardNumberMasked: maskCardNumber(t.card_number),
        cardExpiry: t.card_expiry,
        cardType: t.card_type,
        bayId: t.bay_id,
        minutes: t.minutes,
        paidFrom: t.paid_from.toISOString(),
        paidUntil: t.paid_until.toISOString(),
        charge: t.charge,
        currency: t.currency,
        remainingValue: t.remaining_value,
        receivedAt: t.received_at.toISOString(),
      }));
      // `before` for the next (older) page, null on the last page.
      const nextBefore = result.rows.length > limit ? page[page.length - 1].seq : null;
      return { meterId: id, transactions, nextBefore };
    },
  );
};
