// Blacklist management (45): cards refused at the meter (bad debt, stolen, cloned, expired), kept
// in its own flash partition as CBOR [[card number, reason], ...] in a two-slot store, so a power
// cut mid-update leaves the old list intact.
import type { NorFlash } from '../../hal/flash';
import { SlotStore } from './slotStore';

const SLOT_MAGIC = 0x504c4231; // "PLB1"

export interface BlacklistEntry {
  cardNumber: string;
  reason: string;
}

export class BlacklistUnit {
  readonly #store: SlotStore;
  #entries = new Map<string, string>();

  constructor(flash: NorFlash) {
    this.#store = new SlotStore(flash, SLOT_MAGIC);
    const list = this.#store.load();
    if (!Array.isArray(list)) return;
    for (const item of list) {
      if (Array.isArray(item) && typeof item[0] === 'string' && typeof item[1] === 'string')
        this.#entries.set(item[0], item[1]);
    }
  }

  get size(): number {
    return this.#entries.size;
  }

  get generation(): number {
    return this.#store.generation;
  }

  /** The reason a card is refused, or undefined when it may pay. */
  check(cardNumber: string): string | undefined {
    return this.#entries.get(cardNumber);
  }

  /** Replaces the whole list, durably. */
  replace(entries: readonly BlacklistEntry[]): void {
    this.#store.save(entries.map((e) => [e.cardNumber, e.reason]));
    this.#entries = new Map(entries.map((e) => [e.cardNumber, e.reason]));
  }
}
