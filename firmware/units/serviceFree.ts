// The service-free operation records of claim 10b: a period when parking at the meter was free by
// its tariff's timetable (evenings, Sundays, holidays), one record per free period once it has
// ended, so that reports and disputes see when no payment was due. Free here means free at every
// bay of the meter. The timetable decides it, so the periods are worked out afterwards from the
// tariff, hourly and at each start, from the last time checked (kept in the preferences): a meter
// asleep or switched off still records the free periods that ended meanwhile.
import type { Clock, Timers, TimerHandle } from '../../hal/clock';
import type { Preferences } from '../../hal/preferences';
import { OperationCode } from '../../protocol/records';
import type { Tariff } from '../../protocol/tariff/index';
import type { EventBus } from '../bus';
import type { MeterEvents } from '../events';
import type { MainRecord } from './records';

const HOUR_MS = 3_600_000;
/** Looked back at most this far after a long stop (the records would say little more). */
const MAX_LOOKBACK_S = 31 * 86_400;

export interface ServiceFreeOptions {
  clock: Clock;
  preferences: Preferences;
  records: MainRecord;
  /** The tariff in force (it may be replaced by a push). */
  tariff: () => Tariff;
  bays: readonly number[];
  bus?: EventBus<MeterEvents>;
}

export class ServiceFreeLog {
  readonly #o: ServiceFreeOptions;
  #hourly: TimerHandle | undefined;
  #stepped: { cancel(): void } | undefined;

  constructor(options: ServiceFreeOptions) {
    this.#o = options;
  }

  start(timers: Timers): void {
    // A clock set from 1970 would make every period since then look free: start again from now.
    this.#stepped = this.#o.bus?.on('clock-stepped', () => this.#save(this.#now(), undefined));
    this.check();
    this.#hourly = timers.setInterval(() => this.check(), HOUR_MS);
  }

  stop(timers: Timers): void {
    this.check();
    timers.clear(this.#hourly);
    this.#hourly = undefined;
    this.#stepped?.cancel();
  }

  /** Records the free periods that ended since the last check; returns how many. */
  check(): number {
    const now = this.#now();
    const saved = this.#o.preferences.get('ops', 'free');
    const [checked, openFrom] = typeof saved === 'string' ? saved.split(':').map(Number) : [now, Number.NaN];
    let t = Number.isFinite(checked) && checked <= now ? Math.max(checked, now - MAX_LOOKBACK_S) : now;
    let freeFrom = Number.isFinite(openFrom) ? openFrom : undefined;
    let recorded = 0;
    const tariff = this.#o.tariff();
    while (t < now) {
      const { free, until } = this.#stateAt(tariff, t);
      if (free) freeFrom ??= t;
      else if (freeFrom !== undefined) {
        this.#record(freeFrom, t);
        recorded++;
        freeFrom = undefined;
      }
      if (until === undefined) break;
      t = until;
    }
    // A free period that has just ended at `now` is recorded at the next check.
    this.#save(now, freeFrom);
    return recorded;
  }

  /** Free at every bay at `t`, and until the first bay's state changes (undefined: not soon). */
  #stateAt(tariff: Tariff, t: number): { free: boolean; until: number | undefined } {
    let free = true;
    let until: number | undefined;
    for (const bay of this.#o.bays) {
      const state = tariff.stateAt(bay, t);
      if (state.state !== 'free') free = false;
      if (state.until !== undefined) until = until === undefined ? state.until : Math.min(until, state.until);
    }
    return { free, until };
  }

  #record(from: number, to: number): void {
    const { records } = this.#o;
    records.tryAppend(() =>
      records.appendOperation(OperationCode.ServiceFree, 'parking free by the tariff timetable', null, {
        period: { from, to },
      }),
    );
  }

  #save(checked: number, freeFrom: number | undefined): void {
    this.#o.preferences.set('ops', 'free', freeFrom === undefined ? `${checked}` : `${checked}:${freeFrom}`);
  }

  #now(): number {
    return Math.floor(this.#o.clock.now() / 1000);
  }
}
