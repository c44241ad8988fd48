// Maintenance tokens: a short-lived token per meter and staff member. The handheld
// gets the token and its secret HMAC(M, token) (M the meter's maintenance key of its current
// epoch); the meter's SAM recomputes the secret and checks the handheld's challenge-response over
// BLE. Token ids increase per meter, so a token is good for one session; an expired one fails.
import type { Crypto } from '../../hal/crypto';
import { nobleCrypto } from '../../hal/nobleCrypto';
import { toHex } from '../../protocol/bytes';
import { encodeMaintenanceToken, maintenanceSecret, wipeMeterKeys } from '../../protocol/keys';
import type { Database } from '../core/db';
import type { MeterDirectory } from '../ingest/meters';
import type { Keystore } from './keystore';

export const MAX_TOKEN_SECONDS = 3600;

export interface IssuedToken {
  token: string;
  secret: string;
  tokenId: number;
  expiresAt: number;
}

export class MaintenanceTokens {
  constructor(
    private readonly db: Database,
    private readonly meters: Pick<MeterDirectory, 'epochs'>,
    private readonly keystore: Keystore,
    private readonly crypto: Crypto = nobleCrypto,
  ) {}

  async issue(meterId: number, staff: string, seconds = 900, now = Date.now()): Promise<IssuedToken> {
    if (!/^[\w.@-]{1,64}$/.test(staff)) throw new RangeError('staff must be 1-64 of [A-Za-z0-9_.@-]');
    if (!Number.isInteger(seconds) || seconds < 60 || seconds > MAX_TOKEN_SECONDS)
      throw new RangeError(`a token lives 60 to ${MAX_TOKEN_SECONDS} s`);
    const epochs = await this.meters.epochs(meterId);
    if (!epochs) throw new RangeError(`meter ${meterId} is not provisioned`);
    const notBefore = Math.floor(now / 1000) - 30;
    const expiresAt = notBefore + 30 + seconds;
    const tokenId = await this.db.transaction(async (tx) => {
      const last = await tx.query<{ id: number | null }>(
        'SELECT max(token_id) AS id FROM maintenance_tokens WHERE meter_id = $1',
        [meterId],
      );
      const id = Number(last.rows[0]?.id ?? 0) + 1;
      await tx.query(
        `INSERT INTO maintenance_tokens (meter_id, token_id, staff, not_before, expires_at)
         VALUES ($1, $2, $3, to_timestamp($4), to_timestamp($5))`,
        [meterId, id, staff, notBefore, expiresAt],
      );
      return id;
    });
    const token = encodeMaintenanceToken({ meterId, staff, tokenId, notBefore, expiresAt });
    const keys = this.keystore.meterKeys(meterId, epochs.current);
    try {
      const m = keys.secrets?.m;
      if (!m) throw new Error('the keystore gives no maintenance key');
      const secret = maintenanceSecret(this.crypto, m, token);
      return { token: toHex(token), secret: toHex(secret), tokenId, expiresAt };
    } finally {
      wipeMeterKeys(keys);
    }
  }
}
