// Operation notification (415): buzzer patterns and lights. Each bay has a green (paid) and a red
// (expired) light, switched at payment and again when the paid time runs out.
import type { Clock, TimerHandle, Timers } from '../../hal/clock';
import type { Digital, DigitalOptions, IOClass } from '../../hal/io';
import type { Buzzer } from '../../hal/ui';
import type { EventBus } from '../bus';
import type { MeterEvents } from '../events';
import type { Bays } from './bays';

/** Buzzer patterns: [frequency Hz, duration ms] steps. */
export const Tones = Object.freeze({
  key: [[2700, 20]],
  success: [
    [2000, 80],
    [2700, 120],
  ],
  failure: [[440, 500]],
} as const);

export interface NotifyOptions {
  Digital: IOClass<Digital, DigitalOptions>;
  lights: { paid: readonly number[]; expired: readonly number[] };
  buzzer: Buzzer;
  bus: EventBus<MeterEvents>;
  bays: Bays;
  clock: Clock;
  timers: Timers;
}

export class NotifyUnit {
  readonly #o: NotifyOptions;
  readonly #paid: Digital[];
  readonly #expired: Digital[];
  readonly #expiry = new Map<number, TimerHandle>();

  constructor(options: NotifyOptions) {
    this.#o = options;
    const { Digital, lights, bus, bays } = options;
    const output = (pin: number) => new Digital({ pin, mode: 'output' });
    this.#paid = bays.ids.map((_, i) => output(lights.paid[i]));
    this.#expired = bays.ids.map((_, i) => output(lights.expired[i]));
    bus.on('key', () => this.play(Tones.key));
    bus.on('payment-accepted', (p) => {
      this.play(Tones.success);
      this.refreshBay(p.bayId);
    });
    bus.on('payment-refused', () => this.play(Tones.failure));
    for (const id of bays.ids) this.refreshBay(id);
  }

  play(pattern: readonly (readonly [number, number])[]): void {
    // The buzzer plays one tone at a time; later steps are queued on the timers.
    let at = 0;
    for (const [hz, ms] of pattern) {
      if (at === 0) this.#o.buzzer.tone(hz, ms);
      else this.#o.timers.setTimeout(() => this.#o.buzzer.tone(hz, ms), at);
      at += ms;
    }
  }

  /** Sets a bay's lights from its paid-until time and schedules the switch at expiry. */
  refreshBay(bayId: number): void {
    const { bays, clock, timers } = this.#o;
    const index = bays.ids.indexOf(bayId);
    const left = bays.remaining(bayId, Math.floor(clock.now() / 1000));
    this.#paid[index].write(left > 0 ? 1 : 0);
    this.#expired[index].write(left > 0 ? 0 : 1);
    timers.clear(this.#expiry.get(bayId));
    this.#expiry.delete(bayId);
    if (left > 0)
      this.#expiry.set(
        bayId,
        timers.setTimeout(() => this.refreshBay(bayId), left * 1000),
      );
  }

  close(): void {
    for (const handle of this.#expiry.values()) this.#o.timers.clear(handle);
    for (const pin of [...this.#paid, ...this.#expired]) pin.close();
  }
}
