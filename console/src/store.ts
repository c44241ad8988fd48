// The fleet as the console holds it: every meter's row by id, replaced by the snapshot and patched
// by updates from the server-sent events; screens subscribe and re-render at most once a frame.
import { type FleetEvent, type FleetRow, followFleet } from './api';

export class FleetStore {
  readonly meters = new Map<number, FleetRow>();
  connected = false;
  loaded = false;
  /** Bumped on every change: screens compare it to know when to recompute. */
  version = 0;
  lastUpdateAt: string | null = null;
  #listeners = new Set<() => void>();
  #abort: AbortController | undefined;
  #scheduled = false;

  start(): void {
    if (this.#abort) return;
    this.#abort = new AbortController();
    void followFleet(
      (event) => this.#apply(event),
      (connected) => {
        this.connected = connected;
        this.#changed();
      },
      this.#abort.signal,
    );
  }

  stop(): void {
    this.#abort?.abort();
    this.#abort = undefined;
  }

  subscribe(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** After a change made from the console (a registration, an edit). */
  put(row: FleetRow): void {
    this.meters.set(row.id, row);
    this.#changed();
  }

  #apply(event: FleetEvent): void {
    if (event.kind === 'snapshot') this.meters.clear();
    for (const row of event.meters) this.meters.set(row.id, row);
    this.loaded = true;
    this.lastUpdateAt = event.at;
    this.#changed();
  }

  #changed(): void {
    this.version++;
    if (this.#scheduled) return;
    this.#scheduled = true;
    requestAnimationFrame(() => {
      this.#scheduled = false;
      for (const listener of this.#listeners) listener();
    });
  }
}
