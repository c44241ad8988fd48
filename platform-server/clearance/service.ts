// The clearance unit (14): end-of-day settlement batches per acquirer and card type from the card
// sales the meters recorded and the renewals paid by phone; each batch a signed file delivered over
// SFTP; the acquirer's response imported and reconciled item by item; what does not match goes to an
// exception queue a supervisor works, with the evidence a dispute needs.
import { createHash, createHmac } from 'node:crypto';
import { ed25519 } from '@noble/curves/ed25519';
import { genesisHash } from '../../protocol/chain';
import { wipeMeterKeys } from '../../protocol/keys';
import type { Database } from '../core/db';
import { ConfigError, RequestRefused } from '../core/errors';
import { nodeCrypto } from '../core/nodeCrypto';
import type { Keystore } from '../keys/keystore';
import { CARD_TYPE_NAMES } from '../phone/model';
import { parseResponse, settlementFile, type SettlementLine } from './format';
import type { SftpTarget, SftpTransport } from './sftp';

export interface ClearanceOptions {
  /** The acquirer's name in batches and files (one acquirer per platform for now). */
  acquirer: string;
  /** The IANA zone whose midnight ends a business day. */
  timeZone: string;
  sftp?: { target: SftpTarget; transport: SftpTransport };
}

export interface Batch {
  id: number;
  businessDay: string;
  acquirer: string;
  cardType: string;
  currency: number;
  items: number;
  total: number;
  fileName: string;
  sha256: string;
  signature: string;
  createdAt: string;
  deliveredAt: string | null;
  deliveryAttempts: number;
  deliveryError: string | null;
  reconciledAt: string | null;
}

export interface Reconciliation {
  batchId: number;
  responseId: number;
  lines: number;
  matched: number;
  exceptions: Record<string, number>;
}

const DAY = /^\d{4}-\d{2}-\d{2}$/;

interface BatchRow {
  id: string;
  business_day: string;
  acquirer: string;
  card_type: string;
  currency: number;
  items: number;
  total: string;
  file_name: string;
  sha256: string;
  signature: string;
  created_at: Date;
  delivered_at: Date | null;
  delivery_attempts: number;
  delivery_error: string | null;
  reconciled_at: Date | null;
}

const view = (r: BatchRow): Batch => ({
  id: Number(r.id),
  businessDay: r.business_day,
  acquirer: r.acquirer,
  cardType: r.card_type,
  currency: r.currency,
  items: r.items,
  total: Number(r.total),
  fileName: r.file_name,
  sha256: r.sha256,
  signature: r.signature,
  createdAt: r.created_at.toISOString(),
  deliveredAt: r.delivered_at?.toISOString() ?? null,
  deliveryAttempts: r.delivery_attempts,
  deliveryError: r.delivery_error,
  reconciledAt: r.reconciled_at?.toISOString() ?? null,
});

const BATCH_COLUMNS = `id, to_char(business_day, 'YYYY-MM-DD') AS business_day, acquirer, card_type, currency, items, total,
  file_name, sha256, signature, created_at, delivered_at, delivery_attempts, delivery_error, reconciled_at`;

/**
 * The clearance signing key: an Ed25519 seed, HMAC-SHA-256 keyed with the uplink key C of the
 * reserved (meter 0, epoch 0) slot over "ParkLink clearance signing key v1" — as stable as the master
 * key, and computed by the HSM without showing it, like the card-token key.
 */
function signingSeed(keystore: Keystore): Uint8Array {
  const slot = keystore.meterKeys(0, 0);
  try {
    return new Uint8Array(
      createHmac('sha256', slot.uplink).update('ParkLink clearance signing key v1').digest(),
    );
  } finally {
    wipeMeterKeys(slot);
  }
}

export class ClearanceService {
  readonly #seed: Uint8Array;
  readonly publicKey: string;

  constructor(
    private readonly db: Database,
    keystore: Keystore,
    private readonly options: ClearanceOptions,
  ) {
    if (!/^[A-Za-z0-9_-]{1,32}$/.test(options.acquirer))
      throw new ConfigError(`the acquirer's name "${options.acquirer}" is not 1-32 of A-Z a-z 0-9 _ -`);
    this.#seed = signingSeed(keystore);
    this.publicKey = Buffer.from(ed25519.getPublicKey(this.#seed)).toString('hex');
  }

  /**
   * Settles every card sale and applied phone renewal of `businessDay` or before that no batch holds
   * yet (a late record goes into the next day's batch): one batch per card type and currency, each
   * with its signed file. Settling a day again adds nothing that is already in a batch.
   */
  async settle(businessDay: string): Promise<Batch[]> {
    if (!DAY.test(businessDay) || Number.isNaN(Date.parse(`${businessDay}T00:00:00Z`)))
      throw new RequestRefused(
        400,
        'bad-date',
        `businessDay is not a date (YYYY-MM-DD): ${businessDay}`,
        'businessDay',
      );
    return this.db.transaction(async (tx) => {
      // One settlement at a time: two runs at once would both find the same items unsettled.
      await tx.query('LOCK TABLE settlement_items IN EXCLUSIVE MODE');
      const end = `(($1::date + 1)::timestamp AT TIME ZONE $2)`;
      const { rows } = await tx.query<{
        reference: string;
        meter_id: string;
        seq: string | null;
        renewal_id: string | null;
        amount: string;
        currency: number;
        card_type: number;
        occurred_at: Date;
      }>(
        `SELECT 'M' || t.meter_id || '-' || t.seq AS reference, t.meter_id, t.seq, NULL AS renewal_id,
                t.charge AS amount, t.currency, t.card_type, t.recorded_at AS occurred_at
           FROM transactions t
          WHERE t.recorded_at < ${end} AND t.charge > 0
            AND NOT EXISTS (SELECT 1 FROM settlement_items s WHERE s.reference = 'M' || t.meter_id || '-' || t.seq)
         UNION ALL
         SELECT 'P' || rn.id, rn.meter_id, NULL, rn.id, rn.charge, rn.currency, c.card_type, rn.applied_at
           FROM renewals rn JOIN driver_cards c ON c.id = rn.card_id
          WHERE rn.status = 'applied' AND rn.applied_at < ${end} AND rn.charge > 0
            AND NOT EXISTS (SELECT 1 FROM settlement_items s WHERE s.reference = 'P' || rn.id)
          ORDER BY occurred_at, reference`,
        [businessDay, this.options.timeZone],
      );
      const groups = new Map<string, { cardType: string; currency: number; lines: SettlementLine[] }>();
      for (const r of rows) {
        const cardType = CARD_TYPE_NAMES[r.card_type] ?? `type-${r.card_type}`;
        const key = `${cardType}/${r.currency}`;
        if (!groups.has(key)) groups.set(key, { cardType, currency: r.currency, lines: [] });
        groups.get(key)!.lines.push({
          reference: r.reference,
          meterId: Number(r.meter_id),
          seq: r.seq === null ? null : Number(r.seq),
          renewalId: r.renewal_id,
          amount: Number(r.amount),
          occurredAt: r.occurred_at,
        });
      }
      const batches: Batch[] = [];
      for (const group of groups.values()) {
        const id = Number(
          (await tx.query<{ id: string }>("SELECT nextval('settlement_batches_id_seq') AS id")).rows[0].id,
        );
        const header = {
          batchId: id,
          businessDay,
          acquirer: this.options.acquirer,
          cardType: group.cardType,
          currency: group.currency,
        };
        const content = settlementFile(header, group.lines);
        const sha256 = createHash('sha256').update(content).digest('hex');
        const signature = Buffer.from(ed25519.sign(Buffer.from(content), this.#seed)).toString('hex');
        const fileName = `PLSETTLE-${businessDay}-${this.options.acquirer}-${group.cardType}-${group.currency}-${id}.txt`;
        const total = group.lines.reduce((sum, l) => sum + l.amount, 0);
        const inserted = await tx.query<BatchRow>(
          `INSERT INTO settlement_batches (id, business_day, acquirer, card_type, currency, items, total, file_name, content, sha256, signature)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING ${BATCH_COLUMNS}`,
          [
            id,
            businessDay,
            this.options.acquirer,
            group.cardType,
            group.currency,
            group.lines.length,
            total,
            fileName,
            content,
            sha256,
            signature,
          ],
        );
        await tx.query(
          `INSERT INTO settlement_items (batch_id, reference, meter_id, seq, renewal_id, amount, occurred_at)
           SELECT $1, * FROM unnest($2::text[], $3::bigint[], $4::bigint[], $5::text[], $6::bigint[], $7::timestamptz[])`,
          [
            id,
            group.lines.map((l) => l.reference),
            group.lines.map((l) => l.meterId),
            group.lines.map((l) => l.seq),
            group.lines.map((l) => l.renewalId),
            group.lines.map((l) => l.amount),
            group.lines.map((l) => l.occurredAt.toISOString()),
          ],
        );
        batches.push(view(inserted.rows[0]));
      }
      return batches;
    });
  }

  async batches(): Promise<Batch[]> {
    const { rows } = await this.db.query<BatchRow>(
      `SELECT ${BATCH_COLUMNS} FROM settlement_batches ORDER BY id DESC LIMIT 500`,
    );
    return rows.map(view);
  }

  async batch(id: number): Promise<Batch & { content: string }> {
    const { rows } = await this.db.query<BatchRow & { content: string }>(
      `SELECT ${BATCH_COLUMNS}, content FROM settlement_batches WHERE id = $1`,
      [id],
    );
    if (!rows[0]) throw new RequestRefused(404, 'unknown-batch', `no settlement batch ${id}`);
    return { ...view(rows[0]), content: rows[0].content };
  }

  /** Delivers a batch's file with its SHA-256 and signature beside it; every attempt is recorded. */
  async deliver(id: number): Promise<Batch> {
    const sftp = this.options.sftp;
    if (!sftp) throw new RequestRefused(409, 'no-sftp', 'no SFTP target is configured for the acquirer');
    const batch = await this.batch(id);
    let error: string | null = null;
    try {
      await sftp.transport.upload(sftp.target, [
        { name: batch.fileName, content: batch.content },
        { name: `${batch.fileName}.sha256`, content: `${batch.sha256}  ${batch.fileName}\n` },
        { name: `${batch.fileName}.sig`, content: `${batch.signature}\n` },
      ]);
    } catch (e) {
      error = (e as Error).message;
    }
    const { rows } = await this.db.query<BatchRow>(
      `UPDATE settlement_batches SET delivery_attempts = delivery_attempts + 1, delivery_error = $2,
              delivered_at = CASE WHEN $2::text IS NULL THEN now() ELSE delivered_at END
        WHERE id = $1 RETURNING ${BATCH_COLUMNS}`,
      [id, error],
    );
    if (error) throw new RequestRefused(502, 'delivery-failed', `the file was not delivered: ${error}`);
    return view(rows[0]);
  }

  /**
   * Imports an acquirer's response to a batch and reconciles it item by item: matched; missing on
   * their side or ours; amount mismatch; duplicates; rejected. A bad file is refused whole and the
   * same file is imported once.
   */
  async importResponse(text: string, fileName: string, by: string): Promise<Reconciliation> {
    const response = parseResponse(text);
    const sha256 = createHash('sha256').update(text).digest('hex');
    return this.db.transaction(async (tx) => {
      const batch = await tx.query('SELECT id FROM settlement_batches WHERE id = $1 FOR UPDATE', [
        response.batchId,
      ]);
      if (!batch.rows[0])
        throw new RequestRefused(
          404,
          'unknown-batch',
          `the response names batch ${response.batchId}, which does not exist`,
        );
      const seen = await tx.query('SELECT id FROM acquirer_responses WHERE sha256 = $1', [sha256]);
      if (seen.rows[0])
        throw new RequestRefused(409, 'already-imported', 'this response file was imported already');
      const items = await tx.query<{ reference: string; amount: string }>(
        'SELECT reference, amount FROM settlement_items WHERE batch_id = $1',
        [response.batchId],
      );
      const byReference = new Map<string, typeof response.lines>();
      for (const line of response.lines) {
        if (!byReference.has(line.reference)) byReference.set(line.reference, []);
        byReference.get(line.reference)!.push(line);
      }
      const exceptions: { reference: string; kind: string; ours: number | null; theirs: number | null }[] =
        [];
      let matched = 0;
      const ours = new Set<string>();
      for (const item of items.rows) {
        ours.add(item.reference);
        const amount = Number(item.amount);
        const answers = byReference.get(item.reference) ?? [];
        if (answers.length === 0)
          exceptions.push({ reference: item.reference, kind: 'missing-theirs', ours: amount, theirs: null });
        else if (answers.length > 1)
          exceptions.push({
            reference: item.reference,
            kind: 'duplicate',
            ours: amount,
            theirs: answers[0].amount,
          });
        else if (answers[0].status === 'REJECTED')
          exceptions.push({
            reference: item.reference,
            kind: 'rejected',
            ours: amount,
            theirs: answers[0].amount,
          });
        else if (answers[0].amount !== amount)
          exceptions.push({
            reference: item.reference,
            kind: 'amount-mismatch',
            ours: amount,
            theirs: answers[0].amount,
          });
        else matched++;
      }
      for (const [reference, answers] of byReference)
        if (!ours.has(reference))
          exceptions.push({ reference, kind: 'missing-ours', ours: null, theirs: answers[0].amount });
      const inserted = await tx.query<{ id: string }>(
        `INSERT INTO acquirer_responses (batch_id, file_name, sha256, lines, matched, imported_by)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
        [response.batchId, fileName, sha256, response.lines.length, matched, by],
      );
      const responseId = Number(inserted.rows[0].id);
      for (const e of exceptions) {
        const evidence = await this.#evidence(tx, e.reference);
        await tx.query(
          `INSERT INTO clearing_exceptions (batch_id, response_id, reference, kind, our_amount, their_amount, evidence)
           VALUES ($1, $2, $3, $4, $5, $6, $7)`,
          [response.batchId, responseId, e.reference, e.kind, e.ours, e.theirs, JSON.stringify(evidence)],
        );
      }
      await tx.query('UPDATE settlement_batches SET reconciled_at = now() WHERE id = $1', [response.batchId]);
      const counts: Record<string, number> = {};
      for (const e of exceptions) counts[e.kind] = (counts[e.kind] ?? 0) + 1;
      return {
        batchId: response.batchId,
        responseId,
        lines: response.lines.length,
        matched,
        exceptions: counts,
      };
    });
  }

  /** Imports every response waiting in the acquirer's SFTP outbox that was not imported yet. */
  async fetchResponses(
    by: string,
  ): Promise<{ imported: Reconciliation[]; skipped: { file: string; reason: string }[] }> {
    const sftp = this.options.sftp;
    if (!sftp) throw new RequestRefused(409, 'no-sftp', 'no SFTP target is configured for the acquirer');
    const files = await sftp.transport.download(sftp.target, /\.resp$/);
    const imported: Reconciliation[] = [];
    const skipped: { file: string; reason: string }[] = [];
    for (const file of files) {
      try {
        imported.push(await this.importResponse(file.content, file.name, by));
      } catch (error) {
        if (!(error instanceof RequestRefused)) throw error;
        skipped.push({ file: file.name, reason: error.code });
      }
    }
    return { imported, skipped };
  }

  /** What a dispute needs: the record with its chain proof (a sale), or the renewal (a phone payment). */
  async #evidence(tx: Pick<Database, 'query'>, reference: string): Promise<Record<string, unknown>> {
    const sale = /^M(\d+)-(\d+)$/.exec(reference);
    if (sale) {
      const [meterId, seq] = [Number(sale[1]), Number(sale[2])];
      const { rows } = await tx.query<{
        bytes: Uint8Array;
        link: Uint8Array;
        recorded_at: Date;
        previous: Uint8Array | null;
      }>(
        `SELECT r.bytes, r.link, r.recorded_at, p.link AS previous
           FROM records r LEFT JOIN records p ON p.meter_id = r.meter_id AND p.seq = r.seq - 1
          WHERE r.meter_id = $1 AND r.seq = $2`,
        [meterId, seq],
      );
      const r = rows[0];
      if (!r) return { reference, found: false };
      const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
      return {
        reference,
        found: true,
        meterId,
        seq,
        recordedAt: r.recorded_at.toISOString(),
        record: hex(r.bytes),
        // link(seq) = SHA-256(link(seq - 1) || record): anyone holding the chain can check it
        previousLink: r.previous ? hex(r.previous) : seq === 1 ? hex(genesisHash(nodeCrypto, meterId)) : null,
        link: hex(r.link),
      };
    }
    const renewal = /^P([0-9a-z]{1,14})$/.exec(reference);
    if (renewal) {
      const { rows } = await tx.query<{
        id: string;
        meter_id: string;
        bay_id: string;
        minutes: number;
        charge: string;
        authorisation: string;
        channel: string;
        applied_at: Date | null;
        record_seq: string | null;
      }>(
        'SELECT id, meter_id, bay_id, minutes, charge, authorisation, channel, applied_at, record_seq FROM renewals WHERE id = $1',
        [renewal[1]],
      );
      const r = rows[0];
      if (!r) return { reference, found: false };
      return {
        reference,
        found: true,
        renewalId: r.id,
        meterId: Number(r.meter_id),
        bayId: Number(r.bay_id),
        minutes: r.minutes,
        charge: Number(r.charge),
        authorisation: r.authorisation,
        channel: r.channel,
        appliedAt: r.applied_at?.toISOString() ?? null,
        // the meter's own remote-renewal record, once uploaded: its chain proof is that record's
        meterRecordSeq: r.record_seq === null ? null : Number(r.record_seq),
      };
    }
    return { reference, found: false };
  }

  async exceptions(status: 'open' | 'resolved' | 'all'): Promise<Record<string, unknown>[]> {
    const { rows } = await this.db.query<
      Record<string, unknown> & { created_at: Date; resolved_at: Date | null }
    >(
      `SELECT id, batch_id, reference, kind, our_amount, their_amount, evidence, status, outcome, note, resolved_by,
              resolved_at, created_at
         FROM clearing_exceptions WHERE $1 = 'all' OR status = $1 ORDER BY id LIMIT 500`,
      [status],
    );
    return rows.map((r) => ({
      id: Number(r.id),
      batchId: Number(r.batch_id),
      reference: r.reference,
      kind: r.kind,
      ourAmount: r.our_amount === null ? null : Number(r.our_amount),
      theirAmount: r.their_amount === null ? null : Number(r.their_amount),
      evidence: r.evidence,
      status: r.status,
      outcome: r.outcome,
      note: r.note,
      resolvedBy: r.resolved_by,
      resolvedAt: r.resolved_at?.toISOString() ?? null,
      createdAt: r.created_at.toISOString(),
    }));
  }

  /** A supervisor closes an exception with an outcome and a note. */
  async resolve(id: number, outcome: string, note: string, by: string): Promise<void> {
    const { rows } = await this.db.query<{ status: string }>(
      `UPDATE clearing_exceptions SET status = 'resolved', outcome = $2, note = $3, resolved_by = $4, resolved_at = now()
        WHERE id = $1 AND status = 'open' RETURNING status`,
      [id, outcome, note, by],
    );
    if (rows[0]) return;
    const exists = await this.db.query('SELECT 1 FROM clearing_exceptions WHERE id = $1', [id]);
    if (!exists.rows[0]) throw new RequestRefused(404, 'unknown-exception', `no exception ${id}`);
    throw new RequestRefused(409, 'already-resolved', `exception ${id} is resolved already`);
  }
}
