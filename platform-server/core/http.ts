// What every HTTP route of the platform shares, registered at the root (fastify-plugin, so it is not
// encapsulated): the one error shape (errors.ts) for refused and failed requests, Fastify's own
// validation and 404 errors included; the guard on what no schema can say (inputGuard below); and
// the public health check.
import type { FastifyError, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Database } from './db';
import { sendError, validationField } from './errors';

/** A request value refused by inputGuard: 400 with its field. */
export class BadInputError extends Error {
  override readonly name: string = 'BadInputError';
  readonly statusCode = 400;
  constructor(
    readonly code: string,
    message: string,
    readonly field: string | undefined,
  ) {
    super(message);
  }
}

const PARTS = [
  ['params', 'path parameter'],
  ['query', 'query parameter'],
  ['body', 'body field'],
] as const;

/**
 * After schema validation (so after Fastify's coercion of path and query text to numbers), before
 * any handler: every string and property name of params, query and body must be free of U+0000
 * (PostgreSQL's text and jsonb cannot hold it), and every number finite and within ±2^53 (Fastify's
 * coercion lets "Infinity" through an integer schema with a maximum, and JSON's 1e400 parses as
 * Infinity). Throws BadInputError naming the field.
 */
export function inputGuard(request: Pick<FastifyRequest, 'params' | 'query' | 'body'>): void {
  for (const [part, what] of PARTS) {
    const bad = findBad(request[part]);
    if (!bad) continue;
    const field = bad.path.length > 0 ? bad.path.join('.') : undefined;
    const named = field === undefined ? `the ${part === 'body' ? 'body' : what}` : `${what} ${field}`;
    throw new BadInputError(
      bad.kind === 'nul' ? 'nul-character' : 'number-out-of-range',
      bad.kind === 'nul'
        ? `${named} contains a NUL character (U+0000), which is not allowed`
        : `${named} is not a number this API takes (finite, at most 2^53 in size)`,
      field,
    );
  }
}

/** A node of the walk: its value, and its key and parent to name the field when it is at fault. */
interface Node {
  value: unknown;
  key?: string;
  parent?: Node;
}

/**
 * The first NUL or out-of-range number in `root`, with its path. A walk with its own stack, not
 * recursion: a body nested 100,000 deep (1 MB of brackets) is walked like a flat one.
 */
function findBad(root: unknown): { kind: 'nul' | 'number'; path: string[] } | undefined {
  const stack: Node[] = [{ value: root }];
  const pathOf = (node: Node, last?: string) => {
    const path: string[] = last === undefined ? [] : [last];
    for (let n: Node | undefined = node; n?.key !== undefined; n = n.parent) path.push(n.key);
    return path.reverse();
  };
  while (stack.length > 0) {
    const node = stack.pop() as Node;
    const value = node.value;
    if (typeof value === 'string') {
      if (value.includes('\u0000')) return { kind: 'nul', path: pathOf(node) };
    } else if (typeof value === 'number') {
      if (!Number.isFinite(value) || Math.abs(value) > Number.MAX_SAFE_INTEGER)
        return { kind: 'number', path: pathOf(node) };
    } else if (Array.isArray(value)) {
      for (let i = value.length - 1; i >= 0; i--)
        stack.push({ value: value[i], key: String(i), parent: node });
    } else if (value !== null && typeof value === 'object') {
      const entries = Object.entries(value);
      for (const [key] of entries)
        if (key.includes('\u0000'))
          return { kind: 'nul', path: pathOf(node, key.replaceAll('\u0000', '\\u0000')) };
      for (let i = entries.length - 1; i >= 0; i--)
        stack.push({ value: entries[i][1], key: entries[i][0], parent: node });
    }
  }
  return undefined;
}

/**
 * PostgreSQL's refusals of a value (SQLSTATE class 22, data exception: out of range, bad text,
 * bad encoding; 54000, a value too long to index) mean a request carried a value no schema kept
 * out: a 400, not a 500. The schemas and inputGuard should keep every such value out; the HTTP
 * fuzz test fails on this code.
 */
export const DATABASE_REFUSED = 'value-refused';

function databaseRefusal(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' && /^(22[0-9A-Z]{3}|54000)$/.test(code);
}

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

    // Root hook: it runs for every route, after validation and before the route's own preHandlers.
    app.addHook('preHandler', async (request) => inputGuard(request));

    app.setErrorHandler((error: FastifyError, request, reply) => {
      if (databaseRefusal(error)) {
        request.log.warn({ err: error }, 'the database refused a value of the request');
        return sendError(reply, 400, DATABASE_REFUSED, 'a value in the request is out of range or not valid');
      }
      // 4xx, and 503 for a service the platform depends on that did not answer (a payment provider).
      const status =
        error.statusCode && ((error.statusCode >= 400 && error.statusCode < 500) || error.statusCode === 503)
          ? error.statusCode
          : 500;
      if (status === 500) {
        request.log.error({ err: error }, 'request failed');
        return sendError(reply, 500, 'internal-error', 'internal error');
      }
      const field = (error as { field?: unknown }).field;
      const retryAfter = (error as { retryAfter?: unknown }).retryAfter;
      if (status === 429 && typeof retryAfter === 'number') reply.header('retry-after', String(retryAfter));
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
