// Schema-driven HTTP fuzzing of the platform's API, for the tests and `npm run bench -- http-fuzz`.
// The routes come from the OpenAPI document (/api/openapi.json, generated from every registered
// route's own JSON schemas); fast-check generates each request from the route's schemas: values of
// the right shape, and edges (NUL bytes, 1e22, negative and non-integer numbers, very long strings,
// wrong types, missing and extra fields, bad path parameters, bad JSON, wrong content types).
// Requests go through fastify's inject(); every answer is checked: no 5xx, no 2xx without
// credentials on a route that needs them, and every refusal in the error shape of core/errors.ts.
import type { FastifyInstance } from 'fastify';
import fc from 'fast-check';
import { DATABASE_REFUSED } from '../../platform-server/core/http';
import { RateLimiter } from '../../platform-server/core/rateLimiter';
import { LoginLimits } from '../../platform-server/phone/security';
import { SimulatedSmsSender } from '../../platform-server/fleet/callIn';
import { type Backend, operatorLogin, randomMeterId, startPlatform } from './platform';
import { PaymentSimulator } from '../../platform-server/payments/simulator';
import { ed25519 } from '@noble/curves/ed25519';

type Schema = {
  type?: string | string[];
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: boolean | Schema;
  items?: Schema;
  minItems?: number;
  maxItems?: number;
  enum?: unknown[];
  const?: unknown;
  anyOf?: Schema[];
  oneOf?: Schema[];
  allOf?: Schema[];
  nullable?: boolean;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  format?: string;
  minProperties?: number;
};

export interface FuzzOperation {
  method: string;
  /** The OpenAPI path, `/api/meters/{id}/status`. */
  path: string;
  /** `x-role` of the route: public, driver, gateway or an operator role. */
  role: string;
  parameters: { in: 'path' | 'query' | 'header'; name: string; required: boolean; schema: Schema }[];
  body?: Schema;
}

interface OpenApiDocument {
  paths: Record<
    string,
    Record<
      string,
      {
        'x-role'?: string;
        parameters?: { in: string; name: string; required?: boolean; schema?: Schema }[];
        requestBody?: { content?: Record<string, { schema?: Schema }> };
        responses?: Record<string, { content?: Record<string, unknown> }>;
      }
    >
  >;
}

const METHODS = ['get', 'post', 'put', 'patch', 'delete'];

/**
 * Every operation of the OpenAPI document but event streams (they answer for as long as the
 * client stays, so an injected request would never end; their own tests check their refusals).
 */
export function operationsOf(doc: OpenApiDocument): FuzzOperation[] {
  const operations: FuzzOperation[] = [];
  for (const [path, methods] of Object.entries(doc.paths))
    for (const [method, op] of Object.entries(methods)) {
      if (!METHODS.includes(method)) continue;
      if (op.responses?.['200']?.content?.['text/event-stream']) continue;
      operations.push({
        method: method.toUpperCase(),
        path,
        role: op['x-role'] ?? 'public',
        parameters: (op.parameters ?? [])
          .filter((p) => p.in === 'path' || p.in === 'query')
          .map((p) => ({
            in: p.in as 'path' | 'query',
            name: p.name,
            required: p.required === true || p.in === 'path',
            schema: p.schema ?? {},
          })),
        body: op.requestBody?.content?.['application/json']?.schema,
      });
    }
  return operations;
}

// ---- Values ----------------------------------------------------------------------------------------

/** Numbers at and past every limit a schema might forget. */
const NUMBER_EDGES: unknown[] = [
  1e22,
  -1e22,
  -1,
  0,
  1.5,
  -0.5,
  2 ** 31,
  2 ** 32,
  2 ** 53,
  2 ** 63,
  2 ** 64,
  Number.MAX_VALUE,
  -Number.MAX_VALUE,
  Number.MIN_VALUE,
  RAW('1e400'),
  RAW('-1e400'),
  RAW('1E22'),
  RAW('-0'),
  RAW('12345678901234567890123456789'),
];
const LONG = 'x'.repeat(100_000);
const STRING_EDGES: unknown[] = [
  '\u0000',
  'a\u0000b',
  '\u0000'.repeat(64),
  '',
  ' ',
  LONG,
  `${'9'.repeat(400)}`,
  '\ud800',
  '\udfff\ud800',
  '💳🅿️',
  "'; DROP TABLE drivers; --",
  '%00',
  '../../../etc/passwd',
  '1e22',
  'NaN',
  '-1',
  'null',
  '\r\n\t\u2028\u2029\ufeff',
];
const WRONG_TYPES: unknown[] = [null, true, false, 0, 1, -1, 1e22, '', 'x', [], [1, 2], {}, { a: 1 }, [null]];
/** Query and path values are text: numbers written out of range or as words. */
const TEXT_EDGES: string[] = [
  '1e22',
  '-1e22',
  '1E400',
  'NaN',
  'Infinity',
  '-Infinity',
  '-1',
  '0',
  '-0',
  '1.5',
  '0x10',
  '9'.repeat(40),
  '4294967296',
  '9007199254740993',
  '',
  ' ',
  '\u0000',
  '1\u0000',
  'true',
  'null',
  '[]',
  '{}',
  'x'.repeat(5000),
  '%',
  '../x',
];

/** A placeholder for number text JSON.stringify cannot write (1e400, -0): swapped in after. */
function RAW(text: string): string {
  return `@@raw:${text}@@`;
}
const RAW_RE = /"@@raw:([^@]*)@@"/g;

function types(schema: Schema): string[] {
  if (schema.type === undefined) return [];
  return [schema.type].flat();
}

/** Values of the schema's own shape (valid as far as the generator can tell). */
function valid(schema: Schema, depth = 0): fc.Arbitrary<unknown> {
  if (schema.const !== undefined) return fc.constant(schema.const);
  if (schema.enum) return fc.constantFrom(...schema.enum);
  const alternatives = schema.anyOf ?? schema.oneOf;
  if (alternatives) return fc.oneof(...alternatives.map((s) => valid(s, depth)));
  if (schema.allOf) return valid(Object.assign({}, ...schema.allOf), depth);
  const base = validOfType(schema, types(schema)[0], depth);
  return schema.nullable ? fc.option(base, { nil: null, freq: 5 }) : base;
}

function validOfType(schema: Schema, type: string | undefined, depth: number): fc.Arbitrary<unknown> {
  switch (type) {
    case 'string': {
      if (schema.format === 'date-time') return fc.date({ noInvalidDate: true }).map((d) => d.toISOString());
      const minLength = schema.minLength ?? 0;
      const maxLength = Math.min(schema.maxLength ?? 40, Math.max(minLength, 40));
      if (schema.pattern) {
        const re = new RegExp(schema.pattern);
        return fc
          .stringMatching(re)
          .filter((s) => s.length >= minLength && s.length <= (schema.maxLength ?? Number.POSITIVE_INFINITY));
      }
      return fc.string({ minLength, maxLength });
    }
    case 'integer': {
      const min = Math.max(schema.minimum ?? -(2 ** 31), Number.MIN_SAFE_INTEGER);
      const max = Math.min(schema.maximum ?? 2 ** 31, Number.MAX_SAFE_INTEGER);
      return fc.oneof(fc.integer({ min, max: Math.min(max, min + 1000) }), fc.integer({ min, max }));
    }
    case 'number':
      return fc.double({
        min: schema.minimum ?? -1e9,
        max: schema.maximum ?? 1e9,
        noNaN: true,
        noDefaultInfinity: true,
      });
    case 'boolean':
      return fc.boolean();
    case 'null':
      return fc.constant(null);
    case 'array':
      return fc.array(schema.items ? valid(schema.items, depth + 1) : fc.jsonValue({ maxDepth: 1 }), {
        minLength: schema.minItems ?? 0,
        maxLength: Math.max(schema.minItems ?? 0, Math.min(schema.maxItems ?? 4, 4)),
      });
    case 'object': {
      const properties = schema.properties ?? {};
      const required = new Set(schema.required ?? []);
      const keys = Object.keys(properties);
      if (keys.length === 0 || depth > 4)
        return fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 1 }), { maxKeys: 3 });
      const record: Record<string, fc.Arbitrary<unknown>> = {};
      for (const key of keys) record[key] = valid(properties[key], depth + 1);
      const optional = keys.filter((k) => !required.has(k));
      // minProperties: that many optional properties are always there when none is required.
      const always = [...required].filter((k) => k in properties);
      if (always.length < (schema.minProperties ?? 0))
        always.push(...optional.slice(0, (schema.minProperties ?? 0) - always.length));
      return fc.record(record, { requiredKeys: always });
    }
    default:
      return fc.jsonValue({ maxDepth: 2 });
  }
}

/** A value of the schema's shape with one edge in it, or of another shape altogether. */
function edged(schema: Schema, depth = 0): fc.Arbitrary<unknown> {
  const wrong = fc.constantFrom(...WRONG_TYPES);
  const alternatives = schema.anyOf ?? schema.oneOf;
  if (alternatives) return fc.oneof(...alternatives.map((s) => edged(s, depth)), wrong);
  const type = types(schema)[0] ?? (schema.properties ? 'object' : undefined);
  switch (type) {
    case 'string':
      return fc.oneof(
        fc.constantFrom(...STRING_EDGES),
        // A value of the right shape with a NUL byte inside: past a pattern that allows anything.
        fc.tuple(valid(schema), fc.nat()).map(([s, i]) => {
          const text = String(s);
          const at = text.length === 0 ? 0 : i % (text.length + 1);
          return `${text.slice(0, at)}\u0000${text.slice(at)}`;
        }),
        wrong,
      );
    case 'integer':
    case 'number': {
      const around = [schema.minimum, schema.maximum]
        .filter((n): n is number => n !== undefined)
        .flatMap((n) => [n - 1, n + 1, n + 0.5]);
      return fc.oneof(fc.constantFrom(...NUMBER_EDGES, ...around), wrong);
    }
    case 'object': {
      const properties = schema.properties ?? {};
      const keys = Object.keys(properties);
      const required = (schema.required ?? []).filter((k) => k in properties);
      const base = valid(schema, depth) as fc.Arbitrary<Record<string, unknown>>;
      const options: fc.Arbitrary<unknown>[] = [
        // An extra field, edged itself.
        fc
          .tuple(
            base,
            fc.constantFrom('extra', '__proto__', 'constructor', '', '\u0000'),
            fc.constantFrom(...WRONG_TYPES, ...STRING_EDGES),
          )
          .map(([o, k, v]) => ({ ...o, [k]: v })),
        wrong,
      ];
      if (keys.length > 0 && depth < 4)
        options.push(
          fc
            .constantFrom(...keys)
            .chain((key) => fc.tuple(fc.constant(key), base, edged(properties[key], depth + 1)))
            .map(([key, o, v]) => ({ ...o, [key]: v })),
        );
      if (required.length > 0)
        options.push(
          fc.tuple(base, fc.constantFrom(...required)).map(([o, key]) => {
            const copy = { ...o };
            delete copy[key];
            return copy;
          }),
        );
      return fc.oneof(...options);
    }
    case 'array':
      return fc.oneof(
        fc.array(schema.items ? edged(schema.items, depth + 1) : wrong, { minLength: 1, maxLength: 3 }),
        fc.constant(new Array(2000).fill(0)),
        wrong,
      );
    case 'boolean':
      return fc.oneof(fc.constantFrom('true', 0, 1, 'yes', null), wrong);
    default:
      return fc.oneof(fc.constantFrom(...STRING_EDGES, ...NUMBER_EDGES), wrong);
  }
}

/** A query or path value written as text. */
function asText(value: unknown): string {
  if (typeof value === 'string') {
    const raw = /^@@raw:(.*)@@$/.exec(value);
    return raw ? raw[1] : value;
  }
  if (value === null || value === undefined) return '';
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

// ---- Requests --------------------------------------------------------------------------------------

export interface FuzzRequest {
  method: string;
  url: string;
  headers: Record<string, string>;
  payload?: string;
  /** What was fuzzed, for the failure report. */
  note: string;
}

const CONTENT_TYPES = [
  'text/plain',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  'application/json; charset=utf-16',
  'application/xml',
  'application/octet-stream',
];
const BAD_JSON = [
  '{',
  '{"a":',
  '[',
  'nul',
  '{"a":1}}',
  '\u0000',
  '{"a":"\\u0000"',
  "{'a':1}",
  '{"a":1,}',
  '',
];

/** encodeURIComponent, but a lone surrogate is written as its (invalid) three UTF-8-style bytes. */
function percent(text: string): string {
  let out = '';
  for (const char of text) {
    const code = char.charCodeAt(0);
    if (char.length === 1 && code >= 0xd800 && code <= 0xdfff)
      out += [0xe0 | (code >> 12), 0x80 | ((code >> 6) & 0x3f), 0x80 | (code & 0x3f)]
        .map((b) => `%${b.toString(16).toUpperCase()}`)
        .join('');
    else out += encodeURIComponent(char);
  }
  return out;
}

function encodeQuery(pairs: [string, string][]): string {
  if (pairs.length === 0) return '';
  return `?${pairs.map(([k, v]) => `${percent(k)}=${v === '%' ? '%' : percent(v)}`).join('&')}`;
}

function serialise(value: unknown): string {
  return JSON.stringify(value)?.replace(RAW_RE, '$1') ?? 'null';
}

/**
 * Requests for one operation: a mix of valid-shaped ones and ones with a single edge (in a path
 * parameter, a query parameter, the body's fields, the body's syntax or its content type).
 * `known` offers values for path parameters that exist (a provisioned meter), so valid-shaped
 * requests reach past the 404.
 */
export function requestsFor(
  op: FuzzOperation,
  known: (op: FuzzOperation, name: string) => unknown[] = () => [],
): fc.Arbitrary<FuzzRequest> {
  const pathParams = op.parameters.filter((p) => p.in === 'path');
  const queryParams = op.parameters.filter((p) => p.in === 'query');
  const paramValue = (p: FuzzOperation['parameters'][number]) => {
    const offered = known(op, p.name);
    return offered.length > 0 ? fc.oneof(fc.constantFrom(...offered), valid(p.schema)) : valid(p.schema);
  };
  const validPath = fc.tuple(...pathParams.map(paramValue)) as fc.Arbitrary<unknown[]>;
  const validQuery = fc.tuple(
    ...queryParams.map((p) => (p.required ? paramValue(p) : fc.option(paramValue(p), { nil: undefined }))),
  ) as fc.Arbitrary<unknown[]>;
  const hasBody = op.body !== undefined;
  const validBody = hasBody ? valid(op.body as Schema) : fc.constant(undefined);

  type Parts = {
    path: string[];
    query: [string, string][];
    body?: string;
    contentType?: string;
    note: string;
  };
  const build = (path: unknown[], query: unknown[], body: unknown, note: string): Parts => ({
    path: path.map((v) => percent(asText(v))),
    query: queryParams.flatMap((p, i) =>
      query[i] === undefined ? [] : [[p.name, asText(query[i])] as [string, string]],
    ),
    body: hasBody ? serialise(body) : undefined,
    contentType: hasBody ? 'application/json' : undefined,
    note,
  });
  const validParts = fc
    .tuple(validPath, validQuery, validBody)
    .map(([p, q, b]) => build(p, q, b, 'valid shape'));

  const edges: fc.Arbitrary<Parts>[] = [];
  if (pathParams.length > 0)
    edges.push(
      fc
        .tuple(
          validPath,
          validQuery,
          validBody,
          fc.nat(pathParams.length - 1),
          fc.oneof(fc.constantFrom(...TEXT_EDGES), fc.constantFrom('%00', '%ZZ', '%', '%2F', '..', '%2e%2e')),
        )
        .map(([p, q, b, i, v]) => {
          const parts = build(p, q, b, `path ${pathParams[i].name}=${JSON.stringify(v).slice(0, 60)}`);
          // Percent forms go in raw (a NUL, a bad escape); the rest encoded.
          parts.path[i] = /^%|^\.\.$/.test(v) ? v : percent(v);
          return parts;
        }),
    );
  if (queryParams.length > 0)
    edges.push(
      fc
        .tuple(
          validPath,
          validQuery,
          validBody,
          // Which parameter, and an edge for it: text edges, or its own schema's edges written out.
          fc
            .nat(queryParams.length - 1)
            .chain((i) =>
              fc.tuple(
                fc.constant(i),
                fc.oneof(fc.constantFrom(...TEXT_EDGES), edged(queryParams[i].schema).map(asText)),
              ),
            ),
          fc.boolean(),
        )
        .map(([p, q, b, [i, v], twice]) => {
          const parts = build(
            p,
            q,
            b,
            `query ${queryParams[i].name}=${JSON.stringify(v).slice(0, 60)}${twice ? ' (twice)' : ''}`,
          );
          parts.query = parts.query.filter(([k]) => k !== queryParams[i].name);
          parts.query.push([queryParams[i].name, v]);
          if (twice) parts.query.push([queryParams[i].name, v]);
          return parts;
        }),
    );
  // An unknown query parameter.
  edges.push(
    fc.tuple(validPath, validQuery, validBody, fc.constantFrom(...TEXT_EDGES)).map(([p, q, b, v]) => {
      const parts = build(p, q, b, `extra query ${JSON.stringify(v).slice(0, 40)}`);
      parts.query.push(['extra', v]);
      return parts;
    }),
  );
  if (hasBody) {
    edges.push(
      fc
        .tuple(validPath, validQuery, edged(op.body as Schema))
        .map(([p, q, b]) => build(p, q, b, `body ${serialise(b).slice(0, 100)}`)),
      fc.tuple(validPath, validQuery, fc.constantFrom(...BAD_JSON)).map(([p, q, text]) => ({
        ...build(p, q, undefined, `bad JSON ${JSON.stringify(text)}`),
        body: text,
        contentType: 'application/json',
      })),
      fc
        .tuple(validPath, validQuery, validBody, fc.constantFrom(...CONTENT_TYPES))
        .map(([p, q, b, type]) => ({ ...build(p, q, b, `content-type ${type}`), contentType: type })),
      fc.tuple(validPath, validQuery).map(([p, q]) => ({
        ...build(p, q, undefined, 'no body'),
        body: undefined,
        contentType: undefined,
      })),
      // A field nested 20,000 deep (arrays or objects) beside the valid body's own.
      fc.tuple(validPath, validQuery, validBody, fc.boolean()).map(([p, q, b, arrays]) => {
        const depth = 20_000;
        const nested = arrays
          ? `${'['.repeat(depth)}1${']'.repeat(depth)}`
          : `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
        const base = serialise(b);
        const body =
          base.startsWith('{') && base !== '{}' ? `{"deep":${nested},${base.slice(1)}` : `{"deep":${nested}}`;
        return {
          ...build(p, q, undefined, `field nested ${depth} deep`),
          body,
          contentType: 'application/json',
        };
      }),
      fc.tuple(validPath, validQuery).map(([p, q]) => ({
        ...build(p, q, undefined, 'body of 2 MB'),
        body: JSON.stringify({ big: 'x'.repeat(2 * 1024 * 1024) }),
        contentType: 'application/json',
      })),
    );
  } else {
    // A body where none is expected.
    edges.push(
      fc.tuple(validPath, validQuery, fc.constantFrom('{"a":1}', '{', '\u0000')).map(([p, q, text]) => ({
        ...build(p, q, undefined, `unexpected body ${JSON.stringify(text)}`),
        body: op.method === 'GET' || op.method === 'DELETE' ? undefined : text,
        contentType: 'application/json',
      })),
    );
  }

  return fc
    .oneof({ arbitrary: validParts, weight: 2 }, { arbitrary: fc.oneof(...edges), weight: 3 })
    .map((parts) => {
      let i = 0;
      const url = op.path.replace(/\{[^}]+\}/g, () => parts.path[i++] ?? 'x') + encodeQuery(parts.query);
      const headers: Record<string, string> = {};
      if (parts.contentType !== undefined && parts.body !== undefined)
        headers['content-type'] = parts.contentType;
      return { method: op.method, url, headers, payload: parts.body, note: parts.note };
    });
}

// ---- Running ---------------------------------------------------------------------------------------

export interface FuzzFailure {
  reason: string;
  method: string;
  route: string;
  url: string;
  note: string;
  status: number;
  body: string;
}

export interface FuzzReport {
  requests: number;
  routes: number;
  /** `METHOD path` of every operation fuzzed. */
  operations: string[];
  /** Status code → count. */
  statuses: Record<number, number>;
  serverErrors: number;
  failures: FuzzFailure[];
}

export interface FuzzOptions {
  /** Requests per operation. */
  perRoute: number;
  seed: number;
  /**
   * The headers each request carries (credentials), by operation; undefined: none. Called for
   * each request, so a route that ends its session (logout) can be given a fresh one.
   */
  credentials?: (op: FuzzOperation) => Promise<Record<string, string> | undefined>;
  /** Whether `credentials` authenticate: without them no route but a public one may answer 2xx. */
  authenticated: boolean;
  known?: (op: FuzzOperation, name: string) => unknown[];
  /** Operations the document does not show (hidden routes), fuzzed beside its own. */
  extra?: FuzzOperation[];
  /** Operations to leave out. */
  skip?: (op: FuzzOperation) => boolean;
  /** Called after each operation's requests with the time they took (ms), for the bench. */
  onRoute?: (op: FuzzOperation, ms: number) => void;
  /** Failures kept in full (all are counted); default 50. */
  keep?: number;
}

/** Adds the checks of one answer to `report`. */
function check(
  report: FuzzReport,
  op: FuzzOperation,
  request: FuzzRequest,
  authenticated: boolean,
  status: number,
  contentType: string,
  body: string,
  keep: number,
): void {
  report.requests++;
  report.statuses[status] = (report.statuses[status] ?? 0) + 1;
  const fail = (reason: string) => {
    if (report.failures.length < keep)
      report.failures.push({
        reason,
        method: op.method,
        route: op.path,
        url: request.url.length > 200 ? `${request.url.slice(0, 200)}…` : request.url,
        note: request.note,
        status,
        body: body.slice(0, 300),
      });
  };
  if (status >= 500) {
    report.serverErrors++;
    fail('server error');
  }
  if (!authenticated && op.role !== 'public' && status >= 200 && status < 300)
    fail(`${status} without credentials on a ${op.role} route`);
  if (status >= 400 && status < 500) {
    let parsed: Record<string, unknown> | undefined;
    try {
      parsed = contentType.startsWith('application/json') ? JSON.parse(body) : undefined;
    } catch {
      parsed = undefined;
    }
    // The APDS API refuses in the APDS standard's ResponseStatus (docs/apds.md).
    const apdsShaped =
      op.path.startsWith('/apds/') &&
      parsed?.status === 'error' &&
      parsed.code === status &&
      typeof parsed.message === 'string' &&
      parsed.message.length > 0;
    const shaped =
      apdsShaped ||
      (parsed !== undefined &&
        parsed.statusCode === status &&
        typeof parsed.code === 'string' &&
        typeof parsed.message === 'string' &&
        (parsed.message as string).length > 0 &&
        typeof parsed.error === 'string');
    if (!shaped) fail('refusal not in the error shape');
    // The database's refusal of a value (core/http.ts): a schema or the input guard let it through.
    else if (parsed?.code === DATABASE_REFUSED) fail('a value only the database refused');
  }
}

/** Fuzzes every operation of the app's OpenAPI document; never throws on what it finds. */
export async function fuzzHttp(app: FastifyInstance, options: FuzzOptions): Promise<FuzzReport> {
  const res = await app.inject({ method: 'GET', url: '/api/openapi.json' });
  if (res.statusCode !== 200) throw new Error(`/api/openapi.json answered ${res.statusCode}`);
  const operations = [...operationsOf(res.json()), ...(options.extra ?? [])].filter(
    (op) => !options.skip?.(op),
  );
  const keep = options.keep ?? 50;
  const report: FuzzReport = {
    requests: 0,
    routes: operations.length,
    operations: operations.map((op) => `${op.method} ${op.path}`),
    statuses: {},
    serverErrors: 0,
    failures: [],
  };
  for (const [index, op] of operations.entries()) {
    const requests = fc.sample(requestsFor(op, options.known), {
      numRuns: options.perRoute,
      seed: options.seed + index,
    });
    const started = performance.now();
    for (const request of requests) {
      const credentials = (await options.credentials?.(op)) ?? {};
      const answer = await app.inject({
        method: request.method as 'GET',
        url: request.url,
        headers: { ...credentials, ...request.headers },
        payload: request.payload,
      });
      check(
        report,
        op,
        request,
        options.authenticated,
        answer.statusCode,
        String(answer.headers['content-type'] ?? ''),
        answer.body,
        keep,
      );
    }
    options.onRoute?.(op, performance.now() - started);
  }
  return report;
}

/** One line per failure, for an assertion message or the bench's output. */
export function describeFailures(failures: readonly FuzzFailure[], max = 20): string {
  return failures
    .slice(0, max)
    .map((f) => `${f.reason}: ${f.method} ${f.route} → ${f.status} [${f.note}] ${f.url}\n    ${f.body}`)
    .join('\n');
}

/**
 * Every route fastify has, HEAD aside, read from its printRoutes() tree (each line a path segment
 * under the line above it, with its methods): paths in the OpenAPI form, `*` as `{wildcard}`.
 */
export function registeredRoutes(app: FastifyInstance): { method: string; path: string }[] {
  const routes: { method: string; path: string }[] = [];
  const stack: string[] = [];
  for (const line of app.printRoutes({ commonPrefix: false }).split('\n')) {
    const match = /^([│ ]*)(?:[├└]── )?(\S.*?)(?: \(([A-Z, ]+)\))?$/.exec(line);
    if (!match || match[2] === undefined) continue;
    const depth = Math.floor(match[1].length / 4);
    stack.length = depth;
    stack[depth] = match[2];
    const path = stack
      .join('')
      .replace(/:([A-Za-z]+)/g, '{$1}')
      .replace(/\*$/, '{wildcard}');
    for (const method of (match[3] ?? '').split(', ').filter((m) => m && m !== 'HEAD'))
      routes.push({ method, path });
  }
  return routes;
}

// ---- A whole platform --------------------------------------------------------------------------

const GATEWAY_SECRET = 'fuzz-gateway-secret-0123456789abcdef';
const DRIVER = { login: 'fuzz.driver@example.com', password: 'a fuzzing password' };
const CHEAP_SCRYPT = { logN: 10, r: 8, p: 1 };
/** Limits out of the way: the fuzz is after what lies behind them (the limits have their own tests). */
const NO_LIMIT = () => new RateLimiter(Number.MAX_SAFE_INTEGER, 60_000);

export interface PlatformFuzzReport {
  /** Without credentials (and with forged ones): no route but a public one may answer 2xx. */
  anonymous: FuzzReport;
  /** An admin's token on operator routes, a driver's on drivers' routes, the gateway's secret. */
  authenticated: FuzzReport;
  /** `METHOD path` of every route fastify has (its printRoutes tree), HEAD aside. */
  registered: string[];
}

/**
 * Starts a platform on `backend` (cheap password hashing, rate limits lifted, the gateway secret
 * set), provisions a meter and a driver with a card, and fuzzes every route twice: anonymously, then
 * with credentials. Path parameters named id are offered the meter's and the card's ids.
 */
export async function fuzzPlatform(
  backend: Backend,
  options: { perRoute: number; seed: number; keep?: number; onRoute?: FuzzOptions['onRoute'] },
): Promise<PlatformFuzzReport> {
  const { platform, drop } = await startPlatform(backend, {
    operators: {
      scrypt: CHEAP_SCRYPT,
      loginsPerAddress: { limit: Number.MAX_SAFE_INTEGER, windowSeconds: 60 },
    },
    phone: {
      passwordScrypt: CHEAP_SCRYPT,
      gatewaySecret: GATEWAY_SECRET,
      paymentProvider: new PaymentSimulator(),
      rateLimits: {
        login: new LoginLimits(NO_LIMIT(), NO_LIMIT()),
        register: NO_LIMIT(),
        sms: NO_LIMIT(),
        voice: NO_LIMIT(),
      },
    },
    // A platform without an SMS sender answers call-in with 503 no-sms-sender (a service not set
    // up, by design): with the simulator the route's own input handling is what gets fuzzed.
    smsSender: new SimulatedSmsSender(),
    // Likewise a release key, so that image uploads are checked rather than refused with 503.
    firmwareReleaseKey: ed25519.getPublicKey(ed25519.utils.randomPrivateKey()),
  });
  try {
    const meterId = randomMeterId();
    await platform.provisionMeter(meterId, 'Fuzz Street');
    const admin = await operatorLogin(platform.operators, 'admin');
    // An APDS consumer key; without the webhooks scope, so no fuzzed endpoint is ever called.
    const apdsKey = (await platform.apds.createKey('fuzz', ['read', 'write', 'export'], 'fuzz')).key;
    const registered = await platform.app.inject({
      method: 'POST',
      url: '/api/driver/register',
      payload: {
        name: 'Fuzz Driver',
        phone: '+447700900999',
        email: DRIVER.login,
        password: DRIVER.password,
      },
    });
    if (registered.statusCode !== 201)
      throw new Error(`driver registration answered ${registered.statusCode}`);
    const driver = { authorization: `Bearer ${registered.json().token}` };
    const card = await platform.app.inject({
      method: 'POST',
      url: '/api/driver/cards',
      headers: driver,
      payload: { cardNumber: '6280 1234 0003 0019' },
    });
    const cardId = card.json().card?.id as number;
    const known = (op: FuzzOperation, name: string): unknown[] => {
      if (name !== 'id') return [];
      if (op.path.startsWith('/api/meters/')) return [meterId];
      if (op.path.startsWith('/api/driver/cards/')) return [cardId];
      return [];
    };
    // Logging out ends the session it is called with: those requests get a session of their own.
    const freshDriver = async () => {
      const res = await platform.app.inject({ method: 'POST', url: '/api/driver/login', payload: DRIVER });
      return { authorization: `Bearer ${res.json().token}` };
    };
    const credentials = async (op: FuzzOperation): Promise<Record<string, string> | undefined> => {
      const logout = op.path.endsWith('/logout');
      if (op.role === 'driver') return logout ? freshDriver() : driver;
      if (op.role === 'gateway') return { authorization: `Bearer ${GATEWAY_SECRET}` };
      if (op.role === 'public') return undefined;
      if (op.role === 'apds-key') return { 'x-api-key': apdsKey };
      return logout ? (await operatorLogin(platform.operators, 'admin')).headers : admin.headers;
    };
    // Anonymous requests carry nothing, a malformed header, or a well-formed token nobody issued.
    const forged = [
      undefined,
      { authorization: 'Bearer' },
      { authorization: `Bearer ${'A'.repeat(43)}` },
      { authorization: 'Basic YWRtaW46YWRtaW4=' },
      { authorization: `Bearer ${GATEWAY_SECRET.slice(0, -1)}x` },
    ];
    // The routes the document hides (itself, its HTML page and assets): fuzzed by their paths.
    const doc = (
      await platform.app.inject({ method: 'GET', url: '/api/openapi.json' })
    ).json() as OpenApiDocument;
    const shown = new Set(operationsOf(doc).map((op) => `${op.method} ${op.path}`));
    const routeList = registeredRoutes(platform.app);
    const extra: FuzzOperation[] = routeList
      .filter((r) => !shown.has(`${r.method} ${r.path}`))
      .map((r) => ({
        ...r,
        role: 'public',
        parameters: [...r.path.matchAll(/\{([^}]+)\}/g)].map((m) => ({
          in: 'path' as const,
          name: m[1],
          required: true,
          schema: { type: 'string' },
        })),
      }));
    let n = 0;
    const anonymous = await fuzzHttp(platform.app, {
      ...options,
      extra,
      authenticated: false,
      known,
      credentials: async () => forged[n++ % forged.length],
    });
    const authenticated = await fuzzHttp(platform.app, {
      ...options,
      extra,
      seed: options.seed + 1000,
      authenticated: true,
      known,
      credentials,
    });
    return { anonymous, authenticated, registered: routeList.map((r) => `${r.method} ${r.path}`) };
  } finally {
    await platform.close();
    await drop();
  }
}
