// Receipts for sales at the meter. The meter's receipt key shows a code (protocol/receiptCode.ts):
// the meter, the record's sequence number and a check from the record's chain link. Here the code
// opens the receipt once the meter has uploaded the sale: what was bought, and the proof that it is
// the meter's own record, in its hash chain — the record's bytes and the links either side, so
// anyone can recompute link = SHA-256(previous link ‖ record bytes) without trusting the platform.
import type { Crypto } from '../../hal/crypto';
import { bytesEqual, toHex } from '../../protocol/bytes';
import { chainLink, genesisHash } from '../../protocol/chain';
import { ProtocolError } from '../../protocol/errors';
import {
  formatReceiptCode,
  parseReceiptCode,
  type ReceiptCode,
  receiptCheck,
} from '../../protocol/receiptCode';
import { RecordKind } from '../../protocol/records';
import type { Queryable } from '../core/db';
import { RequestRefused } from '../core/errors';
import { CARD_TYPE_NAMES } from '../phone/model';

export interface ChainProof {
  algorithm: 'SHA-256(previous link ‖ record bytes)';
  seq: number;
  /** The record as the meter sealed it, hex. */
  record: string;
  /** The link before it: the previous record's, or the meter's genesis value for its first record. */
  previousLink: string;
  previousIsGenesis: boolean;
  link: string;
  /** The platform recomputed the link from the two above and it matched. */
  verified: boolean;
  /** The next record's link (it commits to this one), when the meter has sent it. */
  nextLink: string | null;
  /** The newest record the platform holds of this meter: everything up to it chains through this one. */
  latestSeq: number;
  latestLink: string;
}

export interface Receipt {
  code: string;
  meter: { id: number; name: string; address: string | null; area: string | null };
  bayId: number;
  transactionNumber: number;
  /** The meter's time of the sale, and when the platform received the record. */
  recordedAt: string;
  receivedAt: string;
  paidFrom: string;
  paidUntil: string;
  minutes: number;
  charge: number;
  currency: number;
  cardLast4: string;
  cardType: string;
  proof: ChainProof;
}

/** Not found and not yet uploaded answer alike (404), so a code tells a stranger nothing. */
const notFound = () =>
  new RequestRefused(
    404,
    'receipt-not-found',
    'no receipt has this code yet: check it against the meter, or try again once the meter has sent its sales (within the hour)',
    'code',
  );

export class ReceiptService {
  constructor(
    private readonly db: Queryable,
    private readonly crypto: Crypto,
  ) {}

  /** The code as a driver typed it, read; RequestRefused 400 when it cannot be a code. */
  parse(text: string): ReceiptCode {
    try {
      return parseReceiptCode(text);
    } catch (error) {
      if (error instanceof ProtocolError)
        throw new RequestRefused(400, 'bad-receipt-code', error.message.replace(/^bad-field: /, ''), 'code');
      throw error;
    }
  }

  async find(text: string): Promise<Receipt> {
    const code = this.parse(text);
    const { rows } = await this.db.query<{
      kind: number;
      bytes: Buffer;
      link: Buffer;
      recorded_at: Date;
      received_at: Date;
      name: string;
      address: string | null;
      area: string | null;
      bay_id: number;
      transaction_number: string;
      paid_from: Date;
      paid_until: Date;
      minutes: number;
      charge: string;
      currency: number;
      card_last4: string;
      card_type: number;
    }>(
      `SELECT r.kind, r.bytes, r.link, r.recorded_at, r.received_at, m.name, m.address, m.area,
              t.bay_id, t.transaction_number, t.paid_from, t.paid_until, t.minutes, t.charge, t.currency,
              t.card_last4, t.card_type
         FROM records r
         JOIN meters m ON m.id = r.meter_id
         JOIN transactions t ON t.meter_id = r.meter_id AND t.seq = r.seq AND t.recorded_at = r.recorded_at
        WHERE r.meter_id = $1 AND r.seq = $2`,
      [code.meterId, code.seq],
    );
    const row = rows[0];
    // The check is compared before anything of the record is said.
    if (!row || row.kind !== RecordKind.Transaction || receiptCheck(row.link) !== code.check)
      throw notFound();
    return {
      code: formatReceiptCode(code),
      meter: { id: code.meterId, name: row.name, address: row.address, area: row.area },
      bayId: row.bay_id,
      transactionNumber: Number(row.transaction_number),
      recordedAt: row.recorded_at.toISOString(),
      receivedAt: row.received_at.toISOString(),
      paidFrom: row.paid_from.toISOString(),
      paidUntil: row.paid_until.toISOString(),
      minutes: row.minutes,
      charge: Number(row.charge),
      currency: row.currency,
      cardLast4: row.card_last4,
      cardType: CARD_TYPE_NAMES[row.card_type] ?? `type ${row.card_type}`,
      proof: await this.#proof(code, row.bytes, row.link),
    };
  }

  async #proof(code: ReceiptCode, record: Buffer, link: Buffer): Promise<ChainProof> {
    const around = await this.db.query<{ seq: string; link: Buffer }>(
      'SELECT seq, link FROM records WHERE meter_id = $1 AND seq IN ($2, $3)',
      [code.meterId, code.seq - 1, code.seq + 1],
    );
    const linkAt = (seq: number) => around.rows.find((r) => Number(r.seq) === seq)?.link;
    const genesis = code.seq === 1;
    const previous = genesis ? genesisHash(this.crypto, code.meterId) : linkAt(code.seq - 1);
    const latest = await this.db.query<{ seq: string; link: Buffer }>(
      'SELECT seq, link FROM records WHERE meter_id = $1 ORDER BY seq DESC LIMIT 1',
      [code.meterId],
    );
    const recomputed = previous ? chainLink(this.crypto, previous, record) : undefined;
    return {
      algorithm: 'SHA-256(previous link ‖ record bytes)',
      seq: code.seq,
      record: toHex(record),
      previousLink: previous ? toHex(previous) : '',
      previousIsGenesis: genesis,
      link: toHex(link),
      verified: recomputed ? bytesEqual(recomputed, link) : false,
      nextLink: linkAt(code.seq + 1) ? toHex(linkAt(code.seq + 1) as Buffer) : null,
      latestSeq: Number(latest.rows[0].seq),
      latestLink: toHex(latest.rows[0].link),
    };
  }
}
