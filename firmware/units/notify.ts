// Operation notification (415): buzzer patterns and lights. Each bay has a green (paid) and a red
// (expired) light; the rear red overtime light (seed: for the operation staff) is lit while any bay
// is past its paid time and grace. Per bay, when the paid time runs out 'bay-expired' (grace begins)
// and when the grace runs out 'bay-overtime'.
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
  /** Loud and long, repeated: cover opened, tilt, vibration. */
  tamper: [
    [3200, 250],
    [1800, 250],
    [3200, 250],
    [1800, 250],
    [3200, 250],
    [1800, 250],
  ],
} as const);

export interface NotifyOptions {
  Digital: IOClass<Digital, DigitalOptions>;
  lights: { paid: readonly number[]; expired: readonly number[]; overtime?: number };
  buzzer: Buzzer;
  bus: EventBus<MeterEvents>;
  bays: Bays;
  clock: Clock;
  timers: Timers;
  /** Minutes of grace after the paid time (the tariff's; read at each expiry). */
  graceMinutes?: () => number;
}

export class NotifyUnit {
  readonly #o: NotifyOptions;
  readonly #paid: Digital[];
  readonly #expired: Digital[];
  readonly #overtimeLight: Digital | undefined;
  readonly #timers = new Map<number, TimerHandle>();
  readonly #overtime = new Set<number>();

  constructor(options: NotifyOptions) {
    this.#o = options;
    const { Digital, lights, bus, bays } = options;
    const output = (pin: number) => new Digital({ pin, mode: 'output' });
    this.#paid = bays.ids.map((_, i) => output(lights.paid[i]));
    this.#expired = bays.ids.map((_, i) => output(lights.expired[i]));
    this.#overtimeLight = lights.overtime === undefined ? undefined : output(lights.overtime);
    bus.on('key', () => this.play(Tones.key));
    bus.on('payment-accepted', (p) => {
      this.play(Tones.success);
      this.refreshBay(p.bayId);
    });
    bus.on('renewal-applied', (r) => this.refreshBay(r.bayId));
    bus.on('receipt-requested', () => this.play(Tones.key));
    bus.on('payment-refused', () => this.play(Tones.failure));
    bus.on('maintenance-refused', () => this.play(Tones.failure));
    bus.on('maintenance-opened', () => this.play(Tones.success));
    bus.on('tamper', () => this.play(Tones.tamper));
    // Security & environment (48): a tilt or a knock also flashes the rear red light; a session
    // ended early (the vehicle left, time non-transferable) turns the bay's light red.
    bus.on('guard-alarm', (a) => {
      if (a.active && (a.kind === 'tilt' || a.kind === 'vibration')) this.#flash();
    });
    bus.on('bay-session-ended', (e) => this.refreshBay(e.bayId));
    for (const id of bays.ids) this.refreshBay(id, false);
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

  /** Flashes the rear red light for 1.5 s, then shows overtime again. */
  #flash(): void {
    const light = this.#overtimeLight;
    if (!light) return;
    light.write(1);
    for (let i = 1; i < 6; i++) this.#o.timers.setTimeout(() => light.write(i % 2 === 0 ? 1 : 0), i * 250);
    this.#o.timers.setTimeout(() => light.write(this.#overtime.size > 0 ? 1 : 0), 1_500);
  }

  /** Bays now past their paid time and grace. */
  get overtime(): readonly number[] {
    return [...this.#overtime];
  }

  /**
   * Sets a bay's lights from its paid-until time and schedules the next change: expiry, then the
   * end of the grace period. `announce` is false at boot, when the times may long have passed.
   */
  refreshBay(bayId: number, announce = true): void {
    const { bays, clock, timers, bus } = this.#o;
    const index = bays.ids.indexOf(bayId);
    const now = Math.floor(clock.now() / 1000);
    const paidUntil = bays.paidUntil(bayId);
    const graceUntil = paidUntil + (this.#o.graceMinutes?.() ?? 0) * 60;
    const paid = paidUntil > now;
    this.#paid[index].write(paid ? 1 : 0);
    this.#expired[index].write(paid ? 0 : 1);
    timers.clear(this.#timers.get(bayId));
    this.#timers.delete(bayId);
    const wasOvertime = this.#overtime.has(bayId);
    if (paid || paidUntil === 0 || now < graceUntil) this.#overtime.delete(bayId);
    else this.#overtime.add(bayId);
    this.#overtimeLight?.write(this.#overtime.size > 0 ? 1 : 0);
    if (announce && !wasOvertime && this.#overtime.has(bayId))
      bus.emit('bay-overtime', { bayId, since: graceUntil });
    if (paid) {
      this.#timers.set(
        bayId,
        timers.setTimeout(
          () => {
            bus.emit('bay-expired', { bayId, at: paidUntil, graceUntil });
            this.refreshBay(bayId);
          },
          (paidUntil - now) * 1000,
        ),
      );
    } else if (paidUntil > 0 && now < graceUntil) {
      this.#timers.set(
        bayId,
        timers.setTimeout(() => this.refreshBay(bayId), (graceUntil - now) * 1000),
      );
    }
  }

  close(): void {
    for (const handle of this.#timers.values()) this.#o.timers.clear(handle);
    const pins = [...this.#paid, ...this.#expired];
    if (this.#overtimeLight) pins.push(this.#overtimeLight);
    for (const pin of pins) pin.close();
  }
}
