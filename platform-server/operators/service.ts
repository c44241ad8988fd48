// Operator accounts: the city's staff on the operator API. Passwords are hashed with scrypt (salted,
// parameters stored with the hash); a login gives a random bearer token, stored only as its SHA-256,
// valid for a shift; repeated failures lock the account for a while. Roles are ordered
// (viewer < operator < supervisor < admin) and every operator route is registered with
// `requireRole(role)`: a route under /api/ without one (and not public) stops the
// platform at start. Every mutating request by an operator leaves a row in the audit log: the route
// writes its own (in the transaction of the change where that matters), and a request that ends
// without one (refused, failed) gets a generic row when the reply is sent. Passwords and tokens:
// passwords.ts; the accounts' own routes: routes.ts.
import type { FastifyInstance, FastifyReply, FastifyRequest, onRequestHookHandler } from 'fastify';
import type { Database, Queryable } from '../core/db';
import { sendError } from '../core/errors';
import {
  DEFAULT_SCRYPT,
  hashPassword,
  newBearerToken,
  PASSWORD_MAX,
  PASSWORD_MIN,
  type ScryptParams,
  tokenHash,
  verifyPassword,
} from './passwords';
import { RateLimiter } from '../core/rateLimiter';
import {
  base32Decode,
  base32Encode,
  newRecoveryCodes,
  newTotpSecret,
  otpauthUri,
  recoveryCodeHash,
  verifyTotp,
} from './totp';
import { operatorRoutes } from './routes';

// enforcement officers read the fleet (viewer) and issue penalty notices; they change nothing of it
export const ROLES = ['viewer', 'enforcement', 'operator', 'supervisor', 'admin'] as const;
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
  /** This session was opened with the second factor (a TOTP code or a recovery code). */
  mfa: boolean;
  /** The operator has a TOTP second factor. */
  mfaEnrolled: boolean;
}

export interface OperatorView {
  username: string;
  displayName: string;
  role: Role;
  createdAt: string;
  disabledAt: string | null;
  lockedUntil: string | null;
  /** The account has an authenticator (TOTP) set up. */
  mfaEnrolled: boolean;
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
  override readonly name: string = 'OperatorError';
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    readonly retryAfter?: number,
  ) {
    super(message);
  }
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
  /**
   * Supervisors and admins need a session opened with the second factor for every route that needs
   * the supervisor role or above, enrolled or not (PARKLINK_REQUIRE_MFA=1); without it, only once
   * they have enrolled. Enrolment itself needs only a session.
   */
  requireMfa?: boolean;
  /** The issuer authenticator apps show (default 'ParkLink'). */
  totpIssuer?: string;
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
  totp_secret: string | null;
  totp_pending_secret: string | null;
  totp_enabled_at: Date | null;
  totp_last_step: number | null;
}

/** The second factor typed at login: a TOTP code, or one of the recovery codes. */
export interface SecondFactor {
  code?: string;
  recoveryCode?: string;
}

export const USERNAME = '^[a-z0-9][a-z0-9_.@-]{1,63}$';
const USERNAME_RE = new RegExp(USERNAME);

/** Operator routes need a role; these do not (drivers' pay-by-phone API, the price quote, the login). */
const PUBLIC_ROUTES = [
  /^\/api\/driver\//,
  /^\/api\/phone\//,
  /^\/api\/quote$/,
  // A receipt is opened by the code the meter showed: no account, limited per address.
  /^\/api\/receipts\//,
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
  mfaEnrolled: Boolean(row.totp_enabled_at),
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
  readonly #requireMfa: boolean;
  readonly #issuer: string;
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
    this.#requireMfa = config.requireMfa ?? false;
    this.#issuer = config.totpIssuer ?? 'ParkLink';
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

  /** Whether the platform makes `role` set up the second factor (PARKLINK_REQUIRE_MFA=1, supervisors and admins). */
  mfaRequiredFor(role: Role): boolean {
    return this.#requireMfa && roleAtLeast(role, 'supervisor');
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
    second: SecondFactor = {},
  ): Promise<{ token: string; expiresAt: Date; operator: OperatorView; mfa: boolean }> {
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
    // Counted in the database (every instance sees it); the counter restarts when the lock is set.
    const countFailure = async () => {
      const counted = await this.#db.query<{ failed_logins: number; locked_until: Date | null }>(
        `UPDATE operators SET
            failed_logins = CASE WHEN failed_logins + 1 >= $2 THEN 0 ELSE failed_logins + 1 END,
            locked_until = CASE WHEN failed_logins + 1 >= $2 THEN $3 ELSE locked_until END
          WHERE id = $1 RETURNING failed_logins, locked_until`,
        [row.id, this.#maxFailures, new Date(now + this.#lockoutMs)],
      );
      return (counted.rows[0]?.locked_until?.getTime() ?? 0) > now;
    };
    if (!ok) {
      const locked = await countFailure();
      await fail('wrong-password', { locked });
      throw refused;
    }
    let mfa = false;
    if (row.totp_enabled_at && row.totp_secret) {
      if (!second.code && !second.recoveryCode) {
        await fail('mfa-required');
        throw new OperatorError(
          401,
          'mfa-required',
          'this account needs its authenticator code (or a recovery code)',
        );
      }
      const how = second.code
        ? await this.#useTotp(row, second.code, now)
        : await this.#useRecoveryCode(row.id, second.recoveryCode ?? '', now);
      if (!how) {
        const locked = await countFailure();
        await fail(second.code ? 'wrong-code' : 'wrong-recovery-code', { locked });
        throw new OperatorError(401, 'bad-code', 'the code is wrong, expired or already used');
      }
      mfa = true;
    }
    const token = newBearerToken();
    const expiresAt = new Date(now + this.#sessionMs);
    await this.#db.transaction(async (tx) => {
      await tx.query('UPDATE operators SET failed_logins = 0, locked_until = NULL WHERE id = $1', [row.id]);
      await tx.query(
        'INSERT INTO operator_sessions (token_hash, operator_id, created_at, expires_at, mfa) VALUES ($1, $2, $3, $4, $5)',
        [tokenHash(token), row.id, new Date(now), expiresAt, mfa],
      );
      await this.#audit(tx, row, {
        action: 'login',
        detail: {
          ip: from.ip,
          expiresAt: expiresAt.toISOString(),
          mfa: mfa ? (second.code ? 'totp' : 'recovery-code') : false,
        },
      });
    });
    return { token, expiresAt, operator: view({ ...row, failed_logins: 0, locked_until: null }), mfa };
  }

  /** Takes a TOTP code once: its step must be later than the last one used (set in the same statement). */
  async #useTotp(row: OperatorRow, code: string, now: number): Promise<boolean> {
    if (!row.totp_secret) return false;
    const step = verifyTotp(base32Decode(row.totp_secret), code, Math.floor(now / 1000), {
      lastStep: row.totp_last_step,
    });
    if (step === null) return false;
    const taken = await this.#db.query(
      `UPDATE operators SET totp_last_step = $2 WHERE id = $1 AND (totp_last_step IS NULL OR totp_last_step < $2)
       RETURNING id`,
      [row.id, step],
    );
    return taken.rows.length === 1;
  }

  /** Spends a recovery code: each is good once. */
  async #useRecoveryCode(operatorId: number, code: string, now: number): Promise<boolean> {
    if (code.length === 0 || code.length > 32) return false;
    const used = await this.#db.query(
      `UPDATE operator_recovery_codes SET used_at = $3
        WHERE operator_id = $1 AND code_hash = $2 AND used_at IS NULL RETURNING code_hash`,
      [operatorId, recoveryCodeHash(code), new Date(now)],
    );
    return used.rows.length === 1;
  }

  // ---- The second factor (TOTP) ---------------------------------------------------------------

  /**
   * Starts enrolment (supervisors and admins): a new secret, pending until a code from it confirms
   * it. Returns the secret (base32) and the otpauth:// URI for the authenticator app.
   */
  async startTotp(operator: OperatorIdentity): Promise<{ secret: string; uri: string }> {
    if (!roleAtLeast(operator.role, 'supervisor'))
      throw new OperatorError(403, 'mfa-not-for-role', 'the second factor is for supervisors and admins');
    if (operator.mfaEnrolled)
      throw new OperatorError(
        409,
        'mfa-enrolled',
        'a second factor is set up already: an admin can reset it',
      );
    const secret = base32Encode(newTotpSecret());
    await this.#db.transaction(async (tx) => {
      await tx.query('UPDATE operators SET totp_pending_secret = $2 WHERE id = $1', [operator.id, secret]);
      await this.#audit(tx, operator, { action: 'mfa.start', target: operator.username });
    });
    return { secret, uri: otpauthUri(this.#issuer, operator.username, base32Decode(secret)) };
  }

  /**
   * Confirms enrolment with a code from the pending secret: the factor is on, this session counts
   * as opened with it, the operator's other sessions end, and ten recovery codes are returned (once).
   */
  async confirmTotp(operator: OperatorIdentity, code: string): Promise<{ recoveryCodes: string[] }> {
    const now = this.#now();
    return this.#db.transaction(async (tx) => {
      const found = await tx.query<OperatorRow>('SELECT * FROM operators WHERE id = $1 FOR UPDATE', [
        operator.id,
      ]);
      const row = found.rows[0];
      if (!row?.totp_pending_secret)
        throw new OperatorError(
          409,
          'mfa-not-started',
          'start the enrolment first (POST /api/operators/me/totp)',
        );
      const step = verifyTotp(base32Decode(row.totp_pending_secret), code, Math.floor(now / 1000));
      if (step === null) throw new OperatorError(400, 'bad-code', 'the code does not match the new secret');
      await tx.query(
        `UPDATE operators SET totp_secret = totp_pending_secret, totp_pending_secret = NULL,
                totp_enabled_at = $2, totp_last_step = $3 WHERE id = $1`,
        [row.id, new Date(now), step],
      );
      const codes = await this.#replaceRecoveryCodes(tx, row.id, now);
      await tx.query('UPDATE operator_sessions SET mfa = true WHERE token_hash = $1', [operator.sessionHash]);
      await tx.query(
        `UPDATE operator_sessions SET revoked_at = $3
          WHERE operator_id = $1 AND token_hash <> $2 AND revoked_at IS NULL`,
        [row.id, operator.sessionHash, new Date(now)],
      );
      await this.#audit(tx, operator, { action: 'mfa.enable', target: operator.username });
      return { recoveryCodes: codes };
    });
  }

  /** New recovery codes (the old ones stop working), from a session opened with the second factor. */
  async renewRecoveryCodes(operator: OperatorIdentity): Promise<{ recoveryCodes: string[] }> {
    if (!operator.mfaEnrolled || !operator.mfa)
      throw new OperatorError(403, 'mfa-required', 'log in with your authenticator code first');
    return this.#db.transaction(async (tx) => {
      const codes = await this.#replaceRecoveryCodes(tx, operator.id, this.#now());
      await this.#audit(tx, operator, { action: 'mfa.recovery-codes', target: operator.username });
      return { recoveryCodes: codes };
    });
  }

  async #replaceRecoveryCodes(tx: Queryable, operatorId: number, now: number): Promise<string[]> {
    const codes = newRecoveryCodes();
    await tx.query('DELETE FROM operator_recovery_codes WHERE operator_id = $1', [operatorId]);
    for (const code of codes)
      await tx.query(
        'INSERT INTO operator_recovery_codes (operator_id, code_hash, created_at) VALUES ($1, $2, $3)',
        [operatorId, recoveryCodeHash(code), new Date(now)],
      );
    return codes;
  }

  /** The number of unused recovery codes. */
  async recoveryCodesLeft(operatorId: number): Promise<number> {
    const rows = await this.#db.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM operator_recovery_codes WHERE operator_id = $1 AND used_at IS NULL',
      [operatorId],
    );
    return Number(rows.rows[0]?.n ?? 0);
  }

  /** An admin removes an operator's second factor (a lost phone): their sessions end; they enrol again. */
  async resetTotp(username: string, by: Actor): Promise<void> {
    const now = new Date(this.#now());
    await this.#db.transaction(async (tx) => {
      const rows = await tx.query<{ id: number }>(
        `UPDATE operators SET totp_secret = NULL, totp_pending_secret = NULL, totp_enabled_at = NULL,
                totp_last_step = NULL WHERE username = $1 RETURNING id`,
        [username],
      );
      const id = rows.rows[0]?.id;
      if (id === undefined) throw new OperatorError(404, 'unknown-operator', `no operator ${username}`);
      await tx.query('DELETE FROM operator_recovery_codes WHERE operator_id = $1', [id]);
      await tx.query(
        'UPDATE operator_sessions SET revoked_at = $2 WHERE operator_id = $1 AND revoked_at IS NULL',
        [id, now],
      );
      await this.#audit(tx, by, { action: 'mfa.reset', target: username });
    });
  }

  #dummy(): Promise<string> {
    this.#dummyHash ??= hashPassword(newBearerToken(), this.#scrypt);
    return this.#dummyHash;
  }

  /** The operator a bearer token belongs to, while the session is current and the account enabled. */
  async authenticate(token: string): Promise<OperatorIdentity | undefined> {
    const hash = tokenHash(token);
    const rows = await this.#db.query<OperatorRow & { expires_at: Date; mfa: boolean }>(
      `SELECT o.*, s.expires_at, s.mfa FROM operator_sessions s JOIN operators o ON o.id = s.operator_id
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
      mfa: row.mfa,
      mfaEnrolled: row.totp_enabled_at !== null,
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
    since?: string;
    until?: string;
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
          AND ($6::timestamptz IS NULL OR at >= $6) AND ($7::timestamptz IS NULL OR at < $7)
        ORDER BY id DESC LIMIT $5`,
      [
        query.operator ?? null,
        query.meterId ?? null,
        query.action ?? null,
        query.before ?? null,
        limit + 1,
        query.since ? new Date(query.since) : null,
        query.until ? new Date(query.until) : null,
      ],
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
      // Administrative access (supervisor routes and above) needs the second factor once enrolled,
      // or always for supervisors and admins when the platform requires it.
      const mfaNeeded =
        operator.mfaEnrolled || (this.#requireMfa && roleAtLeast(operator.role, 'supervisor'));
      if (roleAtLeast(role, 'supervisor') && mfaNeeded && !operator.mfa)
        return deny(
          reply,
          403,
          'mfa-required',
          operator.mfaEnrolled
            ? 'log in again with your authenticator code'
            : 'set up an authenticator first (POST /api/operators/me/totp), then log in with its code',
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
    operatorRoutes(app, this);
  }

  /**
   * Counts a login attempt from `address`: 0 when allowed, else the seconds until it may try again
   * (the per-address limit, whatever the usernames).
   */
  loginWait(address: string): number {
    return this.#loginsByAddress.hit(address);
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
export function deny(reply: FastifyReply, status: number, code: string, message: string, challenge?: string) {
  if (challenge) reply.header('www-authenticate', challenge);
  return sendError(reply, status, code, message);
}

/** What a route module needs of the operator accounts: the guard and the audit row. */
export type OperatorGuard = Pick<Operators, 'requireRole' | 'audit'>;
