// A virtual hardware watchdog on the virtual clock: started, it "restarts the board" (calls
// onBite and remembers it) unless fed within its timeout. The next virtual board is built with
// `lastReset: 'watchdog'` to play the restart.
import type { TimerHandle, Timers } from '../clock';
import type { ResetReason, Watchdog } from '../watchdog';

export class VirtualWatchdog implements Watchdog {
  readonly lastReset: ResetReason;
  readonly #timers: Timers;
  #timeoutMs = 0;
  #timer: TimerHandle | undefined;
  /** Times the watchdog fired. */
  bites = 0;
  feeds = 0;
  onBite: (() => void) | undefined;

  constructor(timers: Timers, lastReset: ResetReason = 'power-on') {
    this.#timers = timers;
    this.lastReset = lastReset;
  }

  get running(): boolean {
    return this.#timer !== undefined;
  }

  start(timeoutMs: number): void {
    this.#timeoutMs = timeoutMs;
    this.feed();
  }

  feed(): void {
    if (this.#timeoutMs <= 0) return;
    this.feeds++;
    this.#timers.clear(this.#timer);
    this.#timer = this.#timers.setTimeout(() => {
      this.#timer = undefined;
      this.#timeoutMs = 0;
      this.bites++;
      this.onBite?.();
    }, this.#timeoutMs);
  }

  stop(): void {
    this.#timers.clear(this.#timer);
    this.#timer = undefined;
    this.#timeoutMs = 0;
  }
}
