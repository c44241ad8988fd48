// Blacklist management (45): cards refused at the meter (bad debt, stolen, cloned, expired), kept
// in its own flash partition as CBOR [[card token (16 bytes), reason], ...] in a two-slot store, so
// a power cut mid-update leaves the old list intact. A card is listed by its keyed token
// (protocol/cardToken.ts), never its number: the meter tokenises the card it reads and looks the
// token up. A list written before card tokens (text card numbers) is tokenised at load with the
// meter's card-token key and saved again, so the numbers leave the flash; without the key those
// entries match nothing until the next list replaces them.
import type { NorFlash } from '../../hal/flash';
import { fromHex, toHex } from '../../protocol/bytes';
import { CARD_TOKEN_LENGTH, type CardRef } from '../../protocol/cardToken';
import { SlotStore } from './slotStore';

const SLOT_MAGIC = 0x504c4231; // "PLB1"

export interface BlacklistEntry {
  /** The card's token (16 bytes). */
  token: Uint8Array;
  reason: string;
}

export class BlacklistUnit {
  readonly #store: SlotStore;
  /** Reason by token, in hex. */
  #entries = new Map<string, string>();

  /** `tokenise` converts a list stored before card tokens; see the file comment. */
  constructor(flash: NorFlash, tokenise?: (cardNumber: string) => CardRef) {
    this.#store = new SlotStore(flash, SLOT_MAGIC);
    const list = this.#store.load();
    if (!Array.isArray(list)) return;
    const legacy: BlacklistEntry[] = [];
    let numbers = false;
    for (const item of list) {
      if (!Array.isArray(item) || typeof item[1] !== 'string') continue;
      if (item[0] instanceof Uint8Array && item[0].length === CARD_TOKEN_LENGTH)
        this.#entries.set(toHex(item[0]), item[1]);
      else if (typeof item[0] === 'string') {
        numbers = true;
        try {
          if (tokenise) legacy.push({ token: tokenise(item[0]).token, reason: item[1] });
        } catch {
          // not a card number: nothing to match
        }
      }
    }
    if (numbers && tokenise) {
      const kept = [...this.#entries].map(([hex, reason]) => ({ token: fromHex(hex), reason }));
      // Twice: the store keeps the value before the last in its other slot, numbers and all.
      this.replace([...kept, ...legacy]);
      this.replace([...kept, ...legacy]);
    }
  }

  get size(): number {
    return this.#entries.size;
  }

  get generation(): number {
    return this.#store.generation;
  }

  /** The reason the card of `token` is refused, or undefined when it may pay. */
  check(token: Uint8Array): string | undefined {
    return this.#entries.get(toHex(token));
  }

  /** Replaces the whole list, durably; a RangeError, nothing changed, when a token is not 16 bytes. */
  replace(entries: readonly BlacklistEntry[]): void {
    for (const e of entries) {
      if (!(e.token instanceof Uint8Array) || e.token.length !== CARD_TOKEN_LENGTH)
        throw new RangeError(`a blacklist token is ${CARD_TOKEN_LENGTH} bytes`);
    }
    this.#store.save(entries.map((e) => [e.token, e.reason]));
    this.#entries = new Map(entries.map((e) => [toHex(e.token), e.reason]));
  }
}
