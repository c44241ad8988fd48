// Card tokens: what meter records, the blacklist and platform rows carry in place of the card
// number, so no full card number is ever at rest (PCI DSS requirement 3 style). The token is keyed
// (HMAC-SHA-256 under the fleet's card-token key, cut to 16 bytes): the same card always gives the
// same token, so pay by phone and the blacklist still match it, but without the key a token cannot
// be brute-forced back to the number from the few digits a card number has.
import type { Crypto } from '../hal/crypto';
import { utf8 } from './bytes';
import { ProtocolError } from './errors';
import { deriveMeterKeys, wipeMeterKeys } from './keys';

export const CARD_TOKEN_LENGTH = 16;
export const CARD_TOKEN_KEY_LENGTH = 32;

/** The label of the card-token key's derivation (docs/keys.md). */
export const CARD_TOKEN_KEY_LABEL = 'ParkLink card token key v1';

/** A card as records and rows carry it: the keyed token and the last four digits. */
export interface CardRef {
  /** HMAC-SHA-256(card-token key, card number as ASCII digits), first 16 bytes. */
  token: Uint8Array;
  /** The card number's last four digits. */
  last4: string;
}

const CARD_NUMBER = /^[0-9]{8,19}$/;

export function isCardNumber(value: string): boolean {
  return CARD_NUMBER.test(value);
}

/**
 * The card-token key from the uplink key C of the reserved slot (meter 0, epoch 0), which no meter
 * uses: HMAC-SHA-256(C(0, 0), "ParkLink card token key v1"). The platform computes it through its
 * keystore (an HSM never shows the master); this form, from the master's bytes, is for tests and
 * the worked example.
 */
export function cardTokenKeyFromSlot(crypto: Pick<Crypto, 'hmacSha256'>, slotUplink: Uint8Array): Uint8Array {
  return crypto.hmacSha256(slotUplink, utf8(CARD_TOKEN_KEY_LABEL));
}

export function deriveCardTokenKey(crypto: Crypto, master: Uint8Array): Uint8Array {
  const slot = deriveMeterKeys(crypto, master, 0, 0);
  try {
    return cardTokenKeyFromSlot(crypto, slot.uplink);
  } finally {
    wipeMeterKeys(slot);
  }
}

/** The token of a card number; a bad-field ProtocolError when it is not 8-19 digits. */
export function cardToken(
  crypto: Pick<Crypto, 'hmacSha256'>,
  key: Uint8Array,
  cardNumber: string,
): Uint8Array {
  if (!CARD_NUMBER.test(cardNumber)) throw new ProtocolError('bad-field', 'card number is not 8-19 digits');
  if (key.length !== CARD_TOKEN_KEY_LENGTH)
    throw new ProtocolError('bad-field', `card-token key is not ${CARD_TOKEN_KEY_LENGTH} bytes`);
  return crypto.hmacSha256(key, utf8(cardNumber)).slice(0, CARD_TOKEN_LENGTH);
}

/** The card's token and last four digits: all a record keeps of it. */
export function cardRef(crypto: Pick<Crypto, 'hmacSha256'>, key: Uint8Array, cardNumber: string): CardRef {
  return { token: cardToken(crypto, key, cardNumber), last4: cardNumber.slice(-4) };
}

/** "**** 0041": how logs, displays and APIs show a card. */
export function maskedCard(last4: string): string {
  return `**** ${last4}`;
}
