// Key input (42): the momentary buttons, active low with pull-ups, debounced in software.
// - Operation subunit: each accepted press is a 'key' event (bay, service up/down, ok, cancel). The
//   same buttons mean more by context: while the meter waits for a card, up/down choose the card
//   type (any, debit, credit, prepaid: 'card-type-selected'); for a few seconds after a payment, OK
//   asks for a receipt ('receipt-requested') instead of starting a new sale.
// - Mode key subunit: three CANCEL presses within 1.5 s open code entry; the next presses are
//   compared with the configured sequence. Right: 'maintenance-opened' (security management joins
//   it to the handheld's BLE token). Wrong: 'maintenance-refused'; after `maxAttempts` wrong
//   sequences in a row, entry is locked out for `lockoutMs`, doubling with each lockout
//   ('maintenance-locked'). Code presses are not passed on as keys. The entry signal also switches
//   the handheld link on for a while (firmware/units/handheld.ts); an entry with no code press
//   guesses nothing and ends quietly when the code times out.
// - Sleep (seed claim 4): after `idleMs` without a key or a sale in progress, every power consumer
//   (display, reader antenna, radio) is switched off through the HAL; the next key switches them on
//   again and is used only to wake the meter.
import type { Clock, TimerHandle, Timers } from '../../hal/clock';
import type { Digital, DigitalOptions, IOClass } from '../../hal/io';
import type { EventBus } from '../bus';
import type { KeyName, MeterEvents } from '../events';

const DEBOUNCE_MS = 30; // longer than the contact bounce of common tactile switches (5–20 ms)
const FALLING = 2; // ECMA-419 Digital.Falling
const ENTRY_PRESSES = 3;
const ENTRY_WINDOW_MS = 1500;
const CODE_PRESS_TIMEOUT_MS = 10_000;
export const RECEIPT_WINDOW_MS = 5000;
const CARD_TYPES = [0, 1, 2, 3] as const;

/** Something that draws power and can be switched: display, reader antenna, radio. */
export interface PowerConsumer {
  readonly name: string;
  power(on: boolean): void;
}

export interface MaintenanceOptions {
  /** The buttons of the mode key, pressed after the entry signal (three CANCEL). */
  sequence: readonly KeyName[];
  maxAttempts?: number;
  lockoutMs?: number;
}

export interface SleepOptions {
  idleMs: number;
  consumers: readonly PowerConsumer[];
}

export interface KeyInputOptions {
  Digital: IOClass<Digital, DigitalOptions>;
  pins: Readonly<Record<KeyName, number>>;
  clock: Clock;
  bus: EventBus<MeterEvents>;
  timers?: Timers;
  maintenance?: MaintenanceOptions;
  sleep?: SleepOptions;
}

type Context = 'normal' | 'card' | 'receipt';

export class KeyInputUnit {
  readonly #o: KeyInputOptions;
  readonly #pins: Digital[] = [];
  readonly #lastPress = new Map<KeyName, number>();
  #context: Context = 'normal';
  #contextUntil = 0;
  #cardType = 0;
  #receiptFor: MeterEvents['receipt-requested'] | undefined;
  #cancels: number[] = [];
  #code: KeyName[] | undefined;
  #codeTimer: TimerHandle | undefined;
  #attempts = 0;
  #lockouts = 0;
  #lockedUntil = 0;
  #asleep = false;
  #idle: TimerHandle | undefined;
  #busy = false;

  constructor(options: KeyInputOptions) {
    this.#o = options;
    const { Digital, pins, clock, bus } = options;
    for (const key of Object.keys(pins) as KeyName[]) {
      const lastPress = this.#lastPress;
      const unit = this;
      this.#pins.push(
        new Digital({
          pin: pins[key],
          mode: 'inputPullUp',
          edge: FALLING,
          onReadable() {
            const now = clock.monotonic();
            const last = lastPress.get(key);
            if (last !== undefined && now - last < DEBOUNCE_MS) return;
            lastPress.set(key, now);
            unit.press(key);
          },
        }),
      );
    }
    bus.on('awaiting-card', () => {
      this.#context = 'card';
      this.#cardType = 0;
      this.#busy = true;
    });
    bus.on('payment-accepted', (p) => {
      this.#context = 'receipt';
      this.#contextUntil = clock.monotonic() + RECEIPT_WINDOW_MS;
      this.#receiptFor = p;
      this.#busy = false;
      this.#armSleep();
    });
    for (const event of ['payment-refused', 'selection-cancelled'] as const) {
      bus.on(event, () => {
        this.#context = 'normal';
        this.#busy = false;
        this.#armSleep();
      });
    }
    this.#armSleep();
  }

  get asleep(): boolean {
    return this.#asleep;
  }

  get lockedUntil(): number {
    return this.#lockedUntil;
  }

  /** One accepted press (after debounce): wakes, feeds the mode key, or goes out as a key. */
  press(key: KeyName): void {
    const { bus, clock } = this.#o;
    const now = clock.monotonic();
    if (this.#asleep) {
      this.wake('key');
      return;
    }
    this.#armSleep();
    if (this.#code) {
      this.#codePress(key);
      return;
    }
    if (this.#context === 'receipt' && now > this.#contextUntil) this.#context = 'normal';
    if (this.#context === 'receipt' && key === 'ok' && this.#receiptFor) {
      const payment = this.#receiptFor;
      this.#context = 'normal';
      this.#receiptFor = undefined;
      bus.emit('receipt-requested', payment);
      return;
    }
    bus.emit('key', { key });
    if (this.#context === 'card' && (key === 'up' || key === 'down')) {
      const i = (this.#cardType + (key === 'up' ? 1 : CARD_TYPES.length - 1)) % CARD_TYPES.length;
      this.#cardType = i;
      bus.emit('card-type-selected', { cardType: CARD_TYPES[i] });
    }
    if (key === 'cancel' && this.#o.maintenance) this.#countCancel(now);
  }

  #countCancel(now: number): void {
    this.#cancels = [...this.#cancels.filter((t) => now - t <= ENTRY_WINDOW_MS), now];
    if (this.#cancels.length < ENTRY_PRESSES) return;
    this.#cancels = [];
    if (now < this.#lockedUntil) {
      this.#o.bus.emit('maintenance-locked', { untilMonotonic: this.#lockedUntil });
      return;
    }
    this.#code = [];
    this.#armCodeTimeout();
    this.#o.bus.emit('maintenance-entry', {});
  }

  #armCodeTimeout(): void {
    const timers = this.#o.timers;
    if (!timers) return;
    timers.clear(this.#codeTimer);
    this.#codeTimer = timers.setTimeout(() => {
      this.#codeTimer = undefined;
      // An unfinished sequence counts as a wrong one; the entry signal alone guesses nothing (it
      // only switches the handheld link on) and ends quietly.
      if (this.#code && this.#code.length === 0) this.#code = undefined;
      else if (this.#code) this.#judge(false);
    }, CODE_PRESS_TIMEOUT_MS);
  }

  #codePress(key: KeyName): void {
    const code = this.#code!;
    const sequence = this.#o.maintenance?.sequence ?? [];
    code.push(key);
    if (code.length < sequence.length) {
      this.#armCodeTimeout();
      return;
    }
    this.#judge(code.every((k, i) => k === sequence[i]));
  }

  #judge(right: boolean): void {
    const { bus, clock, timers, maintenance } = this.#o;
    this.#code = undefined;
    timers?.clear(this.#codeTimer);
    this.#codeTimer = undefined;
    if (right) {
      this.#attempts = 0;
      this.#lockouts = 0;
      bus.emit('maintenance-opened', { at: clock.now() });
      return;
    }
    const max = maintenance?.maxAttempts ?? 3;
    this.#attempts++;
    bus.emit('maintenance-refused', { attempts: this.#attempts, left: Math.max(0, max - this.#attempts) });
    if (this.#attempts >= max) {
      this.#attempts = 0;
      const lockout = (maintenance?.lockoutMs ?? 15 * 60_000) * 2 ** this.#lockouts;
      this.#lockouts = Math.min(this.#lockouts + 1, 6);
      this.#lockedUntil = clock.monotonic() + lockout;
      bus.emit('maintenance-locked', { untilMonotonic: this.#lockedUntil });
    }
  }

  #armSleep(): void {
    const { timers, sleep } = this.#o;
    if (!timers || !sleep) return;
    timers.clear(this.#idle);
    this.#idle = timers.setTimeout(() => {
      this.#idle = undefined;
      if (this.#busy || this.#code)
        this.#armSleep(); // never in the middle of a sale or a code
      else this.sleep();
    }, sleep.idleMs);
  }

  /**
   * The idle time before sleep, from the operating parameters (0x89); counted afresh from now.
   * False when the meter was built without sleep (no consumers to switch).
   */
  setSleepIdle(idleMs: number): boolean {
    const sleep = this.#o.sleep;
    if (!sleep) return false;
    sleep.idleMs = idleMs;
    if (this.#idle !== undefined) this.#armSleep();
    return true;
  }

  /** Switches every power consumer off. */
  sleep(): void {
    if (this.#asleep || !this.#o.sleep) return;
    this.#asleep = true;
    this.#context = 'normal';
    for (const c of this.#o.sleep.consumers) this.#switch(c, false);
    this.#o.bus.emit('sleep', {});
  }

  /** Switches every power consumer on again. */
  wake(reason: string): void {
    if (!this.#asleep || !this.#o.sleep) return;
    this.#asleep = false;
    for (const c of this.#o.sleep.consumers) this.#switch(c, true);
    this.#o.bus.emit('wake', { reason });
    this.#armSleep();
  }

  #switch(consumer: PowerConsumer, on: boolean): void {
    try {
      consumer.power(on);
    } catch (error) {
      this.#o.bus.emit('fault', { unit: `power:${consumer.name}`, error });
    }
  }

  close(): void {
    this.#o.timers?.clear(this.#idle);
    this.#o.timers?.clear(this.#codeTimer);
    for (const pin of this.#pins.splice(0)) pin.close();
  }
}
