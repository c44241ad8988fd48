// The bays this meter serves, each with its own paid-until time, kept in preferences so a restart
// does not forget who has paid.
import type { Preferences } from '../../hal/preferences';

export class Bays {
  readonly ids: readonly number[];
  readonly #preferences: Preferences;
  readonly #paidUntil = new Map<number, number>();

  constructor(ids: readonly number[], preferences: Preferences) {
    if (ids.length === 0) throw new RangeError('a meter serves at least one bay');
    this.ids = Object.freeze([...ids]);
    this.#preferences = preferences;
    for (const id of ids) {
      const saved = preferences.get('bays', `b${id}`);
      this.#paidUntil.set(id, typeof saved === 'number' ? saved : 0);
    }
  }

  has(bayId: number): boolean {
    return this.#paidUntil.has(bayId);
  }

  /** Epoch seconds until which the bay is paid (0: never paid). */
  paidUntil(bayId: number): number {
    const value = this.#paidUntil.get(bayId);
    if (value === undefined) throw new RangeError(`no bay ${bayId}`);
    return value;
  }

  setPaidUntil(bayId: number, epochSeconds: number): void {
    this.paidUntil(bayId);
    this.#preferences.set('bays', `b${bayId}`, epochSeconds);
    this.#paidUntil.set(bayId, epochSeconds);
  }

  /** Seconds left on a bay at `nowSeconds` (0 when expired). */
  remaining(bayId: number, nowSeconds: number): number {
    return Math.max(0, this.paidUntil(bayId) - nowSeconds);
  }
}
