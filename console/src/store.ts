// The fleet as the console holds it: every meter's row by id, replaced by the snapshot and patched
// by updates from the server-sent events; screens subscribe and re-render at most once a frame.
import { asOf, type FleetEvent, type FleetRow, followFleet } from './api';

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
  #tick: ReturnType<typeof setInterval> | undefined;

  /** Every meter as of now (a silent one turns overdue on the console's clock). */
  rows(): FleetRow[] {
    const now = Date.now();
    return [...this.meters.values()].map((r) => asOf(r, now));
  }

  row(id: number): FleetRow | undefined {
    const r = this.meters.get(id);
    return r && asOf(r);
  }

  start(): void {
    if (this.#abort) return;
    this.#abort = new AbortController();
    // Contact ages with the clock: look again every 15 s.
    this.#tick = setInterval(() => this.#changed(), 15_000);
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
    clearInterval(this.#tick);
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
