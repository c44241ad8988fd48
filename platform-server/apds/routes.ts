// The APDS API under /apds/ (paths and shapes of the parkingdata/spec OpenAPI document):
//
//   GET    /apds/places[/:id]  /apds/rates[/:id]  /apds/rights/specs[/:id]  /apds/sessions[/:id]  /apds/rights/assigned[/:id]
//   GET    /apds/quotes[/:id]                                      scope read (or a viewer session)
//   POST   /apds/quotes        QuoteRightRequest → priced by the bay's tariff       scope write
//   POST   /apds/sessions      Session; POST /apds/rights/assigned AssignedRight    scope write
//   POST   /apds/webhooks      EventSubscription → { id, secret }; GET/DELETE /apds/webhooks/:id  scope webhooks
//   GET    /apds/export        the whole city, dated                  scope export (or a viewer session)
//
// and for admins: POST/GET /api/apds/keys, DELETE /api/apds/keys/:id (audited; the key is shown once).
// A consumer sends its key as `X-API-Key: …` or `Authorization: Bearer …`. Lists are pages of 100
// ({ meta: PaginatedListMeta, data }, `page` from 1); refusals are APDS ResponseStatus objects.
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { RequestRefused, errorResponses, sendRefusal } from '../core/errors';
import { object } from '../core/schemas';
import type { OperatorGuard } from '../operators/service';
import {
  APDS_SCOPES,
  APDS_TOPICS,
  type ApdsScope,
  type ApdsService,
  type ApdsTopic,
  type ApiKeyIdentity,
} from './service';

export interface ApdsRoutesOptions {
  service: ApdsService;
  guard: OperatorGuard;
}

declare module 'fastify' {
  interface FastifyRequest {
    apdsKey?: ApiKeyIdentity;
  }
}

export const PAGE_SIZE = 100;
type Json = Record<string, unknown>;

const responseStatus = {
  type: 'object',
  required: ['status'],
  properties: {
    status: { type: 'string', enum: ['ok', 'error'] },
    code: { type: 'integer' },
    message: { type: 'string' },
  },
} as const;
const statusResponses = (...codes: number[]) => Object.fromEntries(codes.map((c) => [c, responseStatus]));
const listSchema = {
  type: 'object',
  properties: {
    meta: object({
      referenceInstant: { type: 'integer' },
      offset: { type: 'integer' },
      pageSize: { type: 'integer' },
      total: { type: 'integer' },
    }),
    data: { type: 'array', items: { type: 'object', additionalProperties: true } },
  },
} as const;
const anyObject = { type: 'object', additionalProperties: true } as const;
const pageQuery = {
  type: 'object',
  properties: { page: { type: 'integer', minimum: 1 } },
} as const;
const idParams = {
  type: 'object',
  properties: { id: { type: 'string', minLength: 1, maxLength: 128 } },
  required: ['id'],
} as const;
const versioned = {
  type: 'object',
  properties: {
    id: { type: 'string', minLength: 1, maxLength: 128 },
    version: { type: 'integer', minimum: 1 },
  },
  required: ['id', 'version'],
  additionalProperties: true,
} as const;

// The APDS common types the write routes check (the document's Reference, VersionedReference,
// MultilingualString).
const reference = {
  type: 'object',
  properties: { className: { type: 'string', minLength: 1 }, id: { type: 'string' } },
  required: ['className', 'id'],
} as const;
const versionedReference = {
  type: 'object',
  properties: {
    id: { type: 'string', minLength: 1 },
    version: { type: 'integer', minimum: 1 },
    className: { type: 'string' },
  },
  required: ['id', 'version'],
} as const;
const multilingual = {
  type: 'array',
  minItems: 1,
  items: {
    type: 'object',
    properties: { language: { type: 'string' }, string: { type: 'string' } },
    required: ['language', 'string'],
  },
} as const;

function status(reply: FastifyReply, code: number, message: string): FastifyReply {
  return reply.code(code).send({ status: code < 400 ? 'ok' : 'error', code, message });
}

const KEY_BEARER = /^Bearer (plapds_[A-Za-z0-9_-]{20,64})$/;

export const apdsRoutes: FastifyPluginAsync<ApdsRoutesOptions> = async (app, { service, guard }) => {
  const viewer = guard.requireRole('viewer');

  /** An API key with `scope`, or (when `operators`) a viewer's session. */
  const needs =
    (scope: ApdsScope, operators: boolean) => async (request: FastifyRequest, reply: FastifyReply) => {
      const header = request.headers['x-api-key'];
      const key =
        typeof header === 'string' ? header : KEY_BEARER.exec(request.headers.authorization ?? '')?.[1];
      if (key === undefined) {
        if (operators && request.headers.authorization) {
          // An operator session; its refusal (401, 403) is in the platform's own error shape.
          await viewer.call(app, request, reply, () => {});
          return reply.sent ? reply : undefined;
        }
        reply.header('www-authenticate', 'Bearer realm="parklink-apds"');
        return status(reply, 401, 'send an API key (X-API-Key or Authorization: Bearer)');
      }
      const identity = await service.authenticate(key);
      if (!identity) return status(reply, 401, 'the API key is unknown or revoked');
      if (!identity.scopes.includes(scope))
        return status(reply, 403, `this needs the ${scope} scope; the key of ${identity.consumer} lacks it`);
      request.apdsKey = identity;
    };

  // The OpenAPI document names the APDS routes' callers: a consumer key (readers also take a
  // viewer's session).
  app.addHook('onRoute', (route) => {
    const schema = (route.schema ?? {}) as { 'x-role'?: string; security?: Record<string, string[]>[] };
    schema['x-role'] = 'apds-key';
    schema.security =
      route.url === '/apds/export' || (route.method === 'GET' && !route.url.startsWith('/apds/webhooks'))
        ? [{ apdsKey: [] }, { operatorBearer: [] }]
        : [{ apdsKey: [] }];
    route.schema = schema as typeof route.schema;
  });
  app.setErrorHandler((error: Error & { validation?: unknown; statusCode?: number }, _request, reply) => {
    if (error instanceof RequestRefused)
      return status(
        reply,
        error.statusCode,
        `${error.code}: ${error.message}${error.field ? ` (${error.field})` : ''}`,
      );
    if (error.validation) return status(reply, 400, error.message);
    if (error.statusCode && error.statusCode < 500) return status(reply, error.statusCode, error.message);
    reply.log.error({ err: error }, 'APDS request failed');
    return status(reply, 500, 'internal error');
  });

  const page = (items: Json[], pageNumber = 1) => {
    const offset = (pageNumber - 1) * PAGE_SIZE;
    return {
      meta: {
        referenceInstant: Math.floor(Date.now() / 1000),
        offset,
        pageSize: PAGE_SIZE,
        total: items.length,
      },
      data: items.slice(offset, offset + PAGE_SIZE),
    };
  };

  const lists: [string, string, () => Promise<Json[]>][] = [
    [
      '/apds/rights/specs',
      'Right specifications from the tariffs: where (the meters holding it), when (charged periods), for whom, at which rate table',
      service.rightSpecifications,
    ],
    ['/apds/places', 'Places: meter areas, meters and bays with the bay sensors’ occupancy', service.places],
    [
      '/apds/rates',
      'Rate tables translated from the tariff documents (one per tariff version)',
      service.rates,
    ],
    [
      '/apds/sessions',
      'Sessions: meter payments, phone sessions with their renewals, third-party sessions',
      () => service.sessions(),
    ],
    [
      '/apds/rights/assigned',
      'Assigned rights: what each payment bought, and third-party rights',
      () => service.rights(),
    ],
    ['/apds/quotes', 'Quotes given to third-party apps', service.quotes],
    [
      '/apds/observations',
      'Observations: the bay sensors’ vehicle presences (arrival to departure) at meters with coordinates',
      service.observations,
    ],
  ];
  for (const [url, summary, read] of lists) {
    app.get<{ Querystring: { page?: number } }>(
      url,
      {
        onRequest: needs('read', true),
        schema: {
          summary,
          tags: ['apds'],
          querystring: pageQuery,
          response: { 200: listSchema, ...statusResponses(401, 403) },
        },
      },
      async (request) => page(await read(), request.query.page),
    );
    app.get<{ Params: { id: string } }>(
      `${url}/:id`,
      {
        onRequest: needs('read', true),
        schema: {
          summary: `One of ${url.slice(6)} by id`,
          tags: ['apds'],
          params: idParams,
          response: { 200: anyObject, ...statusResponses(401, 403, 404) },
        },
      },
      async (request, reply) => {
        const found = (await read()).find((item) => item.id === request.params.id);
        return found ?? status(reply, 404, `no ${url.slice(6)} ${request.params.id}`);
      },
    );
  }

  app.post<{ Body: Json }>(
    '/apds/quotes',
    {
      onRequest: needs('write', false),
      schema: {
        summary:
          'Price a stay at a bay with the tariff its meter holds (QuoteRightRequest); idempotent on id',
        tags: ['apds'],
        body: {
          ...versioned,
          properties: {
            ...versioned.properties,
            periodStart: { type: 'string', format: 'date-time' },
            periodEnd: { type: 'string', format: 'date-time' },
          },
          required: ['id', 'version', 'periodStart', 'requestTime'],
        },
        response: { 200: listSchema, ...statusResponses(400, 401, 403, 409, 422) },
      },
    },
    async (request) => page([await service.quote(request.body, request.apdsKey as ApiKeyIdentity)]),
  );

  for (const [url, kind] of [
    ['/apds/sessions', 'session'],
    ['/apds/rights/assigned', 'right'],
  ] as const) {
    const required =
      kind === 'session'
        ? ['id', 'version', 'actualStart', 'initiator', 'identifiedCredentials', 'segments']
        : ['id', 'version', 'rightHolder', 'rightSpecification'];
    app.post<{ Body: Json }>(
      url,
      {
        onRequest: needs('write', false),
        schema: {
          summary:
            kind === 'session'
              ? 'A session from a third-party app (idempotent on id and version; actualEnd ends it)'
              : 'An assigned right from a third-party app (idempotent on id and version)',
          tags: ['apds'],
          body: {
            ...versioned,
            properties: {
              ...versioned.properties,
              ...(kind === 'session'
                ? {
                    actualStart: { type: 'string', format: 'date-time' },
                    actualEnd: { type: 'string', format: 'date-time' },
                    initiator: versionedReference,
                    identifiedCredentials: {
                      type: 'array',
                      minItems: 1,
                      items: {
                        type: 'object',
                        properties: { identifier: reference, issuer: multilingual },
                        required: ['identifier', 'issuer'],
                      },
                    },
                    segments: {
                      type: 'array',
                      minItems: 1,
                      items: {
                        type: 'object',
                        properties: {
                          ...versioned.properties,
                          actualStart: { type: 'string', format: 'date-time' },
                          actualEnd: { type: 'string', format: 'date-time' },
                          assignedRight: { type: 'object' },
                          validationType: { type: 'array', minItems: 1, items: { type: 'string' } },
                        },
                        required: ['id', 'version', 'actualStart', 'assignedRight', 'validationType'],
                      },
                    },
                  }
                : {
                    rightHolder: { type: 'object' },
                    rightSpecification: versionedReference,
                    expiry: { type: 'string', format: 'date-time' },
                  }),
            },
            required,
          },
          response: statusResponses(200, 201, 400, 401, 403, 409),
        },
      },
      async (request, reply) => {
        // Free-form parts (rightHolder, assignedRight) are stored as JSON: a document nested past any
        // real one is refused here, before the database's parser runs out of stack on it.
        if (nestedDeeperThan(request.body, MAX_DOCUMENT_DEPTH))
          return status(reply, 400, `the document is nested more than ${MAX_DOCUMENT_DEPTH} levels deep`);
        const result = await service.write(kind, request.body, request.apdsKey as ApiKeyIdentity);
        const noun = kind === 'session' ? 'Session' : 'Assigned right';
        if (result.created) return status(reply, kind === 'right' ? 201 : 200, `${noun} created.`);
        return status(
          reply,
          200,
          result.changed ? `${noun} updated.` : `${noun} already held at this version.`,
        );
      },
    );
  }

  app.post<{ Body: { endpoint: string; topics: ApdsTopic[] } }>(
    '/apds/webhooks',
    {
      onRequest: needs('webhooks', false),
      schema: {
        summary:
          'Subscribe an endpoint to events (EventSubscription); deliveries are signed with the secret returned',
        tags: ['apds'],
        body: {
          type: 'object',
          properties: {
            endpoint: { type: 'string', minLength: 1, maxLength: 2048 },
            topics: {
              type: 'array',
              minItems: 1,
              uniqueItems: true,
              items: { type: 'string', enum: [...APDS_TOPICS] },
            },
            hierarchyElements: { type: 'array' },
            includeChildrenEvents: { type: 'boolean' },
          },
          required: ['endpoint', 'topics'],
        },
        response: {
          200: object({
            id: { type: 'string' },
            status: { type: 'string' },
            code: { type: 'integer' },
            message: { type: 'string' },
            secret: { type: 'string' },
          }),
          ...statusResponses(400, 401, 403),
        },
      },
    },
    async (request) => {
      const { id, secret } = await service.subscribe(request.body, request.apdsKey as ApiKeyIdentity);
      return {
        id,
        status: 'ok',
        code: 200,
        message: 'Subscription created; verify deliveries with the secret.',
        secret,
      };
    },
  );
  const webhookParams = {
    type: 'object',
    properties: { id: { type: 'string', pattern: '^[0-9]{1,12}$' } },
    required: ['id'],
  } as const;
  app.get<{ Params: { id: string } }>(
    '/apds/webhooks/:id',
    {
      onRequest: needs('webhooks', false),
      schema: {
        summary: 'One of this key’s subscriptions',
        tags: ['apds'],
        params: webhookParams,
        response: { 200: anyObject, ...statusResponses(401, 403, 404) },
      },
    },
    async (request) => service.subscription(Number(request.params.id), request.apdsKey as ApiKeyIdentity),
  );
  app.delete<{ Params: { id: string } }>(
    '/apds/webhooks/:id',
    {
      onRequest: needs('webhooks', false),
      schema: {
        summary: 'End a subscription',
        tags: ['apds'],
        params: webhookParams,
        response: statusResponses(200, 401, 403, 404),
      },
    },
    async (request, reply) => {
      await service.unsubscribe(Number(request.params.id), request.apdsKey as ApiKeyIdentity);
      return status(reply, 200, 'Subscription deleted.');
    },
  );

  app.get(
    '/apds/export',
    {
      onRequest: needs('export', true),
      schema: {
        summary: 'The whole city as one dated JSON document',
        tags: ['apds'],
        response: { 200: anyObject, ...statusResponses(401, 403) },
      },
    },
    async (_request, reply) => {
      const snapshot = await service.snapshot();
      const date = String(snapshot.snapshotTime).slice(0, 10);
      reply.header('content-disposition', `attachment; filename="parklink-apds-${date}.json"`);
      return snapshot;
    },
  );
};

/** The admins' key management under /api/ (operator sessions, audited). */
export const apdsKeyRoutes: FastifyPluginAsync<ApdsRoutesOptions> = async (app, { service, guard }) => {
  const by = (request: FastifyRequest) => request.operator?.username ?? 'unknown';
  app.post<{ Body: { consumer: string; scopes: ApdsScope[] } }>(
    '/api/apds/keys',
    {
      onRequest: guard.requireRole('admin'),
      schema: {
        summary:
          'Issue an APDS API key to a consumer with scopes (the key is shown once; only its hash is kept)',
        body: {
          type: 'object',
          properties: {
            consumer: { type: 'string', minLength: 1, maxLength: 64 },
            scopes: {
              type: 'array',
              minItems: 1,
              uniqueItems: true,
              items: { type: 'string', enum: [...APDS_SCOPES] },
            },
          },
          required: ['consumer', 'scopes'],
          additionalProperties: false,
        },
        response: {
          201: object({
            id: { type: 'integer' },
            consumer: { type: 'string' },
            scopes: { type: 'array', items: { type: 'string' } },
            key: { type: 'string' },
          }),
          ...errorResponses(400, 401, 403),
        },
      },
    },
    async (request, reply) => {
      const created = await service.createKey(request.body.consumer, request.body.scopes, by(request));
      await guard.audit(request, {
        action: 'apds.key.create',
        target: String(created.id),
        detail: { consumer: created.consumer, scopes: created.scopes },
      });
      return reply.code(201).send(created);
    },
  );
  app.get(
    '/api/apds/keys',
    {
      onRequest: guard.requireRole('admin'),
      schema: {
        summary: 'APDS API keys: consumers, scopes, who issued them, revocations (never the keys)',
        response: { 200: { type: 'array', items: anyObject } },
      },
    },
    async () => service.listKeys(),
  );
  app.delete<{ Params: { id: number } }>(
    '/api/apds/keys/:id',
    {
      onRequest: guard.requireRole('admin'),
      schema: {
        summary: 'Revoke an APDS API key',
        params: { type: 'object', properties: { id: { type: 'integer', minimum: 1 } }, required: ['id'] },
        response: {
          200: object({
            id: { type: 'integer' },
            consumer: { type: 'string' },
            scopes: { type: 'array', items: { type: 'string' } },
          }),
          ...errorResponses(400, 401, 403, 404),
        },
      },
    },
    async (request, reply) => {
      try {
        const revoked = await service.revokeKey(request.params.id);
        await guard.audit(request, {
          action: 'apds.key.revoke',
          target: String(revoked.id),
          detail: { consumer: revoked.consumer },
        });
        return revoked;
      } catch (error) {
        return sendRefusal(reply, error);
      }
    },
  );
};

/** How deep a third party's document may nest (APDS's own documents stay well under ten levels). */
const MAX_DOCUMENT_DEPTH = 32;

/** Whether `value` nests objects or arrays more than `limit` levels deep (iterative: no recursion). */
function nestedDeeperThan(value: unknown, limit: number): boolean {
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length > 0) {
    const [current, depth] = stack.pop() as [unknown, number];
    if (current === null || typeof current !== 'object') continue;
    if (depth > limit) return true;
    for (const child of Object.values(current)) stack.push([child, depth + 1]);
  }
  return false;
}
