// Key rotation at the platform: pushes a meter's next key epoch as a 0x83 downlink,
// the new keys wrapped under the current epoch's D (protocol/keys.ts), and takes the meter's 0x03
// acknowledgement (sealed under the old C): the meter's epoch moves on, the old one stays accepted
// by ingest until previous_epoch_until (frames in flight), then is refused. Other 0x03 uplinks are
// security events (tamper, replay, ...), stored in security_events.
import type { Crypto } from '../../hal/crypto';
import { nobleCrypto } from '../../hal/nobleCrypto';
import { bytesEqual } from '../../protocol/bytes';
import { ProtocolError } from '../../protocol/errors';
import { decodeHeader, openFrame } from '../../protocol/frame';
import {
  decodeSecurityEvent,
  encodeRotation,
  KeyFrame,
  keyCheckValueOf,
  wipeMeterKeys,
  wrapEpochKeys,
} from '../../protocol/keys';
import { meterIdOfTopic } from '../../protocol/topics';
import type { Database } from '../core/db';
import type { Keystore } from './keystore';
import type { MeterDirectory } from '../ingest/meters';

export const DEFAULT_ROTATION_WINDOW_S = 600;

export interface KeyRotationOptions {
  db: Database;
  meters: Pick<MeterDirectory, 'epochs' | 'acceptUplinkFrame' | 'advanceEpoch'>;
  keystore: Keystore;
  /** Seals and publishes a downlink under the meter's current D with its next sequence (Ingest.sendDownlink). */
  sendDownlink(meterId: number, type: number, body: Uint8Array): Promise<number>;
  crypto?: Crypto;
  windowSeconds?: number;
}

export class KeyRotationError extends Error {
  override readonly name: string = 'KeyRotationError';
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export class KeyRotation {
  readonly #o: KeyRotationOptions;
  readonly #crypto: Crypto;

  constructor(options: KeyRotationOptions) {
    this.#o = options;
    this.#crypto = options.crypto ?? nobleCrypto;
  }

  /** Pushes epoch current + 1 (again, if already pushed and not acknowledged). */
  async push(meterId: number): Promise<{ epoch: number; downlinkSeq: number }> {
    const { db, keystore } = this.#o;
    const epochs = await this.#o.meters.epochs(meterId);
    if (!epochs) throw new KeyRotationError(404, `meter ${meterId} is not provisioned`);
    const current = epochs.current;
    const epoch = current + 1;
    const now = keystore.meterKeys(meterId, current);
    const next = keystore.meterKeys(meterId, epoch);
    try {
      const body = encodeRotation({ epoch, keys: wrapEpochKeys(this.#crypto, now.downlink, meterId, next) });
      const downlinkSeq = await this.#o.sendDownlink(meterId, KeyFrame.ROTATION, body);
      await db.query(
        `INSERT INTO key_rotations (meter_id, epoch, from_epoch, downlink_seq) VALUES ($1, $2, $3, $4)
         ON CONFLICT (meter_id, epoch) DO UPDATE SET downlink_seq = $4, pushed_at = now()`,
        [meterId, epoch, current, downlinkSeq],
      );
      return { epoch, downlinkSeq };
    } finally {
      wipeMeterKeys(now);
      wipeMeterKeys(next);
    }
  }

  /** Handles a 0x03 uplink (ingest.route): a rotation acknowledgement or a security event. */
  async handleUplink(topic: string, frame: Uint8Array): Promise<void> {
    const { db, keystore } = this.#o;
    const header = decodeHeader(frame);
    if (meterIdOfTopic(topic) !== header.meterId)
      throw new ProtocolError('bad-field', 'topic and header disagree');
    const epochs = await this.#o.meters.epochs(header.meterId);
    if (!epochs) throw new ProtocolError('unknown-meter', `meter ${header.meterId}`);
    const key_epoch = epochs.current;
    if (header.epoch !== key_epoch && header.epoch !== (epochs.previous ?? -1))
      throw new ProtocolError('stale-epoch', `epoch ${header.epoch}`);
    const keys = keystore.meterKeys(header.meterId, header.epoch);
    let event: ReturnType<typeof decodeSecurityEvent>;
    try {
      event = decodeSecurityEvent(openFrame(this.#crypto, keys.uplink, frame).body);
    } finally {
      wipeMeterKeys(keys);
    }
    await db.transaction(async (tx) => {
      await this.#o.meters.acceptUplinkFrame(tx, header.meterId, header.seq);
      await tx.query('INSERT INTO security_events (meter_id, event, epoch, detail) VALUES ($1, $2, $3, $4)', [
        header.meterId,
        event.ev,
        event.epoch,
        event.detail,
      ]);
      if (event.ev !== 'key-epoch' || event.epoch !== Number(key_epoch) + 1) return;
      const next = keystore.meterKeys(header.meterId, event.epoch);
      const kcv = keyCheckValueOf(this.#crypto, next.uplink);
      wipeMeterKeys(next);
      if (!bytesEqual(kcv, event.kcv)) throw new ProtocolError('bad-field', 'key check value does not match');
      await this.#o.meters.advanceEpoch(
        tx,
        header.meterId,
        event.epoch,
        this.#o.windowSeconds ?? DEFAULT_ROTATION_WINDOW_S,
      );
      await tx.query('UPDATE key_rotations SET acknowledged_at = now() WHERE meter_id = $1 AND epoch = $2', [
        header.meterId,
        event.epoch,
      ]);
    });
  }
}
