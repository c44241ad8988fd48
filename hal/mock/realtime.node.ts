// Real time for virtual meters that run alongside a live platform (npm start): the wall clock and
// Node's timers behind the HAL's Clock and Timers. Node only.
import type { Clock, TimerHandle, Timers } from '../clock';

export class RealTimeClock implements Clock, Timers {
  readonly #started = performance.now();
  readonly #handles = new Map<TimerHandle, NodeJS.Timeout>();
  #nextId = 1;

  now(): number {
    return Date.now();
  }

  monotonic(): number {
    return Math.floor(performance.now() - this.#started);
  }

  setTimeout(callback: () => void, ms: number): TimerHandle {
    const handle = { id: this.#nextId++ };
    this.#handles.set(
      handle,
      setTimeout(() => {
        this.#handles.delete(handle);
        callback();
      }, ms),
    );
    return handle;
  }

  setInterval(callback: () => void, ms: number): TimerHandle {
    const handle = { id: this.#nextId++ };
    this.#handles.set(handle, setInterval(callback, ms));
    return handle;
  }

  clear(handle: TimerHandle | undefined): void {
    if (!handle) return;
    const timer = this.#handles.get(handle);
    if (timer) clearTimeout(timer);
    this.#handles.delete(handle);
  }

  /** Clears every timer still pending (a clean stop leaves nothing to keep Node alive). */
  clearAll(): void {
    for (const timer of this.#handles.values()) clearTimeout(timer);
    this.#handles.clear();
  }
}
