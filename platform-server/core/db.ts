// The platform's database: one small interface over PGlite (the embedded default, in memory or in a
// data directory) and PostgreSQL through `pg` (when DATABASE_URL is set). The SQL is the same for
// both; results are normalised so callers see the same JavaScript values from either backend:
// bigint → number (ids and sequence numbers are u32), bytea → Uint8Array, timestamptz → Date.
import { readFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import type { CopyRows } from './copyBinary';

export type SqlParam = string | number | bigint | boolean | Date | Uint8Array | null | SqlArray;

/** An array parameter (`$1::bigint[]`), e.g. one column of many rows for unnest(). */
export type SqlArray = readonly (string | number | null)[];

export interface QueryResult<T> {
  rows: T[];
  /** Rows inserted, updated, deleted or returned. */
  rowCount: number;
}

export interface Queryable {
  query<T = Record<string, unknown>>(sql: string, params?: readonly SqlParam[]): Promise<QueryResult<T>>;
  /** Runs a script of several statements without parameters (migrations). */
  exec(sql: string): Promise<void>;
  /** Writes the rows into their table with COPY (binary format); resolves with the rows written. */
  copyIn(rows: CopyRows): Promise<number>;
}

export interface Database extends Queryable {
  readonly kind: 'pglite' | 'postgres';
  /** Runs `fn` in one transaction: committed when it resolves, rolled back when it throws. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

export interface DatabaseOptions {
  /** postgres://… — use PostgreSQL through `pg`; otherwise PGlite. */
  url?: string;
  /** PGlite data directory; in memory when absent. */
  dataDir?: string;
  /** Pool size for PostgreSQL. */
  maxConnections?: number;
  /**
   * PGlite in memory: the data directory to start from, a tarball from pgliteSnapshot, instead of a
   * new cluster (which PGlite makes by running initdb).
   */
  pgliteSnapshot?: Blob;
}

export async function openDatabase(options: DatabaseOptions = {}): Promise<Database> {
  if (options.url) return openPostgres(options.url, options.maxConnections ?? 10);
  return wrapPglite(await createPglite(options.dataDir, options.pgliteSnapshot));
}

/**
 * A PGlite database in memory, set up by `setUp` (migrated, say), as a tarball of its data
 * directory that in-memory databases opened later start from (DatabaseOptions.pgliteSnapshot),
 * without initdb or the set-up: for a process that opens many alike databases, as the tests do.
 */
export async function pgliteSnapshot(setUp: (db: Database) => Promise<void>): Promise<Blob> {
  const pglite = await createPglite();
  try {
    await setUp(wrapPglite(pglite));
    return await pglite.dumpDataDir('none');
  } finally {
    await pglite.close();
  }
}

// ---- PGlite ----------------------------------------------------------------------------------

const INT8_OID = 20;

/**
 * PGlite's WebAssembly modules (the server and initdb) compiled, and its file-system bundle read,
 * once per process, as PGlite's options allow; it would otherwise load and compile them again for
 * every database it opens.
 */
let pgliteArtifacts:
  | Promise<{ pgliteWasmModule: WebAssembly.Module; initdbWasmModule: WebAssembly.Module; fsBundle: Blob }>
  | undefined;

function loadPgliteArtifacts() {
  pgliteArtifacts ??= (async () => {
    // The files PGlite itself loads, beside its entry point in the package.
    const file = (name: string) => readFile(new URL(name, import.meta.resolve('@electric-sql/pglite')));
    const [server, initdb, bundle] = await Promise.all([
      file('./pglite.wasm'),
      file('./initdb.wasm'),
      file('./pglite.data'),
    ]);
    // Node's WebAssembly global; the project's type libraries declare only its types.
    const { compile } = (
      globalThis as unknown as { WebAssembly: { compile(bytes: Uint8Array): Promise<WebAssembly.Module> } }
    ).WebAssembly;
    return {
      pgliteWasmModule: await compile(server),
      initdbWasmModule: await compile(initdb),
      fsBundle: new Blob([bundle]),
    };
  })();
  // A failed load is not kept: the next open tries again.
  pgliteArtifacts.catch(() => {
    pgliteArtifacts = undefined;
  });
  return pgliteArtifacts;
}

async function createPglite(dataDir?: string, snapshot?: Blob): Promise<PGlite> {
  return PGlite.create(dataDir, {
    ...(await loadPgliteArtifacts()),
    ...(snapshot && !dataDir ? { loadDataDir: snapshot } : {}),
    parsers: { [INT8_OID]: (value: string) => Number(value) },
  });
}

function wrapPglite(db: PGlite): Database {
  const wrap = (q: Pick<PGlite, 'query' | 'exec'>): Queryable => ({
    async query<T>(sql: string, params: readonly SqlParam[] = []) {
      const result = await q.query<T>(sql, params as unknown[]);
      return { rows: result.rows, rowCount: result.affectedRows || result.rows.length };
    },
    async exec(sql: string) {
      await q.exec(sql);
    },
    async copyIn(rows: CopyRows) {
      // PGlite reads COPY's input from the blob it is handed, as the file /dev/blob.
      const result = await q.query(`${copyStatement(rows)} FROM '/dev/blob' (FORMAT binary)`, [], {
        blob: new Blob([rows.bytes()]),
      });
      return result.affectedRows ?? 0;
    },
  });
  return {
    kind: 'pglite',
    ...wrap(db),
    transaction: (fn) => db.transaction((tx) => fn(wrap(tx))),
    close: () => db.close(),
  };
}

// ---- PostgreSQL through pg ---------------------------------------------------------------------

const BYTEA_OID = 17;

const pgTypes = {
  getTypeParser(oid: number, format?: string) {
    if (oid === INT8_OID) return (value: string) => Number(value);
    if (oid === BYTEA_OID) {
      const parse = pg.types.getTypeParser(BYTEA_OID);
      return (value: string) => {
        const buffer = parse(value) as Buffer;
        return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.length);
      };
    }
    return pg.types.getTypeParser(oid, format as 'text');
  },
};

/** `COPY table (columns)`: names from the code's own table declarations, quoted all the same. */
function copyStatement(rows: CopyRows): string {
  const quote = (name: string) => `"${name.replace(/"/g, '""')}"`;
  return `COPY ${quote(rows.table.name)} (${rows.table.columns.map(([c]) => quote(c)).join(', ')})`;
}

function toPgParams(params: readonly SqlParam[]): unknown[] {
  // pg sends Buffer as bytea; a plain Uint8Array would be sent as a text array.
  return params.map((p) => (p instanceof Uint8Array && !Buffer.isBuffer(p) ? Buffer.from(p) : p));
}

async function openPostgres(url: string, max: number): Promise<Database> {
  // JIT compilation off for the platform's sessions: its statements are short or report-sized, where
  // compiling costs more than it saves (a city's week of revenue per area on 100 million records:
  // 396 ms with it, 240 ms without; npm run bench -- history). A setting in the URL's options wins.
  const options = new URL(url).searchParams.get('options') ?? '-c jit=off';
  const pool = new pg.Pool({ connectionString: url, max, options, types: pgTypes as pg.CustomTypesConfig });
  // An idle client losing its connection (server restart) must not crash the process.
  pool.on('error', () => {});
  const wrap = (q: pg.Pool | pg.PoolClient): Queryable => ({
    async query<T>(sql: string, params: readonly SqlParam[] = []) {
      const result = await q.query(sql, toPgParams(params));
      return { rows: result.rows as T[], rowCount: result.rowCount ?? result.rows.length };
    },
    async exec(sql: string) {
      await q.query(sql);
    },
    async copyIn(rows: CopyRows) {
      // Before the COPY starts: rows that cannot be completed throw here, not mid-COPY.
      const data = rows.bytes();
      // A COPY holds its connection until it ends: from the pool, one of its own.
      const client = q instanceof pg.Pool ? await q.connect() : q;
      let failed: Error | undefined;
      try {
        const stream = client.query(copyFrom(`${copyStatement(rows)} FROM STDIN (FORMAT binary)`));
        await pipeline(Readable.from([data]), stream);
        return stream.rowCount;
      } catch (error) {
        failed = error as Error;
        throw error;
      } finally {
        // A connection whose COPY failed is dropped rather than handed out again.
        if (client !== q) (client as pg.PoolClient).release(failed);
      }
    },
  });
  // Fail early and clearly when the server does not answer.
  await pool.query('SELECT 1');
  return {
    kind: 'postgres',
    ...wrap(pool),
    async transaction(fn) {
      const client = await pool.connect();
      // The pool stops listening to a client's 'error' while it is checked out: PostgreSQL going
      // away mid-transaction would emit one with no listener, an uncaught exception. The failing
      // query rejects anyway; the broken client is released with its error so the pool drops it.
      let broken: Error | undefined;
      const onError = (error: Error) => {
        broken = error;
      };
      client.on('error', onError);
      try {
        await client.query('BEGIN');
        const result = await fn(wrap(client));
        await client.query('COMMIT');
        return result;
      } catch (error) {
        await client.query('ROLLBACK').catch(() => {});
        throw error;
      } finally {
        // A healthy client goes back to the pool without the listener (the pool watches it again);
        // a broken one keeps it until the pool has ended it.
        if (!broken) client.off('error', onError);
        client.release(broken);
      }
    },
    close: () => pool.end(),
  };
}
