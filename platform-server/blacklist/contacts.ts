// The holder's contacts kept with a listed card (so the operator can tell the holder, or the
// issuer, why the card is refused): personal data, so kept minimal (name, phone, email, each
// optional and bounded) and sealed at rest with AES-256-GCM under a key derived from the master
// key, which the database never holds. Sealed value: nonce (12) || ciphertext || tag (16); the
// card's token is the additional data, so a sealed contact moved to another card does not open.
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { wipeMeterKeys } from '../../protocol/keys';
import type { Keystore } from '../keys/keystore';

export interface HolderContact {
  name?: string;
  phone?: string;
  email?: string;
}

export const CONTACT_LIMITS = Object.freeze({ name: 100, phone: 32, email: 254 });

/** Seals and opens holder contacts; the key stays in a #private field. */
export class ContactBox {
  readonly #key: Buffer;

  constructor(key: Uint8Array) {
    if (key.length !== 32) throw new RangeError('the contact key is 32 bytes');
    this.#key = Buffer.from(key);
  }

  /**
   * The key from the master: HKDF-SHA-256 over the downlink key D of the reserved slot (meter 0,
   * epoch 0), which no meter uses, with its own label.
   */
  static fromKeystore(keystore: Keystore): ContactBox {
    const slot = keystore.meterKeys(0, 0);
    try {
      return new ContactBox(
        new Uint8Array(hkdfSync('sha256', slot.downlink, 'ParkLink blacklist contacts v1', '', 32)),
      );
    } finally {
      wipeMeterKeys(slot);
    }
  }

  seal(contact: HolderContact, token: string): Uint8Array {
    const kept: HolderContact = {};
    for (const field of ['name', 'phone', 'email'] as const) {
      const value = contact[field];
      if (value !== undefined && value !== '') kept[field] = value;
    }
    const nonce = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.#key, nonce);
    cipher.setAAD(Buffer.from(token, 'latin1'));
    const body = Buffer.concat([cipher.update(JSON.stringify(kept), 'utf8'), cipher.final()]);
    return new Uint8Array(Buffer.concat([nonce, body, cipher.getAuthTag()]));
  }

  open(sealed: Uint8Array, token: string): HolderContact {
    const bytes = Buffer.from(sealed);
    const decipher = createDecipheriv('aes-256-gcm', this.#key, bytes.subarray(0, 12));
    decipher.setAAD(Buffer.from(token, 'latin1'));
    decipher.setAuthTag(bytes.subarray(bytes.length - 16));
    const plain = Buffer.concat([decipher.update(bytes.subarray(12, bytes.length - 16)), decipher.final()]);
    return JSON.parse(plain.toString('utf8')) as HolderContact;
  }

  toJSON() {
    return {};
  }

  [Symbol.for('nodejs.util.inspect.custom')]() {
    return 'ContactBox {}';
  }
}
