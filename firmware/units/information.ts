// Information management (44): what the display shows — the idle screen with each bay's state, the
// service and fee as soon as they are chosen, then the outcome of the payment.
import type { Clock, TimerHandle, Timers } from '../../hal/clock';
import type { TextDisplay } from '../../hal/ui';
import type { EventBus } from '../bus';
import type { MeterEvents } from '../events';
import type { Bays } from './bays';
import { formatClock, formatDuration, formatMoney } from './format';

const RESULT_SHOWN_MS = 5000;

export interface InformationOptions {
  display: TextDisplay;
  bus: EventBus<MeterEvents>;
  bays: Bays;
  clock: Clock;
  timers: Timers;
  currency: number;
  utcOffsetMinutes?: number;
}

export class InformationUnit {
  readonly #o: InformationOptions;
  #revert: TimerHandle | undefined;
  /** Why sales are stopped, while they are. */
  #unavailable: string | undefined;

  constructor(options: InformationOptions) {
    this.#o = options;
    const { bus, currency } = options;
    bus.on('selection-changed', (s) =>
      this.#show([
        `Bay ${s.bayId}`,
        `Time ${s.minutes} min`,
        `Fee ${formatMoney(s.charge, currency)}`,
        'OK pay  CANCEL back',
      ]),
    );
    bus.on('awaiting-card', (s) =>
      this.#show([
        `Bay ${s.bayId}  ${s.minutes} min`,
        `Fee ${formatMoney(s.charge, currency)}`,
        'Present card',
        'CANCEL to stop',
      ]),
    );
    bus.on('payment-accepted', (p) =>
      this.#show(
        [
          `PAID bay ${p.bayId}`,
          `until ${this.#clock(p.paidUntil)}`,
          `Paid ${formatMoney(p.charge, currency)}`,
          `Card ${formatMoney(p.remainingValue, currency)}`,
        ],
        true,
      ),
    );
    bus.on('payment-refused', (r) =>
      this.#show(['CARD REFUSED', ...wrap(r.message, options.display.columns)], true),
    );
    bus.on('renewal-applied', (r) =>
      this.#show(
        [
          `RENEWED bay ${r.bayId}`,
          `until ${this.#clock(r.paidUntil)}`,
          `Paid ${formatMoney(r.charge, currency)}`,
          'by phone',
        ],
        true,
      ),
    );
    bus.on('selection-cancelled', () => this.showIdle());
    bus.on('service-unavailable', (u) => {
      this.#unavailable = u.reason;
      this.showIdle();
    });
    bus.on('service-available', () => {
      this.#unavailable = undefined;
      this.showIdle();
    });
    this.showIdle();
  }

  showIdle(): void {
    if (this.#unavailable !== undefined) {
      this.#show(['UNAVAILABLE', ...wrap(`No sales: ${this.#unavailable}`, this.#o.display.columns)]);
      return;
    }
    const { bays, clock, display } = this.#o;
    const now = Math.floor(clock.now() / 1000);
    const lines = [`ParkLink    ${this.#clock(now)}`];
    for (const id of bays.ids.slice(0, display.rows - 1)) {
      const left = bays.remaining(id, now);
      lines.push(left > 0 ? `Bay ${id} paid ${formatDuration(left)}` : `Bay ${id} expired`);
    }
    this.#show(lines);
  }

  #clock(epochSeconds: number): string {
    return formatClock(epochSeconds, this.#o.utcOffsetMinutes ?? 0);
  }

  #show(lines: string[], thenIdle = false): void {
    const { display, timers } = this.#o;
    timers.clear(this.#revert);
    this.#revert = undefined;
    display.show(lines);
    if (thenIdle) {
      this.#revert = timers.setTimeout(() => {
        this.#revert = undefined;
        this.showIdle();
      }, RESULT_SHOWN_MS);
    }
  }
}

function wrap(text: string, columns: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line && line.length + 1 + word.length > columns) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines;
}
