// The fleet's card-token key on the platform: derived from the master key with its own label (or
// PARKLINK_TOKEN_KEY), loaded into every meter by the factory, and used by ingest (format 1
// records), the stored-card conversion and pay by phone (a driver's card registered by number).
// Tokens are protocol/cardToken.ts's; computed here by OpenSSL in one call, since pairing and
// the conversion take one per row (same bytes: host-tests/security/cardToken.test.ts).
import { createHmac } from 'node:crypto';
import type { Crypto } from '../../hal/crypto';
import { fromHex, toHex } from '../../protocol/bytes';
import {
  CARD_TOKEN_KEY_LENGTH,
  CARD_TOKEN_LENGTH,
  type CardRef,
  cardTokenKeyFromSlot,
  isCardNumber,
} from '../../protocol/cardToken';
import { ProtocolError } from '../../protocol/errors';
import { wipeMeterKeys } from '../../protocol/keys';
import type { Keystore } from './keystore';

/**
 * The card-token key: HMAC-SHA-256 keyed with the uplink key C of the reserved (meter 0, epoch 0)
 * slot, which no provisioned meter uses (meters start at epoch 1), over "ParkLink card token key
 * v1". As stable as the master key; an HSM computes it without showing the master.
 */
export function deriveCardTokenKey(crypto: Crypto, keystore: Keystore): Uint8Array {
  const slot = keystore.meterKeys(0, 0);
  try {
    return cardTokenKeyFromSlot(crypto, slot.uplink);
  } finally {
    wipeMeterKeys(slot);
  }
}

/** The key from a setting (64 hex digits or 32 bytes: PARKLINK_TOKEN_KEY) or, without one, derived. */
export function resolveCardTokenKey(
  setting: string | Uint8Array | undefined,
  crypto: Crypto,
  keystore: Keystore,
): Uint8Array {
  if (setting === undefined) return deriveCardTokenKey(crypto, keystore);
  if (typeof setting === 'string') {
    if (!/^[0-9a-fA-F]{64}$/.test(setting)) throw new Error('PARKLINK_TOKEN_KEY must be 64 hex digits');
    return fromHex(setting);
  }
  if (setting.length !== CARD_TOKEN_KEY_LENGTH)
    throw new Error(`the card-token key must be ${CARD_TOKEN_KEY_LENGTH} bytes`);
  return Uint8Array.from(setting);
}

/** Card tokens under one key; the key stays in a #private field. */
export class CardTokens {
  readonly #key: Buffer;

  constructor(key: Uint8Array) {
    if (key.length !== CARD_TOKEN_KEY_LENGTH)
      throw new RangeError(`the card-token key must be ${CARD_TOKEN_KEY_LENGTH} bytes`);
    this.#key = Buffer.from(key);
  }

  /** The token of a card number (a bad-field ProtocolError when it is not 8-19 digits). */
  token(cardNumber: string): Uint8Array {
    if (!isCardNumber(cardNumber)) throw new ProtocolError('bad-field', 'card number is not 8-19 digits');
    return new Uint8Array(
      createHmac('sha256', this.#key).update(cardNumber, 'latin1').digest().subarray(0, CARD_TOKEN_LENGTH),
    );
  }

  /** The token as 32 lowercase hex digits: how rows keep it. */
  tokenHex(cardNumber: string): string {
    return toHex(this.token(cardNumber));
  }

  ref(cardNumber: string): CardRef {
    return { token: this.token(cardNumber), last4: cardNumber.slice(-4) };
  }

  /** A copy of the key, for the factory to load into a meter; the caller wipes it. */
  key(): Uint8Array {
    return Uint8Array.from(this.#key);
  }

  toJSON() {
    return {};
  }

  [Symbol.for('nodejs.util.inspect.custom')]() {
    return 'CardTokens {}';
  }
}
