// Clock and timers on Moddable: wall time from Date.now() (set by SNTP or the platform's time
// downlink through Time.set), monotonic time from Time.ticks, timers from the `timer` module.
import Time from 'time';
import Timer from 'timer';
import type { Clock, TimerHandle, Timers } from '../clock';

export class ModdableClock implements Clock {
  // Time.ticks is a 32-bit millisecond counter that wraps; Time.delta() spans the wrap, so the
  // monotonic value is accumulated from deltas (sampled at least every 24 days by any timer).
  #last = Time.ticks;
  #elapsed = 0;

  now(): number {
    return Date.now();
  }

  monotonic(): number {
    const ticks = Time.ticks;
    this.#elapsed += Time.delta(this.#last, ticks);
    this.#last = ticks;
    return this.#elapsed;
  }

  /** Sets the wall clock (seconds since the epoch, as Time.set takes). */
  setWallClock(epochMs: number): void {
    Time.set(Math.floor(epochMs / 1000));
  }
}

type TimerObject = ReturnType<typeof Timer.set>;

export class ModdableTimers implements Timers {
  #next = 1;
  readonly #live = new Map<number, TimerObject>();

  setTimeout(callback: () => void, ms: number): TimerHandle {
    const id = this.#next++;
    this.#live.set(
      id,
      Timer.set(
        () => {
          this.#live.delete(id);
          callback();
        },
        Math.max(0, ms),
      ),
    );
    return { id };
  }

  setInterval(callback: () => void, ms: number): TimerHandle {
    const id = this.#next++;
    this.#live.set(
      id,
      Timer.repeat(() => callback(), Math.max(1, ms)),
    );
    return { id };
  }

  clear(handle: TimerHandle | undefined): void {
    if (!handle) return;
    const timer = this.#live.get(handle.id);
    if (timer === undefined) return;
    this.#live.delete(handle.id);
    Timer.clear(timer);
  }
}
