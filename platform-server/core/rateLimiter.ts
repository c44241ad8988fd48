// A fixed-window rate limiter kept in memory (per instance): drivers' and operators' logins,
// registrations, SMS and voice requests. hit() counts and answers; refund() and clear() let a caller
// keep only some attempts counted (drivers' failed logins).

/** At most `limit` hits per key in each window of `windowMs`. */
export class RateLimiter {
  readonly #hits = new Map<string, { start: number; count: number }>();

  constructor(
    readonly limit: number,
    readonly windowMs: number,
    readonly now: () => number = Date.now,
  ) {}

  /** Counts a hit; returns 0 when allowed, else the seconds until the key may try again. */
  hit(key: string): number {
    const now = this.now();
    let entry = this.#hits.get(key);
    if (!entry || now - entry.start >= this.windowMs) {
      entry = { start: now, count: 0 };
      this.#hits.set(key, entry);
      if (this.#hits.size > 10_000) this.#prune(now);
    }
    entry.count++;
    return entry.count > this.limit ? Math.max(1, Math.ceil((entry.start + this.windowMs - now) / 1000)) : 0;
  }

  /** Takes back one hit of `key` in the current window (an attempt that turned out not to count). */
  refund(key: string): void {
    const entry = this.#hits.get(key);
    if (entry && entry.count > 0 && this.now() - entry.start < this.windowMs) entry.count--;
  }

  /** Forgets `key`'s hits. */
  clear(key: string): void {
    this.#hits.delete(key);
  }

  #prune(now: number): void {
    for (const [key, entry] of this.#hits) if (now - entry.start >= this.windowMs) this.#hits.delete(key);
  }
}
