// The payer's session history at the meter, for the tariff rules that need it (a maximum price per
// cap period, "no return within N hours"; docs/tariffs.md): the card token's earlier purchases at
// this meter, as the engine's PriorPurchase list. Bounded and cheap: at most `capacity` purchases
// are held in memory (oldest dropped first), those older than `horizonSeconds` are dropped, and a
// start rebuilds the list from the last `scanRecords` records of the main store (decoded once, at
// construction) instead of reading the whole log. A purchase made while the meter runs is added with
// its cap shares (the part paid in each cap period); one rebuilt from a record counts whole in the
// period its paid time starts in, as the platform counts a meter's records.
//
// What the meter cannot see: the payer's purchases at other meters of the zone and by phone. The
// platform, which has them all, applies the same rules to renewals and quotes.
import { toHex } from '../../protocol/bytes';
import { decodeRecord, RecordKind } from '../../protocol/records';
import type { PriorPurchase } from '../../protocol/tariff/index';
import type { RecordSource } from './storage';

export interface PurchaseHistoryOptions {
  /** Most purchases held (default 64). */
  capacity?: number;
  /** How long a purchase is kept after its paid time ends, seconds (default 8 days). */
  horizonSeconds?: number;
  /** How many of the latest records a start reads back (default 256). */
  scanRecords?: number;
}

interface Held {
  token: string;
  purchase: PriorPurchase;
}

export class PurchaseHistory {
  readonly #capacity: number;
  readonly #horizon: number;
  #held: Held[] = [];

  constructor(options: PurchaseHistoryOptions = {}) {
    this.#capacity = options.capacity ?? 64;
    this.#horizon = options.horizonSeconds ?? 8 * 86_400;
  }

  /** Rebuilds from the latest transaction records of `log`; a record it cannot decode is skipped. */
  static fromLog(log: RecordSource, options: PurchaseHistoryOptions = {}): PurchaseHistory {
    const history = new PurchaseHistory(options);
    const scan = options.scanRecords ?? 256;
    const from = Math.max(log.firstSeq, log.lastSeq - scan + 1);
    if (log.lastSeq < from) return history;
    for (const stored of log.read(from, log.lastSeq, scan)) {
      let record: ReturnType<typeof decodeRecord>;
      try {
        record = decodeRecord(stored.bytes);
      } catch {
        continue; // a damaged or legacy record: storage reports it; the history does without it
      }
      if (record.kind !== RecordKind.Transaction) continue;
      const { card, paidFrom, paidUntil, charge } = record.data;
      history.add(card.token, [{ start: paidFrom, end: paidUntil, amount: charge }]);
    }
    return history;
  }

  get size(): number {
    return this.#held.length;
  }

  /** Records a purchase by the card token: its cap shares, or the whole purchase as one. */
  add(token: Uint8Array, purchases: readonly PriorPurchase[]): void {
    const key = toHex(token);
    for (const p of purchases)
      this.#held.push({ token: key, purchase: { start: p.start, end: p.end, amount: p.amount } });
    const over = this.#held.length - this.#capacity;
    if (over > 0) this.#held.splice(0, over);
  }

  /** The token's purchases whose paid time ended within the horizon before `nowSeconds`. */
  of(token: Uint8Array, nowSeconds: number): PriorPurchase[] {
    const key = toHex(token);
    const since = nowSeconds - this.#horizon;
    this.#held = this.#held.filter((h) => h.purchase.end > since);
    return this.#held.filter((h) => h.token === key).map((h) => ({ ...h.purchase }));
  }
}
