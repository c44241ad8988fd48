// The uplink gate's checks that need no database transaction, for every frame type: version, type,
// topic ↔ meter id, the meter's key epoch policy (the current epoch, or the previous one until its
// window ends), AES-GCM authentication and decryption, and the meter's uplink anti-replay window as
// this instance last saw it committed. They run against an in-memory cache of each meter's epochs,
// keys C and D and window, so junk carrying a meter's id and epoch is refused without costing a
// transaction. The database stays the authority: a frame these checks pass is checked again (epoch,
// window) under the meter's row lock in the transaction that accepts it.
import type { Crypto } from '../../hal/crypto';
import { decodeHeader, type FrameHeader, isDownlink, openFrame } from '../../protocol/frame';
import type { ReplayWindow } from '../../protocol/replayWindow';
import { meterIdOfTopic } from '../../protocol/topics';
import type { Database } from '../core/db';
import { downlinkKey, frameKeys, type Keystore } from '../keys/keystore';
import { FrameRefused } from './store';
import { UPLINK_WINDOW_COLUMNS, type UplinkWindowRow, uplinkWindowOf } from './uplinkWindow';

/** An uplink frame that passed the gate's checks: authenticated header and decrypted body. */
export interface VerifiedUplink {
  topic: string;
  meterId: number;
  header: FrameHeader;
  /** The plaintext body. */
  body: Uint8Array;
}

interface KnownMeter {
  known: true;
  current: number;
  previous: number | null;
  /** Date.now() at which the previous epoch stops being accepted (0: no previous epoch). */
  previousUntil: number;
  /** The meter's uplink window as last committed (a lower bound of the database's). */
  window: ReplayWindow;
  /** Keys C and D per epoch, derived once (a derivation costs a dozen HMACs). */
  keys: Map<number, EpochKeys>;
  loadedAt: number;
}

interface UnknownMeter {
  known: false;
  loadedAt: number;
}

type CachedMeter = KnownMeter | UnknownMeter;

interface EpochKeys {
  uplink: Uint8Array;
  downlink: Uint8Array;
}

function wipe(keys: EpochKeys): void {
  keys.uplink.fill(0);
  keys.downlink.fill(0);
}

interface MeterRow extends UplinkWindowRow {
  id: number;
  key_epoch: number;
  previous_key_epoch: number | null;
  previous_left_ms: number | null;
}

export interface MeterCacheOptions {
  db: Database;
  keystore: Keystore;
  crypto: Crypto;
  /** A meter's entry is read again from the database after this long (default 30 s). */
  ttlMs?: number;
  /** An unknown meter id is looked up again after this long (default 5 s). */
  unknownTtlMs?: number;
  /** Meters held at most; the least recently loaded go first (default 50,000). */
  maxMeters?: number;
}

/** The frame types a meter sends, by the gate's routing: records always, the others once routed. */
export type UplinkTypes = { has(type: number): boolean };

/**
 * Each meter's epochs, keys and window, loaded from the database on first use and again
 * after a TTL, after a commit that may have moved them, or when a frame authenticates under an
 * epoch newer than the cached one (another instance saw the rotation).
 */
export class MeterCache {
  readonly #o: MeterCacheOptions;
  readonly #meters = new Map<number, CachedMeter>();
  readonly #loading = new Map<number, Promise<CachedMeter>>();
  #queued = new Map<number, { resolve(entry: CachedMeter): void; reject(error: unknown): void }>();
  #readScheduled = false;
  readonly #ttl: number;
  readonly #unknownTtl: number;
  readonly #max: number;

  constructor(options: MeterCacheOptions) {
    this.#o = options;
    this.#ttl = options.ttlMs ?? 30_000;
    this.#unknownTtl = options.unknownTtlMs ?? 5_000;
    this.#max = options.maxMeters ?? 50_000;
  }

  /**
   * Checks a frame without a transaction; resolves with the verified frame or throws FrameRefused /
   * ProtocolError. A meter's frames are checked in arrival order: synchronously when its entry is
   * cached, else behind the one load in flight.
   */
  verify(topic: string, frame: Uint8Array, types: UplinkTypes): VerifiedUplink | Promise<VerifiedUplink> {
    const { meterId, header } = readHeader(topic, frame, types);
    const cached = this.#fresh(meterId);
    if (cached) return this.#verifyWith(cached, topic, frame, header);
    return this.#load(meterId).then((entry) => this.#verifyWith(entry, topic, frame, header));
  }

  /** Marks frame `seq` of the meter accepted (after its commit), so a replay is refused here. */
  accepted(meterId: number, seq: number): void {
    const entry = this.#meters.get(meterId);
    if (entry?.known && entry.window.check(seq) === undefined) entry.window.accept(seq);
  }

  /** The meter's epochs or window may have changed in the database: read them again next time. */
  forget(meterId: number): void {
    const entry = this.#meters.get(meterId);
    if (entry?.known) {
      for (const keys of entry.keys.values()) wipe(keys);
      // A check still holding the entry derives its key again rather than use a wiped one.
      entry.keys.clear();
    }
    this.#meters.delete(meterId);
  }

  /** Forgets every meter and wipes the keys held. */
  clear(): void {
    for (const id of [...this.#meters.keys()]) this.forget(id);
  }

  #fresh(meterId: number): CachedMeter | undefined {
    const entry = this.#meters.get(meterId);
    if (!entry || this.#loading.has(meterId)) return undefined;
    const age = Date.now() - entry.loadedAt;
    return age < (entry.known ? this.#ttl : this.#unknownTtl) ? entry : undefined;
  }

  /**
   * The meter's row, read again. Loads asked for in the same turn of the event loop (a burst of
   * frames from many meters) are read in one query, and settle in the order they were asked for.
   */
  #load(meterId: number): Promise<CachedMeter> {
    const pending = this.#loading.get(meterId);
    if (pending) return pending;
    const load = new Promise<CachedMeter>((resolve, reject) => {
      this.#queued.set(meterId, { resolve, reject });
    });
    this.#loading.set(meterId, load);
    if (!this.#readScheduled) {
      this.#readScheduled = true;
      queueMicrotask(() => void this.#readQueued());
    }
    return load;
  }

  async #readQueued(): Promise<void> {
    this.#readScheduled = false;
    const queued = this.#queued;
    this.#queued = new Map();
    let rows: MeterRow[];
    try {
      rows = (
        await this.#o.db.query<MeterRow>(
          `SELECT id, key_epoch, previous_key_epoch, ${UPLINK_WINDOW_COLUMNS},
                  (extract(epoch FROM previous_epoch_until - now()) * 1000)::float8 AS previous_left_ms
             FROM meters WHERE id = ANY($1::bigint[])`,
          [[...queued.keys()]],
        )
      ).rows;
    } catch (error) {
      for (const [id, { reject }] of queued) {
        this.#loading.delete(id);
        reject(error);
      }
      return;
    }
    const now = Date.now();
    const byId = new Map(rows.map((r) => [Number(r.id), r]));
    for (const [id, { resolve }] of queued) {
      const entry = this.#entryOf(id, byId.get(id), now);
      this.#loading.delete(id);
      resolve(entry);
    }
    this.#evict();
  }

  #entryOf(meterId: number, r: MeterRow | undefined, now: number): CachedMeter {
    const old = this.#meters.get(meterId);
    const entry: CachedMeter = r
      ? {
          known: true,
          current: Number(r.key_epoch),
          previous: r.previous_key_epoch === null ? null : Number(r.previous_key_epoch),
          previousUntil:
            r.previous_key_epoch !== null && r.previous_left_ms !== null && Number(r.previous_left_ms) > 0
              ? now + Number(r.previous_left_ms)
              : 0,
          window: uplinkWindowOf(r),
          // Keys depend on (meter, epoch) only: the ones derived before stay valid.
          keys: old?.known ? old.keys : new Map(),
          loadedAt: now,
        }
      : { known: false, loadedAt: now };
    if (old?.known && !entry.known) {
      for (const keys of old.keys.values()) wipe(keys);
      old.keys.clear();
    }
    this.#meters.delete(meterId);
    this.#meters.set(meterId, entry);
    return entry;
  }

  #evict(): void {
    while (this.#meters.size > this.#max) {
      const oldest = this.#meters.keys().next().value as number;
      this.forget(oldest);
    }
  }

  #keys(entry: KnownMeter, meterId: number, epoch: number): EpochKeys {
    let keys = entry.keys.get(epoch);
    if (!keys) {
      const derived = frameKeys(this.#o.keystore, meterId, epoch);
      keys = { uplink: derived.uplink, downlink: derived.downlink };
      // Two epochs are ever accepted at once; a third is a newer one just seen.
      if (entry.keys.size >= 3) {
        for (const [e, k] of entry.keys) {
          if (e !== entry.current && e !== entry.previous) {
            wipe(k);
            entry.keys.delete(e);
          }
        }
      }
      entry.keys.set(epoch, keys);
    }
    return keys;
  }

  #key(entry: KnownMeter, meterId: number, epoch: number): Uint8Array {
    return this.#keys(entry, meterId, epoch).uplink;
  }

  /**
   * A copy of key D of the meter's epoch, for sealing a downlink; the caller wipes it. From the
   * cache when the meter is in it, else derived.
   */
  downlinkKey(meterId: number, epoch: number): Uint8Array {
    const entry = this.#meters.get(meterId);
    if (entry?.known) return this.#keys(entry, meterId, epoch).downlink.slice();
    return downlinkKey(this.#o.keystore, meterId, epoch);
  }

  #verifyWith(
    entry: CachedMeter,
    topic: string,
    frame: Uint8Array,
    header: FrameHeader,
  ): VerifiedUplink | Promise<VerifiedUplink> {
    const meterId = header.meterId;
    if (!entry.known) throw new FrameRefused('unknown-meter', `meter ${meterId} is not provisioned`);
    const epoch = header.epoch;
    if (epochAccepted(entry, epoch)) return this.#open(entry, topic, frame, header);
    if (epoch > entry.current && epoch - entry.current <= 1) {
      // Newer than this instance knows: only a frame that authenticates under it is worth a reload.
      // Its key is kept like the others, so junk under that epoch costs no derivation each.
      let genuine = false;
      try {
        openFrame(this.#o.crypto, this.#key(entry, meterId, epoch), frame);
        genuine = true;
      } catch {
        // junk under a made-up epoch
      }
      if (genuine) {
        return this.#load(meterId).then((reloaded) => {
          if (!reloaded.known || !epochAccepted(reloaded, epoch)) throw staleEpoch(header, reloaded);
          return this.#open(reloaded, topic, frame, header);
        });
      }
    }
    throw staleEpoch(header, entry);
  }

  #open(entry: KnownMeter, topic: string, frame: Uint8Array, header: FrameHeader): VerifiedUplink {
    const meterId = header.meterId;
    const { body } = openFrame(this.#o.crypto, this.#key(entry, meterId, header.epoch), frame);
    // Only an authenticated frame can be a replay: checked after opening, so the log says which. The
    // cached window never runs ahead of the database's, so a replay here is one there too.
    const replayed = entry.window.check(header.seq);
    if (replayed) throw new FrameRefused('replay', `uplink frame of meter ${meterId}: ${replayed}`);
    return { topic, meterId, header, body };
  }
}

function epochAccepted(entry: KnownMeter, epoch: number): boolean {
  return epoch === entry.current || (epoch === entry.previous && Date.now() < entry.previousUntil);
}

function staleEpoch(header: FrameHeader, entry: CachedMeter): FrameRefused {
  const current = entry.known ? `, meter's epoch ${entry.current}` : '';
  return new FrameRefused('stale-epoch', `frame key epoch ${header.epoch}${current}`);
}

/**
 * The checks on the header alone: a meter uplink topic, version, an uplink type the gate handles,
 * the topic's meter id in the header. Throws FrameRefused / ProtocolError.
 */
export function readHeader(
  topic: string,
  frame: Uint8Array,
  types: UplinkTypes,
): { meterId: number; header: FrameHeader } {
  const topicMeter = /\/up$/.test(topic) ? meterIdOfTopic(topic) : undefined;
  if (topicMeter === undefined) throw new FrameRefused('bad-topic', `${topic} is not a meter uplink topic`);
  const header = decodeHeader(frame);
  if (isDownlink(header.type) || !types.has(header.type)) {
    throw new FrameRefused(
      'bad-type',
      `frame type 0x${header.type.toString(16)} is not an uplink this platform takes`,
    );
  }
  if (header.meterId !== topicMeter) {
    throw new FrameRefused(
      'topic-mismatch',
      `topic names meter ${topicMeter}, header meter ${header.meterId}`,
    );
  }
  return { meterId: topicMeter, header };
}
