// The fleet's meters and each meter's transactions (viewer role). Parameters are validated by JSON
// schema; bad requests get a 4xx in the platform's error shape (core/http.ts).
import type { FastifyPluginAsync } from 'fastify';
import { errorResponses, sendError } from '../core/errors';
import { meterIdParams, nullableTime, object, time } from '../core/schemas';
import type { MeterDirectory, RecordReader } from '../ingest/meters';
import type { OperatorGuard } from '../operators/service';
import { maskedCard } from '../../protocol/cardToken';
import { TIME_STATE_NAMES, TimeState } from '../../protocol/time';

export interface MeterSummary {
  id: number;
  name: string;
  area: string | null;
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
  /**
   * Whether `recordedAt` came from a synchronised clock: false when the meter had never known the
   * time since it started (unset) or had not confirmed it lately (holdover); null when the record
   * predates meters reporting it.
   */
  timeSynced: boolean | null;
  timeState: 'unset' | 'synced' | 'holdover' | null;
  transactionNumber: number;
  /** The card as "**** 0017": its last four digits, all the platform keeps of the number. */
  cardNumberMasked: string;
  cardLast4: string;
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

const meterSummarySchema = object({
  id: { type: 'integer' },
  name: { type: 'string' },
  area: { type: 'string', nullable: true },
  keyEpoch: { type: 'integer' },
  createdAt: time,
  lastSeenAt: nullableTime,
  recordsHeld: { type: 'integer' },
  lastSeq: { type: 'integer' },
  missingRecords: { type: 'integer' },
});

const transactionSchema = object({
  seq: { type: 'integer' },
  recordedAt: time,
  timeSynced: { type: 'boolean', nullable: true },
  timeState: { type: 'string', enum: ['unset', 'synced', 'holdover'], nullable: true },
  transactionNumber: { type: 'integer' },
  cardNumberMasked: { type: 'string' },
  cardLast4: { type: 'string' },
  cardExpiry: { type: 'string' },
  cardType: { type: 'integer' },
  bayId: { type: 'integer' },
  minutes: { type: 'integer' },
  paidFrom: time,
  paidUntil: time,
  charge: { type: 'integer' },
  currency: { type: 'integer' },
  remainingValue: { type: 'integer' },
  receivedAt: time,
});

const transactionsQuery = {
  type: 'object',
  properties: {
    limit: { type: 'integer', minimum: 1, maximum: 500, default: 50 },
    before: { type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER },
  },
  additionalProperties: false,
} as const;

export interface MetersRoutesOptions {
  meters: Pick<MeterDirectory, 'exists'>;
  records: Pick<RecordReader, 'summaries' | 'transactions'>;
  guard: OperatorGuard;
}

/** GET /api/meters and GET /api/meters/:id/transactions, for viewers and above. */
export const meterRoutes: FastifyPluginAsync<MetersRoutesOptions> = async (
  app,
  { meters, records, guard },
) => {
  const viewer = guard.requireRole('viewer');
  app.get(
    '/api/meters',
    {
      onRequest: viewer,
      schema: {
        summary: 'The fleet: each meter with its key epoch, last contact and records held',
        response: {
          200: object({ meters: { type: 'array', items: meterSummarySchema } }),
          ...errorResponses(401, 403),
        },
      },
    },
    async (): Promise<{ meters: MeterSummary[] }> => ({
      meters: (await records.summaries()).map((m) => ({
        ...m,
        createdAt: m.createdAt.toISOString(),
        lastSeenAt: m.lastSeenAt?.toISOString() ?? null,
      })),
    }),
  );

  app.get<{ Params: { id: number }; Querystring: { limit: number; before?: number } }>(
    '/api/meters/:id/transactions',
    {
      onRequest: viewer,
      schema: {
        summary: "A meter's transactions, newest first, card numbers masked; `before` pages back",
        params: meterIdParams,
        querystring: transactionsQuery,
        response: {
          200: object({
            meterId: { type: 'integer' },
            transactions: { type: 'array', items: transactionSchema },
            nextBefore: { type: 'integer', nullable: true },
          }),
          ...errorResponses(400, 401, 403, 404),
        },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      const { limit, before } = request.query;
      if (!(await meters.exists(id))) {
        return sendError(reply, 404, 'unknown-meter', `meter ${id} is unknown`);
      }
      const rows = await records.transactions(id, limit + 1, before ?? null);
      const page = rows.slice(0, limit);
      const transactions: TransactionView[] = page.map((t) => ({
        seq: t.seq,
        recordedAt: t.recorded_at.toISOString(),
        timeSynced: t.time_state === null ? null : t.time_state === TimeState.Synced,
        timeState: t.time_state === null ? null : TIME_STATE_NAMES[t.time_state as TimeState],
        transactionNumber: t.transaction_number,
        cardNumberMasked: maskedCard(t.card_last4),
        cardLast4: t.card_last4,
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
      const nextBefore = rows.length > limit ? page[page.length - 1].seq : null;
      return { meterId: id, transactions, nextBefore };
    },
  );
};
