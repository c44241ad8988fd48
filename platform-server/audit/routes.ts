// The remote audit unit's HTTP API (docs/audit.md):
//
//   GET /api/audit/bundle?meter=ID&meter=ID&from=ISO&to=ISO&sample=N&seed=S
//       → 200 the export bundle, sealed with its sha256 as `parklink audit export` writes it
//
// Admin only, audited ('audit.export' with the selection and the bundle's hash): a bundle holds
// every selected record. The audit itself runs apart from the platform (`parklink audit verify`).
import type { FastifyPluginAsync } from 'fastify';
import { errorResponses, sendError } from '../core/errors';
import type { Database } from '../core/db';
import { nodeCrypto } from '../core/nodeCrypto';
import type { OperatorGuard } from '../operators/service';
import { exportBundle, type Selection, sealDocument } from './audit';

export interface AuditRoutesOptions {
  db: Database;
  guard: OperatorGuard;
}

interface BundleQuery {
  meter?: number[];
  from?: string;
  to?: string;
  sample?: number;
  seed?: string;
}

export const auditRoutes: FastifyPluginAsync<AuditRoutesOptions> = async (app, { db, guard }) => {
  app.get<{ Querystring: BundleQuery }>(
    '/api/audit/bundle',
    {
      onRequest: guard.requireRole('admin'),
      schema: {
        summary: 'Export an audit bundle: records, chain links, kept record-set frames, meters’ public data',
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            meter: {
              type: 'array',
              items: { type: 'integer', minimum: 0, maximum: 4294967295 },
              maxItems: 1000,
            },
            from: { type: 'string', format: 'date-time' },
            to: { type: 'string', format: 'date-time' },
            sample: { type: 'integer', minimum: 1, maximum: 1000000 },
            seed: { type: 'string', minLength: 1, maxLength: 100 },
          },
        },
        response: {
          200: {
            description:
              'the bundle (format parklink-audit-bundle, version 1) with its sha256 as last member',
            type: 'object',
            additionalProperties: true,
          },
          ...errorResponses(400, 401, 403),
        },
      },
    },
    async (request, reply) => {
      const { meter, from, to, sample, seed } = request.query;
      if (seed !== undefined && sample === undefined)
        return sendError(reply, 400, 'bad-request', 'seed goes with sample', 'seed');
      const selection: Selection = {};
      if (meter && meter.length > 0) selection.meters = meter;
      if (from) selection.from = new Date(from);
      if (to) selection.to = new Date(to);
      if (sample !== undefined) selection.sample = { count: sample, seed: seed ?? crypto.randomUUID() };
      const bundle = await exportBundle(db, nodeCrypto, selection);
      const { text, sha256 } = sealDocument(nodeCrypto, bundle);
      await guard.audit(request, {
        action: 'audit.export',
        detail: {
          selection: bundle.selection,
          sha256,
          records: bundle.records.length,
          sets: bundle.sets.length,
        },
      });
      // Sent as sealed: the hash covers this exact text.
      return reply
        .type('application/json; charset=utf-8')
        .serializer((payload) => payload as string)
        .send(text);
    },
  );
};
