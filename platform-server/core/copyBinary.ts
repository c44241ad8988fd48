// Rows in PostgreSQL's binary COPY format (the COPY reference page, "Binary Format"), for bulk
// writes: each value goes straight into one growing buffer as the server stores it (big-endian
// integers, IEEE doubles, microseconds since 2000 for timestamptz, raw bytes for bytea), so a batch
// of records costs neither a text form per value on this side nor parsing one on the server's.
// A table's columns are declared once with their types; the server refuses a value of another
// type, and the table's declaration is checked against the schema by the tests.

/** The column types this writer encodes, by PostgreSQL's type name. */
export type CopyType = 'int8' | 'int4' | 'int2' | 'float8' | 'bool' | 'timestamptz' | 'bytea' | 'text';

/** A table's columns in COPY order, with their types. */
export interface CopyTable {
  name: string;
  columns: readonly (readonly [column: string, type: CopyType])[];
}

/** A place between two rows of a CopyRows (CopyRows.mark). */
export interface CopyMark {
  readonly at: number;
  readonly rows: number;
}

/** "PGCOPY\n\377\r\n\0", then the flags field and the header extension's length (both 0). */
const HEADER = [0x50, 0x47, 0x43, 0x4f, 0x50, 0x59, 0x0a, 0xff, 0x0d, 0x0a, 0x00, 0, 0, 0, 0, 0, 0, 0, 0];
/** Seconds from the Unix epoch to PostgreSQL's, 2000-01-01 00:00 UTC. */
const POSTGRES_EPOCH = 946_684_800;
const TWO_32 = 2 ** 32;
/** '0'…'9', 'a'…'f' as ASCII codes. */
const HEX_DIGITS = Uint8Array.from('0123456789abcdef', (c) => c.charCodeAt(0));

/** A value the column's type cannot hold; nothing of the rows is sent. */
export class CopyValueError extends RangeError {
  constructor(
    readonly table: string,
    readonly column: string,
    detail: string,
  ) {
    super(`${table}.${column}: ${detail}`);
    this.name = 'CopyValueError';
  }
}

/**
 * Rows of one table, written value by value in the table's column order:
 * `rows.row().int8(id).text(name).null()` for each row, then `bytes()` for COPY … (FORMAT binary).
 */
export class CopyRows {
  readonly table: CopyTable;
  #buffer: Buffer;
  #at: number;
  #rows = 0;
  /** The column the next value fills; columns.length when the row is complete. */
  #column: number;

  constructor(table: CopyTable, initialBytes = 64 * 1024) {
    this.table = table;
    this.#buffer = Buffer.allocUnsafe(Math.max(initialBytes, HEADER.length + 2));
    this.#buffer.set(HEADER, 0);
    this.#at = HEADER.length;
    this.#column = table.columns.length;
  }

  get rowCount(): number {
    return this.#rows;
  }

  /** Starts a row: its values follow, one per column. */
  row(): this {
    this.#rowEnded();
    this.#room(2);
    this.#put16(this.table.columns.length);
    this.#column = 0;
    this.#rows++;
    return this;
  }

  int8(value: number): this {
    if (!Number.isSafeInteger(value)) this.#bad(`${value} is not an integer bigint can take exactly`);
    this.#field('int8', 8);
    this.#write64(value);
    return this;
  }

  int4(value: number): this {
    return this.#integer('int4', 32, value);
  }

  int2(value: number): this {
    return this.#integer('int2', 16, value);
  }

  float8(value: number): this {
    this.#field('float8', 8);
    this.#at = this.#buffer.writeDoubleBE(value, this.#at);
    return this;
  }

  bool(value: boolean): this {
    this.#field('bool', 1);
    this.#buffer[this.#at++] = value ? 1 : 0;
    return this;
  }

  /** A time in seconds since the Unix epoch (fractions kept to the microsecond, as timestamptz is). */
  timestamptz(seconds: number): this {
    if (!Number.isFinite(seconds)) this.#bad(`${seconds} is not a time`);
    this.#field('timestamptz', 8);
    this.#write64(Math.round((seconds - POSTGRES_EPOCH) * 1e6));
    return this;
  }

  bytea(value: Uint8Array): this {
    this.#field('bytea', value.length);
    this.#buffer.set(value, this.#at);
    this.#at += value.length;
    return this;
  }

  text(value: string): this {
    this.#expect('text');
    if (value.includes('\0')) this.#bad('text cannot hold a NUL character');
    // At most three bytes of UTF-8 per UTF-16 unit: room first, the length once written.
    this.#room(4 + value.length * 3);
    const start = this.#at;
    this.#at += 4;
    // Short ASCII (a card's last four digits, its expiry) byte by byte: Buffer#write costs more
    // than the copy for a few characters.
    let ascii = value.length <= 32;
    for (let i = 0; ascii && i < value.length; i++) {
      const c = value.charCodeAt(i);
      if (c < 0x80) this.#buffer[this.#at++] = c;
      else ascii = false;
    }
    if (!ascii) this.#at = start + 4 + this.#buffer.write(value, start + 4, 'utf8');
    this.#store32(start, this.#at - start - 4);
    this.#column++;
    return this;
  }

  /** Text of `bytes` in lowercase hex (a card token, say), written without making the string. */
  hex(bytes: Uint8Array): this {
    this.#field('text', bytes.length * 2);
    for (let i = 0; i < bytes.length; i++) {
      this.#buffer[this.#at++] = HEX_DIGITS[bytes[i] >> 4];
      this.#buffer[this.#at++] = HEX_DIGITS[bytes[i] & 15];
    }
    return this;
  }

  /** SQL NULL in the next column. */
  null(): this {
    if (this.#column >= this.table.columns.length) this.#bad('more values than columns');
    this.#room(4);
    this.#put32(-1);
    this.#column++;
    return this;
  }

  /** Where the rows stand, between two rows: rewind(mark) drops what is written after it. */
  mark(): CopyMark {
    this.#rowEnded();
    return { at: this.#at, rows: this.#rows };
  }

  /** Drops the values written since `mark`, a row left short by a refused value included. */
  rewind(mark: CopyMark): void {
    this.#at = mark.at;
    this.#rows = mark.rows;
    this.#column = this.table.columns.length;
  }

  /** The rows with the trailer, for COPY … FROM STDIN (FORMAT binary). */
  bytes(): Uint8Array {
    this.#rowEnded();
    this.#room(2);
    this.#store16(this.#at, -1);
    return this.#buffer.subarray(0, this.#at + 2);
  }

  #integer(type: 'int4' | 'int2', bits: 32 | 16, value: number): this {
    const limit = 2 ** (bits - 1);
    if (!Number.isInteger(value) || value < -limit || value >= limit)
      this.#bad(`${value} is not a ${bits}-bit integer`);
    this.#field(type, bits / 8);
    if (bits === 32) this.#put32(value);
    else this.#put16(value);
    return this;
  }

  /** A 64-bit two's complement integer, big-endian, from a safe integer. */
  #write64(value: number): void {
    const high = Math.floor(value / TWO_32);
    this.#put32(high);
    this.#put32(value - high * TWO_32);
  }

  // Big-endian stores byte by byte, after #room: Buffer's writeInt32BE checks its arguments on every
  // call, and ingest writes a dozen values a record. The low bits of a negative or unsigned value
  // are the same two's complement bytes either way.
  #store32(at: number, value: number): void {
    const buffer = this.#buffer;
    buffer[at] = value >>> 24;
    buffer[at + 1] = value >>> 16;
    buffer[at + 2] = value >>> 8;
    buffer[at + 3] = value;
  }

  #store16(at: number, value: number): void {
    this.#buffer[at] = value >>> 8;
    this.#buffer[at + 1] = value;
  }

  /** Stores at the end of the rows and moves past. */
  #put32(value: number): void {
    this.#store32(this.#at, value);
    this.#at += 4;
  }

  #put16(value: number): void {
    this.#store16(this.#at, value);
    this.#at += 2;
  }

  /** Checks the next column's type and makes room for its length and `bytes` of value. */
  #field(type: CopyType, bytes: number): void {
    this.#expect(type);
    this.#room(4 + bytes);
    this.#put32(bytes);
    this.#column++;
  }

  #expect(type: CopyType): void {
    const column = this.table.columns[this.#column];
    if (!column) this.#bad('more values than columns');
    if (column[1] !== type) this.#bad(`a ${type} value where a ${column[1]} goes`);
  }

  #rowEnded(): void {
    if (this.#column !== this.table.columns.length)
      this.#bad(`row ${this.#rows} has ${this.#column} values of ${this.table.columns.length}`);
  }

  #room(bytes: number): void {
    if (this.#at + bytes + 2 <= this.#buffer.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.#buffer.length * 2, this.#at + bytes + 2));
    this.#buffer.copy(grown, 0, 0, this.#at);
    this.#buffer = grown;
  }

  #bad(detail: string): never {
    const column = this.table.columns[Math.min(this.#column, this.table.columns.length - 1)];
    throw new CopyValueError(this.table.name, column?.[0] ?? '?', detail);
  }
}
