// Binary COPY rows (platform-server/core/copyBinary.ts), the way ingest writes a batch: every type
// read back as written on both backends, values a column cannot hold refused before anything is
// sent, a COPY the server refuses rolls its transaction back and leaves the rows already stored,
// and ingest's table declarations match the migrated schema column for column.
import assert from 'node:assert/strict';
import { CopyRows, type CopyTable, CopyValueError } from '../../platform-server/core/copyBinary';
import { type Database, openDatabase } from '../../platform-server/core/db';
import { migrate } from '../../platform-server/core/migrations';
import {
  MAINTENANCE_COPY,
  OPERATIONS_COPY,
  RECORD_SETS_COPY,
  RECORDS_COPY,
  TRANSACTIONS_COPY,
} from '../../platform-server/ingest/store';
import { forEachBackend } from '../../sim/fleet/platform';

const SAMPLES: CopyTable = {
  name: 'copy_samples',
  columns: [
    ['id', 'int8'],
    ['small', 'int2'],
    ['whole', 'int4'],
    ['real', 'float8'],
    ['flag', 'bool'],
    ['at', 'timestamptz'],
    ['raw', 'bytea'],
    ['words', 'text'],
  ],
};

/** A whole row of copy_samples with the given id. */
const sampleRow = (rows: CopyRows, id: number) =>
  rows.row().int8(id).int2(1).int4(1).float8(1).bool(true).timestamptz(0).bytea(new Uint8Array(1)).text('x');

describe('binary COPY rows', () => {
  const rows = () => new CopyRows(SAMPLES, 16);

  it('refuses a value its column cannot hold, naming the table and column', () => {
    const cases: [string, (r: CopyRows) => unknown][] = [
      ['id', (r) => r.row().int8(2 ** 53)],
      ['id', (r) => r.row().int8(1.5)],
      ['small', (r) => r.row().int8(1).int2(32_768)],
      [
        'whole',
        (r) =>
          r
            .row()
            .int8(1)
            .int2(1)
            .int4(-(2 ** 31) - 1),
      ],
      ['at', (r) => r.row().int8(1).int2(1).int4(1).float8(1).bool(true).timestamptz(Number.NaN)],
      [
        'words',
        (r) =>
          r
            .row()
            .int8(1)
            .int2(1)
            .int4(1)
            .float8(1)
            .bool(true)
            .timestamptz(0)
            .bytea(new Uint8Array(0))
            .text('a\0b'),
      ],
    ];
    for (const [column, write] of cases) {
      assert.throws(
        () => write(rows()),
        (error: unknown) =>
          error instanceof CopyValueError && error.table === 'copy_samples' && error.column === column,
        column,
      );
    }
  });

  it('refuses a value of another type, a value too many and a row left short', () => {
    assert.throws(() => rows().row().int4(1), /copy_samples\.id: a int4 value where a int8 goes/);
    const full = rows().row().int8(1).int2(1).int4(1).float8(1).bool(true).timestamptz(0);
    full.bytea(new Uint8Array(0)).text('');
    assert.throws(() => full.null(), /more values than columns/);
    const short = rows().row().int8(1);
    assert.throws(() => short.bytes(), /row 1 has 1 values of 8/);
    assert.throws(() => short.row(), /row 1 has 1 values of 8/);
  });
});

describe('binary COPY rows, byte for byte', () => {
  const WORDS: CopyTable = {
    name: 'words',
    columns: [
      ['n', 'int8'],
      ['small', 'int2'],
      ['word', 'text'],
    ],
  };
  /** One field as COPY's binary format has it: its length, big-endian, then its bytes. */
  const field = (bytes: number[]) => {
    const length = Buffer.alloc(4);
    length.writeInt32BE(bytes.length);
    return [...length, ...bytes];
  };

  it("writes integers big-endian in two's complement and text as UTF-8, short or long, ASCII or not", () => {
    const words = ['', '1234', 'é', '12é4', 'x'.repeat(33), `${'y'.repeat(40)}ü`, 'Zoë 🅿'];
    const numbers = [0, 1, -1, 2 ** 32, -(2 ** 32) - 1, 2 ** 53 - 1, -(2 ** 53) + 1];
    const smalls = [0, 1, -1, 255, 256, -32_768, 32_767];
    const rows = new CopyRows(WORDS, 8);
    words.forEach((word, i) => {
      rows.row().int8(numbers[i]).int2(smalls[i]).text(word);
    });
    const expected: number[] = [...Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1'), 0, 0, 0, 0, 0, 0, 0, 0];
    words.forEach((word, i) => {
      const n = Buffer.alloc(8);
      n.writeBigInt64BE(BigInt(numbers[i]));
      const small = Buffer.alloc(2);
      small.writeInt16BE(smalls[i]);
      expected.push(0, 3, ...field([...n]), ...field([...small]), ...field([...Buffer.from(word, 'utf8')]));
    });
    expected.push(0xff, 0xff);
    assert.deepEqual([...rows.bytes()], expected);
  });
});

describe('binary COPY rows, rewound', () => {
  it('drops everything after a mark, a row left short by a refused value included', () => {
    const rows = new CopyRows(SAMPLES, 16);
    sampleRow(rows, 1);
    const mark = rows.mark();
    sampleRow(rows, 2);
    assert.throws(
      () =>
        rows
          .row()
          .int8(3)
          .int2(1)
          .int4(1)
          .float8(1)
          .bool(true)
          .timestamptz(0)
          .bytea(new Uint8Array(1))
          .text('\0'),
      CopyValueError,
    );
    rows.rewind(mark);
    sampleRow(rows, 4);
    const expected = new CopyRows(SAMPLES, 16);
    sampleRow(expected, 1);
    sampleRow(expected, 4);
    assert.equal(rows.rowCount, 2);
    assert.deepEqual(Buffer.from(rows.bytes()), Buffer.from(expected.bytes()));
    assert.throws(() => new CopyRows(SAMPLES).row().int8(1).mark(), /row 1 has 1 values of 8/);
  });
});

forEachBackend('binary COPY', (backend) => {
  let db: Database;
  let drop: () => Promise<void>;

  before(async () => {
    const fresh = await backend.fresh();
    drop = fresh.drop;
    db = await openDatabase({ url: fresh.config.databaseUrl, pgliteSnapshot: fresh.config.pgliteSnapshot });
    await migrate(db);
    await db.exec(`CREATE TABLE copy_samples (id bigint PRIMARY KEY, small smallint, whole integer,
      real double precision, flag boolean, at timestamptz, raw bytea, words text)`);
  });

  after(async () => {
    await db?.close();
    await drop?.();
  });

  it('reads back every type as written, NULLs and extremes included, growing past its first buffer', async () => {
    // 16 bytes to start with: every row below makes it grow.
    const rows = new CopyRows(SAMPLES, 16);
    const bytes = Uint8Array.from({ length: 3000 }, (_, i) => i % 256);
    rows
      .row()
      .int8(2 ** 53 - 1)
      .int2(-32_768)
      .int4(2 ** 31 - 1)
      .float8(-0.125)
      .bool(true);
    rows.timestamptz(1_767_600_000.25).bytea(bytes).text('Zoë 🅿 "quoted" \\ {braces}');
    rows
      .row()
      .int8(-(2 ** 53) + 1)
      .int2(32_767)
      .int4(-(2 ** 31))
      .float8(1e300)
      .bool(false);
    rows.timestamptz(-86_400).bytea(new Uint8Array(0)).text('');
    rows.row().int8(0).null().null().null().null().null().null().null();
    rows
      .row()
      .int8(1)
      .null()
      .null()
      .null()
      .null()
      .null()
      .null()
      .hex(Uint8Array.of(0x00, 0x0f, 0xa5, 0xff));
    assert.equal(await db.copyIn(rows), 4);
    const read = await db.query<Record<string, unknown>>(
      `SELECT id, small, whole, real, flag, extract(epoch FROM at)::float8 AS at, raw, words
         FROM copy_samples ORDER BY id`,
    );
    assert.deepEqual(read.rows, [
      {
        id: -(2 ** 53) + 1,
        small: 32_767,
        whole: -(2 ** 31),
        real: 1e300,
        flag: false,
        at: -86_400,
        raw: new Uint8Array(0),
        words: '',
      },
      { id: 0, small: null, whole: null, real: null, flag: null, at: null, raw: null, words: null },
      { id: 1, small: null, whole: null, real: null, flag: null, at: null, raw: null, words: '000fa5ff' },
      {
        id: 2 ** 53 - 1,
        small: -32_768,
        whole: 2 ** 31 - 1,
        real: -0.125,
        flag: true,
        at: 1_767_600_000.25,
        raw: bytes,
        words: 'Zoë 🅿 "quoted" \\ {braces}',
      },
    ]);
  });

  it('a COPY the server refuses rolls back its transaction and keeps what was stored', async () => {
    const before = (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM copy_samples')).rows[0].n;
    await assert.rejects(
      db.transaction(async (tx) => {
        await tx.query("INSERT INTO copy_samples (id, words) VALUES (100, 'in the failed transaction')");
        // 0 is held already: the primary key refuses the COPY.
        const rows = new CopyRows(SAMPLES);
        sampleRow(rows, 101);
        sampleRow(rows, 0);
        await tx.copyIn(rows);
      }),
      /duplicate key/,
    );
    const after = await db.query<{ id: number }>('SELECT id FROM copy_samples ORDER BY id');
    assert.equal(after.rows.length, before);
    assert.equal(
      after.rows.some((r) => r.id === 100 || r.id === 101),
      false,
    );
    // The connection is usable again, in and out of a transaction.
    await db.transaction(async (tx) => {
      const rows = new CopyRows(SAMPLES);
      sampleRow(rows, 102);
      assert.equal(await tx.copyIn(rows), 1);
    });
    const rows = new CopyRows(SAMPLES);
    sampleRow(rows, 103);
    assert.equal(await db.copyIn(rows), 1);
    assert.equal((await db.query('SELECT 1 FROM copy_samples WHERE id IN (102, 103)')).rows.length, 2);
  });

  it("ingest's tables are declared with the schema's columns and types", async () => {
    for (const table of [
      RECORDS_COPY,
      TRANSACTIONS_COPY,
      OPERATIONS_COPY,
      MAINTENANCE_COPY,
      RECORD_SETS_COPY,
    ]) {
      const schema = await db.query<{ column_name: string; udt_name: string }>(
        `SELECT column_name, udt_name FROM information_schema.columns
          WHERE table_schema = current_schema() AND table_name = $1`,
        [table.name],
      );
      const types = new Map(schema.rows.map((c) => [c.column_name, c.udt_name]));
      for (const [column, type] of table.columns)
        assert.equal(types.get(column), type, `${table.name}.${column}`);
    }
  });
});
