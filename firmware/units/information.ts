// Information management (44): what the display shows — the idle screen with the time, the battery
// and each bay's state (paid and the time left, in grace, overtime, or what the tariff says of the
// moment: free, no parking, no sale; unavailable when the platform or the meter took the bay or the
// sales out of service); a message from the platform in the last row while it is current; the
// service and fee as soon as they are chosen, then the outcome of the payment and the receipt.
import type { Clock, TimerHandle, Timers } from '../../hal/clock';
import type { TextDisplay } from '../../hal/ui';
import { offsetAt } from '../../protocol/tariff/tz';
import type { BayMode, Tariff } from '../../protocol/tariff/index';
import type { EventBus } from '../bus';
import type { MeterEvents } from '../events';
import type { Bays } from './bays';
import { formatClock, formatDuration, formatMoney } from './format';

const RESULT_SHOWN_MS = 5000;
/** Long enough to copy a receipt code down or photograph it. */
const RECEIPT_SHOWN_MS = 60_000;
const IDLE_REFRESH_MS = 60_000;
const CARD_TYPE_NAMES = ['any card', 'debit', 'credit', 'prepaid'];

export interface BayState {
  state:
    | 'paid'
    | 'grace'
    | 'overtime'
    | 'expired'
    | 'free'
    | 'restricted'
    | 'no-sale'
    | 'unavailable'
    | 'suspended';
  /** When the paid time or the grace ends, epoch s. */
  until?: number;
}

export interface InformationOptions {
  display: TextDisplay;
  bus: EventBus<MeterEvents>;
  bays: Bays;
  clock: Clock;
  timers: Timers;
  currency: number;
  /** A fixed offset from UTC; when absent the tariff's time zone gives local time. */
  utcOffsetMinutes?: number;
  /** Where the receipt code is entered, shown under it (the meter's label says the same). */
  receiptSite?: string;
  /** The tariff in force (it changes with 0x85 downlinks), for bay states and local time. */
  tariff?: () => Tariff;
  /** False while the meter has never known the wall time (time management): the clock is not shown. */
  timeKnown?: () => boolean;
  /** The platform's mode for a bay at an instant (charging unit), when one is in its window. */
  bayMode?: (bayId: number, nowSeconds: number) => BayMode | undefined;
}

/**
 * The display as the units use it: a display that does not answer (a missing or broken LCD) never
 * throws into a unit. Its first failure is reported once (`onFault`: the monitor's module
 * 'display'); reinitialise(), the monitor's repair, switches it on and shows the last screen
 * again. A failed display that answers again by itself is reported back too (`onRecovered`).
 */
export class GuardedDisplay implements TextDisplay {
  readonly #display: TextDisplay;
  readonly #events: { onFault(error: unknown): void; onRecovered(): void };
  #lines: readonly string[] = [];
  #on = true;
  #failed = false;

  constructor(display: TextDisplay, events: { onFault(error: unknown): void; onRecovered(): void }) {
    this.#display = display;
    this.#events = events;
  }

  get rows(): number {
    return this.#display.rows;
  }

  get columns(): number {
    return this.#display.columns;
  }

  /** Whether the display has failed and not answered since. */
  get failed(): boolean {
    return this.#failed;
  }

  show(lines: readonly string[]): void {
    this.#lines = lines;
    this.#try(() => this.#display.show(lines));
  }

  power(on: boolean): void {
    this.#on = on;
    this.#try(() => this.#display.power(on));
  }

  /** Powers the display as it should be and shows the last screen; true when it answered. */
  reinitialise(): boolean {
    try {
      this.#display.power(this.#on);
      this.#display.show(this.#lines);
    } catch {
      return false;
    }
    this.#failed = false;
    return true;
  }

  #try(operation: () => void): void {
    try {
      operation();
    } catch (error) {
      if (this.#failed) return;
      this.#failed = true;
      this.#events.onFault(error);
      return;
    }
    if (this.#failed) {
      this.#failed = false;
      this.#events.onRecovered();
    }
  }
}

export class InformationUnit {
  readonly #o: InformationOptions;
  #revert: TimerHandle | undefined;
  #idleShown = false;
  #battery: MeterEvents['battery'] | undefined;
  #message: MeterEvents['platform-message'] | undefined;
  readonly #unavailable = new Set<number>();
  /** Why sales are stopped, while they are (storage full, keys wiped…). */
  #serviceDown: string | undefined;
  #lines: string[] = [];

  constructor(options: InformationOptions) {
    this.#o = options;
    const { bus, timers } = options;
    const money = (amount: number) => formatMoney(amount, this.#currency());
    bus.on('selection-changed', (s) =>
      this.#show(
        s.refusal
          ? [`Bay ${s.bayId}`, ...wrap(s.refusal.message, options.display.columns).slice(0, 2), 'CANCEL back']
          : [`Bay ${s.bayId}`, `Time ${s.minutes} min`, `Fee ${money(s.charge)}`, 'OK pay  CANCEL back'],
      ),
    );
    bus.on('awaiting-card', (s) =>
      this.#show([
        `Bay ${s.bayId}  ${s.minutes} min`,
        `Fee ${money(s.charge)}`,
        'Present card',
        'UP/DOWN card type',
      ]),
    );
    bus.on('card-type-selected', ({ cardType }) => {
      const lines = [...this.#lines];
      lines[3] = `Card: ${CARD_TYPE_NAMES[cardType]}`;
      this.#show(lines);
    });
    bus.on('payment-accepted', (p) =>
      this.#show(
        [
          `PAID bay ${p.bayId}  OK:rcpt`,
          `until ${this.#clock(p.paidUntil)}`,
          `Paid ${money(p.charge)}`,
          `Card ${money(p.remainingValue)}`,
        ],
        true,
      ),
    );
    // The receipt is the sale's record, online: its code opens it (and its PDF, or an e-mail of
    // it) at the receipt site once the meter has uploaded it. No code, no claim of a receipt.
    bus.on('receipt-requested', (p) => {
      const code = p.receiptCode?.split('-');
      this.#show(
        code && code.length === 4
          ? [
              `Bay ${p.bayId} paid ${money(p.charge)}`,
              `Code ${code[0]}-${code[1]}`,
              `Check ${code[2]}-${code[3]}`,
              options.receiptSite ?? 'Receipt code online',
            ]
          : [
              `Receipt bay ${p.bayId}`,
              `Paid ${money(p.charge)}`,
              `until ${this.#clock(p.paidUntil)}`,
              'No receipt code',
            ],
        true,
        RECEIPT_SHOWN_MS,
      );
    });
    bus.on('payment-refused', (r) =>
      this.#show(['CARD REFUSED', ...wrap(r.message, options.display.columns)], true),
    );
    bus.on('selection-cancelled', () => this.showIdle());
    bus.on('maintenance-entry', () => this.#show(['MAINTENANCE', 'Enter mode key'], false));
    bus.on('maintenance-opened', () => this.#show(['MAINTENANCE', 'Mode open'], true));
    bus.on('maintenance-refused', (m) =>
      this.#show(['MAINTENANCE', 'Wrong sequence', `${m.left} tries left`], true),
    );
    bus.on('maintenance-locked', () => this.#show(['MAINTENANCE', 'Locked out'], true));
    bus.on('time-synced', () => {
      if (this.#idleShown) this.showIdle();
    });
    bus.on('battery', (b) => {
      this.#battery = b;
      if (this.#idleShown) this.showIdle();
    });
    bus.on('platform-message', (m) => {
      this.#message = m.text ? m : undefined;
      if (this.#idleShown) this.showIdle();
    });
    bus.on('bay-modes-changed', () => {
      if (this.#idleShown) this.showIdle();
    });
    bus.on('bay-availability', ({ bayId, available }) => {
      if (available) this.#unavailable.delete(bayId);
      else this.#unavailable.add(bayId);
      if (this.#idleShown) this.showIdle();
    });
    bus.on('service-unavailable', (u) => {
      this.#serviceDown = u.reason;
      this.showIdle();
    });
    bus.on('service-available', () => {
      this.#serviceDown = undefined;
      this.showIdle();
    });
    bus.on('renewal-applied', (r) =>
      this.#show(
        [
          `RENEWED bay ${r.bayId}`,
          `until ${this.#clock(r.paidUntil)}`,
          `Paid ${money(r.charge)}`,
          'by phone',
        ],
        true,
      ),
    );
    for (const event of ['bay-expired', 'bay-overtime', 'tariff-applied'] as const) {
      bus.on(event, () => {
        if (this.#idleShown) this.showIdle();
      });
    }
    timers.setInterval(() => {
      if (this.#idleShown) this.showIdle();
    }, IDLE_REFRESH_MS);
    this.showIdle();
  }

  #currency(): number {
    return this.#o.tariff?.().currency ?? this.#o.currency;
  }

  /**
   * One bay's state at `now` (epoch s), as the idle screen and the service information give it:
   * `until` is when a paid time or a grace ends.
   */
  bayState(id: number, now: number): BayState {
    const { bays, tariff } = this.#o;
    const left = bays.remaining(id, now);
    if (this.#unavailable.has(id) || this.#serviceDown !== undefined) return { state: 'unavailable' };
    const mode = this.#o.bayMode?.(id, now);
    if (mode === 'suspended') return { state: 'suspended' };
    if (mode === 'no-parking') return { state: 'restricted' };
    if (mode === 'unavailable') return { state: 'unavailable' };
    if (mode === 'free') return { state: 'free' };
    if (left > 0) return { state: 'paid', until: bays.paidUntil(id) };
    const t = tariff?.();
    const paidUntil = bays.paidUntil(id);
    if (t && paidUntil > 0) {
      const graceUntil = paidUntil + t.graceMinutes * 60;
      if (now < graceUntil) return { state: 'grace', until: graceUntil };
    }
    const state = t?.stateAt(id, now).state;
    if (state === 'free' || state === 'restricted' || state === 'no-sale') return { state };
    if (t && paidUntil > 0) return { state: 'overtime' };
    return { state: 'expired' };
  }

  /** One bay's line on the idle screen. */
  bayLine(id: number, now: number): string {
    const s = this.bayState(id, now);
    switch (s.state) {
      case 'unavailable':
        return `Bay ${id} unavailable`;
      case 'suspended':
        return `Bay ${id} suspended`;
      case 'paid':
        return `Bay ${id} paid ${formatDuration((s.until ?? now) - now)}`;
      case 'grace':
        return `Bay ${id} grace ${Math.ceil(((s.until ?? now) - now) / 60)}m`;
      case 'free':
        return `Bay ${id} free`;
      case 'restricted':
        return `Bay ${id} no parking`;
      case 'no-sale':
        return `Bay ${id} no sale`;
      case 'overtime':
        return `Bay ${id} OVERTIME`;
      default:
        return `Bay ${id} expired`;
    }
  }

  showIdle(): void {
    const { bays, clock, display } = this.#o;
    if (this.#serviceDown !== undefined) {
      this.#show(['UNAVAILABLE', ...wrap(`No sales: ${this.#serviceDown}`, display.columns)]);
      this.#idleShown = true;
      return;
    }
    const now = Math.floor(clock.now() / 1000);
    const battery = this.#battery
      ? ` ${this.#battery.charging ? '+' : ''}${Math.round(this.#battery.percent)}%`
      : '';
    const timeKnown = this.#o.timeKnown?.() ?? true;
    const lines = [timeKnown ? `ParkLink ${this.#clock(now)}${battery}` : `Time not set${battery}`];
    const message =
      this.#message &&
      (this.#message.from === undefined || this.#message.from <= now) &&
      (this.#message.until === undefined || this.#message.until > now)
        ? this.#message.text
        : undefined;
    const bayRows = display.rows - 1 - (message ? 1 : 0);
    for (const id of bays.ids.slice(0, bayRows)) lines.push(this.bayLine(id, now));
    if (message) lines.push(message);
    this.#show(lines);
    this.#idleShown = true;
  }

  #clock(epochSeconds: number): string {
    const { utcOffsetMinutes, tariff } = this.#o;
    if (utcOffsetMinutes !== undefined || !tariff) return formatClock(epochSeconds, utcOffsetMinutes ?? 0);
    return formatClock(epochSeconds, offsetAt(tariff().tz, epochSeconds) / 60);
  }

  #show(lines: string[], thenIdle = false, shownMs = RESULT_SHOWN_MS): void {
    const { display, timers } = this.#o;
    timers.clear(this.#revert);
    this.#revert = undefined;
    this.#idleShown = false;
    this.#lines = lines;
    display.show(lines);
    if (thenIdle) {
      this.#revert = timers.setTimeout(() => {
        this.#revert = undefined;
        this.showIdle();
      }, shownMs);
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
