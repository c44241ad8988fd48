// Operator accounts: the city's staff on the operator API. Passwords are hashed with scrypt (salted,
// parameters stored with the hash); a login gives a random bearer token, stored only as its SHA-256,
// valid for a shift; repeated failures lock the account for a while. Roles are ordered
// (viewer < operator < supervisor < admin) and every operator route is registered with
// `requireRole(role)`: a route under /api/ without one (and not public) stops the
// platform at start. Every mutating request by an operator leaves a row in the audit log: the route
// writes its own (in the transaction of the change where that matters), and a request that ends
// without one (refused, failed) gets a generic row when the reply is sent.
//
//   POST  /api/operators/login      { username, password }                → 200 { token, expiresAt, operator }
//   POST  /api/operators/logout     (viewer)                              → 204, the token revoked
//   GET   /api/operators/me         (viewer)                              → { operator, expiresAt }
//   GET   /api/operators            (admin)                               → { operators }
//   POST  /api/operators            (admin) { username, role, password, displayName? } → 201 { operator }
//   PATCH /api/operators/:username  (admin) { displayName?, role?, password?, disabled?, unlock? }
//   GET   /api/operators/audit      (admin) ?operator&meterId&action&limit&before
import { randomBytes, scrypt, createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest, onRequestHookHandler } from 'fastify';
import type { Database, Queryable } from '../core/db';
import { errorResponses, sendError } from '../core/errors';
import { RateLimiter } from '../core/rateLimiter';
import { nullableTime, object, time } from '../core/schemas';

export const ROLES = ['viewer', 'operator', 'supervisor', 'admin'] as const;
export type Role = (typeof ROLES)[number];

/** Whether `have` is `need` or above it. */
export function roleAtLeast(have: Role, need: Role): boolean {
  return ROLES.indexOf(have) >= ROLES.indexOf(need);
}

export interface OperatorIdentity {
  id: number;
  username: string;
  displayName: string;
  role: Role;
  /** SHA-256 (hex) of this request's bearer token: what logout revokes. */
  sessionHash: string;
  sessionExpiresAt: Date;
}

export interface OperatorView {
  username: string;
  displayName: string;
  role: Role;
  createdAt: string;
  disabledAt: string | null;
  lockedUntil: string | null;
}

export interface AuditEntry {
  action: string;
  meterId?: number;
  target?: string;
  detail?: Record<string, unknown>;
}

export interface AuditView {
  id: number;
  at: string;
  username: string;
  action: string;
  meterId: number | null;
  target: string | null;
  detail: Record<string, unknown>;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The authenticated operator (set by requireRole). */
    operator?: OperatorIdentity;
    /** Set once the route wrote this request's audit row. */
    operatorAudited?: boolean;
  }
}

/** A refused operator request: its status, a stable code and a message for the person. */
export class OperatorError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    readonly retryAfter?: number,
  ) {
    super(message);
    this.name = 'OperatorError';
  }
}

// ---- Passwords and tokens --------------------------------------------------------------------------

export interface ScryptParams {
  /** log2 of N. */
  logN: number;
  r: number;
  p: number;
}

/** N = 2^15, r = 8: 32 MiB and tens of milliseconds per guess (RFC 7914's interactive figures). */
export const DEFAULT_SCRYPT: ScryptParams = Object.freeze({ logN: 15, r: 8, p: 1 });
export const PASSWORD_MIN = 12;
export const PASSWORD_MAX = 200;

function scryptBytes(password: string, salt: Buffer, params: ScryptParams, length: number): Promise<Buffer> {
  const N = 2 ** params.logN;
  return new Promise((resolve, reject) =>
    scrypt(
      password.normalize('NFKC'),
      salt,
      length,
      // Node refuses anything above maxmem; 128·N·r is what scrypt needs, doubled for headroom.
      { N, r: params.r, p: params.p, maxmem: 256 * N * params.r },
      (error, key) => (error ? reject(error) : resolve(key)),
    ),
  );
}

/** `scrypt$logN$r$p$salt$hash` (base64): the parameters travel with the hash. */
export async function hashPassword(password: string, params: ScryptParams = DEFAULT_SCRYPT): Promise<string> {
  const salt = randomBytes(16);
  const hash = await scryptBytes(password, salt, params, 32);
  return `scrypt$${params.logN}$${params.r}$${params.p}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [logN, r, p] = parts.slice(1, 4).map(Number);
  // Bounds keep a corrupted row from asking for gigabytes.
  if (![logN, r, p].every(Number.isInteger) || logN < 10 || logN > 20 || r < 1 || r > 32 || p < 1 || p > 4)
    return false;
  const expected = Buffer.from(parts[5], 'base64');
  const actual = await scryptBytes(
    password,
    Buffer.from(parts[4], 'base64'),
    { logN, r, p },
    expected.length,
  );
  return expected.length > 0 && timingSafeEqual(actual, expected);
}

/** 32 random bytes, base64url (43 characters). */
export function newBearerToken(): string {
  return randomBytes(32).toString('base64url');
}

export function tokenHash(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

const BEARER = /^Bearer +([A-Za-z0-9_-]{43})$/i;

// ---- The service -------------------------------------------------------------------------------------

export interface OperatorsConfig {
  /** The platform's clock in ms (tests move it); Date.now by default. */
  now?: () => number;
  /** How long a login is good for, default 8 h (a shift). */
  sessionSeconds?: number;
  /** Consecutive failed logins that lock an account, default 5. */
  maxFailedLogins?: number;
  /** How long a locked account stays locked, default 15 min. */
  lockoutSeconds?: number;
  /** The first admin (PARKLINK_ADMIN_USER, PARKLINK_ADMIN_PASSWORD), created only while no operator exists. */
  admin?: { username: string; password: string; displayName?: string };
  /** Password hashing cost of new hashes; DEFAULT_SCRYPT unless a test needs it cheaper. */
  scrypt?: ScryptParams;
  /**
   * Login attempts one network address may make, whatever the usernames (default 60 per 15 min,
   * room for a control room's shift change behind one address): the account lockout alone lets one
   * address try a few passwords on every account.
   */
  loginsPerAddress?: { limit: number; windowSeconds: number };
}

/** Who did something: an operator, or a tool acting outside the API (the CLI). */
export interface Actor {
  id: number | null;
  username: string;
}

export interface OperatorRoute {
  method: string;
  url: string;
  /** The role the route needs; undefined for a public route. */
  role?: Role;
}

interface OperatorRow {
  id: number;
  username: string;
  display_name: string;
  role: Role;
  password_hash: string;
  created_at: Date;
  disabled_at: Date | null;
  failed_logins: number;
  locked_until: Date | null;
}

const USERNAME = '^[a-z0-9][a-z0-9_.@-]{1,63}$';
const USERNAME_RE = new RegExp(USERNAME);

/** Operator routes need a role; these do not (drivers' pay-by-phone API, the price quote, the login). */
const PUBLIC_ROUTES = [
  /^\/api\/driver\//,
  /^\/api\/phone\//,
  /^\/api\/quote$/,
  /^\/api\/operators\/login$/,
  /^\/api\/openapi\.json$/,
  /^\/api\/docs(\/|$)/,
];
const OPERATOR_ROUTES = /^\/api\//;

/** The advisory lock serialising the first admin's creation between instances starting together. */
const BOOTSTRAP_LOCK = 0x4f504552; // "OPER"

const view = (row: OperatorRow): OperatorView => ({
  username: row.username,
  displayName: row.display_name,
  role: row.role,
  createdAt: row.created_at.toISOString(),
  disabledAt: row.disabled_at?.toISOString() ?? null,
  lockedUntil: row.locked_until?.toISOString() ?? null,
});

export class Operators {
  readonly #db: Database;
  readonly #now: () => number;
  readonly #sessionMs: number;
  readonly #maxFailures: number;
  readonly #lockoutMs: number;
  readonly #scrypt: ScryptParams;
  readonly #admin: OperatorsConfig['admin'];
  readonly #loginsByAddress: RateLimiter;
  readonly #guards = new WeakMap<object, Role>();
  #dummyHash: Promise<string> | undefined;
  /** Every route under /api/ registered after install(), with the role it needs. */
  readonly routes: OperatorRoute[] = [];
  /** The username of the first admin this start created from the config, if it did. */
  bootstrapped: string | undefined;

  constructor(db: Database, config: OperatorsConfig = {}) {
    this.#db = db;
    this.#now = config.now ?? Date.now;
    this.#sessionMs = (config.sessionSeconds ?? 8 * 3600) * 1000;
    this.#maxFailures = config.maxFailedLogins ?? 5;
    this.#lockoutMs = (config.lockoutSeconds ?? 15 * 60) * 1000;
    this.#scrypt = config.scrypt ?? DEFAULT_SCRYPT;
    this.#admin = config.admin;
    const perAddress = config.loginsPerAddress ?? { limit: 60, windowSeconds: 15 * 60 };
    this.#loginsByAddress = new RateLimiter(perAddress.limit, perAddress.windowSeconds * 1000, this.#now);
  }

  /** Creates the configured first admin when no operator exists; returns its username if it did. */
  async bootstrap(): Promise<string | undefined> {
    const admin = this.#admin;
    if (!admin) return undefined;
    try {
      checkUsername(admin.username);
      checkPassword(admin.password);
    } catch (error) {
      throw new Error(
        `the first admin (PARKLINK_ADMIN_USER, PARKLINK_ADMIN_PASSWORD): ${(error as Error).message}`,
      );
    }
    // Most starts find operators: no hashing then. Checked again under the lock below.
    if ((await this.#db.query('SELECT 1 FROM operators LIMIT 1')).rows.length > 0) return undefined;
    const hash = await hashPassword(admin.password, this.#scrypt);
    const created = await this.#db.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1)', [BOOTSTRAP_LOCK]);
      const any = await tx.query('SELECT 1 FROM operators LIMIT 1');
      if (any.rows.length > 0) return false;
      const row = await this.#insert(tx, {
        username: admin.username,
        displayName: admin.displayName ?? 'Administrator',
        role: 'admin',
        hash,
        by: null,
      });
      await this.#audit(
        tx,
        { id: null, username: 'bootstrap' },
        {
          action: 'operator.create',
          target: row.username,
          detail: { role: 'admin', bootstrap: true },
        },
      );
      return true;
    });
    this.bootstrapped = created ? admin.username : undefined;
    return this.bootstrapped;
  }

  async #insert(
    tx: Queryable,
    o: { username: string; displayName: string; role: Role; hash: string; by: number | null },
  ): Promise<OperatorRow> {
    const rows = await tx.query<OperatorRow>(
      `INSERT INTO operators (username, display_name, role, password_hash, created_at, created_by)
       VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (username) DO NOTHING RETURNING *`,
      [o.username, o.displayName, o.role, o.hash, new Date(this.#now()), o.by],
    );
    if (rows.rows.length === 0)
      throw new OperatorError(409, 'username-taken', `operator ${o.username} exists already`);
    return rows.rows[0];
  }

  /** Creates an operator; `by` is who did it (audited). */
  async create(
    input: { username: string; role: Role; password: string; displayName?: string },
    by: Actor,
  ): Promise<OperatorView> {
    checkUsername(input.username);
    checkPassword(input.password);
    if (!ROLES.includes(input.role)) throw new OperatorError(400, 'bad-role', `no role ${input.role}`);
    const hash = await hashPassword(input.password, this.#scrypt);
    return this.#db.transaction(async (tx) => {
      const row = await this.#insert(tx, {
        username: input.username,
        displayName: input.displayName ?? input.username,
        role: input.role,
        hash,
        by: by.id,
      });
      await this.#audit(tx, by, {
        action: 'operator.create',
        target: row.username,
        detail: { role: row.role, displayName: row.display_name },
      });
      return view(row);
    });
  }

  async list(): Promise<OperatorView[]> {
    const rows = await this.#db.query<OperatorRow>('SELECT * FROM operators ORDER BY username');
    return rows.rows.map(view);
  }

  /**
   * Changes an operator: display name, role, password (ends their sessions), disabled (ends their
   * sessions) or enabled again, unlocked. The last enabled admin cannot be demoted or disabled.
   */
  async update(
    username: string,
    changes: { displayName?: string; role?: Role; password?: string; disabled?: boolean; unlock?: boolean },
    by: Actor,
  ): Promise<OperatorView> {
    if (changes.password !== undefined) checkPassword(changes.password);
    const hash =
      changes.password === undefined ? undefined : await hashPassword(changes.password, this.#scrypt);
    const now = new Date(this.#now());
    return this.#db.transaction(async (tx) => {
      const found = await tx.query<OperatorRow>('SELECT * FROM operators WHERE username = $1 FOR UPDATE', [
        username,
      ]);
      const row = found.rows[0];
      if (!row) throw new OperatorError(404, 'unknown-operator', `no operator ${username}`);
      const losesAdmin =
        row.role === 'admin' &&
        row.disabled_at === null &&
        ((changes.role !== undefined && changes.role !== 'admin') || changes.disabled === true);
      if (losesAdmin) {
        // Serialised on the bootstrap lock so two admins cannot demote each other at once.
        await tx.query('SELECT pg_advisory_xact_lock($1)', [BOOTSTRAP_LOCK]);
        const others = await tx.query(
          "SELECT 1 FROM operators WHERE role = 'admin' AND disabled_at IS NULL AND id <> $1 LIMIT 1",
          [row.id],
        );
        if (others.rows.length === 0)
          throw new OperatorError(409, 'last-admin', 'this is the last enabled admin: create another first');
      }
      const disabledAt =
        changes.disabled === undefined ? row.disabled_at : changes.disabled ? (row.disabled_at ?? now) : null;
      const unlock = changes.unlock === true || hash !== undefined;
      const updated = await tx.query<OperatorRow>(
        `UPDATE operators SET display_name = $2, role = $3, password_hash = $4, disabled_at = $5,
                failed_logins = CASE WHEN $6 THEN 0 ELSE failed_logins END,
                locked_until = CASE WHEN $6 THEN NULL ELSE locked_until END
          WHERE id = $1 RETURNING *`,
        [
          row.id,
          changes.displayName ?? row.display_name,
          changes.role ?? row.role,
          hash ?? row.password_hash,
          disabledAt,
          unlock,
        ],
      );
      // A new password or a disabled account ends every session (a stolen token with it).
      if (hash !== undefined || changes.disabled === true)
        await tx.query(
          'UPDATE operator_sessions SET revoked_at = $2 WHERE operator_id = $1 AND revoked_at IS NULL',
          [row.id, now],
        );
      const { password: _password, ...shown } = changes;
      await this.#audit(tx, by, {
        action: 'operator.update',
        target: row.username,
        detail: { ...shown, ...(hash === undefined ? {} : { passwordReset: true }) },
      });
      return view(updated.rows[0]);
    });
  }

  /** Checks a password; returns a new session's token. Throws OperatorError 401 or 429 (locked). */
  async login(
    usernameTyped: string,
    password: string,
    from: { ip?: string } = {},
  ): Promise<{ token: string; expiresAt: Date; operator: OperatorView }> {
    const username = usernameTyped.trim().toLowerCase();
    const refused = new OperatorError(401, 'bad-credentials', 'unknown username or wrong password');
    const found = await this.#db.query<OperatorRow>('SELECT * FROM operators WHERE username = $1', [
      username,
    ]);
    const row = found.rows[0];
    const now = this.#now();
    const fail = async (reason: string, extra: Record<string, unknown> = {}) => {
      await this.#audit(
        this.#db,
        { id: row?.id ?? null, username: row?.username ?? username.slice(0, 64) },
        { action: 'login.failed', detail: { reason, ip: from.ip, ...extra } },
      );
    };
    if (!row) {
      // The same scrypt work as for a real account: the answer's timing does not tell names apart.
      await verifyPassword(password, await this.#dummy());
      await fail('unknown-username');
      throw refused;
    }
    if (row.locked_until && row.locked_until.getTime() > now) {
      const retryAfter = Math.ceil((row.locked_until.getTime() - now) / 1000);
      await fail('locked');
      throw new OperatorError(
        429,
        'locked',
        `too many failed logins: the account is locked for ${retryAfter} s (an admin can unlock it)`,
        retryAfter,
      );
    }
    const ok = await verifyPassword(password, row.password_hash);
    if (ok && row.disabled_at) {
      await fail('disabled');
      throw refused;
    }
    if (!ok) {
      // Counted in the database (every instance sees it); the counter restarts when the lock is set.
      const counted = await this.#db.query<{ failed_logins: number; locked_until: Date | null }>(
        `UPDATE operators SET
            failed_logins = CASE WHEN failed_logins + 1 >= $2 THEN 0 ELSE failed_logins + 1 END,
            locked_until = CASE WHEN failed_logins + 1 >= $2 THEN $3 ELSE locked_until END
          WHERE id = $1 RETURNING failed_logins, locked_until`,
        [row.id, this.#maxFailures, new Date(now + this.#lockoutMs)],
      );
      const locked = (counted.rows[0]?.locked_until?.getTime() ?? 0) > now;
      await fail('wrong-password', { locked });
      throw refused;
    }
    const token = newBearerToken();
    const expiresAt = new Date(now + this.#sessionMs);
    await this.#db.transaction(async (tx) => {
      await tx.query('UPDATE operators SET failed_logins = 0, locked_until = NULL WHERE id = $1', [row.id]);
      await tx.query(
        'INSERT INTO operator_sessions (token_hash, operator_id, created_at, expires_at) VALUES ($1, $2, $3, $4)',
        [tokenHash(token), row.id, new Date(now), expiresAt],
      );
      await this.#audit(tx, row, {
        action: 'login',
        detail: { ip: from.ip, expiresAt: expiresAt.toISOString() },
      });
    });
    return { token, expiresAt, operator: view({ ...row, failed_logins: 0, locked_until: null }) };
  }

  #dummy(): Promise<string> {
    this.#dummyHash ??= hashPassword(newBearerToken(), this.#scrypt);
    return this.#dummyHash;
  }

  /** The operator a bearer token belongs to, while the session is current and the account enabled. */
  async authenticate(token: string): Promise<OperatorIdentity | undefined> {
    const hash = tokenHash(token);
    const rows = await this.#db.query<OperatorRow & { expires_at: Date }>(
      `SELECT o.*, s.expires_at FROM operator_sessions s JOIN operators o ON o.id = s.operator_id
        WHERE s.token_hash = $1 AND s.revoked_at IS NULL AND s.expires_at > $2 AND o.disabled_at IS NULL`,
      [hash, new Date(this.#now())],
    );
    const row = rows.rows[0];
    if (!row) return undefined;
    return {
      id: row.id,
      username: row.username,
      displayName: row.display_name,
      role: row.role,
      sessionHash: hash,
      sessionExpiresAt: row.expires_at,
    };
  }

  /** Ends a session (logout). */
  async revoke(operator: OperatorIdentity): Promise<void> {
    await this.#db.transaction(async (tx) => {
      await tx.query(
        'UPDATE operator_sessions SET revoked_at = $2 WHERE token_hash = $1 AND revoked_at IS NULL',
        [operator.sessionHash, new Date(this.#now())],
      );
      await this.#audit(tx, operator, { action: 'logout' });
    });
  }

  async #audit(q: Queryable, who: Actor, entry: AuditEntry): Promise<void> {
    await q.query(
      `INSERT INTO operator_audit (operator_id, username, action, meter_id, target, detail, at)
       VALUES ($1, $2, $3, $4, $5, $6, $7)`,
      [
        who.id,
        who.username,
        entry.action,
        entry.meterId ?? null,
        entry.target ?? null,
        JSON.stringify(entry.detail ?? {}),
        new Date(this.#now()),
      ],
    );
  }

  /**
   * Writes the audit row of an operator's request, in `tx` when the change has a transaction (the
   * row commits or rolls back with it). Marks the request audited: no generic row follows.
   */
  async audit(request: FastifyRequest, entry: AuditEntry, tx: Queryable = this.#db): Promise<void> {
    const who = request.operator;
    if (!who) throw new Error('audit() outside an operator route');
    await this.#audit(tx, who, entry);
    request.operatorAudited = true;
  }

  /** Audit rows newest first; `before` an id for the next page. */
  async auditLog(query: {
    operator?: string;
    meterId?: number;
    action?: string;
    limit?: number;
    before?: number;
  }): Promise<{ entries: AuditView[]; nextBefore: number | null }> {
    const limit = query.limit ?? 100;
    const rows = await this.#db.query<{
      id: number;
      at: Date;
      username: string;
      action: string;
      meter_id: number | null;
      target: string | null;
      detail: Record<string, unknown>;
    }>(
      `SELECT id, at, username, action, meter_id, target, detail FROM operator_audit
        WHERE ($1::text IS NULL OR username = $1) AND ($2::bigint IS NULL OR meter_id = $2)
          AND ($3::text IS NULL OR action = $3) AND ($4::bigint IS NULL OR id < $4)
        ORDER BY id DESC LIMIT $5`,
      [query.operator ?? null, query.meterId ?? null, query.action ?? null, query.before ?? null, limit + 1],
    );
    const page = rows.rows.slice(0, limit);
    return {
      entries: page.map((r) => ({
        id: r.id,
        at: r.at.toISOString(),
        username: r.username,
        action: r.action,
        meterId: r.meter_id,
        target: r.target,
        detail: r.detail,
      })),
      nextBefore: rows.rows.length > limit ? page[page.length - 1].id : null,
    };
  }

  /**
   * An onRequest hook: 401 (with WWW-Authenticate) without a current session, 403 below `role`;
   * sets request.operator. onRequest, not preHandler: nobody unauthenticated gets as far as body
   * parsing and validation (or learns the schema from a 400).
   */
  requireRole(role: Role): onRequestHookHandler {
    const hook = async (request: FastifyRequest, reply: FastifyReply) => {
      const match = BEARER.exec(request.headers.authorization ?? '');
      if (!match) {
        return deny(
          reply,
          401,
          'unauthenticated',
          'log in first (Authorization: Bearer <token>)',
          'Bearer realm="parklink"',
        );
      }
      const operator = await this.authenticate(match[1]);
      if (!operator) {
        return deny(
          reply,
          401,
          'invalid-token',
          'the token is unknown, expired or revoked: log in again',
          'Bearer realm="parklink", error="invalid_token"',
        );
      }
      request.operator = operator;
      if (!roleAtLeast(operator.role, role))
        return deny(
          reply,
          403,
          'forbidden',
          `this needs the ${role} role; ${operator.username} is ${operator.role}`,
        );
    };
    this.#guards.set(hook, role);
    return hook;
  }

  /**
   * Installs the route check, the audit of refused requests and the operator routes on `app`.
   * Call before any other route is registered.
   */
  install(app: FastifyInstance): void {
    app.addHook('onRoute', (route) => {
      const hooks = [route.onRequest ?? []].flat();
      const role = hooks.map((h) => this.#guards.get(h)).find((r) => r !== undefined);
      // The role goes into the OpenAPI document with the route (core/openapi.ts).
      route.schema ??= {};
      // A route that names its own callers (drivers, the gateway) keeps that.
      const schema = route.schema as { 'x-role'?: string; security?: unknown };
      schema['x-role'] ??= role ?? 'public';
      if (role) schema.security ??= [{ operatorBearer: [] }];
      if (!OPERATOR_ROUTES.test(route.url)) return;
      for (const method of [route.method].flat()) this.routes.push({ method, url: route.url, role });
      if (role === undefined && !PUBLIC_ROUTES.some((p) => p.test(route.url)))
        throw new Error(`operator route ${route.method} ${route.url} is registered without requireRole()`);
    });
    app.addHook('onSend', async (request, reply, payload) => {
      // A change the route did not audit (refused, invalid, failed): recorded with its status.
      if (request.operator && !request.operatorAudited && !['GET', 'HEAD'].includes(request.method)) {
        const params = request.params as { id?: unknown } | undefined;
        const meterId = Number(params?.id);
        try {
          await this.audit(request, {
            action: reply.statusCode >= 400 ? 'refused' : 'request',
            target: `${request.method} ${request.routeOptions.url ?? request.url}`,
            meterId: Number.isInteger(meterId) && meterId >= 0 && meterId <= 0xffffffff ? meterId : undefined,
            detail: { status: reply.statusCode },
          });
        } catch (error) {
          request.log.error({ err: error }, 'audit row not written');
        }
      }
      return payload;
    });
    this.#routes(app);
  }

  #routes(app: FastifyInstance): void {
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
        const wait = this.#loginsByAddress.hit(request.ip);
        if (wait > 0) {
          return send(
            reply,
            new OperatorError(429, 'too-many-logins', 'too many login attempts from this address', wait),
          );
        }
        try {
          const { token, expiresAt, operator } = await this.login(
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
        onRequest: this.requireRole('viewer'),
        schema: {
          summary: "Log out: this request's token is revoked",
          response: { 204: { type: 'null', description: 'logged out' }, ...errorResponses(401) },
        },
      },
      async (request, reply) => {
        await this.revoke(request.operator!);
        request.operatorAudited = true;
        return reply.code(204).send();
      },
    );

    app.get(
      '/api/operators/me',
      {
        onRequest: this.requireRole('viewer'),
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
        onRequest: this.requireRole('admin'),
        schema: {
          summary: 'Every operator account',
          response: {
            200: object({ operators: { type: 'array', items: operatorView } }),
            ...errorResponses(401, 403),
          },
        },
      },
      async () => ({ operators: await this.list() }),
    );

    app.post<{ Body: { username: string; role: Role; password: string; displayName?: string } }>(
      '/api/operators',
      {
        onRequest: this.requireRole('admin'),
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
          const operator = await this.create(request.body, request.operator!);
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
        onRequest: this.requireRole('admin'),
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
          const operator = await this.update(request.params.username, request.body, request.operator!);
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
        onRequest: this.requireRole('admin'),
        schema: {
          querystring: {
            type: 'object',
            properties: {
              operator: { type: 'string', minLength: 1, maxLength: 64 },
              meterId: { type: 'integer', minimum: 0, maximum: 0xffffffff },
              action: { type: 'string', minLength: 1, maxLength: 64 },
              limit: { type: 'integer', minimum: 1, maximum: 500, default: 100 },
              before: { type: 'integer', minimum: 1 },
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
      async (request) => this.auditLog(request.query),
    );
  }
}

function checkUsername(username: string): void {
  if (!USERNAME_RE.test(username))
    throw new OperatorError(
      400,
      'bad-username',
      `username must match ${USERNAME} (lower case, 2-64 characters)`,
    );
}

function checkPassword(password: string): void {
  if (password.length < PASSWORD_MIN || password.length > PASSWORD_MAX)
    throw new OperatorError(
      400,
      'bad-password',
      `a password has ${PASSWORD_MIN} to ${PASSWORD_MAX} characters`,
    );
}

/** The platform's error shape (core/errors.ts), with the bearer challenge when there is one. */
function deny(reply: FastifyReply, status: number, code: string, message: string, challenge?: string) {
  if (challenge) reply.header('www-authenticate', challenge);
  return sendError(reply, status, code, message);
}

/** What a route module needs of the operator accounts: the guard and the audit row. */
export type OperatorGuard = Pick<Operators, 'requireRole' | 'audit'>;
