// Uplink ingest: takes every meter uplink off the broker and passes it through one gate before any
// handler sees it: version, type, topic ↔ meter id, key epoch (the previous one only until its
// window ends), authentication and decryption, the meter's uplink anti-replay window. Those checks
// run first without a database transaction (verify.ts, against a cache of each meter's epochs, keys
// and window), so junk is refused cheaply; then again under the meter's row lock in the transaction
// that accepts the frame. Record sets are stored in batches, one transaction per batch (store.ts), a
// meter's frames one at a time and in order, and acknowledged with the last record and its chain
// link on the meter's downlink topic; other types go, as verified plaintext, to the feature that
// routed them, in the transaction that accepts them into the window. Every refusal is counted and
// sampled (refusals.ts). The database decides, so several instances can share the uplinks (shared
// subscription on brokers that have them).
import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import mqtt, { type MqttClient } from 'mqtt';
import type { Crypto } from '../../hal/crypto';
import { ProtocolError } from '../../protocol/errors';
import { decodeHeader, FRAME_VERSION, type FrameHeader, FrameType, sealFrame } from '../../protocol/frame';
import { type AckMessage, encodeAckMessage } from '../../protocol/messages';
import { downlinkTopic, meterIdOfTopic, UPLINK_WILDCARD } from '../../protocol/topics';
import { sendPacketsAtOnce } from '../core/broker';
import type { Database, Queryable } from '../core/db';
import {
  FrameRefused,
  type RefusalReason,
  type StoredRecord,
  type StoredSet,
  storeBatch,
  type UplinkFrame,
} from './store';
import { CityDays } from '../history/cityDay';
import type { CardTokens } from '../keys/cardToken';
import { frameKeys, type Keystore } from '../keys/keystore';
import { nodeCrypto } from '../core/nodeCrypto';
import { RefusalTrail, type RefusalTrailOptions } from './refusals';
import {
  UPLINK_WINDOW_COLUMNS,
  type UplinkWindowRow,
  uplinkSeenColumn,
  uplinkWindowOf,
} from './uplinkWindow';
import { MeterCache, type VerifiedUplink } from './verify';
import { DownlinkOutbox } from './outbox';

export type { RefusalReason, StoredRecord } from './store';
export type { VerifiedUplink } from './verify';

/** A verified uplink as a routed handler gets it, with the meter's current epoch read under its row lock. */
export interface RoutedUplink extends VerifiedUplink {
  currentEpoch: number;
}

/**
 * A feature's handler for one uplink frame type. It runs in the transaction that accepts the frame
 * into the meter's uplink window, and gets only frames the gate verified: its writes (through `tx`)
 * commit with the window, and a throw refuses the frame (the error's code, else 'internal-error')
 * with nothing written. It may return work to run after the commit (work that takes its own
 * transactions, notifications); that work's failure does not refuse the frame.
 */
export type UplinkHandler = (frame: RoutedUplink, tx: Queryable) => Promise<void | (() => Promise<void>)>;

/** The logger ingest writes to: pino's (fastify's) signature, or anything with the same shape. */
export interface Logger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface Refusal {
  reason: RefusalReason;
  detail: string;
  topic: string;
  /** From the header when it could be read (else from the topic). */
  meterId?: number;
  frameSeq?: number;
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
  /** The sealed 0x81 ack as published, for a handheld to carry to the meter as well. */
  ackFrame?: Uint8Array;
}

/** A frame of a routed type, verified and handled. */
export interface RoutedAccepted {
  ok: true;
  routed: true;
  type: number;
  meterId: number;
  frameSeq: number;
}

export type IngestOutcome = Accepted | RoutedAccepted | ({ ok: false } & Refusal);

export interface IngestEvents {
  stored: [StoredRecord];
  refused: [Refusal];
  accepted: [Accepted];
  /** Every uplink message's outcome, accepted or refused. */
  outcome: [IngestOutcome];
  /** Once per stored batch, its accepted sets in order: for listeners that work a batch at a time. */
  committed: [Accepted[]];
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
  /** Tokenises the card numbers of format 1 records (written before card tokens); refused without. */
  cardTokens?: CardTokens;
  /**
   * The city's IANA time zone (the reports'): a sale from before today marks its day's totals stale
   * (history/rollup.ts). Default UTC.
   */
  timeZone?: string;
  /** Called once per record newly stored, after the commit. */
  onStored?: (stored: StoredRecord) => void;
  /**
   * Connections joining the shared subscription (default: PARKLINK_INGEST_CONNECTIONS, else 1).
   * One is enough for batching (sets are acknowledged to the broker once queued); a meter's frames
   * handled out of order across connections or instances pass the uplink window (uplinkWindow.ts).
   */
  connections?: number;
  /** Frames (one per meter) stored in one database transaction, at most (default 64). */
  batchFrames?: number;
  /** Batches in the database at once (default 2): one commits while the next is checked. */
  batchesInFlight?: number;
  /** Record sets held waiting for a batch before the broker is made to hold the next (default 1024). */
  maxQueuedFrames?: number;
  /** How refusals are sampled, counted and pruned (refusals.ts). */
  refusals?: Omit<RefusalTrailOptions, 'db' | 'logger'>;
}

function ingestConnections(option: number | undefined): number {
  const n = option ?? Number(process.env.PARKLINK_INGEST_CONNECTIONS ?? 1);
  return Number.isInteger(n) && n >= 1 && n <= 64 ? n : 1;
}

interface Waiting extends UplinkFrame {
  settle(outcome: IngestOutcome): void;
}

interface WindowRow extends UplinkWindowRow {
  key_epoch: number;
  old_epoch: number | null;
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
  private readonly routes = new Map<number, UplinkHandler>();
  /** The uplink types the gate takes: record sets and the routed ones. */
  private readonly uplinkTypes = {
    has: (type: number) => type === FrameType.Records || this.routes.has(type),
  };
  /** The checks before any transaction (verify.ts). */
  private readonly meters: MeterCache;
  /** Counts, samples and prunes refusals. */
  readonly refusals: RefusalTrail;
  /** The sealed downlinks kept for a handheld to carry (outbox.ts). */
  readonly outbox: DownlinkOutbox;
  /** Record sets waiting for a batch, in arrival order. */
  private queue: Waiting[] = [];
  /** Meters with a frame in a running batch: their next frames wait for it. */
  private readonly metersInBatch = new Set<number>();
  private batchesRunning = 0;
  private readonly batchFrames: number;
  private readonly maxBatches: number;
  private readonly maxQueuedFrames: number;
  /** Where today starts in the city: a sale before it is late for the daily totals. */
  private readonly cityDays: CityDays;

  constructor(private readonly options: IngestOptions) {
    super();
    this.db = options.db;
    this.keystore = options.keystore;
    this.logger = options.logger;
    this.crypto = options.crypto ?? nodeCrypto;
    this.batchFrames = Math.max(1, options.batchFrames ?? 64);
    this.maxBatches = Math.max(1, options.batchesInFlight ?? 2);
    this.maxQueuedFrames = Math.max(0, options.maxQueuedFrames ?? 1024);
    this.cityDays = new CityDays(options.timeZone ?? 'UTC');
    if (options.onStored) this.on('stored', options.onStored);
    this.meters = new MeterCache({ db: this.db, keystore: this.keystore, crypto: this.crypto });
    this.refusals = new RefusalTrail({ db: this.db, logger: this.logger, ...options.refusals });
    this.refusals.start();
    this.outbox = new DownlinkOutbox(this.db);
  }

  /** The subscription filter in use. */
  get subscription(): string {
    return this.options.sharedSubscription
      ? `$share/${this.options.group ?? 'ingest'}/${UPLINK_WILDCARD}`
      : UPLINK_WILDCARD;
  }

  /**
   * Takes uplink frames of `type` (e.g. 0x06 renewal acks) and hands them, verified, to `handler`
   * (see UplinkHandler) instead of refusing them as a type the platform does not take.
   */
  route(type: number, handler: UplinkHandler): void {
    if (type === FrameType.Records || (type & 0x80) !== 0 || type < 0 || type > 0xff)
      throw new RangeError(`0x${type.toString(16)} is not an uplink type a feature can route`);
    this.routes.set(type, handler);
  }

  /** The meter's row changed outside ingest (provisioned, epochs set): read it again next time. */
  forgetMeter(meterId: number): void {
    this.meters.forget(meterId);
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
    sendPacketsAtOnce(client);
    // mqtt.js hands over the next message, and sends this one's PUBACK, when `done` is called. A
    // record set is acknowledged to the broker once it waits in the queue, so the next ones arrive
    // while it is stored and a batch gathers many meters' sets; past maxQueuedFrames the PUBACK waits
    // for the set's own batch, and the broker holds the rest. A set lost from memory (a crash) is not
    // lost: the meter keeps it on flash and sends it again until the platform's 0x81 ack. Other frame
    // types go to their feature one at a time, PUBACK once the transaction that accepts it is over:
    // not after its follow-up, which may publish a downlink and wait for the broker's PUBACK on this
    // very connection, whose incoming packets wait for `done`.
    client.handleMessage = (packet, done) => {
      const payload = packet.payload;
      const bytes =
        typeof payload === 'string'
          ? new TextEncoder().encode(payload)
          : new Uint8Array(payload.buffer, payload.byteOffset, payload.length);
      const routed = bytes.length > 1 && bytes[1] !== FrameType.Records;
      let released = false;
      const release = () => {
        if (released) return;
        released = true;
        done();
      };
      const handled = this.track<unknown>(this.handleUplink(packet.topic, bytes, release));
      if (!routed && this.queue.length < this.maxQueuedFrames) release();
      else handled.then(release, release);
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
    await this.refusals.close();
    this.meters.clear();
  }

  private track<T>(promise: Promise<T>): Promise<T> {
    this.inFlight.add(promise);
    promise.finally(() => this.inFlight.delete(promise)).catch(() => {});
    return promise;
  }

  /**
   * Processes one uplink message of any type; never throws. It passes the gate's checks first
   * (verify.ts, no transaction). A record set then waits for the next batch (at once when the
   * database is idle); the promise settles when its batch is committed or it is refused. A frame of
   * a routed type goes to its handler in the transaction that accepts it; `committed` is called once
   * that transaction is over, before the handler's follow-up.
   */
  handleUplink(topic: string, frame: Uint8Array, committed?: () => void): Promise<IngestOutcome> {
    let verified: VerifiedUplink | Promise<VerifiedUplink>;
    try {
      verified = this.meters.verify(topic, frame, this.uplinkTypes);
    } catch (error) {
      return this.refused({ topic, header: headerOf(frame) }, error, topicMeterOf(topic));
    }
    if (verified instanceof Promise) {
      return verified.then(
        (v) => this.dispatch(v, frame, committed),
        (error) => this.refused({ topic, header: headerOf(frame) }, error, topicMeterOf(topic)),
      );
    }
    return this.dispatch(verified, frame, committed);
  }

  private dispatch(
    frame: VerifiedUplink,
    sealed: Uint8Array,
    committed?: () => void,
  ): Promise<IngestOutcome> {
    const handler = this.routes.get(frame.header.type);
    if (handler) return this.handleRouted(frame, handler, committed);
    return new Promise((settle) => {
      this.queue.push({ topic: frame.topic, header: frame.header, body: frame.body, sealed, settle });
      this.pump();
    });
  }

  /**
   * A routed frame: under the meter's row lock, the epoch and window checked again, the handler run,
   * the window advanced, all in one transaction; then the handler's follow-up.
   */
  private async handleRouted(
    frame: VerifiedUplink,
    handler: UplinkHandler,
    committed?: () => void,
  ): Promise<IngestOutcome> {
    const { meterId, header } = frame;
    const after: { followUp?: () => Promise<void>; epochMoved?: boolean } = {};
    try {
      await this.db.transaction(async (tx) => {
        const locked = await tx.query<WindowRow>(
          `SELECT key_epoch, ${UPLINK_WINDOW_COLUMNS},
                  CASE WHEN previous_epoch_until > now() THEN previous_key_epoch END AS old_epoch
             FROM meters WHERE id = $1 FOR UPDATE`,
          [meterId],
        );
        const row = locked.rows[0];
        if (!row) throw new FrameRefused('unknown-meter', `meter ${meterId} is not provisioned`);
        const current = Number(row.key_epoch);
        if (header.epoch !== current && (row.old_epoch === null || header.epoch !== Number(row.old_epoch)))
          throw new FrameRefused('stale-epoch', `frame key epoch ${header.epoch}, meter's epoch ${current}`);
        const window = uplinkWindowOf(row);
        const replayed = window.check(header.seq);
        if (replayed) throw new FrameRefused('replay', `uplink frame of meter ${meterId}: ${replayed}`);
        window.accept(header.seq);
        after.followUp = (await handler({ ...frame, currentEpoch: current }, tx)) || undefined;
        const updated = await tx.query<{ key_epoch: number }>(
          `UPDATE meters SET last_uplink_seq = $2, uplink_seen = $3::bigint, last_seen_at = now()
            WHERE id = $1 RETURNING key_epoch`,
          [meterId, window.highest, uplinkSeenColumn(window)],
        );
        after.epochMoved = Number(updated.rows[0]?.key_epoch) !== current;
      });
    } catch (error) {
      // The database disagreed with the cache (another instance, a rotation): read the meter again.
      if (error instanceof FrameRefused && error.reason === 'stale-epoch') this.meters.forget(meterId);
      return this.refused(frame, error);
    }
    if (after.epochMoved) this.meters.forget(meterId);
    else this.meters.accepted(meterId, header.seq);
    committed?.();
    if (after.followUp) {
      try {
        await after.followUp();
      } catch (error) {
        this.logger.error(
          { err: error, meterId, type: header.type },
          'uplink accepted, its follow-up failed',
        );
      }
    }
    const outcome: RoutedAccepted = {
      ok: true,
      routed: true,
      type: header.type,
      meterId,
      frameSeq: header.seq,
    };
    this.emit('outcome', outcome);
    return outcome;
  }

  /** Starts batches while there is room: each takes the oldest waiting frame of each idle meter. */
  private pump(): void {
    while (this.batchesRunning < this.maxBatches && this.queue.length > 0) {
      const batch: Waiting[] = [];
      const waiting: Waiting[] = [];
      // A meter seen once in this pass keeps its later frames waiting, behind the first, in order.
      const seen = new Set<number>();
      for (const entry of this.queue) {
        const id = entry.header.meterId;
        if (batch.length < this.batchFrames && !seen.has(id) && !this.metersInBatch.has(id))
          batch.push(entry);
        else waiting.push(entry);
        seen.add(id);
      }
      if (batch.length === 0) return;
      this.queue = waiting;
      this.batchesRunning++;
      for (const entry of batch) this.metersInBatch.add(entry.header.meterId);
      void this.track(this.runBatch(batch)).finally(() => {
        this.batchesRunning--;
        for (const entry of batch) this.metersInBatch.delete(entry.header.meterId);
        this.pump();
      });
    }
  }

  private async runBatch(batch: Waiting[]): Promise<void> {
    let results: Awaited<ReturnType<typeof storeBatch>>;
    try {
      results = await storeBatch(
        {
          db: this.db,
          keystore: this.keystore,
          crypto: this.crypto,
          cardTokens: this.options.cardTokens,
          downlinkKey: (meterId, epoch) => this.meters.downlinkKey(meterId, epoch),
          cityDays: this.cityDays,
        },
        batch,
      );
    } catch (error) {
      results = batch.map(() => ({ ok: false, error }));
    }
    const accepted: Accepted[] = [];
    const outcomes: IngestOutcome[] = [];
    for (let i = 0; i < batch.length; i++) {
      const result = results[i];
      if (result.ok) {
        this.meters.accepted(result.meterId, result.frameSeq);
        const set = this.afterCommit(result);
        accepted.push(set);
        outcomes.push(set);
      } else {
        const error = result.error;
        if (error instanceof FrameRefused && error.reason === 'stale-epoch')
          this.meters.forget(batch[i].header.meterId);
        outcomes.push(await this.refused(batch[i], error));
      }
    }
    if (accepted.length > 0) this.emitSafely('committed', accepted);
    batch.forEach((entry, i) => {
      if (outcomes[i].ok) this.emit('outcome', outcomes[i]);
      entry.settle(outcomes[i]);
    });
  }

  /** Logs and records a refusal, emits it (and the outcome), and returns the outcome. */
  private async refused(
    frame: { topic: string; header?: FrameHeader },
    error: unknown,
    topicMeter?: number,
  ): Promise<IngestOutcome> {
    const refusal: Refusal = { topic: frame.topic, ...refusalOf(error) };
    const meterId = frame.header?.meterId ?? topicMeter;
    if (meterId !== undefined) refusal.meterId = meterId;
    if (frame.header) refusal.frameSeq = frame.header.seq;
    await this.refuse(refusal, error);
    const outcome: IngestOutcome = { ok: false, ...refusal };
    this.emit('outcome', outcome);
    return outcome;
  }

  /** Acknowledges a stored set and tells the listeners; returns it as accepted. */
  private afterCommit(set: StoredSet): Accepted {
    const { epoch, downlinkKey } = set;
    const accepted: Accepted = {
      ok: true,
      meterId: set.meterId,
      frameSeq: set.frameSeq,
      stored: set.stored,
      duplicates: set.duplicates,
      ack: set.ack,
      downlinkSeq: set.downlinkSeq,
    };
    if (set.gap) accepted.gap = set.gap;
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
    accepted.ackFrame = ackFrame;
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
    for (const stored of accepted.stored) this.emitSafely('stored', stored);
    this.emitSafely('accepted', accepted);
    return accepted;
  }

  /** A listener that throws is logged; it must not cost the other listeners or the ack. */
  private emitSafely<E extends 'stored' | 'accepted' | 'committed'>(
    event: E,
    ...args: IngestEvents[E]
  ): void {
    try {
      (this.emit as (e: E, ...a: IngestEvents[E]) => boolean)(event, ...args);
    } catch (error) {
      this.logger.error({ err: error, event }, 'ingest listener threw');
    }
  }

  /**
   * Seals a downlink of `type` for a meter under its current key D with the next downlink sequence
   * number, keeps it in the outbox for a handheld (outbox.ts) and publishes it (storage control 0x82:
   * release tokens). Resolves once the broker has it.
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
    const keys = frameKeys(this.keystore, meterId, epoch);
    keys.uplink.fill(0);
    const frame = sealFrame(
      this.crypto,
      keys.downlink,
      { version: FRAME_VERSION, type, meterId, epoch, seq },
      body,
    );
    keys.downlink.fill(0);
    await this.outbox.keep({ meterId, seq, type, epoch, frame }, body);
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
    await this.refusals.record(refusal, error);
    this.emit('refused', refusal);
  }
}

/** The frame's header when it can be read, for the refusal's meter id and sequence number. */
function headerOf(frame: Uint8Array): FrameHeader | undefined {
  try {
    return decodeHeader(frame);
  } catch {
    return undefined;
  }
}

function topicMeterOf(topic: string): number | undefined {
  return /\/up$/.test(topic) ? meterIdOfTopic(topic) : undefined;
}

function refusalOf(error: unknown): { reason: RefusalReason; detail: string } {
  if (error instanceof FrameRefused) return { reason: error.reason, detail: error.detail };
  if (error instanceof ProtocolError) return { reason: error.code, detail: error.message };
  return { reason: 'internal-error', detail: error instanceof Error ? error.message : String(error) };
}
