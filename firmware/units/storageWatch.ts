// When the record store counts as nearly full: the share of its bytes taken by records the platform
// has not acknowledged, against a threshold (operating parameter storageNearlyFullPercent, 80 by
// default). Crossing it up raises a 'storage-nearly-full' warning for the platform (status event,
// uplink 0x04); falling back below clears it. Sales stop only when the store is full (records.ts).
import type { Clock } from '../../hal/clock';
import { statusEvent } from '../../protocol/status';
import type { EventBus } from '../bus';
import type { MeterEvents } from '../events';

export interface StorageWatchOptions {
  bus: EventBus<MeterEvents>;
  clock: Clock;
  /** Bytes still writable without overwriting an unacknowledged record (RecordStore.freeBytes). */
  freeBytes: () => number;
  /** The store's size in bytes. */
  totalBytes: number;
  percent?: number;
}

export class StorageWatch {
  readonly #o: StorageWatchOptions;
  #percent: number;
  #raised = false;

  constructor(options: StorageWatchOptions) {
    this.#o = options;
    this.#percent = options.percent ?? 80;
    options.bus.on('record-appended', () => this.check());
    options.bus.on('upload-acknowledged', () => this.check());
    options.bus.on('upload-released', () => this.check());
  }

  /** Percentage of the store taken by unacknowledged records (and sector overhead). */
  get usedPercent(): number {
    const { freeBytes, totalBytes } = this.#o;
    return Math.max(0, Math.min(100, 100 - (freeBytes() * 100) / totalBytes));
  }

  get nearlyFull(): boolean {
    return this.usedPercent >= this.#percent;
  }

  get threshold(): number {
    return this.#percent;
  }

  /** A new threshold (operating parameters, 0x89), checked at once. */
  setThreshold(percent: number): void {
    this.#percent = percent;
    this.check();
  }

  check(): void {
    const nearlyFull = this.nearlyFull;
    if (nearlyFull === this.#raised) return;
    this.#raised = nearlyFull;
    const used = Math.round(this.usedPercent);
    this.#o.bus.emit(
      'status-event',
      statusEvent(
        this.#o.clock.now(),
        'storage-nearly-full',
        'warning',
        nearlyFull,
        nearlyFull
          ? `${used}% of the record store unacknowledged (threshold ${this.#percent}%)`
          : `${used}% used, below ${this.#percent}%`,
        used * 10,
      ),
    );
  }
}
