// Blacklist management (45): cards refused at the meter (bad debt, stolen, cloned, expired), kept
// in its own flash partition in a two-slot store, so a power cut mid-update leaves the old list
// intact. A card is listed by its keyed token (protocol/cardToken.ts), never its number: the meter
// tokenises the card it reads and looks the token up. A list written before card tokens (text card
// numbers) is tokenised at load with the meter's card-token key and saved again, so the numbers
// leave the flash; without the key those entries match nothing until the next list replaces them.
//
// The fleet list arrives from the platform as 0x8A downlinks (protocol/blacklist.ts): a delta is
// applied only on top of the version it names, a full list once every page of it is here, each in
// one slot-store write; the meter answers each with the version it holds (0x0A), and reports that
// version unasked once per start (after its first acknowledged upload: the link works).
//
// Stored value: { v: version, e: [[token (16 bytes), reason (a reason code, or text set locally)]] };
// a bare array is a list from before versions (version 0).
import type { NorFlash } from '../../hal/flash';
import {
  BLACKLIST_ACK_UPLINK,
  BLACKLIST_DOWNLINK,
  type BlacklistAck,
  BlacklistError,
  type BlacklistPush,
  type BlacklistWireEntry,
  decodeBlacklistPush,
  encodeBlacklistAck,
  reasonName,
} from '../../protocol/blacklist';
import { fromHex, toHex } from '../../protocol/bytes';
import { CARD_TOKEN_LENGTH, type CardRef } from '../../protocol/cardToken';
import type { EventBus } from '../bus';
import type { MeterEvents } from '../events';
import { SlotStore } from './slotStore';

const SLOT_MAGIC = 0x504c4231; // "PLB1"

export interface BlacklistEntry {
  /** The card's token (16 bytes). */
  token: Uint8Array;
  /** A reason code from the platform (protocol/blacklist.ts) or a text set locally. */
  reason: string | number;
}

export interface BlacklistLink {
  bus: EventBus<MeterEvents>;
  /** Sends the 0x0A acknowledgement (CommsUnit.send); false when the link is down. */
  send: (type: number, body: Uint8Array) => boolean;
}

/** The pages of a full list received so far. */
interface PendingFull {
  version: number;
  pages: number;
  got: Map<number, BlacklistWireEntry[]>;
}

export class BlacklistUnit {
  readonly #store: SlotStore;
  /** Reason by token, in hex. */
  #entries = new Map<string, string | number>();
  #version = 0;
  #pending: PendingFull | undefined;
  readonly #link: BlacklistLink | undefined;

  /**
   * `tokenise` converts a list stored before card tokens (see the file comment); `link` takes the
   * platform's 0x8A downlinks off the bus and answers them with 0x0A.
   */
  constructor(flash: NorFlash, tokenise?: (cardNumber: string) => CardRef, link?: BlacklistLink) {
    this.#store = new SlotStore(flash, SLOT_MAGIC);
    this.#link = link;
    if (link) {
      link.bus.on('downlink', ({ type, body }) => {
        if (type === BLACKLIST_DOWNLINK) this.applyDownlink(body);
      });
      const first = link.bus.on('upload-acknowledged', () => {
        first.cancel();
        this.#acknowledge({ version: this.#version, ok: true });
      });
    }
    const stored = this.#store.load();
    let list: unknown = stored;
    if (typeof stored === 'object' && stored !== null && !Array.isArray(stored)) {
      const m = stored as Record<string, unknown>;
      if (typeof m.v === 'number' && Number.isInteger(m.v) && m.v >= 0) this.#version = m.v;
      list = m.e;
    }
    if (!Array.isArray(list)) return;
    const legacy: BlacklistEntry[] = [];
    let numbers = false;
    for (const item of list) {
      if (!Array.isArray(item) || (typeof item[1] !== 'string' && typeof item[1] !== 'number')) continue;
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

  /** The platform's version of the list held (0: none received). */
  get version(): number {
    return this.#version;
  }

  /** The reason the card of `token` is refused, or undefined when it may pay. */
  check(token: Uint8Array): string | undefined {
    const reason = this.#entries.get(toHex(token));
    if (reason === undefined) return undefined;
    return typeof reason === 'number' ? (reasonName(reason) ?? `reason ${reason}`) : reason;
  }

  /**
   * Replaces the whole list, durably, keeping its version; a RangeError, nothing changed, when a
   * token is not 16 bytes or the list does not fit the partition.
   */
  replace(entries: readonly BlacklistEntry[]): void {
    for (const e of entries) {
      if (!(e.token instanceof Uint8Array) || e.token.length !== CARD_TOKEN_LENGTH)
        throw new RangeError(`a blacklist token is ${CARD_TOKEN_LENGTH} bytes`);
    }
    this.#commit(this.#version, new Map(entries.map((e) => [toHex(e.token), e.reason])));
  }

  /** Writes `entries` as `version` in one slot-store write, then makes it the list in use. */
  #commit(version: number, entries: Map<string, string | number>): void {
    this.#store.save({ v: version, e: [...entries].map(([hex, reason]) => [fromHex(hex), reason]) });
    this.#entries = entries;
    this.#version = version;
  }

  /**
   * Applies one decoded 0x8A. A delta must name the version held as its base (a delta for a
   * version already held is a repeat and changes nothing); a page is kept until every page of its
   * version is here. Returns true when the list changed. Throws BlacklistError ('base-mismatch',
   * 'too-large'), the list held untouched.
   */
  apply(push: BlacklistPush): boolean {
    if (push.kind === 'delta') {
      if (push.version === this.#version) return false;
      if (push.base !== this.#version)
        throw new BlacklistError(
          'base-mismatch',
          `delta ${push.base}→${push.version} does not apply to version ${this.#version}`,
        );
      const next = new Map(this.#entries);
      for (const token of push.remove) next.delete(toHex(token));
      for (const e of push.add) next.set(toHex(e.token), e.reason);
      this.#save(push.version, next);
      return true;
    }
    let pending = this.#pending;
    if (!pending || pending.version !== push.version || pending.pages !== push.pages) {
      pending = { version: push.version, pages: push.pages, got: new Map() };
      this.#pending = pending;
    }
    pending.got.set(push.page, push.entries);
    if (pending.got.size < pending.pages) return false;
    this.#pending = undefined;
    const next = new Map<string, string | number>();
    for (let page = 0; page < pending.pages; page++) {
      for (const e of pending.got.get(page) ?? []) next.set(toHex(e.token), e.reason);
    }
    this.#save(push.version, next);
    return true;
  }

  #save(version: number, entries: Map<string, string | number>): void {
    try {
      this.#commit(version, entries);
    } catch (error) {
      if (error instanceof RangeError)
        throw new BlacklistError('too-large', `${entries.size} cards: ${error.message}`);
      throw error;
    }
  }

  /** Handles a 0x8A body and answers with 0x0A (except for a page that leaves the list incomplete). */
  applyDownlink(body: Uint8Array): BlacklistAck | undefined {
    let ack: BlacklistAck;
    try {
      const push = decodeBlacklistPush(body);
      const changed = this.apply(push);
      if (!changed && push.kind === 'page' && this.#pending !== undefined) return undefined;
      ack = { version: this.#version, ok: true };
    } catch (error) {
      if (!(error instanceof BlacklistError)) throw error;
      ack = { version: this.#version, ok: false, why: error.code };
    }
    this.#acknowledge(ack);
    return ack;
  }

  #acknowledge(ack: BlacklistAck): void {
    this.#link?.send(BLACKLIST_ACK_UPLINK, encodeBlacklistAck(ack));
  }
}
