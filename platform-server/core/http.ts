// What every HTTP route of the platform shares, registered at the root (fastify-plugin, so it is not
// encapsulated): the one error shape for refused and failed requests, Fastify's own validation and
// 404 errors included, and the public health check.
import type { FastifyError } from 'fastify';
import fp from 'fastify-plugin';
import type { Database } from './db';

export interface HttpBasicsOptions {
  db: Pick<Database, 'query' | 'kind'>;
}

export const httpBasics = fp<HttpBasicsOptions>(
  async (app, { db }) => {
    app.setErrorHandler((error: FastifyError, request, reply) => {
      const status =
        error.statusCode && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 500;
      if (status === 500) {
        request.log.error({ err: error }, 'request failed');
        return reply
          .code(500)
          .send({ statusCode: 500, error: 'Internal Server Error', message: 'internal error' });
      }
      return reply.code(status).send({
        statusCode: status,
        error: status === 400 ? 'Bad Request' : 'Error',
        code: error.code,
        message: error.message,
      });
    });

    app.setNotFoundHandler((request, reply) =>
      reply
        .code(404)
        .send({ statusCode: 404, error: 'Not Found', message: `no route ${request.method} ${request.url}` }),
    );

    app.get('/healthz', async (_request, reply) => {
      try {
        await db.query('SELECT 1');
        return { status: 'ok', database: db.kind };
      } catch {
        return reply.code(503).send({ status: 'unavailable', database: db.kind });
      }
    });
  },
  { name: 'parklink-http-basics' },
);
