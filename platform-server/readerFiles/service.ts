// Reader files (management service 414d) on the platform: the card reader's update documents,
// settings and firmware, uploaded by an administrator (reader firmware only with the release key's
// signature, checked here as the meters check it), pushed to listed meters, an area or the fleet as
// 0x8B offers, and delivered chunk by chunk at the offset each meter's 0x0B report asks for (stop
// and wait, so a meter resumes from its flash after a cut). Every report is recorded with the files
// the meter holds, so the meters not holding the latest version of a file pushed to them are listed.
//
// Its HTTP API is routes.ts; index.ts wires the room (the 0x0B route, the routes).
import { ed25519 } from '@noble/curves/ed25519';
import { checkReaderFirmwareSignature, ReaderFileRefused } from '../../firmware/units/readerFileVerify';
import type { Crypto } from '../../hal/crypto';
import { ProtocolError } from '../../protocol/errors';
import {
  decodeReaderFilesReport,
  decodeReaderSettings,
  encodeReaderFilesDownlink,
  type HeldReaderFile,
  isReaderFileName,
  MAX_READER_FILE,
  READER_FILE_CHUNK,
  READER_FILE_KINDS,
  READER_FILES_DOWNLINK,
  type ReaderFileKind,
} from '../../protocol/readerFiles';
import type { Database, Queryable } from '../core/db';
import { RequestRefused } from '../core/errors';
import { nodeCrypto } from '../core/nodeCrypto';
import { type MeterTarget, resolveTarget } from '../fleet/targets';
import type { Logger, UplinkHandler } from '../ingest/gate';

export interface ReaderFileDeps {
  db: Database;
  /** Seals and publishes a downlink (Ingest.sendDownlink); returns its sequence number. */
  sendDownlink(meterId: number, type: number, body: Uint8Array): Promise<number>;
  /** The release key's public half (the one pinned in the meters); none: reader firmware is refused. */
  releaseKey?: Uint8Array;
  crypto?: Pick<Crypto, 'sha256'>;
  /** Bytes per chunk (default READER_FILE_CHUNK). */
  chunkBytes?: number;
  logger?: Logger;
}

export class ReaderFilesRefused extends RequestRefused {
  override readonly name: string = 'ReaderFilesRefused';
}

export interface ReaderFileView {
  name: string;
  kind: ReaderFileKind;
  version: number;
  length: number;
  /** SHA-256 of the content, hex. */
  sha256: string;
  signed: boolean;
  note: string | null;
  uploadedBy: string;
  uploadedAt: string;
}

export interface DeliveryView {
  name: string;
  version: number;
  state: 'offered' | 'downloading' | 'held' | 'refused';
  nextOffset: number;
  why: string | null;
  pushedAt: string;
  updatedAt: string;
}

export interface MeterReaderFilesView {
  meterId: number;
  /** What the meter's last 0x0B says it holds (null: it never reported). */
  held: HeldReaderFile[] | null;
  reportedAt: string | null;
  deliveries: DeliveryView[];
}

export interface PushOutcome {
  name: string;
  version: number;
  meters: { meterId: number; downlinkSeq?: number; error?: string }[];
}

export interface StaleMeter {
  meterId: number;
  reportedAt: string | null;
  /** Files pushed to the meter whose latest version it does not report holding. */
  behind: { name: string; latest: number; held: number | null }[];
}

const ed25519Verifier = {
  ed25519(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean {
    try {
      return ed25519.verify(signature, message, publicKey);
    } catch {
      return false;
    }
  },
};

interface FileRow {
  name: string;
  kind: ReaderFileKind;
  version: string | number;
  length: string | number;
  sha256: Uint8Array;
  signed: boolean;
  note: string | null;
  uploaded_by: string;
  uploaded_at: Date;
}

const FILE_COLUMNS = `name, kind, version, length(content) AS length, sha256, signature IS NOT NULL AS signed,
  note, uploaded_by, uploaded_at`;

function fileView(r: FileRow): ReaderFileView {
  return {
    name: r.name,
    kind: r.kind,
    version: Number(r.version),
    length: Number(r.length),
    sha256: Buffer.from(r.sha256).toString('hex'),
    signed: r.signed,
    note: r.note,
    uploadedBy: r.uploaded_by,
    uploadedAt: r.uploaded_at.toISOString(),
  };
}

export class ReaderFileService {
  readonly #d: ReaderFileDeps;
  readonly #crypto: Pick<Crypto, 'sha256'>;
  /** Contents read for chunks, by "name@version" (a stored version never changes). */
  readonly #contents = new Map<string, Uint8Array>();

  constructor(deps: ReaderFileDeps) {
    this.#d = deps;
    this.#crypto = deps.crypto ?? nodeCrypto;
  }

  /**
   * Checks and stores a file as an administrator uploaded it: 400 for a bad name, kind, size or
   * settings, 422 for reader firmware whose signature does not verify, 409 for a version not above
   * the name's latest or a kind other than the name's.
   */
  async upload(input: {
    name: string;
    kind: string;
    version: number;
    content: Uint8Array;
    signature?: Uint8Array;
    note?: string;
    by: string;
  }): Promise<ReaderFileView> {
    const { name, version, content, signature } = input;
    if (!isReaderFileName(name))
      throw new ReaderFilesRefused(
        400,
        'bad-name',
        'a name is 1-32 of a-z 0-9 . _ - starting with a letter or digit',
        'name',
      );
    if (!(READER_FILE_KINDS as readonly string[]).includes(input.kind))
      throw new ReaderFilesRefused(400, 'bad-kind', `kind is one of ${READER_FILE_KINDS.join(', ')}`, 'kind');
    const kind = input.kind as ReaderFileKind;
    if (content.length < 1 || content.length > MAX_READER_FILE)
      throw new ReaderFilesRefused(400, 'bad-content', `content is 1 to ${MAX_READER_FILE} bytes`, 'content');
    const sha256 = this.#crypto.sha256(content);
    if (kind === 'settings') {
      try {
        decodeReaderSettings(content);
      } catch (error) {
        if (!(error instanceof ProtocolError)) throw error;
        throw new ReaderFilesRefused(400, 'bad-settings', error.message, 'content');
      }
    }
    if (kind === 'reader-firmware') {
      if (!signature)
        throw new ReaderFilesRefused(400, 'no-signature', 'reader firmware needs its signature', 'signature');
      if (!this.#d.releaseKey)
        throw new ReaderFilesRefused(
          422,
          'no-release-key',
          'the platform has no release key to check reader firmware against',
        );
      try {
        checkReaderFirmwareSignature(
          ed25519Verifier,
          this.#d.releaseKey,
          { name, version, length: content.length, sha256 },
          signature,
        );
      } catch (error) {
        if (error instanceof ReaderFileRefused)
          throw new ReaderFilesRefused(422, error.reason, error.message, 'signature');
        throw error;
      }
    } else if (signature) {
      throw new ReaderFilesRefused(
        400,
        'bad-signature',
        'only reader firmware carries a signature',
        'signature',
      );
    }
    return this.#d.db.transaction(async (tx) => {
      // Uploads of one name one at a time: versions only grow and the kind stays.
      await tx.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`reader-file:${name}`]);
      const { rows } = await tx.query<{ version: string | number; kind: ReaderFileKind }>(
        'SELECT version, kind FROM reader_files WHERE name = $1 ORDER BY version DESC LIMIT 1',
        [name],
      );
      const latest = rows[0];
      if (latest && latest.kind !== kind)
        throw new ReaderFilesRefused(409, 'kind-mismatch', `${name} is a ${latest.kind} file`, 'kind');
      if (latest && version <= Number(latest.version))
        throw new ReaderFilesRefused(
          409,
          'stale-version',
          `${name} is at version ${Number(latest.version)}: a new version is higher`,
          'version',
        );
      const stored = await tx.query<FileRow>(
        `INSERT INTO reader_files (name, version, kind, content, sha256, signature, note, uploaded_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING ${FILE_COLUMNS}`,
        [name, version, kind, content, sha256, signature ?? null, input.note ?? null, input.by],
      );
      return fileView(stored.rows[0]);
    });
  }

  /** Every file stored, each name's versions newest first. */
  async list(): Promise<ReaderFileView[]> {
    const { rows } = await this.#d.db.query<FileRow>(
      `SELECT ${FILE_COLUMNS} FROM reader_files ORDER BY name, version DESC`,
    );
    return rows.map(fileView);
  }

  async get(name: string, version: number): Promise<ReaderFileView | undefined> {
    const { rows } = await this.#d.db.query<FileRow>(
      `SELECT ${FILE_COLUMNS} FROM reader_files WHERE name = $1 AND version = $2`,
      [name, version],
    );
    return rows[0] && fileView(rows[0]);
  }

  /** Offers a stored file to every meter of the target; a meter the broker cannot reach is named, the rest still go. */
  async push(name: string, version: number, target: MeterTarget): Promise<PushOutcome> {
    const file = await this.get(name, version);
    if (!file)
      throw new ReaderFilesRefused(404, 'unknown-reader-file', `no reader file ${name} version ${version}`);
    const meterIds = await resolveTarget(this.#d.db, target);
    const body = await this.#offer(name, version);
    const meters: PushOutcome['meters'] = [];
    for (const meterId of meterIds) {
      try {
        // recorded before the offer goes, so the meter's answer finds it
        await this.#d.db.query(
          `INSERT INTO reader_file_deliveries (meter_id, name, version, state, next_offset, why, pushed_at, updated_at)
           VALUES ($1, $2, $3, 'offered', 0, NULL, now(), now())
           ON CONFLICT (meter_id, name) DO UPDATE SET version = $3, state = 'offered', next_offset = 0, why = NULL,
             downlink_seq = NULL, pushed_at = now(), updated_at = now()`,
          [meterId, name, version],
        );
        const downlinkSeq = await this.#d.sendDownlink(meterId, READER_FILES_DOWNLINK, body);
        await this.#d.db.query(
          'UPDATE reader_file_deliveries SET downlink_seq = $3 WHERE meter_id = $1 AND name = $2',
          [meterId, name, downlinkSeq],
        );
        meters.push({ meterId, downlinkSeq });
      } catch (error) {
        meters.push({ meterId, error: (error as Error).message });
      }
    }
    return { name, version, meters };
  }

  /**
   * Ingest's handler for 0x0B: the report and the delivery it is about, recorded in the transaction
   * that accepts the frame; after the commit the meter gets the chunk it asks for, or the offer of a
   * delivery it does not have in hand (it lost it, or took another file first).
   */
  onReport: UplinkHandler = async ({ meterId, body }, tx) => {
    const report = decodeReaderFilesReport(body);
    await tx.query(
      `INSERT INTO meter_reader_reports (meter_id, state, name, version, next_offset, why, held, reported_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, now())
       ON CONFLICT (meter_id) DO UPDATE SET state = $2, name = $3, version = $4, next_offset = $5, why = $6,
         held = $7, reported_at = now()`,
      [
        meterId,
        report.state,
        report.name ?? null,
        report.version ?? null,
        report.offset,
        report.reason ?? null,
        JSON.stringify(report.held),
      ],
    );
    if (report.name !== undefined && report.version !== undefined && report.state !== 'idle')
      await tx.query(
        `UPDATE reader_file_deliveries SET state = $4, next_offset = $5, why = $6, updated_at = now()
          WHERE meter_id = $1 AND name = $2 AND version = $3`,
        [meterId, report.name, report.version, report.state, report.offset, report.reason ?? null],
      );
    // A file the meter reports holding at the version pushed is delivered, whatever the report is about.
    for (const held of report.held)
      await tx.query(
        `UPDATE reader_file_deliveries SET state = 'held', next_offset = 0, why = NULL, updated_at = now()
          WHERE meter_id = $1 AND name = $2 AND version <= $3 AND state <> 'held'`,
        [meterId, held.name, held.version],
      );
    const pending = await this.#pending(tx, meterId);
    // A chunk or offer lost is sent again at the meter's next report or push.
    return () => this.#followUp(meterId, report, pending);
  };

  async #followUp(
    meterId: number,
    report: { state: string; name?: string; version?: number; offset: number },
    pending: { name: string; version: number }[],
  ): Promise<void> {
    if (report.state === 'downloading' && report.name !== undefined && report.version !== undefined) {
      const wanted = pending.find((p) => p.name === report.name && p.version === report.version);
      if (wanted) await this.#sendChunk(meterId, wanted.name, wanted.version, report.offset);
      return; // a download the platform no longer pushes is left for the meter to replace
    }
    const next = pending[0];
    if (next)
      await this.#d.sendDownlink(meterId, READER_FILES_DOWNLINK, await this.#offer(next.name, next.version));
  }

  async ofMeter(meterId: number): Promise<MeterReaderFilesView | undefined> {
    const report = await this.#d.db.query<{ held: HeldReaderFile[]; reported_at: Date }>(
      'SELECT held, reported_at FROM meter_reader_reports WHERE meter_id = $1',
      [meterId],
    );
    const deliveries = await this.#d.db.query<{
      name: string;
      version: string | number;
      state: DeliveryView['state'];
      next_offset: string | number;
      why: string | null;
      pushed_at: Date;
      updated_at: Date;
    }>(
      `SELECT name, version, state, next_offset, why, pushed_at, updated_at FROM reader_file_deliveries
        WHERE meter_id = $1 ORDER BY name`,
      [meterId],
    );
    const r = report.rows[0];
    if (!r && deliveries.rows.length === 0) return undefined;
    return {
      meterId,
      held: r ? r.held : null,
      reportedAt: r ? r.reported_at.toISOString() : null,
      deliveries: deliveries.rows.map((d) => ({
        name: d.name,
        version: Number(d.version),
        state: d.state,
        nextOffset: Number(d.next_offset),
        why: d.why,
        pushedAt: d.pushed_at.toISOString(),
        updatedAt: d.updated_at.toISOString(),
      })),
    };
  }

  /**
   * Meters of the target (default the fleet) that were pushed a file and do not report holding its
   * latest version: never reported, still downloading, refused it, or on an older one.
   */
  async stale(target: MeterTarget = { fleet: true }): Promise<{ meters: StaleMeter[] }> {
    const meterIds = await resolveTarget(this.#d.db, target);
    const { rows } = await this.#d.db.query<{
      meter_id: string | number;
      name: string;
      latest: string | number;
      held: HeldReaderFile[] | null;
      reported_at: Date | null;
    }>(
      `SELECT d.meter_id, d.name, l.latest, r.held, r.reported_at
         FROM reader_file_deliveries d
         JOIN (SELECT name, max(version) AS latest FROM reader_files GROUP BY name) l ON l.name = d.name
         LEFT JOIN meter_reader_reports r ON r.meter_id = d.meter_id
        WHERE d.meter_id = ANY($1::bigint[])
        ORDER BY d.meter_id, d.name`,
      [meterIds],
    );
    const byMeter = new Map<number, StaleMeter>();
    for (const row of rows) {
      const meterId = Number(row.meter_id);
      const latest = Number(row.latest);
      const held = row.held?.find((f) => f.name === row.name)?.version ?? null;
      if (held !== null && held >= latest) continue;
      let meter = byMeter.get(meterId);
      if (!meter) {
        meter = { meterId, reportedAt: row.reported_at ? row.reported_at.toISOString() : null, behind: [] };
        byMeter.set(meterId, meter);
      }
      meter.behind.push({ name: row.name, latest, held });
    }
    return { meters: [...byMeter.values()] };
  }

  async #pending(db: Queryable, meterId: number): Promise<{ name: string; version: number }[]> {
    const { rows } = await db.query<{ name: string; version: string | number }>(
      `SELECT name, version FROM reader_file_deliveries
        WHERE meter_id = $1 AND state IN ('offered', 'downloading') ORDER BY pushed_at, name`,
      [meterId],
    );
    return rows.map((r) => ({ name: r.name, version: Number(r.version) }));
  }

  async #offer(name: string, version: number): Promise<Uint8Array> {
    const { rows } = await this.#d.db.query<{
      kind: ReaderFileKind;
      length: string | number;
      sha256: Uint8Array;
      signature: Uint8Array | null;
    }>(
      'SELECT kind, length(content) AS length, sha256, signature FROM reader_files WHERE name = $1 AND version = $2',
      [name, version],
    );
    const r = rows[0];
    if (!r)
      throw new ReaderFilesRefused(404, 'unknown-reader-file', `no reader file ${name} version ${version}`);
    return encodeReaderFilesDownlink({
      k: 'offer',
      name,
      kind: r.kind,
      version,
      length: Number(r.length),
      sha256: new Uint8Array(r.sha256),
      ...(r.signature ? { signature: new Uint8Array(r.signature) } : {}),
    });
  }

  async #sendChunk(meterId: number, name: string, version: number, offset: number): Promise<void> {
    const key = `${name}@${version}`;
    let content = this.#contents.get(key);
    if (!content) {
      const { rows } = await this.#d.db.query<{ content: Uint8Array }>(
        'SELECT content FROM reader_files WHERE name = $1 AND version = $2',
        [name, version],
      );
      if (!rows[0]) return;
      content = new Uint8Array(rows[0].content);
      if (this.#contents.size >= 16) this.#contents.clear(); // a few files are in delivery at a time
      this.#contents.set(key, content);
    }
    if (offset >= content.length) return;
    const size = Math.min(this.#d.chunkBytes ?? READER_FILE_CHUNK, READER_FILE_CHUNK);
    const data = content.subarray(offset, offset + size);
    await this.#d.sendDownlink(
      meterId,
      READER_FILES_DOWNLINK,
      encodeReaderFilesDownlink({ k: 'chunk', name, version, offset, data }),
    );
  }
}
