// The operator accounts' own routes:
//
//   POST  /api/operators/login      { username, password }                → 200 { token, expiresAt, operator }
//   POST  /api/operators/logout     (viewer)                              → 204, the token revoked
//   GET   /api/operators/me         (viewer)                              → { operator, expiresAt }
//   GET   /api/operators            (admin)                               → { operators }
//   POST  /api/operators            (admin) { username, role, password, displayName? } → 201 { operator }
//   PATCH /api/operators/:username  (admin) { displayName?, role?, password?, disabled?, unlock? }
//   GET   /api/operators/audit      (admin) ?operator&meterId&action&limit&before
import type { FastifyInstance, FastifyReply } from 'fastify';
import { errorResponses } from '../core/errors';
import { nullableTime, object, time } from '../core/schemas';
import { PASSWORD_MAX, PASSWORD_MIN } from './passwords';
import { deny, OperatorError, type Operators, ROLES, type Role, USERNAME } from './service';

/** Registers the routes on `app` (Operators.install calls it once its route check is in place). */
export function operatorRoutes(app: FastifyInstance, operators: Operators): void {
  const send = (reply: FastifyReply, error: unknown) => {
    if (!(error instanceof OperatorError)) throw error;
    if (error.retryAfter !== undefined) reply.header('retry-after', String(error.retryAfter));
    return deny(reply, error.statusCode, error.code, error.message);
  };
  const password = { type: 'string', minLength: PASSWORD_MIN, maxLength: PASSWORD_MAX } as const;
  const role = { type: 'string', enum: ROLES } as const;
  const displayName = { type: 'string', minLength: 1, maxLength: 100 } as const;
  const operatorView = object({
    username: { type: 'string' },
    displayName: { type: 'string' },
    role,
    createdAt: time,
    disabledAt: nullableTime,
    lockedUntil: nullableTime,
  });
  const identity = object({ username: { type: 'string' }, displayName: { type: 'string' }, role });

  app.post<{ Body: { username: string; password: string } }>(
    '/api/operators/login',
    {
      schema: {
        body: {
          type: 'object',
          properties: {
            username: { type: 'string', minLength: 1, maxLength: 64 },
            password: { type: 'string', minLength: 1, maxLength: PASSWORD_MAX },
          },
          required: ['username', 'password'],
          additionalProperties: false,
        },
        summary: 'Log in: a bearer token for a shift',
        response: {
          200: object({ token: { type: 'string' }, expiresAt: time, operator: identity }),
          ...errorResponses(400, 401, 403, 429),
        },
      },
    },
    async (request, reply) => {
      const wait = operators.loginWait(request.ip);
      if (wait > 0) {
        return send(
          reply,
          new OperatorError(429, 'too-many-logins', 'too many login attempts from this address', wait),
        );
      }
      try {
        const { token, expiresAt, operator } = await operators.login(
          request.body.username,
          request.body.password,
          {
            ip: request.ip,
          },
        );
        return { token, expiresAt: expiresAt.toISOString(), operator };
      } catch (error) {
        if (error instanceof OperatorError && error.statusCode === 401)
          reply.header('www-authenticate', 'Bearer realm="parklink"');
        return send(reply, error);
      }
    },
  );

  app.post(
    '/api/operators/logout',
    {
      onRequest: operators.requireRole('viewer'),
      schema: {
        summary: "Log out: this request's token is revoked",
        response: { 204: { type: 'null', description: 'logged out' }, ...errorResponses(401) },
      },
    },
    async (request, reply) => {
      await operators.revoke(request.operator!);
      request.operatorAudited = true;
      return reply.code(204).send();
    },
  );

  app.get(
    '/api/operators/me',
    {
      onRequest: operators.requireRole('viewer'),
      schema: {
        summary: 'Who this token belongs to, and until when',
        response: { 200: object({ operator: identity, expiresAt: time }), ...errorResponses(401) },
      },
    },
    async (request) => {
      const o = request.operator!;
      return {
        operator: { username: o.username, displayName: o.displayName, role: o.role },
        expiresAt: o.sessionExpiresAt.toISOString(),
      };
    },
  );

  app.get(
    '/api/operators',
    {
      onRequest: operators.requireRole('admin'),
      schema: {
        summary: 'Every operator account',
        response: {
          200: object({ operators: { type: 'array', items: operatorView } }),
          ...errorResponses(401, 403),
        },
      },
    },
    async () => ({ operators: await operators.list() }),
  );

  app.post<{ Body: { username: string; role: Role; password: string; displayName?: string } }>(
    '/api/operators',
    {
      onRequest: operators.requireRole('admin'),
      schema: {
        body: {
          type: 'object',
          properties: { username: { type: 'string', pattern: USERNAME }, role, password, displayName },
          required: ['username', 'role', 'password'],
          additionalProperties: false,
        },
        summary: 'Create an operator account',
        response: { 201: object({ operator: operatorView }), ...errorResponses(400, 401, 403, 409) },
      },
    },
    async (request, reply) => {
      try {
        const operator = await operators.create(request.body, request.operator!);
        request.operatorAudited = true;
        return reply.code(201).send({ operator });
      } catch (error) {
        return send(reply, error);
      }
    },
  );

  app.patch<{
    Params: { username: string };
    Body: { displayName?: string; role?: Role; password?: string; disabled?: boolean; unlock?: boolean };
  }>(
    '/api/operators/:username',
    {
      onRequest: operators.requireRole('admin'),
      schema: {
        params: {
          type: 'object',
          properties: { username: { type: 'string', pattern: USERNAME } },
          required: ['username'],
        },
        body: {
          type: 'object',
          properties: {
            displayName,
            role,
            password,
            disabled: { type: 'boolean' },
            unlock: { type: 'boolean', const: true },
          },
          additionalProperties: false,
          minProperties: 1,
        },
        summary: 'Change an operator: name, role, password, disabled, unlocked',
        response: { 200: object({ operator: operatorView }), ...errorResponses(400, 401, 403, 404, 409) },
      },
    },
    async (request, reply) => {
      try {
        const operator = await operators.update(request.params.username, request.body, request.operator!);
        request.operatorAudited = true;
        return { operator };
      } catch (error) {
        return send(reply, error);
      }
    },
  );

  app.get<{
    Querystring: { operator?: string; meterId?: number; action?: string; limit?: number; before?: number };
  }>(
    '/api/operators/audit',
    {
      onRequest: operators.requireRole('admin'),
      schema: {
        querystring: {
          type: 'object',
          properties: {
            operator: { type: 'string', minLength: 1, maxLength: 64 },
            meterId: { type: 'integer', minimum: 0, maximum: 0xffffffff },
            action: { type: 'string', minLength: 1, maxLength: 64 },
            limit: { type: 'integer', minimum: 1, maximum: 500, default: 100 },
            before: { type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER },
          },
          additionalProperties: false,
        },
        summary: 'The audit log, newest first; `before` pages back',
        response: {
          200: object({
            entries: {
              type: 'array',
              items: object({
                id: { type: 'integer' },
                at: time,
                username: { type: 'string' },
                action: { type: 'string' },
                meterId: { type: 'integer', nullable: true },
                target: { type: 'string', nullable: true },
                detail: { type: 'object', additionalProperties: true },
              }),
            },
            nextBefore: { type: 'integer', nullable: true },
          }),
          ...errorResponses(400, 401, 403),
        },
      },
    },
    async (request) => operators.auditLog(request.query),
  );
}
