// The operator accounts' own routes:
//
//   POST  /api/operators/login      { username, password, code?, recoveryCode? } → 200 { token, expiresAt, operator, mfa }
//   POST  /api/operators/me/totp    (viewer; supervisors and admins)     → 201 { secret, uri } (pending)
//   POST  /api/operators/me/totp/confirm   (viewer) { code }             → { recoveryCodes } (shown once)
//   POST  /api/operators/me/recovery-codes (viewer, MFA session)         → { recoveryCodes } (the old ones void)
//   DELETE /api/operators/:username/totp   (admin)                       → 204, the second factor removed
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
    mfaEnrolled: { type: 'boolean', description: 'an authenticator is set up' },
  });
  const identity = object({ username: { type: 'string' }, displayName: { type: 'string' }, role });

  const code = { type: 'string', pattern: '^[0-9]{6}$', description: 'the authenticator app code' } as const;
  const recoveryCodes = object({
    recoveryCodes: {
      type: 'array',
      items: { type: 'string' },
      description: 'each good once; shown only now',
    },
  });

  app.post<{ Body: { username: string; password: string; code?: string; recoveryCode?: string } }>(
    '/api/operators/login',
    {
      schema: {
        body: {
          type: 'object',
          properties: {
            username: { type: 'string', minLength: 1, maxLength: 64 },
            password: { type: 'string', minLength: 1, maxLength: PASSWORD_MAX },
            code,
            recoveryCode: { type: 'string', minLength: 1, maxLength: 32 },
          },
          required: ['username', 'password'],
          additionalProperties: false,
        },
        summary: 'Log in: a bearer token for a shift',
        response: {
          200: object({
            token: { type: 'string' },
            expiresAt: time,
            operator: identity,
            mfa: { type: 'boolean', description: 'the session was opened with the second factor' },
          }),
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
        const { token, expiresAt, operator, mfa } = await operators.login(
          request.body.username,
          request.body.password,
          { ip: request.ip },
          { code: request.body.code, recoveryCode: request.body.recoveryCode },
        );
        return { token, expiresAt: expiresAt.toISOString(), operator, mfa };
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
        response: {
          200: object({
            operator: identity,
            expiresAt: time,
            mfa: object({
              enrolled: { type: 'boolean' },
              session: { type: 'boolean', description: 'this session was opened with the second factor' },
              recoveryCodesLeft: { type: 'integer' },
              required: {
                type: 'boolean',
                description: 'the platform requires this role to set up the second factor',
              },
            }),
          }),
          ...errorResponses(401),
        },
      },
    },
    async (request) => {
      const o = request.operator!;
      return {
        operator: { username: o.username, displayName: o.displayName, role: o.role },
        expiresAt: o.sessionExpiresAt.toISOString(),
        mfa: {
          enrolled: o.mfaEnrolled,
          session: o.mfa,
          recoveryCodesLeft: o.mfaEnrolled ? await operators.recoveryCodesLeft(o.id) : 0,
          required: operators.mfaRequiredFor(o.role),
        },
      };
    },
  );

  app.post(
    '/api/operators/me/totp',
    {
      onRequest: operators.requireRole('viewer'),
      schema: {
        summary:
          'Start setting up an authenticator (supervisors and admins): a new secret, pending until confirmed',
        response: {
          201: object({
            secret: { type: 'string', description: 'base32, for typing into the app' },
            uri: { type: 'string', description: 'otpauth:// URI, for a QR code' },
          }),
          ...errorResponses(401, 403, 409),
        },
      },
    },
    async (request, reply) => {
      try {
        const started = await operators.startTotp(request.operator!);
        request.operatorAudited = true;
        return reply.code(201).send(started);
      } catch (error) {
        return send(reply, error);
      }
    },
  );

  app.post<{ Body: { code: string } }>(
    '/api/operators/me/totp/confirm',
    {
      onRequest: operators.requireRole('viewer'),
      schema: {
        summary: "Confirm the authenticator with its first code: it is on, the operator's other sessions end",
        body: { type: 'object', properties: { code }, required: ['code'], additionalProperties: false },
        response: { 200: recoveryCodes, ...errorResponses(400, 401, 409) },
      },
    },
    async (request, reply) => {
      try {
        const confirmed = await operators.confirmTotp(request.operator!, request.body.code);
        request.operatorAudited = true;
        return confirmed;
      } catch (error) {
        return send(reply, error);
      }
    },
  );

  app.post(
    '/api/operators/me/recovery-codes',
    {
      onRequest: operators.requireRole('viewer'),
      schema: {
        summary:
          'New recovery codes (the old ones stop working); needs a session opened with the second factor',
        response: { 200: recoveryCodes, ...errorResponses(401, 403) },
      },
    },
    async (request, reply) => {
      try {
        const renewed = await operators.renewRecoveryCodes(request.operator!);
        request.operatorAudited = true;
        return renewed;
      } catch (error) {
        return send(reply, error);
      }
    },
  );

  app.delete<{ Params: { username: string } }>(
    '/api/operators/:username/totp',
    {
      onRequest: operators.requireRole('admin'),
      schema: {
        summary:
          "Remove an operator's second factor (a lost phone): their sessions end, they set it up again",
        params: {
          type: 'object',
          properties: { username: { type: 'string', pattern: USERNAME } },
          required: ['username'],
        },
        response: { 204: { type: 'null', description: 'removed' }, ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (request, reply) => {
      try {
        await operators.resetTotp(request.params.username, request.operator!);
        request.operatorAudited = true;
        return reply.code(204).send();
      } catch (error) {
        return send(reply, error);
      }
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
    Querystring: {
      operator?: string;
      meterId?: number;
      action?: string;
      since?: string;
      until?: string;
      limit?: number;
      before?: number;
    };
  }>(
    '/api/operators/audit',
    {
      onRequest: operators.requireRole('supervisor'),
      schema: {
        querystring: {
          type: 'object',
          properties: {
            operator: { type: 'string', minLength: 1, maxLength: 64 },
            meterId: { type: 'integer', minimum: 0, maximum: 0xffffffff },
            action: { type: 'string', minLength: 1, maxLength: 64 },
            since: { type: 'string', format: 'date-time', description: 'entries at or after' },
            until: { type: 'string', format: 'date-time', description: 'entries before' },
            limit: { type: 'integer', minimum: 1, maximum: 500, default: 100 },
            before: { type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER },
          },
          additionalProperties: false,
        },
        summary: 'The audit log (supervisors and admins), newest first; `before` pages back',
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
