// Uplink ingest: takes the meters' record frames off the broker, checks them, stores each
// (meter, seq) once in one database transaction per frame, and acknowledges the last record and its
// chain link on the meter's downlink topic. Every check reads and writes the database only, so
// several instances can share the uplinks (shared subscription on brokers that have them).
import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import mqtt, { type MqttClient } from 'mqtt';
import type { Crypto } from '../hal/crypto';
import { nobleCrypto } from '../hal/nobleCrypto';
import { bytesEqual } from '../protocol/bytes';
import { chainLink, genesisHash, verifyChain } from '../protocol/chain';
import { ProtocolError, type ProtocolErrorCode } from '../protocol/errors';
import {
  decodeHeader,
  FrameType,
  type FrameHeader,
  openFrame,
  sealFrame,
  FRAME_VERSION,
} from '../protocol/frame';
import { decodeRecordsMessage, encodeAckMessage, type AckMessage } from '../protocol/messages';
import { decodeRecord, type MeterRecord, RecordKind } from '../protocol/records';
import { downlinkTopic, meterIdOfTopic, UPLINK_WILDCARD } from '../protocol/topics';
import type { Database, Queryable, SqlParam } from './db';
import type { Keystore } from './keystore';

/** The logger ingest writes to: pino's (fastify's) signature, or anything with the same shape. */
export interface Logger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export type RefusalReason =
  | ProtocolErrorCode
  /** The topic is not a meter's uplink topic. */
  | 'bad-topic'
  /** The meter id in the topic is not the one in the frame header. */
  | 'topic-mismatch'
  /** A record inside the frame belongs to another meter. */
  | 'record-meter-mismatch'
  /** The records of the set are not a contiguous run of sequence numbers. */
  | 'not-contiguous'
  /** The platform failed (database down…); the meter will send the set again. */
  | 'internal-error';

export interface Refusal {
  reason: RefusalReason;
  detail: string;
  topic: string;
  /** From the header when it could be read (else from the topic). */
  meterId?: number;
  frameSeq?: number;
}

export interface StoredRecord {
  meterId: number;
  record: MeterRecord;
  bytes: Uint8Array;
  /** Chain link after this record. */
  link: Uint8Array;
}

export interface Accepted {
  ok: true;
  meterId: number;
  frameSeq: number;
  /** Records new to the platform, in sequence order. */
  stored: StoredRecord[];
  /** Records of the set the platform already held with the same bytes. */
  duplicates: number;
  /** Missing records detected before this set, if any. */
  gap?: { from: number; to: number };
  ack: AckMessage;
  downlinkSeq: number;
}

export type IngestOutcome = Accepted | ({ ok: false } & Refusal);

export interface IngestEvents {
  stored: [StoredRecord];
  refused: [Refusal];
  accepted: [Accepted];
  /** Every uplink message's outcome, accepted or refused. */
  outcome: [IngestOutcome];
}

export interface IngestOptions {
  db: Database;
  keystore: Keystore;
  logger: Logger;
  /** The broker; `start()` connects to it. Not needed when frames are handed to handleUplink directly. */
  brokerUrl?: string;
  /** Subscribe through `$share/<group>/…` (brokers with shared subscriptions). */
  sharedSubscription?: boolean;
  group?: string;
  clientId?: string;
  crypto?: Crypto;
  /** Called once per record newly stored, after the commit. */
  onStored?: (stored: StoredRecord) => void;
  /**
   * Connections joining the shared subscription (default: PARKLINK_INGEST_CONNECTIONS, else 1).
   * More keep more frames in hand at once; a meter's frames may then be handled out of order (as
   * across instances), which costs a replay refusal and a resend, never a record.
   */
  connections?: number;
}

function ingestConnections(option: number | undefined): number {
  const n = option ?? Number(process.env.PARKLINK_INGEST_CONNECTIONS ?? 1);
  return Number.isInteger(n) && n >= 1 && n <= 64 ? n : 1;
}

/** Thrown inside the frame's transaction to refuse it (the transaction rolls back). */
class FrameRefused extends Error {
  constructor(
    readonly reason: RefusalReason,
    readonly detail: string,
  ) {
    super(`${reason}: ${detail}`);
  }
}

export class Ingest extends EventEmitter<IngestEvents> {
  private readonly db: Database;
  private readonly keystore: Keystore;
  private readonly logger: Logger;
  readonly crypto: Crypto;
  private client: MqttClient | undefined;
  /** Further connections in the shared-subscription group (options.connections). */
  private readonly extraClients: MqttClient[] = [];
  private readonly inFlight = new Set<Promise<unknown>>();
  private closing = false;
  /** Uplink frame types other than record sets, by type byte, handed to the feature that owns them. */
  private readonly routes = new Map<number, (topic: string, frame: Uint8Array) => Promise<void>>();

  constructor(private readonly options: IngestOptions) {
    super();
    this.db = options.db;
    this.keystore = options.keystore;
    this.logger = options.logger;
    this.crypto = options.crypto ?? nobleCrypto;
    if (options.onStored) this.on('stored', options.onStored);
  }

  /** The subscription filter in use. */
  get subscription(): string {
    return this.options.sharedSubscription
      ? `$share/${this.options.group ?? 'ingest'}/${UPLINK_WILDCARD}`
      : UPLINK_WILDCARD;
  }

  /**
   * Hands uplink frames of `type` (e.g. 0x06 renewal acks) to `handler` instead of refusing them as
   * not a record set. The handler authenticates the frame itself; it runs in the same ordered stream.
   */
  route(type: number, handler: (topic: string, frame: Uint8Array) => Promise<void>): void {
    this.routes.set(type, handler);
  }

  /**
   * Connects to the broker and subscribes to every meter's uplink at QoS 1. On a shared subscription
   * with `connections` > 1, that many connections join the group, so as many frames are in hand at
   * once (each connection still processes its own frames one after another).
   */
  async start(): Promise<void> {
    if (!this.options.brokerUrl) throw new Error('ingest has no broker URL');
    const clientId =
      this.options.clientId ??
      `parklink-ingest-${hostname()}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
    this.client = await this.connect(clientId);
    const extra = this.options.sharedSubscription ? ingestConnections(this.options.connections) - 1 : 0;
    for (let i = 1; i <= extra; i++) this.extraClients.push(await this.connect(`${clientId}-${i}`));
  }

  private async connect(clientId: string): Promise<MqttClient> {
    const brokerUrl = this.options.brokerUrl as string;
    const client = mqtt.connect(brokerUrl, {
      clientId,
      protocolVersion: 4,
      clean: true,
      reconnectPeriod: 1000,
      connectTimeout: 10_000,
    });
    // QoS 1: the broker gets its PUBACK only once the frame is committed or refused, and mqtt.js
    // hands over the next message only then, so one connection processes its uplinks in order.
    client.handleMessage = (packet, done) => {
      const payload = packet.payload;
      const bytes =
        typeof payload === 'string'
          ? new TextEncoder().encode(payload)
          : new Uint8Array(payload.buffer, payload.byteOffset, payload.length);
      const routed = bytes.length > 1 ? this.routes.get(bytes[1]) : undefined;
      this.track<unknown>(routed ? routed(packet.topic, bytes) : this.handleUplink(packet.topic, bytes)).then(
        () => done(),
        () => done(),
      );
    };
    client.on('error', (error) => this.logger.error({ err: error }, 'ingest MQTT error'));
    await new Promise<void>((resolve, reject) => {
      const onError = (error: Error) => {
        client.off('connect', onConnect);
        reject(error);
      };
      const onConnect = () => {
        client.off('error', onError);
        resolve();
      };
      client.once('connect', onConnect);
      client.once('error', onError);
    }).catch(async (error) => {
      await client.endAsync(true);
      throw error;
    });
    const granted = await client.subscribeAsync(this.subscription, { qos: 1 });
    if (granted.some((g) => g.qos !== 1)) {
      throw new Error(`broker refused QoS 1 on ${this.subscription}: granted ${JSON.stringify(granted)}`);
    }
    this.logger.info({ subscription: this.subscription, clientId }, 'ingest subscribed');
    return client;
  }

  /** Waits for the frames being processed, then disconnects. */
  async close(): Promise<void> {
    this.closing = true;
    const client = this.client;
    this.client = undefined;
    const extra = this.extraClients.splice(0);
    await Promise.allSettled([...this.inFlight]);
    if (client) await client.endAsync();
    await Promise.allSettled(extra.map((c) => c.endAsync()));
  }

  private track<T>(promise: Promise<T>): Promise<T> {
    this.inFlight.add(promise);
    promise.finally(() => this.inFlight.delete(promise)).catch(() => {});
    return promise;
  }

  /** Processes one uplink message; never throws. */
  async handleUplink(topic: string, frame: Uint8Array): Promise<IngestOutcome> {
    let header: FrameHeader | undefined;
    const topicMeter = /\/up$/.test(topic) ? meterIdOfTopic(topic) : undefined;
    try {
      if (topicMeter === undefined)
        throw new FrameRefused('bad-topic', `${topic} is not a meter uplink topic`);
      header = decodeHeader(frame);
      const { accepted, epoch, downlinkKey } = await this.accept(topicMeter, header, frame);
      this.afterCommit(accepted, epoch, downlinkKey);
      this.emit('outcome', accepted);
      return accepted;
    } catch (error) {
      const refusal: Refusal = { topic, ...refusalOf(error) };
      const meterId = header?.meterId ?? topicMeter;
      if (meterId !== undefined) refusal.meterId = meterId;
      if (header) refusal.frameSeq = header.seq;
      await this.refuse(refusal, error);
      const outcome: IngestOutcome = { ok: false, ...refusal };
      this.emit('outcome', outcome);
      return outcome;
    }
  }

  private async accept(
    topicMeter: number,
    header: FrameHeader,
    frame: Uint8Array,
  ): Promise<{ accepted: Accepted; epoch: number; downlinkKey: Uint8Array }> {
    if (header.type !== FrameType.Records) {
      throw new FrameRefused(
        'bad-type',
        `frame type 0x${header.type.toString(16)} is not an uplink record set`,
      );
    }
    if (header.meterId !== topicMeter) {
      throw new FrameRefused(
        'topic-mismatch',
        `topic names meter ${topicMeter}, header meter ${header.meterId}`,
      );
    }
    // The previous key epoch stays accepted until previous_epoch_until (keyRotation.ts, issue 5).
    const meter = await this.db.query<{ key_epoch: number; old_epoch: number | null }>(
      `SELECT key_epoch, CASE WHEN previous_epoch_until > now() THEN previous_key_epoch END AS old_epoch
         FROM meters WHERE id = $1`,
      [header.meterId],
    );
    if (meter.rows.length === 0)
      throw new FrameRefused('unknown-meter', `meter ${header.meterId} is not provisioned`);
    let epoch = meter.rows[0].key_epoch;
    if (header.epoch !== epoch) {
      if (meter.rows[0].old_epoch === null || header.epoch !== Number(meter.rows[0].old_epoch))
        throw new FrameRefused('stale-epoch', `frame key epoch ${header.epoch}, meter's epoch ${epoch}`);
      epoch = header.epoch;
    }
    const keys = this.keystore.meterKeys(header.meterId, epoch);
    let body: Uint8Array;
    try {
      body = openFrame(this.crypto, keys.uplink, frame).body;
    } finally {
      keys.uplink.fill(0);
    }
    const message = decodeRecordsMessage(body);
    const records = message.records.map((bytes) => decodeRecord(bytes));
    const first = records[0].seq;
    records.forEach((record, i) => {
      if (record.meterId !== header.meterId) {
        throw new FrameRefused(
          'record-meter-mismatch',
          `record ${record.seq} belongs to meter ${record.meterId}`,
        );
      }
      if (record.seq !== first + i) {
        throw new FrameRefused(
          'not-contiguous',
          `record ${i} of the set has seq ${record.seq}, not ${first + i}`,
        );
      }
    });
    if (first < 1) throw new ProtocolError('bad-field', 'record sequence numbers start at 1');
    const last = first + records.length - 1;
    const links = verifyChain(this.crypto, message.previous, message.records);
    const meterId = header.meterId;

    const result = await this.db.transaction(async (tx) => {
      // Replay check, advance and the ack's downlink sequence in one statement; the row lock it
      // takes also serialises every frame of this meter across instances until this transaction ends.
      const advanced = await tx.query<{ downlink_seq: number }>(
        `UPDATE meters SET last_uplink_seq = $2, last_seen_at = now(), downlink_seq = downlink_seq + 1
          WHERE id = $1 AND last_uplink_seq < $2 RETURNING downlink_seq`,
        [meterId, header.seq],
      );
      if (advanced.rowCount === 0) {
        const held = await tx.query<{ last_uplink_seq: number }>(
          'SELECT last_uplink_seq FROM meters WHERE id = $1',
          [meterId],
        );
        throw new FrameRefused(
          'replay',
          `frame seq ${header.seq} does not advance meter ${meterId}'s ${held.rows[0]?.last_uplink_seq}`,
        );
      }
      const downlinkSeq = advanced.rows[0].downlink_seq;

      // In one query: the held records from first - 1 to last + 1 (the link before the set, records
      // already held, the record after it) and whether the meter has recorded gaps at all.
      const around = await tx.query<{
        gaps: boolean;
        seq: number | null;
        bytes: Uint8Array | null;
        link: Uint8Array | null;
      }>(
        `SELECT g.gaps, r.seq, r.bytes, r.link
           FROM (SELECT EXISTS (SELECT 1 FROM record_gaps WHERE meter_id = $1) AS gaps) g
           LEFT JOIN records r ON r.meter_id = $1 AND r.seq BETWEEN $2 AND $3`,
        [meterId, first - 1, last + 1],
      );
      const hasGaps = around.rows[0]?.gaps === true;
      let before: { link: Uint8Array } | undefined;
      let after: { bytes: Uint8Array; link: Uint8Array } | undefined;
      const heldRows: { seq: number; bytes: Uint8Array; link: Uint8Array }[] = [];
      for (const row of around.rows) {
        if (row.seq === null || row.bytes === null || row.link === null) continue;
        if (row.seq === first - 1) before = { link: row.link };
        else if (row.seq === last + 1) after = { bytes: row.bytes, link: row.link };
        else heldRows.push({ seq: row.seq, bytes: row.bytes, link: row.link });
      }

      // The link before the set: genesis for record 1, else the held link of record first - 1.
      let gap: { from: number; to: number } | undefined;
      if (first === 1) {
        if (!bytesEqual(message.previous, genesisHash(this.crypto, meterId))) {
          throw new FrameRefused(
            'chain-broken',
            'set starts at record 1 but previous is not the genesis hash',
          );
        }
      } else if (before) {
        if (!bytesEqual(before.link, message.previous)) {
          throw new FrameRefused(
            'chain-broken',
            `previous does not match the held link of record ${first - 1}`,
          );
        }
      } else {
        const below = await tx.query<{ seq: number | null }>(
          'SELECT max(seq) AS seq FROM records WHERE meter_id = $1 AND seq < $2',
          [meterId, first],
        );
        gap = { from: (below.rows[0]?.seq ?? 0) + 1, to: first - 1 };
      }

      // Records already held: the same bytes are a re-upload; other bytes are a conflict.
      const heldSeqs = new Set<number>();
      for (const row of heldRows) {
        const i = row.seq - first;
        if (!bytesEqual(row.bytes, message.records[i])) {
          throw new FrameRefused('duplicate-conflict', `record ${row.seq} is held with different bytes`);
        }
        if (!bytesEqual(row.link, links[i])) {
          throw new FrameRefused('chain-broken', `record ${row.seq} is held with a different chain link`);
        }
        heldSeqs.add(row.seq);
      }

      // The held record after the set (a set filling a gap) must follow the set's last link.
      if (after && !bytesEqual(chainLink(this.crypto, links[links.length - 1], after.bytes), after.link)) {
        throw new FrameRefused(
          'chain-broken',
          `held record ${last + 1} does not follow record ${last} of the set`,
        );
      }

      const stored: StoredRecord[] = [];
      for (let i = 0; i < records.length; i++) {
        const record = records[i];
        if (heldSeqs.has(record.seq)) continue;
        stored.push({ meterId, record, bytes: message.records[i], link: links[i] });
      }
      // One multi-row statement per table for the whole set, never a round trip per record.
      await insertRecords(tx, stored);

      if (stored.length > 0 && hasGaps) await closeGaps(tx, meterId, first, last);
      if (gap) {
        const inserted = await tx.query(
          `INSERT INTO record_gaps (meter_id, from_seq, to_seq) VALUES ($1, $2, $3)
           ON CONFLICT (meter_id, from_seq) DO NOTHING RETURNING from_seq`,
          [meterId, gap.from, gap.to],
        );
        // Reported once, when first detected.
        if (inserted.rows.length === 0) gap = undefined;
      }

      return { stored, duplicates: heldSeqs.size, gap, downlinkSeq };
    });

    const accepted: Accepted = {
      ok: true,
      meterId,
      frameSeq: header.seq,
      stored: result.stored,
      duplicates: result.duplicates,
      ack: { seq: last, hash: links[links.length - 1] },
      downlinkSeq: result.downlinkSeq,
    };
    if (result.gap) accepted.gap = result.gap;
    return { accepted, epoch, downlinkKey: keys.downlink };
  }

  private afterCommit(accepted: Accepted, epoch: number, downlinkKey: Uint8Array): void {
    const ackFrame = sealFrame(
      this.crypto,
      downlinkKey,
      {
        version: FRAME_VERSION,
        type: FrameType.Ack,
        meterId: accepted.meterId,
        epoch,
        seq: accepted.downlinkSeq,
      },
      encodeAckMessage(accepted.ack),
    );
    downlinkKey.fill(0);
    this.publish(downlinkTopic(accepted.meterId), ackFrame);
    this.logger.info(
      {
        meterId: accepted.meterId,
        frameSeq: accepted.frameSeq,
        stored: accepted.stored.length,
        duplicates: accepted.duplicates,
        ackSeq: accepted.ack.seq,
        gap: accepted.gap,
      },
      'uplink accepted',
    );
    if (accepted.gap) {
      this.logger.warn({ meterId: accepted.meterId, gap: accepted.gap }, 'records missing before this set');
    }
    for (const stored of accepted.stored) {
      try {
        this.emit('stored', stored);
      } catch (error) {
        this.logger.error(
          { err: error, meterId: stored.meterId, seq: stored.record.seq },
          'stored listener threw',
        );
      }
    }
    this.emit('accepted', accepted);
  }

  /**
   * Seals a downlink of `type` for a meter under its current key D with the next downlink sequence
   * number and publishes it (storage control 0x82: release tokens). Resolves once the broker has it.
   */
  async sendDownlink(meterId: number, type: number, body: Uint8Array): Promise<number> {
    const client = this.client;
    if (!client || this.closing) throw new Error('ingest is not connected');
    const row = await this.db.query<{ downlink_seq: number; key_epoch: number }>(
      'UPDATE meters SET downlink_seq = downlink_seq + 1 WHERE id = $1 RETURNING downlink_seq, key_epoch',
      [meterId],
    );
    if (row.rows.length === 0) throw new FrameRefused('unknown-meter', `meter ${meterId} is not provisioned`);
    const { downlink_seq: seq, key_epoch: epoch } = row.rows[0];
    const keys = this.keystore.meterKeys(meterId, epoch);
    keys.uplink.fill(0);
    const frame = sealFrame(
      this.crypto,
      keys.downlink,
      { version: FRAME_VERSION, type, meterId, epoch, seq },
      body,
    );
    keys.downlink.fill(0);
    await client.publishAsync(downlinkTopic(meterId), Buffer.from(frame), { qos: 1 });
    return seq;
  }

  private publish(topic: string, payload: Uint8Array): void {
    const client = this.client;
    if (!client || this.closing) {
      if (this.client || this.options.brokerUrl)
        this.logger.warn({ topic }, 'ack not published: ingest is closing');
      return;
    }
    // Not awaited: the PUBACK arrives on the connection whose input waits for this handler. A lost
    // ack only makes the meter send the set again, which is acknowledged again.
    client.publish(topic, Buffer.from(payload), { qos: 1 }, (error) => {
      if (error) this.logger.warn({ err: error, topic }, 'ack publish failed');
    });
  }

  private async refuse(refusal: Refusal, error: unknown): Promise<void> {
    const fields = {
      reason: refusal.reason,
      detail: refusal.detail,
      topic: refusal.topic,
      meterId: refusal.meterId,
      frameSeq: refusal.frameSeq,
    };
    if (refusal.reason === 'internal-error') this.logger.error({ ...fields, err: error }, 'uplink refused');
    else this.logger.warn(fields, 'uplink refused');
    try {
      await this.db.query(
        'INSERT INTO refused_frames (topic, meter_id, frame_seq, reason, detail) VALUES ($1, $2, $3, $4, $5)',
        [
          refusal.topic.slice(0, 200),
          refusal.meterId ?? null,
          refusal.frameSeq ?? null,
          refusal.reason,
          refusal.detail,
        ],
      );
    } catch (dbError) {
      this.logger.error({ err: dbError }, 'could not record the refused frame');
    }
    this.emit('refused', refusal);
  }
}

function refusalOf(error: unknown): { reason: RefusalReason; detail: string } {
  if (error instanceof FrameRefused) return { reason: error.reason, detail: error.detail };
  if (error instanceof ProtocolError) return { reason: error.code, detail: error.message };
  return { reason: 'internal-error', detail: error instanceof Error ? error.message : String(error) };
}

const seconds = (s: number) => new Date(s * 1000);

/** Inserts rows with one multi-row INSERT per chunk (PostgreSQL allows 65,535 parameters). */
async function insertRows(tx: Queryable, head: string, rows: SqlParam[][]): Promise<void> {
  if (rows.length === 0) return;
  const width = rows[0].length;
  const perChunk = Math.floor(MAX_PARAMS / width);
  for (let start = 0; start < rows.length; start += perChunk) {
    const chunk = rows.slice(start, start + perChunk);
    const values = chunk
      .map((_, r) => `(${Array.from({ length: width }, (_, c) => `$${r * width + c + 1}`).join(', ')})`)
      .join(', ');
    await tx.query(`${head} VALUES ${values}`, chunk.flat());
  }
}

/** The records and their decoded rows (transactions, operations, maintenance), batched. */
export async function insertRecords(tx: Queryable, stored: readonly StoredRecord[]): Promise<void> {
  const records: SqlParam[][] = [];
  const transactions: SqlParam[][] = [];
  const operations: SqlParam[][] = [];
  const maintenance: SqlParam[][] = [];
  for (const { record, bytes, link } of stored) {
    records.push([record.meterId, record.seq, record.kind, seconds(record.time), bytes, link]);
    switch (record.kind) {
      case RecordKind.Transaction: {
        const d = record.data;
        transactions.push([
          record.meterId,
          record.seq,
          d.transactionNumber,
          d.cardNumber,
          d.cardExpiry,
          d.cardType,
          d.bayId,
          d.minutes,
          seconds(d.paidFrom),
          seconds(d.paidUntil),
          d.charge,
          d.currency,
          d.remainingValue,
          d.tariffRule ?? null,
        ]);
        break;
      }
      case RecordKind.Operation: {
        const d = record.data;
        operations.push([
          record.meterId,
          record.seq,
          d.code,
          d.detail,
          d.cardNumber,
          d.period ? seconds(d.period.from) : null,
          d.period ? seconds(d.period.to) : null,
          d.quantity ?? null,
        ]);
        break;
      }
      case RecordKind.Maintenance:
        maintenance.push([record.meterId, record.seq, record.data.code, record.data.detail]);
        break;
    }
  }
  const tables: [string, SqlParam[][]][] = [
    ['INSERT INTO records (meter_id, seq, kind, recorded_at, bytes, link)', records],
    [
      `INSERT INTO transactions (meter_id, seq, transaction_number, card_number, card_expiry, card_type,
         bay_id, minutes, paid_from, paid_until, charge, currency, remaining_value, tariff_rule)`,
      transactions,
    ],
    [
      'INSERT INTO operations (meter_id, seq, code, detail, card_number, period_from, period_to, quantity)',
      operations,
    ],
    ['INSERT INTO maintenance (meter_id, seq, code, detail)', maintenance],
  ];
  const parts = tables.filter(([, rows]) => rows.length > 0);
  const params = parts.reduce((n, [, rows]) => n + rows.length * rows[0].length, 0);
  if (parts.length === 0) return;
  if (params > MAX_PARAMS) {
    for (const [head, rows] of parts) await insertRows(tx, head, rows);
    return;
  }
  // One statement for every table: data-modifying CTEs, the foreign keys checked at its end.
  const all: SqlParam[] = [];
  const statements = parts.map(([head, rows]) => `${head} VALUES ${placeholders(rows, all)}`);
  const last = statements.pop() as string;
  const ctes = statements.map((statement, i) => `i${i} AS (${statement})`);
  await tx.query(ctes.length > 0 ? `WITH ${ctes.join(', ')} ${last}` : last, all);
}

/** PostgreSQL allows 65,535 parameters in a statement. */
const MAX_PARAMS = 60_000;

/** `($1, $2), ($3, $4)…` for rows, their values appended to params. */
function placeholders(rows: readonly SqlParam[][], params: SqlParam[]): string {
  let text = '';
  for (let r = 0; r < rows.length; r++) {
    const row = rows[r];
    text += r === 0 ? '(' : ', (';
    for (let c = 0; c < row.length; c++) {
      params.push(row[c]);
      text += c === 0 ? `$${params.length}` : `, $${params.length}`;
    }
    text += ')';
  }
  return text;
}

/** Removes [first, last] from the meter's recorded gaps, splitting a gap the set lands inside. */
async function closeGaps(tx: Queryable, meterId: number, first: number, last: number) {
  const overlapping = await tx.query<{ from_seq: number; to_seq: number; detected_at: Date }>(
    'DELETE FROM record_gaps WHERE meter_id = $1 AND from_seq <= $3 AND to_seq >= $2 RETURNING from_seq, to_seq, detected_at',
    [meterId, first, last],
  );
  for (const gap of overlapping.rows) {
    const pieces: [number, number][] = [];
    if (gap.from_seq < first) pieces.push([gap.from_seq, first - 1]);
    if (gap.to_seq > last) pieces.push([last + 1, gap.to_seq]);
    for (const [from, to] of pieces) {
      await tx.query(
        'INSERT INTO record_gaps (meter_id, from_seq, to_seq, detected_at) VALUES ($1, $2, $3, $4)',
        [meterId, from, to, gap.detected_at],
      );
    }
  }
}
