// Time and timers. The firmware never reads a wall clock or sets a timer any other way.

export interface Clock {
  /** Wall-clock time, milliseconds since 1970-01-01T00:00:00Z (set from the network or the RTC). */
  now(): number;
  /** Milliseconds since boot; never goes backwards, unaffected by setting the wall clock. */
  monotonic(): number;
}

export type TimerHandle = { readonly id: number };

export interface Timers {
  /** Calls back once after `ms` milliseconds of monotonic time. */
  setTimeout(callback: () => void, ms: number): TimerHandle;
  /** Calls back every `ms` milliseconds until cleared. */
  setInterval(callback: () => void, ms: number): TimerHandle;
  clear(handle: TimerHandle | undefined): void;
}
