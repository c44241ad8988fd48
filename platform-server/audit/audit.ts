// The remote audit unit (16): an export bundle of stored records with their chain links, the sealed
// record-set frames whose MACs ingest checked, and the meters' public data; and the audit that checks
// every chain link and every MAC again, from a bundle or straight from the database, with its own key
// access (keystore file, master key or HSM), and reports what it finds. docs/audit.md is the format.
import type { Crypto } from '../../hal/crypto';
import { bytesEqual } from '../../protocol/bytes';
import { chainLink, genesisHash, verifyChain } from '../../protocol/chain';
import { FrameType, openFrame } from '../../protocol/frame';
import { decodeRecordsMessage } from '../../protocol/messages';
import type { Queryable } from '../core/db';
import { frameKeys, type Keystore } from '../keys/keystore';

export const BUNDLE_FORMAT = 'parklink-audit-bundle';
export const REPORT_FORMAT = 'parklink-audit-report';
export const AUDIT_FORMAT_VERSION = 1;

/** A bundle or report that cannot be used: not JSON of the format, or its hash does not match. */
export class AuditFormatError extends Error {
  override readonly name: string = 'AuditFormatError';
}

export interface BundleMeter {
  id: number;
  name: string;
  keyEpoch: number;
  /** The link before the meter's record 1 (hex). */
  genesis: string;
}

export interface BundleRecord {
  meterId: number;
  seq: number;
  kind: number;
  recordedAt: string;
  /** Converted from format 1 at ingest: its link was computed over bytes the platform no longer has. */
  redacted: boolean;
  bytes: string;
  link: string;
  /** The stored link of record seq - 1 when that record is not in the bundle (null: not held). */
  previousLink?: string | null;
}

export interface BundleSet {
  meterId: number;
  frameSeq: number;
  epoch: number;
  firstSeq: number;
  lastSeq: number;
  /** The frame as it arrived: header, AES-GCM ciphertext and tag (hex). */
  frame: string;
}

export interface BundleAuthorisation {
  meterId: number;
  seq: number;
  recordSha256: string;
  finding: string;
  username: string;
  reason: string;
  at: string;
}

export interface Selection {
  /** Only these meters (all when absent or empty). */
  meters?: number[];
  /** Records the meters wrote from (inclusive) … to (exclusive). */
  from?: Date;
  to?: Date;
  /** A random sample of this many records, reproducible with the seed. */
  sample?: { count: number; seed: string };
}

export interface Bundle {
  format: typeof BUNDLE_FORMAT;
  version: typeof AUDIT_FORMAT_VERSION;
  createdAt: string;
  selection: {
    meters: number[] | null;
    from: string | null;
    to: string | null;
    sample: Selection['sample'] | null;
  };
  meters: BundleMeter[];
  records: BundleRecord[];
  sets: BundleSet[];
  gaps: { meterId: number; from: number; to: number }[];
  authorisations: BundleAuthorisation[];
}

export type Finding =
  /** The stored link is not SHA-256(previous link || stored bytes). */
  | 'chain-break'
  /** A record-set frame covering the record does not authenticate under the meter's key. */
  | 'mac-failure'
  /** The frame authenticates but carries other bytes or another link for the record. */
  | 'not-in-set'
  /** No kept frame covers the record: its MAC cannot be checked. */
  | 'no-mac';

export interface AuditFinding {
  meterId: number;
  seq: number;
  finding: Finding;
  detail: string;
  recordSha256: string;
  /** The supervisor's special authorisation for this record as it now is, when given. */
  authorisation: Omit<BundleAuthorisation, 'meterId' | 'seq' | 'recordSha256'> | null;
}

export interface MeterSummary {
  id: number;
  records: number;
  firstSeq: number | null;
  lastSeq: number | null;
  chainBreaks: number;
  macFailures: number;
  gaps: { from: number; to: number }[];
}

export interface AuditReport {
  format: typeof REPORT_FORMAT;
  version: typeof AUDIT_FORMAT_VERSION;
  startedAt: string;
  finishedAt: string;
  source: { kind: 'bundle'; sha256: string } | { kind: 'database'; selection: Bundle['selection'] };
  keystore: { source: string; keyCheckValue: string };
  totals: {
    meters: number;
    records: number;
    setsChecked: number;
    chainBreaks: number;
    macFailures: number;
    notInSet: number;
    noMac: number;
    /** Converted from format 1: the link cannot be recomputed from the stored bytes. */
    redacted: number;
    gaps: number;
    authorised: number;
    /** Findings without an authorisation: those records do not count. */
    outstanding: number;
  };
  recordsPerSecond: number;
  meters: MeterSummary[];
  findings: AuditFinding[];
}

/** Hex from a bundle, as bytes; a bad value is an AuditFormatError naming it. */
function hexBytes(hex: unknown, what: string): Uint8Array {
  if (typeof hex !== 'string' || hex.length % 2 !== 0 || !/^[0-9a-f]*$/.test(hex))
    throw new AuditFormatError(`${what} is not lower-case hex`);
  const buffer = Buffer.from(hex, 'hex');
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.length);
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('hex');
}

const isCount = (n: unknown): n is number => Number.isSafeInteger(n) && (n as number) >= 0;

/** Checks the shape of a bundle read from a file; throws AuditFormatError naming the first bad field. */
export function checkBundle(bundle: Bundle): void {
  for (const name of ['meters', 'records', 'sets', 'gaps', 'authorisations'] as const)
    if (!Array.isArray(bundle[name])) throw new AuditFormatError(`bundle.${name} is not an array`);
  bundle.records.forEach((r, i) => {
    if (!isCount(r?.meterId) || !isCount(r.seq) || r.seq < 1 || typeof r.redacted !== 'boolean')
      throw new AuditFormatError(`records[${i}]: meterId, seq or redacted is missing or not valid`);
    if (r.previousLink !== undefined && r.previousLink !== null)
      hexBytes(r.previousLink, `records[${i}].previousLink`);
  });
  bundle.sets.forEach((s, i) => {
    if (![s?.meterId, s.frameSeq, s.epoch, s.firstSeq, s.lastSeq].every(isCount) || s.lastSeq < s.firstSeq)
      throw new AuditFormatError(`sets[${i}]: a number is missing or not valid`);
  });
  bundle.gaps.forEach((g, i) => {
    if (![g?.meterId, g.from, g.to].every(isCount)) throw new AuditFormatError(`gaps[${i}] is not valid`);
  });
  bundle.authorisations.forEach((a, i) => {
    if (!isCount(a?.meterId) || !isCount(a.seq) || typeof a.recordSha256 !== 'string')
      throw new AuditFormatError(`authorisations[${i}] is not valid`);
  });
}

// ---- hashing of bundles and reports -------------------------------------------------------------

/** The file text: the document as compact JSON with its SHA-256 (over that JSON) as a last member. */
export function sealDocument(crypto: Crypto, document: object): { text: string; sha256: string } {
  const body = JSON.stringify(document);
  const sha256 = hex(crypto.sha256(new TextEncoder().encode(body)));
  return { text: `${body.slice(0, -1)},"sha256":"${sha256}"}\n`, sha256 };
}

/** Parses a sealed document and checks its hash; throws AuditFormatError. */
export function openDocument<T>(
  crypto: Crypto,
  text: string,
  format: string,
): { document: T; sha256: string } {
  const trimmed = text.trim();
  const match = /,"sha256":"([0-9a-f]{64})"\}$/.exec(trimmed);
  if (!match) throw new AuditFormatError(`not a sealed ${format} file: no sha256 at its end`);
  const body = `${trimmed.slice(0, match.index)}}`;
  const actual = hex(crypto.sha256(new TextEncoder().encode(body)));
  if (actual !== match[1])
    throw new AuditFormatError(`the ${format} file's sha256 does not match its content`);
  let document: { format?: unknown; version?: unknown };
  try {
    document = JSON.parse(body);
  } catch (error) {
    throw new AuditFormatError(`the ${format} file is not JSON: ${(error as Error).message}`);
  }
  if (document.format !== format) throw new AuditFormatError(`not a ${format} file`);
  if (document.version !== AUDIT_FORMAT_VERSION)
    throw new AuditFormatError(`${format} version ${String(document.version)} is not supported`);
  return { document: document as T, sha256: match[1] };
}

// ---- export ------------------------------------------------------------------------------------

interface RecordRow {
  meter_id: number | string;
  seq: number | string;
  kind: number;
  recorded_at: Date;
  redacted: boolean;
  bytes: Uint8Array;
  link: Uint8Array;
}

/** Reads the selection's records, their sets, the meters' public data and gaps from the database. */
export async function exportBundle(
  db: Queryable,
  crypto: Crypto,
  selection: Selection,
  now: Date = new Date(),
): Promise<Bundle> {
  const meters = selection.meters && selection.meters.length > 0 ? selection.meters : null;
  const where = ['($1::bigint[] IS NULL OR r.meter_id = ANY($1::bigint[]))'];
  const params: (number[] | Date | string | number | null)[] = [meters];
  if (selection.from) {
    params.push(selection.from);
    where.push(`r.recorded_at >= $${params.length}`);
  }
  if (selection.to) {
    params.push(selection.to);
    where.push(`r.recorded_at < $${params.length}`);
  }
  let order = 'r.meter_id, r.seq';
  let limit = '';
  if (selection.sample) {
    params.push(selection.sample.seed);
    // Reproducible: the same seed over the same rows picks the same records.
    order = `md5($${params.length} || ':' || r.meter_id || ':' || r.seq)`;
    params.push(selection.sample.count);
    limit = `LIMIT $${params.length}`;
  }
  const picked = await db.query<RecordRow>(
    `SELECT r.meter_id, r.seq, r.kind, r.recorded_at, r.redacted, r.bytes, r.link FROM records r
      WHERE ${where.join(' AND ')} ORDER BY ${order} ${limit}`,
    params,
  );
  const rows = picked.rows
    .map((r) => ({ ...r, meter_id: Number(r.meter_id), seq: Number(r.seq) }))
    .sort((a, b) => a.meter_id - b.meter_id || a.seq - b.seq);
  const meterIds = [...new Set(rows.map((r) => r.meter_id))];
  const have = new Set(rows.map((r) => `${r.meter_id}:${r.seq}`));
  // The link before each run of the selection, from the record before it (or the genesis).
  const before = rows.filter((r) => r.seq > 1 && !have.has(`${r.meter_id}:${r.seq - 1}`));
  const previous = new Map<string, Uint8Array>();
  if (before.length > 0) {
    const found = await db.query<{ meter_id: number | string; seq: number | string; link: Uint8Array }>(
      `SELECT r.meter_id, r.seq, r.link FROM unnest($1::bigint[], $2::bigint[]) AS f(meter_id, seq)
         JOIN records r ON r.meter_id = f.meter_id AND r.seq = f.seq`,
      [before.map((r) => r.meter_id), before.map((r) => r.seq - 1)],
    );
    for (const row of found.rows) previous.set(`${Number(row.meter_id)}:${Number(row.seq) + 1}`, row.link);
  }
  const meterRows =
    meterIds.length === 0
      ? []
      : (
          await db.query<{ id: number | string; name: string; key_epoch: number | string }>(
            'SELECT id, name, key_epoch FROM meters WHERE id = ANY($1::bigint[]) ORDER BY id',
            [meterIds],
          )
        ).rows;
  // Every kept frame that covers a selected record.
  const sets =
    rows.length === 0
      ? []
      : (
          await db.query<{
            meter_id: number | string;
            frame_seq: number | string;
            epoch: number | string;
            first_seq: number | string;
            last_seq: number | string;
            frame: Uint8Array;
          }>(
            `SELECT DISTINCT s.id, s.meter_id, s.frame_seq, s.epoch, s.first_seq, s.last_seq, s.frame
               FROM unnest($1::bigint[], $2::bigint[]) AS f(meter_id, seq)
               JOIN record_sets s ON s.meter_id = f.meter_id AND f.seq BETWEEN s.first_seq AND s.last_seq
              ORDER BY s.id`,
            [rows.map((r) => r.meter_id), rows.map((r) => r.seq)],
          )
        ).rows;
  const gaps =
    meterIds.length === 0
      ? []
      : (
          await db.query<{ meter_id: number | string; from_seq: number | string; to_seq: number | string }>(
            'SELECT meter_id, from_seq, to_seq FROM record_gaps WHERE meter_id = ANY($1::bigint[]) ORDER BY meter_id, from_seq',
            [meterIds],
          )
        ).rows;
  const authorisations =
    meterIds.length === 0
      ? []
      : (
          await db.query<{
            meter_id: number | string;
            seq: number | string;
            record_sha256: Uint8Array;
            finding: string;
            username: string;
            reason: string;
            at: Date;
          }>(
            `SELECT meter_id, seq, record_sha256, finding, username, reason, at FROM audit_authorisations
              WHERE meter_id = ANY($1::bigint[]) ORDER BY id`,
            [meterIds],
          )
        ).rows;
  return {
    format: BUNDLE_FORMAT,
    version: AUDIT_FORMAT_VERSION,
    createdAt: now.toISOString(),
    selection: {
      meters,
      from: selection.from?.toISOString() ?? null,
      to: selection.to?.toISOString() ?? null,
      sample: selection.sample ?? null,
    },
    meters: meterRows.map((m) => ({
      id: Number(m.id),
      name: m.name,
      keyEpoch: Number(m.key_epoch),
      genesis: hex(genesisHash(crypto, Number(m.id))),
    })),
    records: rows.map((r) => {
      const out: BundleRecord = {
        meterId: r.meter_id,
        seq: r.seq,
        kind: Number(r.kind),
        recordedAt: new Date(r.recorded_at).toISOString(),
        redacted: r.redacted === true,
        bytes: hex(r.bytes),
        link: hex(r.link),
      };
      if (r.seq > 1 && !have.has(`${r.meter_id}:${r.seq - 1}`)) {
        const link = previous.get(`${r.meter_id}:${r.seq}`);
        out.previousLink = link ? hex(link) : null;
      }
      return out;
    }),
    sets: sets.map((s) => ({
      meterId: Number(s.meter_id),
      frameSeq: Number(s.frame_seq),
      epoch: Number(s.epoch),
      firstSeq: Number(s.first_seq),
      lastSeq: Number(s.last_seq),
      frame: hex(s.frame),
    })),
    gaps: gaps.map((g) => ({ meterId: Number(g.meter_id), from: Number(g.from_seq), to: Number(g.to_seq) })),
    authorisations: authorisations.map((a) => ({
      meterId: Number(a.meter_id),
      seq: Number(a.seq),
      recordSha256: hex(a.record_sha256),
      finding: a.finding,
      username: a.username,
      reason: a.reason,
      at: new Date(a.at).toISOString(),
    })),
  };
}

// ---- audit -------------------------------------------------------------------------------------

export interface AuditOptions {
  keystore: Keystore;
  crypto: Crypto;
  source: AuditReport['source'];
  /** The clock (tests); performance.now() times the checks for records per second. */
  now?: () => Date;
}

/**
 * Checks every chain link and every kept frame's MAC of the bundle: a record that fails is a
 * finding, never an exception. A bundle of the wrong shape throws AuditFormatError.
 */
export function auditBundle(bundle: Bundle, options: AuditOptions): AuditReport {
  const { keystore, crypto } = options;
  checkBundle(bundle);
  const now = options.now ?? (() => new Date());
  const startedAt = now();
  const started = performance.now();
  const findings = new Map<string, AuditFinding>();
  const recordsByKey = new Map<string, BundleRecord>();
  for (const r of bundle.records) recordsByKey.set(`${r.meterId}:${r.seq}`, r);
  // Each record's bytes and link decoded once.
  const decoded = new Map<BundleRecord, { bytes: Uint8Array; link: Uint8Array }>();
  bundle.records.forEach((r, i) => {
    const link = hexBytes(r.link, `records[${i}].link`);
    if (link.length !== 32) throw new AuditFormatError(`records[${i}].link is not 32 bytes`);
    decoded.set(r, { bytes: hexBytes(r.bytes, `records[${i}].bytes`), link });
  });
  const bytesOf = (r: BundleRecord) => (decoded.get(r) as { bytes: Uint8Array }).bytes;
  const linkOf = (r: BundleRecord) => (decoded.get(r) as { link: Uint8Array }).link;
  const hashOf = (r: BundleRecord) => hex(crypto.sha256(bytesOf(r)));
  const find = (r: BundleRecord, finding: Finding, detail: string) => {
    const key = `${r.meterId}:${r.seq}`;
    // The first finding of a record is kept: a chain break explains the MAC check that follows.
    if (!findings.has(key))
      findings.set(key, {
        meterId: r.meterId,
        seq: r.seq,
        finding,
        detail,
        recordSha256: hashOf(r),
        authorisation: null,
      });
  };
  const summaries = new Map<number, MeterSummary>();
  const summary = (id: number) => {
    let s = summaries.get(id);
    if (!s) {
      s = { id, records: 0, firstSeq: null, lastSeq: null, chainBreaks: 0, macFailures: 0, gaps: [] };
      summaries.set(id, s);
    }
    return s;
  };
  let redacted = 0;
  let chainBreaks = 0;

  // 1. Every chain link: link(n) = SHA-256(link(n-1) || bytes(n)).
  for (const r of bundle.records) {
    const s = summary(r.meterId);
    s.records++;
    s.firstSeq = s.firstSeq === null ? r.seq : Math.min(s.firstSeq, r.seq);
    s.lastSeq = s.lastSeq === null ? r.seq : Math.max(s.lastSeq, r.seq);
    if (r.redacted) {
      redacted++;
      continue;
    }
    let previous: Uint8Array | null;
    if (r.seq === 1) previous = genesisHash(crypto, r.meterId);
    else {
      const before = recordsByKey.get(`${r.meterId}:${r.seq - 1}`);
      previous = before ? linkOf(before) : r.previousLink ? hexBytes(r.previousLink, 'previousLink') : null;
    }
    if (previous === null) continue; // the record before is not held: a gap, reported below
    if (!bytesEqual(chainLink(crypto, previous, bytesOf(r)), linkOf(r))) {
      chainBreaks++;
      s.chainBreaks++;
      find(r, 'chain-break', `link of record ${r.seq} is not SHA-256(link ${r.seq - 1} || its bytes)`);
    }
  }

  // 2. Every kept frame's MAC, and the frame's records against the stored ones.
  const covered = new Set<string>();
  const keys = new Map<string, Uint8Array>();
  let macFailures = 0;
  let notInSet = 0;
  try {
    for (const set of bundle.sets) {
      const keyId = `${set.meterId}:${set.epoch}`;
      let key = keys.get(keyId);
      if (!key) {
        const pair = frameKeys(keystore, set.meterId, set.epoch);
        pair.downlink.fill(0);
        key = pair.uplink;
        keys.set(keyId, key);
      }
      const inBundle: BundleRecord[] = [];
      for (let seq = set.firstSeq; seq <= set.lastSeq; seq++) {
        const r = recordsByKey.get(`${set.meterId}:${seq}`);
        if (r) inBundle.push(r);
      }
      for (const r of inBundle) covered.add(`${r.meterId}:${r.seq}`);
      let records: Uint8Array[];
      let links: Uint8Array[];
      try {
        const { header, body } = openFrame(crypto, key, hexBytes(set.frame, `frame ${set.frameSeq}`));
        if (
          header.type !== FrameType.Records ||
          header.meterId !== set.meterId ||
          header.seq !== set.frameSeq
        )
          throw new Error(`frame header says meter ${header.meterId} frame ${header.seq}`);
        const message = decodeRecordsMessage(body);
        records = message.records;
        links = verifyChain(crypto, message.previous, message.records);
        if (records.length !== set.lastSeq - set.firstSeq + 1)
          throw new Error('the frame holds another range');
      } catch (error) {
        for (const r of inBundle) {
          macFailures++;
          summary(r.meterId).macFailures++;
          find(r, 'mac-failure', `frame ${set.frameSeq} (epoch ${set.epoch}): ${(error as Error).message}`);
        }
        continue;
      }
      for (const r of inBundle) {
        const i = r.seq - set.firstSeq;
        const sameBytes = r.redacted || bytesEqual(records[i], bytesOf(r));
        if (!sameBytes || !bytesEqual(links[i], linkOf(r))) {
          notInSet++;
          summary(r.meterId).macFailures++;
          find(
            r,
            'not-in-set',
            `frame ${set.frameSeq} authenticates but carries other ${sameBytes ? 'link' : 'bytes'} for record ${r.seq}`,
          );
        }
      }
    }
  } finally {
    for (const key of keys.values()) key.fill(0);
  }
  let noMac = 0;
  for (const r of bundle.records) {
    if (!covered.has(`${r.meterId}:${r.seq}`) && !r.redacted) {
      noMac++;
      find(r, 'no-mac', 'no kept record-set frame covers this record');
    }
  }

  // 3. Gaps: the platform's recorded gaps, and records before a run the platform does not hold.
  let gapCount = 0;
  for (const g of bundle.gaps) {
    summary(g.meterId).gaps.push({ from: g.from, to: g.to });
    gapCount++;
  }
  for (const r of bundle.records) {
    if (r.previousLink === null) {
      const s = summary(r.meterId);
      if (!s.gaps.some((g) => g.to === r.seq - 1)) {
        s.gaps.push({ from: r.seq - 1, to: r.seq - 1 });
        gapCount++;
      }
    }
  }

  // 4. Supervisors' authorisations of records as they now are.
  let authorised = 0;
  for (const f of findings.values()) {
    const given = bundle.authorisations.find(
      (a) => a.meterId === f.meterId && a.seq === f.seq && a.recordSha256 === f.recordSha256,
    );
    if (given) {
      f.authorisation = {
        finding: given.finding,
        username: given.username,
        reason: given.reason,
        at: given.at,
      };
      authorised++;
    }
  }
  const seconds = (performance.now() - started) / 1000;
  const list = [...findings.values()].sort((a, b) => a.meterId - b.meterId || a.seq - b.seq);
  return {
    format: REPORT_FORMAT,
    version: AUDIT_FORMAT_VERSION,
    startedAt: startedAt.toISOString(),
    finishedAt: now().toISOString(),
    source: options.source,
    keystore: { source: keystore.source, keyCheckValue: keystore.keyCheckValue() },
    totals: {
      meters: summaries.size,
      records: bundle.records.length,
      setsChecked: bundle.sets.length,
      chainBreaks,
      macFailures,
      notInSet,
      noMac,
      redacted,
      gaps: gapCount,
      authorised,
      outstanding: list.length - authorised,
    },
    recordsPerSecond: seconds > 0 ? Math.round(bundle.records.length / seconds) : 0,
    meters: [...summaries.values()].sort((a, b) => a.id - b.id),
    findings: list,
  };
}

/** The report as a few lines a person reads. */
export function reportText(report: AuditReport): string {
  const t = report.totals;
  const lines = [
    `ParkLink audit report (format ${report.version}), ${report.startedAt} to ${report.finishedAt}`,
    `source: ${report.source.kind === 'bundle' ? `bundle sha256 ${report.source.sha256}` : 'the platform database'}`,
    `keys: ${report.keystore.source} keystore, key check value ${report.keystore.keyCheckValue}`,
    `meters: ${t.meters}   records checked: ${t.records}   record sets (MACs) checked: ${t.setsChecked}`,
    `chain breaks: ${t.chainBreaks}   MAC failures: ${t.macFailures}   not as in their set: ${t.notInSet}   without a MAC: ${t.noMac}   converted from format 1: ${t.redacted}`,
    `gaps: ${t.gaps}   findings authorised: ${t.authorised}   outstanding (do not count): ${t.outstanding}`,
    `records per second: ${report.recordsPerSecond}`,
  ];
  for (const m of report.meters) {
    const gaps = m.gaps.map((g) => (g.from === g.to ? `${g.from}` : `${g.from}-${g.to}`)).join(', ');
    lines.push(
      `  meter ${m.id}: records ${m.records} (seq ${m.firstSeq}..${m.lastSeq}), chain breaks ${m.chainBreaks}, MAC failures ${m.macFailures}${gaps ? `, gaps ${gaps}` : ''}`,
    );
  }
  for (const f of report.findings) {
    const by = f.authorisation
      ? `authorised by ${f.authorisation.username} at ${f.authorisation.at}: ${f.authorisation.reason}`
      : 'OUTSTANDING';
    lines.push(`  ${f.finding} meter ${f.meterId} record ${f.seq}: ${f.detail} [${by}]`);
  }
  lines.push(
    t.outstanding === 0 ? 'result: every record counts' : `result: ${t.outstanding} record(s) do not count`,
  );
  return `${lines.join('\n')}\n`;
}
