// The migration runner: every room's numbered SQL files (`<room>/migrations/NNN_name.sql`) applied
// once each, in one global order by number, recorded in schema_migrations. Versions and names are
// those the files had in the single folder they came from, so existing databases see nothing new.
import { readdir, readFile, stat } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Database } from './db';

/** The platform server's folder: each room keeps its migrations in `<room>/migrations/`. */
export const PLATFORM_DIR = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Arbitrary constant identifying the migration lock among the database's advisory locks. */
const MIGRATION_LOCK = 0x5041524b; // "PARK"

export interface Migration {
  version: number;
  name: string;
  sql: string;
  /** The file it came from, relative to the platform server's folder (`fleet/migrations/003_status.sql`). */
  file: string;
}

/** Every room's `migrations/` folder under `root`, in name order. */
export async function migrationDirs(root = PLATFORM_DIR): Promise<string[]> {
  const dirs: string[] = [];
  for (const entry of (await readdir(root, { withFileTypes: true })).sort((a, b) =>
    a.name.localeCompare(b.name),
  )) {
    if (!entry.isDirectory()) continue;
    const dir = join(root, entry.name, 'migrations');
    const found = await stat(dir).catch(() => undefined);
    if (found?.isDirectory()) dirs.push(dir);
  }
  return dirs;
}

/**
 * The migrations of every room, in one global order by version number (the rooms' files interleave:
 * 001 ingest, 002 storage, 003 fleet, ...). A version used twice, in one room or two, is refused.
 */
export async function loadMigrations(dirs?: readonly string[]): Promise<Migration[]> {
  const migrations: Migration[] = [];
  for (const dir of dirs ?? (await migrationDirs())) {
    for (const file of (await readdir(dir)).filter((f) => f.endsWith('.sql'))) {
      const match = /^(\d{3})_([a-z0-9_]+)\.sql$/.exec(file);
      const where = relative(PLATFORM_DIR, join(dir, file));
      if (!match) throw new Error(`migration file ${where} is not named NNN_name.sql`);
      const version = Number(match[1]);
      const twin = migrations.find((m) => m.version === version);
      if (twin) throw new Error(`two migrations numbered ${version}: ${twin.file} and ${where}`);
      migrations.push({ version, name: match[2], sql: await readFile(join(dir, file), 'utf8'), file: where });
    }
  }
  return migrations.sort((a, b) => a.version - b.version);
}

/**
 * Applies every migration not yet recorded in schema_migrations, in order, each in its own
 * transaction that first takes a transaction-scoped advisory lock: two instances starting at once
 * queue on the lock, and the second finds the migration already recorded. Returns the versions applied.
 */
export async function migrate(db: Database, migrations?: Migration[]): Promise<number[]> {
  const all = migrations ?? (await loadMigrations());
  const applied: number[] = [];
  for (const migration of all) {
    const ran = await db.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
      await tx.exec(
        `CREATE TABLE IF NOT EXISTS schema_migrations (
           version integer PRIMARY KEY,
           name text NOT NULL,
           applied_at timestamptz NOT NULL DEFAULT now()
         )`,
      );
      const done = await tx.query('SELECT 1 FROM schema_migrations WHERE version = $1', [migration.version]);
      if (done.rows.length > 0) return false;
      await tx.exec(migration.sql);
      await tx.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [
        migration.version,
        migration.name,
      ]);
      return true;
    });
    if (ran) applied.push(migration.version);
  }
  return applied;
}
