// `npx parklink operator add` on both backends (an embedded database in a directory, the real
// PostgreSQL): the account is created with its role and can log in; a taken name, a short password,
// a bad role and a missing database are refused with the documented exit codes.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { openDatabase } from '../../platform-server/core/db';
import { Operators } from '../../platform-server/operators/service';
import type * as Cli from '../../tools/parklink';
import { forEachBackend } from '../../sim/fleet/platform';

// By URL with its extension: '../../tools/parklink' would load the bin shim tools/parklink.js.
const { ExitCode, main }: typeof Cli = await import(new URL('../../tools/parklink.ts', import.meta.url).href);

forEachBackend('parklink operator add', (backend) => {
  let env: NodeJS.ProcessEnv;
  let cleanup: () => Promise<void>;

  before(async () => {
    const fresh = await backend.fresh();
    if (fresh.config.databaseUrl) {
      env = { DATABASE_URL: fresh.config.databaseUrl };
      cleanup = fresh.drop;
    } else {
      const dir = await mkdtemp(path.join(os.tmpdir(), 'parklink-cli-'));
      env = { PARKLINK_DATA_DIR: dir };
      cleanup = () => rm(dir, { recursive: true, force: true });
    }
  });

  after(async () => cleanup?.());

  async function run(args: string[], stdin?: string, answers: string[] = []) {
    let out = '';
    let err = '';
    const code = await main(
      ['operator', ...args],
      {
        out: (t) => (out += `${t}\n`),
        err: (t) => (err += `${t}\n`),
        ...(stdin === undefined ? {} : { readStdin: async () => stdin }),
        ...(answers.length ? { promptHidden: async () => answers.shift() ?? '' } : {}),
      },
      env,
    );
    return { code, out, err };
  }

  it('adds an operator with its role from a password on stdin; it logs in', async function () {
    this.timeout(60_000); // the first open of an embedded data directory creates its database cluster
    const r = await run(
      ['add', 'night.supervisor', '--role', 'supervisor', '--name', 'Night Supervisor', '--password-stdin'],
      'a night shift password\nignored second line\n',
    );
    assert.equal(r.code, ExitCode.ok, r.err);
    assert.deepEqual(
      (({ username, role, displayName }) => ({ username, role, displayName }))(JSON.parse(r.out).operator),
      { username: 'night.supervisor', role: 'supervisor', displayName: 'Night Supervisor' },
    );
    const db = await openDatabase({ url: env.DATABASE_URL, dataDir: env.PARKLINK_DATA_DIR });
    try {
      const session = await new Operators(db).login('night.supervisor', 'a night shift password');
      assert.equal(session.operator.role, 'supervisor');
      const audit = await db.query<{ username: string; action: string; target: string }>(
        'SELECT username, action, target FROM operator_audit WHERE action = $1',
        ['operator.create'],
      );
      assert.equal(audit.rows.length, 1);
      assert.match(audit.rows[0].username, /^cli:/);
      assert.equal(audit.rows[0].target, 'night.supervisor');
    } finally {
      await db.close();
    }
  });

  it('asks twice on a terminal and refuses answers that differ', async () => {
    const differ = await run(['add', 'day.clerk', '--role', 'viewer'], undefined, [
      'the first password',
      'another password',
    ]);
    assert.equal(differ.code, ExitCode.refused);
    assert.match(differ.err, /differ/);
    const same = await run(['add', 'day.clerk', '--role', 'viewer'], undefined, [
      'the day clerk password',
      'the day clerk password',
    ]);
    assert.equal(same.code, ExitCode.ok, same.err);
  });

  it("reset-mfa removes an operator's second factor and ends their sessions; an unknown name is refused (1)", async () => {
    const db = await openDatabase({ url: env.DATABASE_URL, dataDir: env.PARKLINK_DATA_DIR });
    try {
      await db.query(
        "UPDATE operators SET totp_secret = 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ', totp_enabled_at = now() WHERE username = $1",
        ['night.supervisor'],
      );
      await assert.rejects(new Operators(db).login('night.supervisor', 'a night shift password'), {
        code: 'mfa-required',
      });
    } finally {
      await db.close();
    }
    const reset = await run(['reset-mfa', 'night.supervisor']);
    assert.equal(reset.code, ExitCode.ok, reset.err);
    assert.deepEqual(JSON.parse(reset.out), { ok: true, username: 'night.supervisor', mfa: false });
    const again = await openDatabase({ url: env.DATABASE_URL, dataDir: env.PARKLINK_DATA_DIR });
    try {
      const session = await new Operators(again).login('night.supervisor', 'a night shift password');
      assert.equal(session.mfa, false);
      const audit = await again.query<{ username: string }>(
        'SELECT username FROM operator_audit WHERE action = $1',
        ['mfa.reset'],
      );
      assert.match(audit.rows[0].username, /^cli:/);
    } finally {
      await again.close();
    }
    const unknown = await run(['reset-mfa', 'nobody.here']);
    assert.equal(unknown.code, ExitCode.refused);
    assert.equal(JSON.parse(unknown.out).error, 'unknown-operator');
    assert.equal((await run(['reset-mfa'])).code, ExitCode.usage);
  });

  it('refuses a taken name and a short password (1), and bad usage (2)', async () => {
    const taken = await run(
      ['add', 'night.supervisor', '--role', 'viewer', '--password-stdin'],
      'long enough password',
    );
    assert.equal(taken.code, ExitCode.refused);
    assert.equal(JSON.parse(taken.out).error, 'username-taken');
    const short = await run(['add', 'short.one', '--role', 'viewer', '--password-stdin'], 'short\n');
    assert.equal(short.code, ExitCode.refused);
    assert.equal(JSON.parse(short.out).error, 'bad-password');
    for (const args of [
      ['add', 'someone', '--role', 'root', '--password-stdin'],
      ['add', '--role', 'viewer', '--password-stdin'],
      ['remove', 'someone'],
      ['add', 'someone', '--role', 'viewer'], // no terminal, no --password-stdin
    ]) {
      const r = await run(args, 'long enough password');
      assert.equal(r.code, ExitCode.usage, args.join(' '));
    }
    let err = '';
    const nowhere = await main(
      ['operator', 'add', 'someone', '--role', 'viewer', '--password-stdin'],
      { out() {}, err: (t) => (err += t), readStdin: async () => 'long enough password' },
      {},
    );
    assert.equal(nowhere.valueOf(), ExitCode.usage);
    assert.match(err, /DATABASE_URL/);
  });
});
