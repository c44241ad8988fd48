// What the parts of the pay-by-phone service share: the database, the options, the clock, the
// outbox, the service's events, and the work in flight that close() waits for.
import type { Crypto } from '../../hal/crypto';
import { formatClock } from '../../firmware/units/format';
import type { Database } from '../core/db';
import { nodeCrypto } from '../core/nodeCrypto';
import { Outbox } from './channels';
import type { PhoneClock, PhoneEvents, PhoneOptions } from './model';

export type Emit = <E extends keyof PhoneEvents>(event: E, ...args: PhoneEvents[E]) => void;

export class PhoneContext {
  readonly db: Database;
  readonly crypto: Crypto;
  readonly clock: PhoneClock;
  readonly outbox: Outbox;
  /** Set by close(): no new work starts. */
  closed = false;
  readonly #inFlight = new Set<Promise<unknown>>();

  constructor(
    readonly options: PhoneOptions,
    readonly emit: Emit,
  ) {
    this.db = options.db;
    this.crypto = options.crypto ?? nodeCrypto;
    this.clock = options.clock ?? { now: () => Date.now() };
    this.outbox = new Outbox({
      db: options.db,
      now: () => this.clock.now(),
      adapters: options.adapters,
      onError: (error, m) =>
        options.logger.warn({ err: error, outbox: m.id, channel: m.channel }, 'delivery failed'),
    });
  }

  now(): number {
    return this.clock.now();
  }

  /** A time for a driver's message, in the meters' local time. */
  hhmm(epochSeconds: number): string {
    return formatClock(Math.floor(epochSeconds), this.options.utcOffsetMinutes ?? 0);
  }

  /** Work that close() waits for. */
  track<T>(promise: Promise<T>): Promise<T> {
    this.#inFlight.add(promise);
    promise.finally(() => this.#inFlight.delete(promise)).catch(() => {});
    return promise;
  }

  inFlight(): Promise<unknown> {
    return Promise.allSettled([...this.#inFlight]);
  }
}
