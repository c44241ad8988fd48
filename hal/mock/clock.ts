// A clock the tests advance by hand: timers fire in due order as time passes, never on their own.
import type { Clock, TimerHandle, Timers } from '../clock';

interface Scheduled {
  handle: TimerHandle;
  due: number;
  every: number;
  callback: () => void;
}

export class VirtualClock implements Clock, Timers {
  #wall: number;
  #mono = 0;
  #nextId = 1;
  #timers: Scheduled[] = [];

  constructor(startIso = '2026-01-05T08:00:00Z') {
    this.#wall = Date.parse(startIso);
    if (Number.isNaN(this.#wall)) throw new RangeError(`bad start time ${startIso}`);
  }

  now(): number {
    return this.#wall + this.#mono;
  }

  monotonic(): number {
    return this.#mono;
  }

  /** Sets the wall clock (as an NTP or network time update would) without moving monotonic time. */
  setWallClock(epochMs: number): void {
    this.#wall = epochMs - this.#mono;
  }

  setTimeout(callback: () => void, ms: number): TimerHandle {
    return this.#schedule(callback, ms, 0);
  }

  setInterval(callback: () => void, ms: number): TimerHandle {
    return this.#schedule(callback, ms, Math.max(1, ms));
  }

  clear(handle: TimerHandle | undefined): void {
    if (!handle) return;
    this.#timers = this.#timers.filter((t) => t.handle !== handle);
  }

  get pendingTimers(): number {
    return this.#timers.length;
  }

  /** Moves time forward by `ms`, firing each timer at its due time, in order. */
  advance(ms: number): void {
    if (!(ms >= 0)) throw new RangeError(`cannot advance by ${ms}`);
    const end = this.#mono + ms;
    for (;;) {
      const next = this.#earliest();
      if (!next || next.due > end) break;
      this.#mono = next.due;
      if (next.every > 0) next.due += next.every;
      else this.#timers = this.#timers.filter((t) => t !== next);
      next.callback();
    }
    this.#mono = end;
  }

  #earliest(): Scheduled | undefined {
    let best: Scheduled | undefined;
    for (const t of this.#timers) if (!best || t.due < best.due) best = t;
    return best;
  }

  #schedule(callback: () => void, ms: number, every: number): TimerHandle {
    const handle = { id: this.#nextId++ };
    this.#timers.push({ handle, due: this.#mono + Math.max(0, ms), every, callback });
    return handle;
  }
}
