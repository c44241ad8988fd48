// Key rotation at the platform: pushes a meter's next key epoch as a 0x83 downlink,
// the new keys wrapped under the current epoch's D (protocol/keys.ts), and takes the meter's 0x03
// acknowledgement (sealed under the old C): the meter's epoch moves on, the old one stays accepted
// by ingest's gate until previous_epoch_until (frames in flight), then is refused, for 0x03 as for
// every uplink type. Other 0x03 uplinks are security events (tamper, replay, ...), stored in
// security_events.
import type { Crypto } from '../../hal/crypto';
import { nobleCrypto } from '../../hal/nobleCrypto';
import { bytesEqual } from '../../protocol/bytes';
import { ProtocolError } from '../../protocol/errors';
import {
  decodeSecurityEvent,
  encodeRotation,
  type SecurityEvent,
  KeyFrame,
  keyCheckValueOf,
  wipeMeterKeys,
  wrapEpochKeys,
} from '../../protocol/keys';
import type { Database } from '../core/db';
import type { Keystore } from './keystore';
import type { UplinkHandler } from '../ingest/gate';
import type { MeterDirectory } from '../ingest/meters';

export const DEFAULT_ROTATION_WINDOW_S = 600;

export interface KeyRotationOptions {
  db: Database;
  meters: Pick<MeterDirectory, 'epochs' | 'advanceEpoch'>;
  keystore: Keystore;
  /** Seals and publishes a downlink under the meter's current D with its next sequence (Ingest.sendDownlink). */
  sendDownlink(meterId: number, type: number, body: Uint8Array): Promise<number>;
  crypto?: Crypto;
  windowSeconds?: number;
  /**
   * Sees each security event in the transaction that stores it (the alarm inbox); returns work for
   * after the commit.
   */
  observer?: (
    tx: Pick<Database, 'query'>,
    meterId: number,
    event: SecurityEvent,
  ) => Promise<() => Promise<void>>;
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

  /**
   * Ingest's handler for 0x03 (route), in the transaction that accepts the frame: a rotation
   * acknowledgement or a security event, from a frame the gate verified (its epoch is the meter's
   * current one, or the previous one inside its window).
   */
  onUplink: UplinkHandler = async ({ meterId, body, currentEpoch }, tx) => {
    const { keystore } = this.#o;
    const event = decodeSecurityEvent(body);
    await tx.query('INSERT INTO security_events (meter_id, event, epoch, detail) VALUES ($1, $2, $3, $4)', [
      meterId,
      event.ev,
      event.epoch,
      event.detail,
    ]);
    const observed = await this.#o.observer?.(tx, meterId, event);
    if (event.ev !== 'key-epoch' || event.epoch !== currentEpoch + 1) return observed;
    const next = keystore.meterKeys(meterId, event.epoch);
    const kcv = keyCheckValueOf(this.#crypto, next.uplink);
    wipeMeterKeys(next);
    if (!bytesEqual(kcv, event.kcv)) throw new ProtocolError('bad-field', 'key check value does not match');
    await this.#o.meters.advanceEpoch(
      tx,
      meterId,
      event.epoch,
      this.#o.windowSeconds ?? DEFAULT_ROTATION_WINDOW_S,
    );
    await tx.query('UPDATE key_rotations SET acknowledged_at = now() WHERE meter_id = $1 AND epoch = $2', [
      meterId,
      event.epoch,
    ]);
  };
}
