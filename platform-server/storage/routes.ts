// Record storage on the platform's HTTP API: the records each meter is known to be missing (gaps in its
// sequence numbers, and whether an operator released them), and operator releases of a meter's
// unacknowledged upload set: an HMAC-signed token (protocol/release.ts) recorded here and sent to
// the meter in a 0x82 storage-control downlink; the meter verifies it and records its use.
// Reading needs the viewer role; a release (money records discarded at the meter) needs a
// supervisor, and the name signed into the token is the logged-in operator's, never the client's.
import type { FastifyPluginAsync } from 'fastify';
import type { Crypto } from '../../hal/crypto';
import { toHex } from '../../protocol/bytes';
import { wipeMeterKeys } from '../../protocol/keys';
import { deriveReleaseKey, STORAGE_CONTROL_FRAME, signReleaseToken } from '../../protocol/release';
import type { Database } from '../core/db';
import { errorBody, errorResponses, sendError } from '../core/errors';
import { meterIdParams, object, time } from '../core/schemas';
import type { Ingest } from '../ingest/gate';
import type { MeterDirectory, RecordReader } from '../ingest/meters';
import type { Keystore } from '../keys/keystore';
import { type OperatorGuard, roleAtLeast } from '../operators/service';

const U32_MAX = 0xffffffff;

export interface GapView {
  fromSeq: number;
  toSeq: number;
  missing: number;
  detectedAt: string;
  /** An operator release covers the whole gap: the meter discarded these records on purpose. */
  released: boolean;
}

export interface ReleaseView {
  id: number;
  fromSeq: number;
  toSeq: number;
  operator: string;
  reason: string;
  issuedAt: string;
  /**
   * The token (CBOR, hex) as sent; a handheld can carry it to the meter as well. Shown to
   * supervisors and above only: it is the authority to discard records.
   */
  token?: string;
}

const releaseSchema = object(
  {
    id: { type: 'integer' },
    fromSeq: { type: 'integer' },
    toSeq: { type: 'integer' },
    operator: { type: 'string' },
    reason: { type: 'string' },
    issuedAt: time,
    token: { type: 'string', description: 'CBOR, hex; supervisors and above' },
  },
  ['id', 'fromSeq', 'toSeq', 'operator'],
);

const releaseBody = {
  type: 'object',
  properties: {
    fromSeq: { type: 'integer', minimum: 1, maximum: U32_MAX },
    toSeq: { type: 'integer', minimum: 1, maximum: U32_MAX },
    reason: { type: 'string', minLength: 1, maxLength: 500, pattern: '\\S' },
    // Declared so that it reaches the handler, which refuses it: the operator is the logged-in one
    // (an unknown property would be silently dropped by the validator instead).
    operator: {},
  },
  required: ['fromSeq', 'toSeq', 'reason'],
  additionalProperties: false,
} as const;

/**
 * The meter's release key R (protocol/release.ts), derived from its epoch-1 downlink key: the
 * platform signs release tokens with it and the factory loads it (RecordStore.provisionReleaseKey).
 */
export function releaseKeyFor(keystore: Keystore, crypto: Crypto, meterId: number): Uint8Array {
  const keys = keystore.meterKeys(meterId, 1);
  try {
    return deriveReleaseKey(crypto, keys.downlink, meterId);
  } finally {
    wipeMeterKeys(keys);
  }
}

export interface StorageApiOptions {
  db: Database;
  meters: Pick<MeterDirectory, 'exists'>;
  records: Pick<RecordReader, 'gaps'>;
  keystore: Keystore;
  ingest: Ingest;
  guard: OperatorGuard;
  now?: () => number;
}

/** The gaps and releases routes of each meter. */
export const storageRoutes: FastifyPluginAsync<StorageApiOptions> = async (app, options) => {
  const { db, keystore, ingest, guard } = options;
  const now = options.now ?? Date.now;
  const meterExists = (id: number) => options.meters.exists(id);
  const notFound = (id: number) => errorBody(404, 'unknown-meter', `meter ${id} is unknown`);

  app.get<{ Params: { id: number } }>(
    '/api/meters/:id/gaps',
    {
      onRequest: guard.requireRole('viewer'),
      schema: {
        summary: 'The records a meter is known to be missing, and whether a release covers them',
        params: meterIdParams,
        response: {
          200: object({
            meterId: { type: 'integer' },
            missingRecords: { type: 'integer' },
            gaps: {
              type: 'array',
              items: object({
                fromSeq: { type: 'integer' },
                toSeq: { type: 'integer' },
                missing: { type: 'integer' },
                detectedAt: time,
                released: { type: 'boolean' },
              }),
            },
          }),
          ...errorResponses(400, 401, 403, 404),
        },
      },
    },
    async (
      request,
      reply,
    ): Promise<{ meterId: number; missingRecords: number; gaps: GapView[] } | unknown> => {
      const { id } = request.params;
      if (!(await meterExists(id))) return reply.code(404).send(notFound(id));
      const releases = await db.query<{ from_seq: number; to_seq: number }>(
        'SELECT from_seq, to_seq FROM upload_releases WHERE meter_id = $1',
        [id],
      );
      // A gap is released when one release covers all of it.
      const gaps = (await options.records.gaps(id)).map((g) => ({
        fromSeq: g.fromSeq,
        toSeq: g.toSeq,
        missing: g.toSeq - g.fromSeq + 1,
        detectedAt: g.detectedAt.toISOString(),
        released: releases.rows.some((r) => r.from_seq <= g.fromSeq && r.to_seq >= g.toSeq),
      }));
      return { meterId: id, missingRecords: gaps.reduce((n, g) => n + g.missing, 0), gaps };
    },
  );

  app.get<{ Params: { id: number } }>(
    '/api/meters/:id/releases',
    {
      onRequest: guard.requireRole('viewer'),
      schema: {
        summary: "A meter's upload releases; the tokens shown to supervisors and above",
        params: meterIdParams,
        response: {
          200: object({ meterId: { type: 'integer' }, releases: { type: 'array', items: releaseSchema } }),
          ...errorResponses(400, 401, 403, 404),
        },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      if (!(await meterExists(id))) return reply.code(404).send(notFound(id));
      const showTokens = roleAtLeast(request.operator!.role, 'supervisor');
      const rows = await db.query<{
        id: number;
        from_seq: number;
        to_seq: number;
        operator: string;
        reason: string;
        issued_at: Date;
        token: Uint8Array;
      }>('SELECT * FROM upload_releases WHERE meter_id = $1 ORDER BY id', [id]);
      const releases: ReleaseView[] = rows.rows.map((r) => ({
        id: r.id,
        fromSeq: r.from_seq,
        toSeq: r.to_seq,
        operator: r.operator,
        reason: r.reason,
        issuedAt: r.issued_at.toISOString(),
        ...(showTokens ? { token: toHex(r.token) } : {}),
      }));
      return { meterId: id, releases };
    },
  );

  app.post<{
    Params: { id: number };
    Body: { fromSeq: number; toSeq: number; reason: string; operator?: unknown };
  }>(
    '/api/meters/:id/releases',
    {
      onRequest: guard.requireRole('supervisor'),
      schema: {
        summary: "Release a meter's unacknowledged upload set: a signed token sent as a 0x82 downlink",
        params: meterIdParams,
        body: releaseBody,
        response: {
          201: object(
            { ...releaseSchema.properties, meterId: { type: 'integer' }, sent: { type: 'boolean' } },
            ['id', 'meterId', 'fromSeq', 'toSeq', 'operator', 'token', 'sent'],
          ),
          ...errorResponses(400, 401, 403, 404),
        },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      const { fromSeq, toSeq, reason } = request.body;
      const bad = (message: string, code: string) => sendError(reply, 400, code, message);
      if (request.body.operator !== undefined)
        return bad(
          'the operator is the logged-in account: leave "operator" out of the body',
          'operator-from-login',
        );
      if (toSeq < fromSeq) return bad('toSeq is before fromSeq', 'bad-range');
      if (!(await meterExists(id))) return reply.code(404).send(notFound(id));
      const { id: operatorId, username: operator } = request.operator!;
      const key = releaseKeyFor(keystore, ingest.crypto, id);
      const issuedAt = Math.floor(now() / 1000);
      const token = signReleaseToken(ingest.crypto, key, { meterId: id, fromSeq, toSeq, issuedAt, operator });
      key.fill(0);
      // The release and its audit row commit together: no release without its trace.
      const releaseId = await db.transaction(async (tx) => {
        const row = await tx.query<{ id: number }>(
          `INSERT INTO upload_releases (meter_id, from_seq, to_seq, operator, operator_id, reason, issued_at, token)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id`,
          [id, fromSeq, toSeq, operator, operatorId, reason, new Date(issuedAt * 1000), token],
        );
        await guard.audit(
          request,
          {
            action: 'release.issue',
            meterId: id,
            target: `records ${fromSeq}..${toSeq}`,
            // The meter's maintenance record names the token by the same 8 bytes of its SHA-256.
            detail: {
              releaseId: row.rows[0].id,
              fromSeq,
              toSeq,
              reason,
              token: toHex(ingest.crypto.sha256(token).subarray(0, 8)),
            },
          },
          tx,
        );
        return row.rows[0].id;
      });
      request.log.warn({ meterId: id, fromSeq, toSeq, operator, reason }, 'upload release issued');
      let sent = true;
      try {
        await ingest.sendDownlink(id, STORAGE_CONTROL_FRAME, token);
      } catch (error) {
        sent = false; // the token is kept: a handheld can carry it, or it is sent again
        request.log.warn({ err: error, meterId: id }, 'release token not sent');
      }
      return reply
        .code(201)
        .send({ id: releaseId, meterId: id, fromSeq, toSeq, operator, token: toHex(token), sent });
    },
  );
};
