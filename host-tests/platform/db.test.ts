import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadMigrations, migrate, openDatabase } from '../../platform-server/core/db';
import { createPlatform } from '../../platform-server/platform';
import { CapturingLogger, forEachBackend, randomMeterId } from './helpers';

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
