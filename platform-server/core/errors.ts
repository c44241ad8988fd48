// The platform's one error shape for every refused or failed request:
//   { statusCode, error, code, message, field? }
// statusCode repeats the HTTP status, error is its name ("Bad Request"), code a stable kebab-case
// reason a client can branch on, message a sentence for a person, and field the request field at
// fault when there is one ("thresholds.aqi", "rounding.money").
import { STATUS_CODES } from 'node:http';
import type { FastifyReply } from 'fastify';

export interface ApiErrorBody {
  statusCode: number;
  error: string;
  code: string;
  message: string;
  field?: string;
}

export function errorBody(statusCode: number, code: string, message: string, field?: string): ApiErrorBody {
  const body: ApiErrorBody = { statusCode, error: STATUS_CODES[statusCode] ?? 'Error', code, message };
  if (field !== undefined) body.field = field;
  return body;
}

/** The platform's configuration is refused at start: the message says what to set. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** A request a room refuses: the status, stable code and field of the one error shape. */
export class RequestRefused extends Error {
  override readonly name: string = 'RequestRefused';
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

/** Sends a RequestRefused in the one error shape; any other error is thrown on to Fastify. */
export function sendRefusal(reply: FastifyReply, error: unknown): FastifyReply {
  if (error instanceof RequestRefused)
    return sendError(reply, error.statusCode, error.code, error.message, error.field);
  throw error;
}

/** Sends the error shape with `statusCode`. */
export function sendError(
  reply: FastifyReply,
  statusCode: number,
  code: string,
  message: string,
  field?: string,
): FastifyReply {
  return reply.code(statusCode).send(errorBody(statusCode, code, message, field));
}

/** The error shape as a JSON schema, for the OpenAPI document. */
export const errorSchema = {
  type: 'object',
  required: ['statusCode', 'error', 'code', 'message'],
  properties: {
    statusCode: { type: 'integer', minimum: 400, maximum: 599 },
    error: { type: 'string', description: 'the HTTP status name' },
    code: { type: 'string', description: 'a stable reason, e.g. unknown-meter, FST_ERR_VALIDATION' },
    message: { type: 'string' },
    field: { type: 'string', description: 'the request field at fault, dotted (thresholds.aqi)' },
  },
} as const;

/** `{ 400: errorSchema, 404: errorSchema, … }` for a route's response schema. */
export function errorResponses(...statuses: number[]): Record<number, typeof errorSchema> {
  return Object.fromEntries(statuses.map((s) => [s, errorSchema]));
}

/** The field a JSON-schema validation error names: the instance path, plus a missing property. */
export function validationField(
  validation: readonly { instancePath?: string; params?: Record<string, unknown> }[] | undefined,
): string | undefined {
  const first = validation?.[0];
  if (!first) return undefined;
  const path = (first.instancePath ?? '').split('/').filter(Boolean);
  const missing = first.params?.missingProperty ?? first.params?.additionalProperty;
  if (typeof missing === 'string') path.push(missing);
  return path.length > 0 ? path.join('.') : undefined;
}

/** 429 with Retry-After: a rate limit (core/rateLimiter.ts) refused `what` for `retryAfter` seconds. */
export function sendTooMany(reply: FastifyReply, retryAfter: number, what: string): FastifyReply {
  return reply
    .code(429)
    .header('retry-after', String(retryAfter))
    .send(errorBody(429, 'too-many-requests', `too many ${what}: try again in ${retryAfter} s`));
}
