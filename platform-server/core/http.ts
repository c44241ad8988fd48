// What every HTTP route of the platform shares, registered at the root (fastify-plugin, so it is not
// encapsulated): the one error shape (errors.ts) for refused and failed requests, Fastify's own
// validation and 404 errors included, and the public health check.
import type { FastifyError } from 'fastify';
import fp from 'fastify-plugin';
import type { Database } from './db';
import { sendError, validationField } from './errors';

const healthSchema = {
  type: 'object',
  required: ['status', 'database'],
  properties: {
    status: { type: 'string', enum: ['ok', 'unavailable'] },
    database: { type: 'string', enum: ['pglite', 'postgres'] },
  },
} as const;

export interface HttpBasicsOptions {
  db: Pick<Database, 'query' | 'kind'>;
}

export const httpBasics = fp<HttpBasicsOptions>(
  async (app, { db }) => {
    // Replies go out as JSON.stringify writes them: response schemas document the API (the OpenAPI
    // document) and never drop a property the route sent.
    app.setSerializerCompiler(() => (data) => JSON.stringify(data));

    app.setErrorHandler((error: FastifyError, request, reply) => {
      const status =
        error.statusCode && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 500;
      if (status === 500) {
        request.log.error({ err: error }, 'request failed');
        return sendError(reply, 500, 'internal-error', 'internal error');
      }
      const field = (error as { field?: unknown }).field;
      return sendError(
        reply,
        status,
        error.code ?? 'error',
        error.message,
        typeof field === 'string' ? field : validationField(error.validation),
      );
    });

    app.setNotFoundHandler((request, reply) =>
      sendError(reply, 404, 'no-route', `no route ${request.method} ${request.url}`),
    );

    app.get(
      '/healthz',
      {
        schema: {
          summary: 'Health check: the database answers',
          'x-role': 'public',
          response: {
            200: healthSchema,
            503: healthSchema,
          },
        },
      },
      async (_request, reply) => {
        try {
          await db.query('SELECT 1');
          return { status: 'ok', database: db.kind };
        } catch {
          return reply.code(503).send({ status: 'unavailable', database: db.kind });
        }
      },
    );
  },
  { name: 'parklink-http-basics' },
);
