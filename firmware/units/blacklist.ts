// Blacklist management (45): cards refused at the meter (bad debt, stolen, cloned, expired), kept
// in its own flash partition in a two-slot store, so a power cut mid-update leaves the old list
// intact. A card is listed by its keyed token (protocol/cardToken.ts), never its number: the meter
// tokenises the card it reads and looks the token up. A list written before card tokens (text card
// numbers) is tokenised at load with the meter's card-token key and written in the table format,
// then the former sectors are erased, so the numbers leave the flash; without the key those entries
// would match nothing and are left out.
//
// The fleet list arrives from the platform as 0x8A downlinks (protocol/blacklist.ts): a delta is
// applied only on top of the version it names, a full list once every page of it is here, each
// taking effect with one header write; the meter answers each with the version it holds (0x0A), and reports that
// version unasked once per start (after its first acknowledged upload: the link works).
//
// On flash (firmware/units/blacklistTable.ts) the list is a table sorted by token in one of two
// slots of the partition, never copied into RAM: a tap reads the few entries a binary search probes;
// a delta is merged with the held table into the other slot as a stream; the pages of a full list
// (sorted by token, protocol/blacklist.ts) are staged at their places in the other slot as they
// arrive, in any order, and put in force with the header once the last is here. A list in the
// former one-sector format (a CBOR { v, e } or bare array in a SlotStore) is converted at start.
import type { NorFlash } from '../../hal/flash';
import {
  BLACKLIST_ACK_UPLINK,
  BLACKLIST_DOWNLINK,
  BLACKLIST_PAGE_ENTRIES,
  type BlacklistAck,
  BlacklistError,
  type BlacklistPush,
  type BlacklistWireEntry,
  decodeBlacklistPush,
  encodeBlacklistAck,
  reasonName,
} from '../../protocol/blacklist';
import { CARD_TOKEN_LENGTH, type CardRef } from '../../protocol/cardToken';
import type { EventBus } from '../bus';
import type { MeterEvents } from '../events';
import { BlacklistTable, compareTokens, TEXT_CODE, type TableWriter } from './blacklistTable';
import { SlotStore } from './slotStore';

/** The former one-sector format's slot-store magic. */
const FORMER_MAGIC = 0x504c4231; // "PLB1"

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

/** A full list being staged into the spare slot. */
interface PendingFull {
  version: number;
  pages: number;
  got: Uint8Array;
  received: number;
  /** Entries on the last page (-1 until it arrives). */
  lastCount: number;
  /** Sectors of the spare slot erased for this list. */
  erased: Uint8Array;
  tooLarge: boolean;
}

export class BlacklistUnit {
  readonly #table: BlacklistTable;
  #pending: PendingFull | undefined;
  readonly #link: BlacklistLink | undefined;

  /**
   * `tokenise` converts a list stored before card tokens (see the file comment); `link` takes the
   * platform's 0x8A downlinks off the bus and answers them with 0x0A.
   */
  constructor(flash: NorFlash, tokenise?: (cardNumber: string) => CardRef, link?: BlacklistLink) {
    this.#table = new BlacklistTable(flash);
    this.#link = link;
    if (link) {
      link.bus.on('downlink', ({ type, body }) => {
        if (type === BLACKLIST_DOWNLINK) this.applyDownlink(body);
      });
      const first = link.bus.on('upload-acknowledged', () => {
        first.cancel();
        this.#acknowledge({ version: this.version, ok: true });
      });
    }
    if (this.#table.held) this.#eraseFormer(this.#table.held.slot);
    else this.#convertFormer(tokenise);
  }

  /** Cards one slot of the partition holds. */
  get capacity(): number {
    return this.#table.capacity;
  }

  get size(): number {
    return this.#table.held?.count ?? 0;
  }

  get generation(): number {
    return this.#table.held?.generation ?? 0;
  }

  /** The platform's version of the list held (0: none received). */
  get version(): number {
    return this.#table.held?.version ?? 0;
  }

  /** Flash reads made by lookups since start. */
  get lookupReads(): number {
    return this.#table.lookupReads;
  }

  /** The reason the card of `token` is refused, or undefined when it may pay. */
  check(token: Uint8Array): string | undefined {
    if (!(token instanceof Uint8Array) || token.length !== CARD_TOKEN_LENGTH) return undefined;
    const code = this.#table.find(token);
    if (code === undefined) return undefined;
    if (code >= TEXT_CODE) return this.#table.held?.texts[code - TEXT_CODE] ?? `reason ${code}`;
    return reasonName(code) ?? `reason ${code}`;
  }

  /**
   * Replaces the whole list, durably, keeping its version; a RangeError, nothing changed, when a
   * token is not 16 bytes, a reason code is not 1 to 127, or the list does not fit a slot.
   */
  replace(entries: readonly BlacklistEntry[]): void {
    this.#replace(this.version, entries);
  }

  #replace(version: number, entries: readonly BlacklistEntry[]): void {
    const texts: string[] = [];
    const coded: { token: Uint8Array; reason: number }[] = [];
    for (const e of entries) {
      if (!(e.token instanceof Uint8Array) || e.token.length !== CARD_TOKEN_LENGTH)
        throw new RangeError(`a blacklist token is ${CARD_TOKEN_LENGTH} bytes`);
      let reason: number;
      if (typeof e.reason === 'number') {
        if (!Number.isInteger(e.reason) || e.reason < 1 || e.reason >= TEXT_CODE)
          throw new RangeError(`a blacklist reason code is 1 to ${TEXT_CODE - 1}`);
        reason = e.reason;
      } else {
        let index = texts.indexOf(e.reason);
        if (index < 0) {
          if (texts.length >= 0x100 - TEXT_CODE) throw new RangeError('too many local reason texts');
          index = texts.push(e.reason) - 1;
        }
        reason = TEXT_CODE + index;
      }
      coded.push({ token: e.token, reason });
    }
    if (coded.length > this.#table.capacity)
      throw new RangeError(`${coded.length} cards do not fit a ${this.#table.capacity}-card slot`);
    // Stable sort, then the last entry of a token wins (as a Map's set would).
    const order = coded
      .map((_, i) => i)
      .sort((a, b) => compareTokens(coded[a].token, coded[b].token) || a - b);
    this.#pending = undefined;
    const writer = this.#table.writer(texts);
    for (let k = 0; k < order.length; k++) {
      const next = order[k + 1];
      if (next !== undefined && compareTokens(coded[order[k]].token, coded[next].token) === 0) continue;
      writer.put(coded[order[k]].token, coded[order[k]].reason);
    }
    this.#table.commit(writer, version, texts);
  }

  /**
   * Applies one decoded 0x8A. A delta must name the version held as its base (a delta for a
   * version already held is a repeat and changes nothing); a page is staged until every page of its
   * version is here. Returns true when the list changed. Throws BlacklistError ('base-mismatch',
   * 'too-large', 'malformed' for a page out of token order or short before the last), the list
   * held untouched.
   */
  apply(push: BlacklistPush): boolean {
    if (push.kind === 'delta') {
      if (push.version === this.version) return false;
      if (push.base !== this.version)
        throw new BlacklistError(
          'base-mismatch',
          `delta ${push.base}→${push.version} does not apply to version ${this.version}`,
        );
      this.#merge(push.version, push.add, push.remove);
      return true;
    }
    return this.#page(push);
  }

  /** Merges the held table with a delta into the spare slot, entry by entry, then commits. */
  #merge(version: number, add: readonly BlacklistWireEntry[], remove: readonly Uint8Array[]): void {
    // The changes sorted by token; for one token the last change wins (removes come before adds).
    const changes: { token: Uint8Array; reason: number }[] = [];
    for (const token of remove) changes.push({ token, reason: 0 });
    for (const e of add) changes.push({ token: e.token, reason: e.reason });
    const order = changes
      .map((_, i) => i)
      .sort((a, b) => compareTokens(changes[a].token, changes[b].token) || a - b);
    const sorted: { token: Uint8Array; reason: number }[] = [];
    for (let k = 0; k < order.length; k++) {
      const next = order[k + 1];
      if (next !== undefined && compareTokens(changes[order[k]].token, changes[next].token) === 0) continue;
      sorted.push(changes[order[k]]);
    }
    const texts = this.#table.held?.texts ?? [];
    this.#pending = undefined;
    const reader = this.#table.reader();
    let writer: TableWriter;
    try {
      writer = this.#table.writer(texts);
      let hasOld = reader.next();
      let j = 0;
      while (hasOld || j < sorted.length) {
        const change = sorted[j];
        const order = !hasOld ? 1 : change === undefined ? -1 : compareTokens(reader.token, change.token);
        if (order < 0) {
          writer.put(reader.token, reader.reason);
          hasOld = reader.next();
          continue;
        }
        if (change.reason !== 0) writer.put(change.token, change.reason);
        j++;
        if (order === 0) hasOld = reader.next();
      }
    } catch (error) {
      if (error instanceof RangeError) throw new BlacklistError('too-large', error.message);
      throw error;
    }
    this.#table.commit(writer, version, texts);
  }

  #page(push: Extract<BlacklistPush, { kind: 'page' }>): boolean {
    let pending = this.#pending;
    if (!pending || pending.version !== push.version || pending.pages !== push.pages) {
      pending = {
        version: push.version,
        pages: push.pages,
        got: new Uint8Array(push.pages),
        received: 0,
        lastCount: -1,
        erased: new Uint8Array(this.#table.sectorsPerSlot),
        tooLarge: false,
      };
      this.#pending = pending;
    }
    const last = push.page === push.pages - 1;
    if (!last && push.entries.length !== BLACKLIST_PAGE_ENTRIES)
      throw new BlacklistError(
        'malformed',
        `page ${push.page} of ${push.pages} holds ${push.entries.length} entries`,
      );
    for (let i = 1; i < push.entries.length; i++) {
      if (compareTokens(push.entries[i - 1].token, push.entries[i].token) >= 0)
        throw new BlacklistError('malformed', `page ${push.page} is not in token order`);
    }
    const first = push.page * BLACKLIST_PAGE_ENTRIES;
    if (first + push.entries.length > this.#table.capacity) pending.tooLarge = true;
    else if (!pending.tooLarge) this.#table.stage(first, push.entries, pending.erased);
    if (!pending.got[push.page]) {
      pending.got[push.page] = 1;
      pending.received++;
    }
    if (last) pending.lastCount = push.entries.length;
    if (pending.received < pending.pages) return false;
    this.#pending = undefined;
    const count = (pending.pages - 1) * BLACKLIST_PAGE_ENTRIES + pending.lastCount;
    if (pending.tooLarge)
      throw new BlacklistError('too-large', `${count} cards do not fit a ${this.#table.capacity}-card slot`);
    for (let page = 1; page < pending.pages; page++) {
      const at = page * BLACKLIST_PAGE_ENTRIES;
      if (at >= count) break;
      if (compareTokens(this.#table.staged(at - 1), this.#table.staged(at)) >= 0)
        throw new BlacklistError('malformed', `pages ${page - 1} and ${page} are not in token order`);
    }
    this.#table.commitStaged(count, push.version, pending.erased);
    return true;
  }

  /** Reads a list in the former one-sector format, if any, into the new layout. */
  #convertFormer(tokenise: ((cardNumber: string) => CardRef) | undefined): void {
    const former = new SlotStore(this.#table.flash, FORMER_MAGIC);
    const stored = former.load();
    if (stored === undefined) return;
    let version = 0;
    let list: unknown = stored;
    if (typeof stored === 'object' && stored !== null && !Array.isArray(stored)) {
      const m = stored as Record<string, unknown>;
      if (typeof m.v === 'number' && Number.isInteger(m.v) && m.v >= 0) version = m.v;
      list = m.e;
    }
    const entries: BlacklistEntry[] = [];
    if (Array.isArray(list)) {
      for (const item of list) {
        if (!Array.isArray(item) || (typeof item[1] !== 'string' && typeof item[1] !== 'number')) continue;
        const reason: string | number =
          typeof item[1] === 'number' && (item[1] < 1 || item[1] >= TEXT_CODE)
            ? `reason ${item[1]}`
            : item[1];
        if (item[0] instanceof Uint8Array && item[0].length === CARD_TOKEN_LENGTH)
          entries.push({ token: item[0], reason });
        else if (typeof item[0] === 'string') {
          try {
            // Without the key a card number matches nothing: it is left out.
            if (tokenise) entries.push({ token: tokenise(item[0]).token, reason });
          } catch {
            // not a card number: nothing to match
          }
        }
      }
    }
    // The new table goes to the slot not holding the former value, so a power cut keeps one of them.
    this.#table.nextSlot = this.#table.sectorsPerSlot === 1 && former.slot === 1 ? 0 : 1;
    this.#replace(version, entries);
    this.#eraseFormer(this.#table.held?.slot ?? 0);
  }

  /** Erases what is left of the former format (card numbers and all) outside the slot in force. */
  #eraseFormer(slotInForce: number): void {
    const flash = this.#table.flash;
    for (const sector of [0, 1]) {
      if (Math.floor(sector / this.#table.sectorsPerSlot) === slotInForce) continue;
      const magic = flash.read(sector * flash.sectorSize, 4);
      if (((magic[0] << 24) | (magic[1] << 16) | (magic[2] << 8) | magic[3]) >>> 0 === FORMER_MAGIC)
        flash.eraseSector(sector);
    }
  }

  /** Handles a 0x8A body and answers with 0x0A (except for a page that leaves the list incomplete). */
  applyDownlink(body: Uint8Array): BlacklistAck | undefined {
    let ack: BlacklistAck;
    try {
      const push = decodeBlacklistPush(body);
      const changed = this.apply(push);
      if (!changed && push.kind === 'page' && this.#pending !== undefined) return undefined;
      ack = { version: this.version, ok: true };
    } catch (error) {
      if (!(error instanceof BlacklistError)) throw error;
      ack = { version: this.version, ok: false, why: error.code };
    }
    this.#acknowledge(ack);
    return ack;
  }

  #acknowledge(ack: BlacklistAck): void {
    this.#link?.send(BLACKLIST_ACK_UPLINK, encodeBlacklistAck(ack));
  }
}
