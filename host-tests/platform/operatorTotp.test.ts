// The operators' second factor: TOTP against RFC 6238's and RFC 4226's published test vectors and
// RFC 4648's base32 vectors; then, on both backends, enrolment for supervisors and admins, login
// with a code (taken once), single-use recovery codes stored hashed, administrative routes refused
// without the factor, an admin's reset, and wrong codes counted towards the lockout.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import {
  base32Decode,
  base32Encode,
  hotp,
  recoveryCodeHash,
  type TotpAlgorithm,
  totp,
  verifyTotp,
} from '../../platform-server/operators/totp';
import type { Platform } from '../../platform-server/platform';
import { forEachBackend, type OperatorLogin, operatorLogin, startPlatform } from '../../sim/fleet/platform';

const ascii = (s: string) => new TextEncoder().encode(s);

describe('TOTP (RFC 6238), HOTP (RFC 4226) and base32 (RFC 4648) vectors', () => {
  // RFC 6238 Appendix B: 8 digits, X = 30, T0 = 0, one seed per hash.
  const seeds: Record<TotpAlgorithm, Uint8Array> = {
    SHA1: ascii('12345678901234567890'),
    SHA256: ascii('12345678901234567890123456789012'),
    SHA512: ascii('1234567890123456789012345678901234567890123456789012345678901234'),
  };
  const vectors: [number, string, TotpAlgorithm][] = [
    [59, '94287082', 'SHA1'],
    [59, '46119246', 'SHA256'],
    [59, '90693936', 'SHA512'],
    [1111111109, '07081804', 'SHA1'],
    [1111111109, '68084774', 'SHA256'],
    [1111111109, '25091201', 'SHA512'],
    [1111111111, '14050471', 'SHA1'],
    [1111111111, '67062674', 'SHA256'],
    [1111111111, '99943326', 'SHA512'],
    [1234567890, '89005924', 'SHA1'],
    [1234567890, '91819424', 'SHA256'],
    [1234567890, '93441116', 'SHA512'],
    [2000000000, '69279037', 'SHA1'],
    [2000000000, '90698825', 'SHA256'],
    [2000000000, '38618901', 'SHA512'],
    [20000000000, '65353130', 'SHA1'],
    [20000000000, '77737706', 'SHA256'],
    [20000000000, '47863826', 'SHA512'],
  ];

  it("gives RFC 6238's codes for every time and hash of Appendix B", () => {
    for (const [time, code, algorithm] of vectors)
      assert.equal(totp(seeds[algorithm], time, { digits: 8, algorithm }), code, `${algorithm} at ${time}`);
  });

  it("gives RFC 4226's HOTP codes for counters 0 to 9", () => {
    const expected = [
      '755224',
      '287082',
      '359152',
      '969429',
      '338314',
      '254676',
      '287922',
      '162583',
      '399871',
      '520489',
    ];
    assert.deepEqual(
      expected.map((_, counter) => hotp(seeds.SHA1, counter)),
      expected,
    );
  });

  it('verifies a code within one step either side, not beyond, and not at or before the last step used', () => {
    const at = 1111111111;
    const step = Math.floor(at / 30);
    const code = totp(seeds.SHA1, at, { digits: 8 });
    assert.equal(verifyTotp(seeds.SHA1, code, at, { digits: 8 }), step);
    assert.equal(verifyTotp(seeds.SHA1, code, at + 30, { digits: 8 }), step, 'a step late');
    assert.equal(verifyTotp(seeds.SHA1, code, at - 30, { digits: 8 }), step, 'a step early');
    assert.equal(verifyTotp(seeds.SHA1, code, at + 90, { digits: 8 }), null, 'three steps late');
    assert.equal(verifyTotp(seeds.SHA1, code, at, { digits: 8, lastStep: step }), null, 'used already');
    assert.equal(verifyTotp(seeds.SHA1, '1234567', at, { digits: 8 }), null, 'too short');
    assert.equal(verifyTotp(seeds.SHA1, '1234567a', at, { digits: 8 }), null, 'not digits');
  });

  it("encodes and decodes RFC 4648's base32 vectors (unpadded)", () => {
    const cases: [string, string][] = [
      ['', ''],
      ['f', 'MY'],
      ['fo', 'MZXQ'],
      ['foo', 'MZXW6'],
      ['foob', 'MZXW6YQ'],
      ['fooba', 'MZXW6YTB'],
      ['foobar', 'MZXW6YTBOI'],
    ];
    for (const [plain, encoded] of cases) {
      assert.equal(base32Encode(ascii(plain)), encoded);
      assert.deepEqual(
        base32Decode(`${encoded}======`.slice(0, Math.ceil(encoded.length / 8) * 8 || 0)),
        ascii(plain),
      );
    }
    assert.throws(() => base32Decode('MZ1'), RangeError);
    const secret = randomBytes(20);
    assert.deepEqual(Buffer.from(base32Decode(base32Encode(secret))), secret);
  });
});

forEachBackend('operator second factor (TOTP)', (backend) => {
  let platform: Platform;
  let drop: () => Promise<void>;
  let now = Date.parse('2026-05-04T08:00:00Z');
  const seconds = () => Math.floor(now / 1000);

  before(async function () {
    this.timeout(60_000); // a fresh database on a machine shared with other work
    ({ platform, drop } = await startPlatform(backend, {
      operators: { now: () => now, maxFailedLogins: 3, lockoutSeconds: 600, requireMfa: true },
    }));
  });

  after(async () => {
    await platform?.close();
    await drop?.();
  });

  const inject = (
    headers: Record<string, string> | undefined,
    method: 'GET' | 'POST' | 'DELETE',
    url: string,
    payload?: object,
  ) => platform.app.inject({ method, url, headers, ...(payload ? { payload } : {}) });
  const login = (username: string, password: string, extra: object = {}) =>
    inject(undefined, 'POST', '/api/operators/login', { username, password, ...extra });
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

  /** An operator of `role` with a known password. */
  async function account(role: 'viewer' | 'supervisor' | 'admin') {
    const username = `${role}-${randomBytes(4).toString('hex')}`;
    const password = randomBytes(16).toString('base64url');
    await platform.operators.create({ username, role, password }, { id: null, username: 'test-setup' });
    return { username, password };
  }

  /** Enrols the account; returns its secret, recovery codes and the (MFA) session's headers. */
  async function enrol(a: { username: string; password: string }) {
    const first = (await login(a.username, a.password)).json();
    const started = await inject(bearer(first.token), 'POST', '/api/operators/me/totp');
    assert.equal(started.statusCode, 201, started.body);
    const secret = base32Decode(started.json().secret);
    const confirmed = await inject(bearer(first.token), 'POST', '/api/operators/me/totp/confirm', {
      code: totp(secret, seconds()),
    });
    assert.equal(confirmed.statusCode, 200, confirmed.body);
    now += 30_000; // the code just used is spent: the next login needs the next step's
    return {
      secret,
      recoveryCodes: confirmed.json().recoveryCodes as string[],
      headers: bearer(first.token),
    };
  }

  it('is for supervisors and admins; administrative routes need it when required, other routes do not', async () => {
    const viewer = await operatorLogin(platform.operators, 'viewer');
    const refused = await inject(viewer.headers, 'POST', '/api/operators/me/totp');
    assert.equal(refused.statusCode, 403);
    assert.equal(refused.json().code, 'mfa-not-for-role');
    const admin: OperatorLogin = await operatorLogin(platform.operators, 'admin');
    const adminRoute = await inject(admin.headers, 'GET', '/api/operators');
    assert.equal(adminRoute.statusCode, 403);
    assert.equal(adminRoute.json().code, 'mfa-required');
    assert.equal(
      (await inject(admin.headers, 'GET', '/api/alarms')).statusCode,
      200,
      'viewer routes need no factor',
    );
    const me = (await inject(admin.headers, 'GET', '/api/operators/me')).json();
    assert.deepEqual(me.mfa, { enrolled: false, session: false, recoveryCodesLeft: 0, required: true });
  });

  it('enrols with a confirmed code: the URI for the app, ten recovery codes, the other sessions ended', async () => {
    const a = await account('admin');
    const other = (await login(a.username, a.password)).json();
    const first = (await login(a.username, a.password)).json();
    const started = await inject(bearer(first.token), 'POST', '/api/operators/me/totp');
    assert.equal(started.statusCode, 201, started.body);
    const { secret, uri } = started.json();
    assert.match(secret, /^[A-Z2-7]{32}$/);
    assert.equal(
      uri,
      `otpauth://totp/ParkLink:${a.username}?secret=${secret}&issuer=ParkLink&algorithm=SHA1&digits=6&period=30`,
    );
    const key = base32Decode(secret);
    const wrong = await inject(bearer(first.token), 'POST', '/api/operators/me/totp/confirm', {
      code: totp(key, seconds() + 300),
    });
    assert.equal(wrong.statusCode, 400);
    assert.equal(wrong.json().code, 'bad-code');
    const confirmed = await inject(bearer(first.token), 'POST', '/api/operators/me/totp/confirm', {
      code: totp(key, seconds()),
    });
    assert.equal(confirmed.statusCode, 200, confirmed.body);
    const codes: string[] = confirmed.json().recoveryCodes;
    assert.equal(codes.length, 10);
    assert.equal(new Set(codes).size, 10);
    for (const c of codes) assert.match(c, /^[a-z2-7]{5}-[a-z2-7]{5}$/);
    assert.equal((await inject(bearer(other.token), 'GET', '/api/operators/me')).statusCode, 401, 'ended');
    const me = (await inject(bearer(first.token), 'GET', '/api/operators/me')).json();
    assert.deepEqual(me.mfa, { enrolled: true, session: true, recoveryCodesLeft: 10, required: true });
    assert.equal(
      (await inject(bearer(first.token), 'GET', '/api/operators')).statusCode,
      200,
      'admin access now',
    );
    const again = await inject(bearer(first.token), 'POST', '/api/operators/me/totp');
    assert.equal(again.statusCode, 409);

    // Stored hashed: no code in the table, each one's SHA-256.
    const rows = await platform.db.query<{ code_hash: string }>(
      'SELECT code_hash FROM operator_recovery_codes r JOIN operators o ON o.id = r.operator_id WHERE o.username = $1',
      [a.username],
    );
    const stored = rows.rows.map((r) => r.code_hash).sort();
    assert.deepEqual(stored, codes.map((c) => recoveryCodeHash(c)).sort());
    assert.equal(
      recoveryCodeHash(codes[0]),
      createHash('sha256').update(codes[0].replace('-', '')).digest('hex'),
    );
    const audit = await platform.operators.auditLog({ operator: a.username });
    assert.ok(audit.entries.some((e) => e.action === 'mfa.enable'));
  });

  it('logs in only with a code once enrolled; a code is taken once; wrong codes count towards the lockout', async () => {
    const a = await account('supervisor');
    const { secret } = await enrol(a);
    const bare = await login(a.username, a.password);
    assert.equal(bare.statusCode, 401);
    assert.equal(bare.json().code, 'mfa-required');
    const code = totp(secret, seconds());
    const ok = await login(a.username, a.password, { code });
    assert.equal(ok.statusCode, 200, ok.body);
    assert.equal(ok.json().mfa, true);
    const replay = await login(a.username, a.password, { code });
    assert.equal(replay.statusCode, 401);
    assert.equal(replay.json().code, 'bad-code', 'the same code is not taken twice');
    now += 30_000;
    assert.equal((await login(a.username, a.password, { code: totp(secret, seconds()) })).statusCode, 200);
    const notDigits = await login(a.username, a.password, { code: '12345a' });
    assert.equal(notDigits.statusCode, 400, 'the schema refuses it');
    for (let i = 0; i < 2; i++) {
      const wrong = await login(a.username, a.password, { code: totp(secret, seconds() + 3600) });
      assert.equal(wrong.statusCode, 401);
    }
    const third = await login(a.username, a.password, { code: totp(secret, seconds() + 7200) });
    assert.equal(third.statusCode, 401);
    const locked = await login(a.username, a.password, { code: totp(secret, seconds()) });
    assert.equal(locked.statusCode, 429, 'three wrong codes lock the account like wrong passwords');
    now += 601_000;
  });

  it('a recovery code opens one session, once; renewed codes replace the old ones', async () => {
    const a = await account('admin');
    const { recoveryCodes } = await enrol(a);
    const used = await login(a.username, a.password, { recoveryCode: recoveryCodes[0].toUpperCase() });
    assert.equal(used.statusCode, 200, used.body);
    assert.equal(used.json().mfa, true);
    const twice = await login(a.username, a.password, { recoveryCode: recoveryCodes[0] });
    assert.equal(twice.statusCode, 401);
    const session = bearer(used.json().token);
    assert.equal((await inject(session, 'GET', '/api/operators/me')).json().mfa.recoveryCodesLeft, 9);
    const renewed = await inject(session, 'POST', '/api/operators/me/recovery-codes');
    assert.equal(renewed.statusCode, 200, renewed.body);
    const fresh: string[] = renewed.json().recoveryCodes;
    assert.equal(
      (await login(a.username, a.password, { recoveryCode: recoveryCodes[1] })).statusCode,
      401,
      'old',
    );
    assert.equal((await login(a.username, a.password, { recoveryCode: fresh[0] })).statusCode, 200);
  });

  it('refuses administrative routes to a session without the factor; an admin resets a lost factor', async () => {
    const a = await account('admin');
    const { secret, headers } = await enrol(a);
    // A session of an enrolled admin that was not opened with the factor (none can be, but the
    // guard checks it as well): refused on administrative routes.
    const now0 = (await login(a.username, a.password, { code: totp(secret, seconds()) })).json();
    await platform.db.query('UPDATE operator_sessions SET mfa = false WHERE token_hash = $1', [
      createHash('sha256').update(now0.token).digest('hex'),
    ]);
    const refused = await inject(bearer(now0.token), 'GET', '/api/operators/audit');
    assert.equal(refused.statusCode, 403);
    assert.equal(refused.json().code, 'mfa-required');

    const s = await account('supervisor');
    await enrol(s);
    const reset = await inject(headers, 'DELETE', `/api/operators/${s.username}/totp`);
    assert.equal(reset.statusCode, 204, reset.body);
    const plain = await login(s.username, s.password);
    assert.equal(plain.statusCode, 200, 'no factor after the reset');
    assert.equal(plain.json().mfa, false);
    const supervisorRoute = await inject(bearer(plain.json().token), 'GET', '/api/alarm-rules');
    assert.equal(supervisorRoute.json().code, 'mfa-required', 'required by the platform: enrol again');
    assert.equal((await inject(headers, 'DELETE', '/api/operators/nobody-here/totp')).statusCode, 404);
  });
});
