// The pay-by-phone HTTP API and the driver web app. Driver routes (/api/driver/*) take a bearer
// token from register or login; the SMS and voice gateway posts incoming messages and key presses
// to /api/phone/sms and /api/phone/voice, signed with the gateway secret (gatewaySignature.ts; open
// only in demo mode). Bodies are validated by JSON schema (additional
// properties refused); bad requests get a 4xx with a JSON message; login, registration, SMS and
// voice are rate limited.
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { errorResponses, sendError, sendTooMany } from '../core/errors';
import { object, time } from '../core/schemas';
import { GatewaySignatureError, type GatewayVerifier } from './gatewaySignature';
import { plainWords } from './plainWords';
import { defaultLoginLimits, type LoginLimits, RateLimiter } from './security';
import { PhoneError, type PhoneService } from './service';

export const WEB_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'web');

const WEB_FILES: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'app.css': 'text/css; charset=utf-8',
  'icon.svg': 'image/svg+xml',
};

export interface RateLimits {
  /** Failed logins per address and per account (security.ts). */
  login: LoginLimits;
  register: RateLimiter;
  sms: RateLimiter;
  voice: RateLimiter;
}

export function defaultRateLimits(): RateLimits {
  return {
    login: defaultLoginLimits(),
    register: new RateLimiter(20, 60 * 60_000),
    sms: new RateLimiter(10, 60_000),
    voice: new RateLimiter(30, 60_000),
  };
}

// Any text up to 32 characters: the service reads it as a number (libphonenumber-js, the city's
// country) and says in plain words when it is not one.
const phone = { type: 'string', minLength: 1, maxLength: 32 } as const;
const email = {
  type: 'string',
  minLength: 3,
  maxLength: 254,
  pattern: '^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$',
} as const;
const channel = { type: 'string', enum: ['sms', 'voice', 'app'] } as const;
const option = { type: 'string', enum: ['auto', 'phone', 'app'] } as const;
const idParams = {
  type: 'object',
  properties: { id: { type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER } },
  required: ['id'],
} as const;

const registerBody = {
  type: 'object',
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 100 },
    phone,
    email,
    password: { type: 'string', minLength: 10, maxLength: 200 },
    alertChannel: channel,
    leadMinutes: { type: 'integer', minimum: 1, maximum: 240 },
    renewOption: option,
  },
  required: ['name', 'phone', 'email', 'password'],
  additionalProperties: false,
} as const;

const loginBody = {
  type: 'object',
  properties: {
    login: { type: 'string', minLength: 3, maxLength: 254 },
    password: { type: 'string', minLength: 1, maxLength: 200 },
  },
  required: ['login', 'password'],
  additionalProperties: false,
} as const;

const settingsBody = {
  type: 'object',
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 100 },
    renewalPhone: { anyOf: [phone, { type: 'string', maxLength: 0 }, { type: 'null' }] },
    renewalEmail: { anyOf: [email, { type: 'string', maxLength: 0 }, { type: 'null' }] },
    alertChannel: channel,
    leadMinutes: { type: 'integer', minimum: 1, maximum: 240 },
    renewOption: option,
    autoMinutes: { type: 'integer', minimum: 1, maximum: 1440 },
    graceMinutes: { type: 'integer', minimum: 0, maximum: 120 },
  },
  additionalProperties: false,
  minProperties: 1,
} as const;

const cardBody = {
  type: 'object',
  properties: {
    // Read in plain words by cardNumbers.ts (digits, length, Luhn check digit, scheme).
    cardNumber: { type: 'string', minLength: 1, maxLength: 40 },
    label: { type: 'string', maxLength: 40 },
    renewal: { type: 'boolean' },
  },
  required: ['cardNumber'],
  additionalProperties: false,
} as const;

const cardPatch = {
  type: 'object',
  properties: {
    paysWith: {
      anyOf: [{ type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER }, { type: 'null' }],
    },
    renewal: { type: 'boolean' },
    label: { type: 'string', maxLength: 40 },
  },
  additionalProperties: false,
  minProperties: 1,
} as const;

const extendBody = {
  type: 'object',
  properties: { minutes: { type: 'integer', minimum: 1, maximum: 1440 } },
  required: ['minutes'],
  additionalProperties: false,
} as const;

const smsBody = {
  type: 'object',
  properties: {
    from: { type: 'string', minLength: 3, maxLength: 32 },
    text: { type: 'string', maxLength: 1600 },
  },
  required: ['from', 'text'],
  additionalProperties: false,
} as const;

const voiceBody = {
  type: 'object',
  properties: {
    from: { type: 'string', minLength: 3, maxLength: 32 },
    digits: { type: 'string', maxLength: 16, pattern: '^[0-9*#]*$' },
  },
  required: ['from'],
  additionalProperties: false,
} as const;

/** Driver routes: a driver's bearer token from register or login. */
const driverOnly = { 'x-role': 'driver', security: [{ driverBearer: [] }] } as const;
/** The SMS and voice gateway's posts: signed with the gateway secret (X-ParkLink-Signature). */
const gatewayOnly = { 'x-role': 'gateway', security: [{ gatewaySignature: [] }] } as const;
const loose = { type: 'object', additionalProperties: true } as const;
const noContent = { type: 'null', description: 'no body' } as const;
const staticFile = { type: 'string', description: 'the file (HTML, JavaScript, CSS, SVG)' } as const;
const session = object({ driver: loose, token: { type: 'string' } });

declare module 'fastify' {
  interface FastifyRequest {
    driverId?: number;
    bearer?: string;
    /** The gateway posts' bytes as received, which their signature covers. */
    rawBody?: Buffer;
  }
}

export interface PhoneRoutesOptions {
  phone: PhoneService;
  limits?: RateLimits;
  /**
   * How incoming gateway posts are checked: `false` serves no gateway routes; `'open'` takes them
   * unsigned (demo mode only); otherwise each must carry the verifier's signature.
   */
  gateway: GatewayVerifier | 'open' | false;
  /**
   * The public URL the gateway posts to, up to the path (https://parklink.example.com), when the
   * platform sits behind a proxy that changes it; the request's own scheme and host otherwise.
   */
  gatewayBaseUrl?: string;
}

/** The drivers' API, the SMS and voice gateway's posts and the driver web app. */
export const phoneRoutes: FastifyPluginAsync<PhoneRoutesOptions> = async (app, options) => {
  const { phone } = options;
  const limits = options.limits ?? defaultRateLimits();
  app.setSchemaErrorFormatter(plainWords());
  // A PhoneError becomes its 4xx through the platform's error handler (statusCode, code, message).
  const auth = async (request: FastifyRequest, reply: FastifyReply) => {
    const header = request.headers.authorization ?? '';
    const match = /^Bearer ([A-Za-z0-9_-]{20,100})$/.exec(header);
    const driverId = match ? await phone.authenticate(match[1]) : undefined;
    if (!match || driverId === undefined) {
      return sendError(reply, 401, 'unauthenticated', 'log in first (Authorization: Bearer <token>)');
    }
    request.driverId = driverId;
    request.bearer = match[1];
  };
  const verifier = options.gateway;
  const gateway = async (request: FastifyRequest, reply: FastifyReply) => {
    if (verifier === 'open' || verifier === false) return;
    const base = options.gatewayBaseUrl?.replace(/\/+$/, '') ?? `${request.protocol}://${request.host}`;
    try {
      verifier.verify(`${base}${request.url}`, request.rawBody ?? Buffer.alloc(0), request.headers);
    } catch (error) {
      if (!(error instanceof GatewaySignatureError)) throw error;
      return sendError(reply, 401, error.fault, error.message);
    }
  };

  app.post<{ Body: { name: string; phone: string; email: string; password: string } }>(
    '/api/driver/register',
    {
      schema: {
        summary: 'Register a driver',
        body: registerBody,
        response: { 201: session, ...errorResponses(400, 409, 429) },
      },
    },
    async (request, reply) => {
      const wait = limits.register.hit(`ip:${request.ip}`);
      if (wait) return sendTooMany(reply, wait, 'registrations');
      const result = await phone.register(request.body);
      return reply.code(201).send(result);
    },
  );

  app.post<{ Body: { login: string; password: string } }>(
    '/api/driver/login',
    {
      schema: {
        summary: 'Log a driver in (phone, e-mail or account number)',
        body: loginBody,
        response: { 200: session, ...errorResponses(400, 401, 429) },
      },
      schemaErrorFormatter: plainWords({ password: 'Enter your password.' }),
    },
    // Only failures count (per address and per account); a 429 comes as a PhoneError with retryAfter.
    async (request) =>
      phone.login(request.body.login, request.body.password, { address: request.ip, limits: limits.login }),
  );

  app.post(
    '/api/driver/logout',
    {
      preHandler: auth,
      schema: {
        ...driverOnly,
        summary: 'Log out: this token is revoked',
        response: { 204: noContent, ...errorResponses(401) },
      },
    },
    async (request, reply) => {
      await phone.logout(request.bearer!);
      return reply.code(204).send();
    },
  );

  app.get(
    '/api/driver/me',
    {
      preHandler: auth,
      schema: {
        ...driverOnly,
        summary: "The driver's account and the platform's clock",
        response: { 200: object({ driver: loose, serverNow: time }), ...errorResponses(401) },
      },
    },
    async (request) => ({
      driver: await phone.driver(request.driverId!),
      serverNow: new Date(phone.clock.now()).toISOString(),
    }),
  );

  app.patch<{ Body: Record<string, never> }>(
    '/api/driver/me',
    {
      preHandler: auth,
      schema: {
        ...driverOnly,
        summary: "Change the driver's settings",
        body: settingsBody,
        response: { 200: object({ driver: loose }), ...errorResponses(400, 401) },
      },
    },
    async (request) => ({ driver: await phone.updateSettings(request.driverId!, request.body) }),
  );

  app.get(
    '/api/driver/cards',
    {
      preHandler: auth,
      schema: {
        ...driverOnly,
        summary: "The driver's cards",
        response: { 200: object({ cards: { type: 'array', items: loose } }), ...errorResponses(401) },
      },
    },
    async (request) => ({ cards: await phone.cards(request.driverId!) }),
  );

  app.post<{ Body: { cardNumber: string; label?: string; renewal?: boolean } }>(
    '/api/driver/cards',
    {
      preHandler: auth,
      schema: {
        ...driverOnly,
        summary: 'Register a card (kept as a token and its last four digits)',
        body: cardBody,
        response: { 201: object({ card: loose }), ...errorResponses(400, 401, 409) },
      },
    },
    async (request, reply) =>
      reply.code(201).send({ card: await phone.addCard(request.driverId!, request.body) }),
  );

  app.patch<{
    Params: { id: number };
    Body: { paysWith?: number | null; renewal?: boolean; label?: string };
  }>(
    '/api/driver/cards/:id',
    {
      preHandler: auth,
      schema: {
        ...driverOnly,
        summary: 'Link a card for renewals, or relabel it',
        params: idParams,
        body: cardPatch,
        response: { 200: object({ card: loose }), ...errorResponses(400, 401, 404) },
      },
    },
    async (request) => ({ card: await phone.updateCard(request.driverId!, request.params.id, request.body) }),
  );

  app.delete<{ Params: { id: number } }>(
    '/api/driver/cards/:id',
    {
      preHandler: auth,
      schema: {
        ...driverOnly,
        summary: 'Remove a card',
        params: idParams,
        response: { 204: noContent, ...errorResponses(400, 401, 404) },
      },
    },
    async (request, reply) => {
      await phone.removeCard(request.driverId!, request.params.id);
      return reply.code(204).send();
    },
  );

  app.get<{ Querystring: { state?: 'active' | 'all' } }>(
    '/api/driver/sessions',
    {
      preHandler: auth,
      schema: {
        ...driverOnly,
        summary: "The driver's parking sessions, newest first",
        response: {
          200: object({ sessions: { type: 'array', items: loose }, serverNow: time }),
          ...errorResponses(400, 401),
        },
        querystring: {
          type: 'object',
          properties: { state: { type: 'string', enum: ['active', 'all'] } },
          additionalProperties: false,
        },
      },
    },
    async (request) => ({
      sessions: await phone.sessions(request.driverId!, request.query.state ?? 'all'),
      serverNow: new Date(phone.clock.now()).toISOString(),
    }),
  );

  const parkingQuote = object({
    meterId: { type: 'integer' },
    meterName: { type: 'string' },
    bayId: { type: 'integer' },
    minutes: { type: 'integer' },
    amount: { type: 'integer' },
    currency: { type: 'integer' },
    choices: { type: 'array', items: loose },
    maxMinutes: { type: 'integer' },
  });
  const code = { type: 'string', minLength: 1, maxLength: 20 } as const;
  const parkingMinutes = { type: 'integer', minimum: 1, maximum: 1440 } as const;

  app.post<{ Body: { code: string; minutes?: number } }>(
    '/api/driver/parking/quote',
    {
      preHandler: auth,
      schema: {
        ...driverOnly,
        summary: 'The price of parking at a bay, by the code printed on the meter, and the choices there',
        body: {
          type: 'object',
          properties: { code, minutes: parkingMinutes },
          required: ['code'],
          additionalProperties: false,
        },
        response: { 200: parkingQuote, ...errorResponses(400, 401, 404, 409, 422) },
      },
    },
    async (request) => phone.quoteStart(request.body),
  );

  app.post<{ Body: { code: string; plate: string; minutes: number; amount: number; cardId?: number } }>(
    '/api/driver/parking',
    {
      preHandler: auth,
      schema: {
        ...driverOnly,
        summary: 'Start parking at a bay at the price shown: paid, and sent to the meter',
        body: {
          type: 'object',
          properties: {
            code,
            plate: { type: 'string', minLength: 1, maxLength: 20 },
            minutes: parkingMinutes,
            amount: { type: 'integer', minimum: 0, maximum: 10_000_000 },
            cardId: { type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER },
          },
          required: ['code', 'plate', 'minutes', 'amount'],
          additionalProperties: false,
        },
        response: {
          202: object({ sessionId: { type: 'integer' }, renewal: loose }),
          ...errorResponses(400, 401, 402, 404, 409, 422, 503),
        },
      },
    },
    async (request, reply) => reply.code(202).send(await phone.startParking(request.driverId!, request.body)),
  );

  app.get<{ Params: { id: number } }>(
    '/api/driver/sessions/:id/extensions',
    {
      preHandler: auth,
      schema: {
        ...driverOnly,
        summary: "The extensions this session can be given now, priced by its meter's tariff",
        params: idParams,
        response: {
          200: object({
            choices: {
              type: 'array',
              items: object({
                minutes: { type: 'integer' },
                amount: { type: 'integer' },
                currency: { type: 'integer' },
              }),
            },
            maxMinutes: { type: 'integer' },
          }),
          ...errorResponses(401, 404),
        },
      },
    },
    async (request) => phone.extensionChoices(request.driverId!, request.params.id),
  );

  app.post<{ Params: { id: number }; Body: { minutes: number } }>(
    '/api/driver/sessions/:id/extend',
    {
      preHandler: auth,
      schema: {
        ...driverOnly,
        summary: 'Extend a session: priced, paid and sent to the meter',
        params: idParams,
        body: extendBody,
        response: { 202: object({ renewal: loose }), ...errorResponses(400, 401, 402, 404, 409, 422, 503) },
      },
    },
    async (request, reply) =>
      reply.code(202).send({
        renewal: await phone.renew(request.driverId!, {
          sessionId: request.params.id,
          minutes: request.body.minutes,
          channel: 'app',
        }),
      }),
  );

  app.get(
    '/api/driver/renewals',
    {
      preHandler: auth,
      schema: {
        ...driverOnly,
        summary: "The driver's renewals",
        response: { 200: object({ renewals: { type: 'array', items: loose } }), ...errorResponses(401) },
      },
    },
    async (request) => ({ renewals: await phone.renewals(request.driverId!) }),
  );

  app.get<{ Params: { id: string } }>(
    '/api/driver/renewals/:id',
    {
      preHandler: auth,
      schema: {
        ...driverOnly,
        summary: 'One renewal of the driver',
        response: { 200: object({ renewal: loose }), ...errorResponses(400, 401, 404) },
        params: {
          type: 'object',
          properties: { id: { type: 'string', pattern: '^[0-9a-z]{1,14}$' } },
          required: ['id'],
        },
      },
    },
    async (request) => ({ renewal: await phone.renewal(request.driverId!, request.params.id) }),
  );

  app.get(
    '/api/driver/messages',
    {
      preHandler: auth,
      schema: {
        ...driverOnly,
        summary: 'The messages sent to the driver, newest first',
        response: { 200: object({ messages: { type: 'array', items: loose } }), ...errorResponses(401) },
      },
    },
    async (request) => ({ messages: await phone.messages(request.driverId!) }),
  );

  // The gateway's routes in their own scope: there JSON bodies are kept as received (rawBody) for
  // the signature, then parsed by Fastify's own JSON parser.
  if (verifier !== false) {
    await app.register(async (gw) => {
      const parseJson = gw.getDefaultJsonParser('error', 'error');
      gw.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
        request.rawBody = body as Buffer;
        parseJson(request, (body as Buffer).toString('utf8'), done);
      });
      // The SMS gateway: an incoming text. The reply is returned and queued in the outbox.
      gw.post<{ Body: { from: string; text: string } }>(
        '/api/phone/sms',
        {
          preValidation: gateway,
          schema: {
            ...gatewayOnly,
            summary: 'An incoming SMS from the gateway; returns the reply',
            body: smsBody,
            response: { 200: object({ reply: { type: 'string' } }), ...errorResponses(400, 401, 429) },
          },
        },
        async (request, reply) => {
          const wait = limits.sms.hit(request.body.from.replace(/[^0-9]/g, ''));
          if (wait) return sendTooMany(reply, wait, 'messages from this number');
          return { reply: await phone.handleSms(request.body.from, request.body.text) };
        },
      );

      // The voice gateway (IVRS): the call is answered with digits "" and each key press posts them.
      gw.post<{ Body: { from: string; digits?: string } }>(
        '/api/phone/voice',
        {
          preValidation: gateway,
          schema: {
            ...gatewayOnly,
            summary: 'A key press on a call from the voice gateway; returns what to say',
            body: voiceBody,
            response: {
              200: object({ say: { type: 'string' }, gather: { type: 'boolean' } }),
              ...errorResponses(400, 401, 429),
            },
          },
        },
        async (request, reply) => {
          const wait = limits.voice.hit(request.body.from.replace(/[^0-9]/g, ''));
          if (wait) return sendTooMany(reply, wait, 'key presses from this number');
          return phone.handleVoice(request.body.from, request.body.digits ?? '');
        },
      );
    });
  }

  // The driver web app: a few static files read once.
  const files = new Map<string, Buffer>();
  for (const name of Object.keys(WEB_FILES)) files.set(name, await readFile(join(WEB_DIR, name)));
  app.get(
    '/app',
    { schema: { summary: 'The driver web app (redirect)', response: { 302: noContent } } },
    async (_request, reply) => reply.redirect('/app/'),
  );
  app.get<{ Params: { file?: string } }>(
    '/app/:file',
    {
      schema: {
        summary: "The driver web app's files",
        params: { type: 'object', properties: { file: { type: 'string' } } },
        response: { 200: staticFile, ...errorResponses(404) },
      },
    },
    async (request, reply) => {
      const name = request.params.file || 'index.html';
      const body = files.get(name);
      if (!body) throw new PhoneError(404, 'not-found', `no file ${name} in the web app`);
      return reply
        .header('content-type', WEB_FILES[name])
        .header('cache-control', 'no-cache')
        .header('x-content-type-options', 'nosniff')
        .header(
          'content-security-policy',
          "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
        )
        .send(body);
    },
  );
  app.get(
    '/app/',
    { schema: { summary: 'The driver web app', response: { 200: staticFile } } },
    async (_request, reply) =>
      reply
        .header('content-type', WEB_FILES['index.html'])
        .header('cache-control', 'no-cache')
        .header(
          'content-security-policy',
          "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
        )
        .send(files.get('index.html')),
  );
};
