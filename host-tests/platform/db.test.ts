import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDatabase } from '../../platform-server/core/db';
import { loadMigrations, migrate, migrationDirs } from '../../platform-server/core/migrations';
import { createPlatform } from '../../platform-server/platform';
import { CapturingLogger, forEachBackend, randomMeterId } from '../../sim/fleet/platform';
import { PaymentSimulator } from '../../platform-server/payments/simulator';

forEachBackend('database and migrations', (backend) => {
  let drop: () => Promise<void> = async () => {};
  let dataDir: string | undefined;
  let url: string | undefined;

  beforeEach(async () => {
    const fresh = await backend.fresh();
    drop = fresh.drop;
    url = fresh.config.databaseUrl;
    dataDir = url ? undefined : await mkdtemp(join(tmpdir(), 'parklink-pglite-'));
  });

  afterEach(async () => {
    await drop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('applies every migration once, and a second start is a no-op that keeps the data', async () => {
    const migrations = await loadMigrations();
    assert.ok(migrations.length >= 1);
    assert.deepEqual(
      migrations.map((m) => m.version),
      [...migrations.map((m) => m.version)].sort((a, b) => a - b),
    );

    const db = await openDatabase({ url, dataDir });
    try {
      assert.deepEqual(
        await migrate(db),
        migrations.map((m) => m.version),
      );
      await db.query("INSERT INTO meters (id, name) VALUES (7, 'kept')");
      assert.deepEqual(await migrate(db), []);
    } finally {
      await db.close();
    }

    // A whole platform starting on the same database applies nothing and finds the meter.
    const platform = await createPlatform({
      databaseUrl: url,
      dataDir,
      phone: { gateway: false, paymentProvider: new PaymentSimulator() },
      httpLogger: false,
      logger: new CapturingLogger(),
    });
    try {
      const applied = await platform.db.query<{ version: number }>('SELECT version FROM schema_migrations');
      assert.deepEqual(
        applied.rows.map((r) => r.version),
        migrations.map((m) => m.version),
      );
      const meters = await platform.db.query<{ id: number; name: string }>('SELECT id, name FROM meters');
      assert.deepEqual(meters.rows, [{ id: 7, name: 'kept' }]);
    } finally {
      await platform.close();
    }
  });

  it('two instances migrating at once apply each migration exactly once', async () => {
    if (!url) {
      // PGlite is one process's embedded database: "two instances" share one handle.
      const db = await openDatabase();
      try {
        const [a, b] = await Promise.all([migrate(db), migrate(db)]);
        assert.equal(a.length + b.length, (await loadMigrations()).length);
      } finally {
        await db.close();
      }
      return;
    }
    const [one, two] = await Promise.all([openDatabase({ url }), openDatabase({ url })]);
    try {
      const [a, b] = await Promise.all([migrate(one), migrate(two)]);
      const all = (await loadMigrations()).map((m) => m.version);
      assert.deepEqual(
        [...a, ...b].sort((x, y) => x - y),
        all,
      );
      const rows = await one.query<{ n: number }>('SELECT count(*) AS n FROM schema_migrations');
      assert.equal(rows.rows[0].n, all.length);
    } finally {
      await Promise.all([one.close(), two.close()]);
    }
  });

  it('rolls a failed transaction back and returns the same values from either backend', async () => {
    const db = await openDatabase({ url }); // PGlite in memory
    try {
      await migrate(db);
      const id = randomMeterId();
      await assert.rejects(
        db.transaction(async (tx) => {
          await tx.query("INSERT INTO meters (id, name) VALUES ($1, 'rolled back')", [id]);
          throw new Error('abort');
        }),
        /abort/,
      );
      assert.equal((await db.query('SELECT 1 FROM meters WHERE id = $1', [id])).rows.length, 0);
      const row = await db.query<{ big: number; bytes: Uint8Array; at: Date }>(
        'SELECT $1::bigint AS big, $2::bytea AS bytes, $3::timestamptz AS at',
        [4294967295, Uint8Array.of(0, 1, 255), new Date(0)],
      );
      assert.equal(row.rows[0].big, 4294967295);
      assert.deepEqual(row.rows[0].bytes, Uint8Array.of(0, 1, 255));
      assert.equal(row.rows[0].at.getTime(), 0);
    } finally {
      await db.close();
    }
  });
});

describe('migrations in the rooms', () => {
  // Every shipped migration's version, name and bytes: a database migrated before the files moved into
  // the rooms' folders must find each version and name the same, and an edit to an applied migration
  // never runs again on it, so only its comments may change (and the pin with them).
  const shipped: [number, string, string, string][] = [
    [1, 'initial', 'ingest', '97d7281c593769128811612f07c03a7ba9602a0e2a560fff0e29be4722fcb75b'],
    [2, 'records_storage', 'storage', '1863ca73e32f4cb0fea1b2ff049df20c014651640c573f5936588480fe0a293c'],
    [3, 'status', 'fleet', 'c6fbb88bceb88dce1cd19a9abbe975c9c120952f2ff9053fb9d8f37cbcb96d25'],
    [4, 'phone', 'phone', '8c11b069bbed422964f92c9a52dae9086bb4f3a2c41e1e16ec6aaaccffefc2fa'],
    [5, 'keys', 'keys', '96e22d9e97a05ccb618358e4f37b58b1deb91148c062dd5e212b4c7881b5a732'],
    [6, 'tariffs', 'tariffs', '5bcbec7dd4c8d110c5e6c1bbce6682918db54dce1d98d4c16adfeeea71c23936'],
    [7, 'operators', 'operators', '9aa183dcdcefff0852fe4095d523d9a4477fbf83a734160702baf66ca8344e1f'],
    [8, 'uplink_window', 'ingest', 'f42610b144c7a2afff55d990d7a56ecc79bb672b46e5f1b06a47f30f58eda27e'],
    [9, 'pairing_marks', 'phone', 'e2723896a19e1a76ba14216791652e0da21b837fc438b6ea459a351b27c5a8d3'],
    [10, 'one_uplink_window', 'ingest', '5ceb42bb0dfdd702b1c60624d111b2af3f74cb1fa2c3403c0f00d82ec3b9b70a'],
  ];

  it('keeps every shipped migration: version, name and contents, in one global order across the rooms', async () => {
    const migrations = await loadMigrations();
    assert.deepEqual(
      migrations
        .slice(0, shipped.length)
        .map((m) => [
          m.version,
          m.name,
          m.file.split('/')[0],
          createHash('sha256').update(m.sql).digest('hex'),
        ]),
      shipped,
    );
  });

  it('refuses one version in two rooms, naming both files', async () => {
    const root = await mkdtemp(join(tmpdir(), 'parklink-migrations-'));
    try {
      for (const [room, file] of [
        ['alpha', '001_one.sql'],
        ['beta', '002_two.sql'],
        ['gamma', '001_again.sql'],
      ]) {
        await mkdir(join(root, room, 'migrations'), { recursive: true });
        await writeFile(join(root, room, 'migrations', file), 'SELECT 1;');
      }
      await assert.rejects(
        loadMigrations(await migrationDirs(root)),
        /two migrations numbered 1: .*001_one.sql and .*001_again.sql/,
      );
      await rm(join(root, 'gamma'), { recursive: true });
      assert.deepEqual(
        (await loadMigrations(await migrationDirs(root))).map((m) => m.name),
        ['one', 'two'],
      );
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
