// Hybrid power (416), seed claim 17: a disposable pack, a rechargeable pack and a backup battery,
// each with its MAX17048 fuel gauge and a load switch. The meter runs from one pack at a time;
// switching to the next is make-before-break (the backup is switched in first and covers the
// change, the new pack comes in before the old one goes), so the supply never has a gap. State of
// charge goes to the display ('battery') and the status report ('power-status'); battery-low and
// battery-replaced become records (claim 10b/10c). It also power-cycles modules for the monitor.
import type { Clock, TimerHandle, Timers } from '../../hal/clock';
import type { Digital } from '../../hal/io';
import type { MqttLink } from '../../hal/mqtt';
import type { Preferences } from '../../hal/preferences';
import type { ModuleName, PackName, PowerParts } from '../../hal/sensors';
import { MAX17048 } from '../../drivers/power/max17048';
import { MaintenanceCode, OperationCode } from '../../protocol/records';
import { type ModuleState, statusEvent } from '../../protocol/status';
import type { EventBus } from '../bus';
import type { MeterEvents } from '../events';
import type { MainRecord } from './records';

/** Preferred order: the rechargeable (solar-topped) pack first, the disposable next, the backup last. */
export const PACK_ORDER: readonly PackName[] = Object.freeze(['rechargeable', 'disposable', 'backup']);

export interface PowerOptions {
  parts: PowerParts;
  bus: EventBus<MeterEvents>;
  records: MainRecord;
  clock: Clock;
  timers: Timers;
  /** Where each pack's last state of charge is kept, to tell a pack swapped while the meter was off. */
  preferences?: Preferences;
  /** Gauge period, ms (default one minute). */
  sampleMs?: number;
  /** A pack at or below this is low (record, event); default 15 %. */
  lowPercent?: number;
  /** A pack at or below this is switched out; default 3 %. */
  emptyPercent?: number;
  /** How long the old and new packs (and the backup) overlap during a switch, ms. */
  overlapMs?: number;
  /** A cellular modem to put in its power-saving mode between uploads. */
  radio?: Omit<RadioDutyOptions, 'bus' | 'timers'>;
}

export interface RadioDutyOptions {
  link: MqttLink;
  bus: EventBus<MeterEvents>;
  timers: Timers;
  /** What still waits for the link (records not acknowledged, status events kept). */
  pending: () => number;
  /** Idle time after the last upload or downlink before the modem sleeps, ms (default 30 s). */
  idleMs?: number;
  /** The modem wakes this often even with nothing to send, for downlinks (default one hour). */
  wakeEveryMs?: number;
}

/**
 * The modem's duty cycle: awake while anything waits for the platform, asleep (link.power(false):
 * the modem's sleep mode, still registered so a call-in reaches it) once the link has been idle
 * for idleMs; a new record, a status event, an accepted call-in or the hourly wake brings it back.
 */
export class RadioDuty {
  readonly #o: Required<RadioDutyOptions>;
  #idle: TimerHandle | undefined;
  #hourly: TimerHandle | undefined;
  #asleep = false;
  #subscriptions: { cancel(): void }[] = [];
  sleeps = 0;
  wakes = 0;

  constructor(options: RadioDutyOptions) {
    this.#o = { idleMs: 30_000, wakeEveryMs: 3_600_000, ...options };
  }

  get asleep(): boolean {
    return this.#asleep;
  }

  start(): void {
    const { bus, timers } = this.#o;
    const wake = () => this.wake();
    const busy = () => this.#arm();
    this.#subscriptions = [
      bus.on('record-appended', wake),
      bus.on('status-event', wake),
      bus.on('call-in', (c) => (c.accepted ? this.wake() : undefined)),
      bus.on('upload-sent', busy),
      bus.on('upload-acknowledged', busy),
      bus.on('downlink', busy),
    ];
    this.#hourly = timers.setInterval(wake, this.#o.wakeEveryMs);
    this.#arm();
  }

  stop(): void {
    for (const s of this.#subscriptions) s.cancel();
    this.#subscriptions = [];
    this.#o.timers.clear(this.#idle);
    this.#o.timers.clear(this.#hourly);
    this.#idle = undefined;
    this.#hourly = undefined;
  }

  wake(): void {
    if (this.#asleep) {
      this.#asleep = false;
      this.wakes++;
      this.#o.link.power?.(true);
    }
    this.#arm();
  }

  #arm(): void {
    const { timers } = this.#o;
    timers.clear(this.#idle);
    this.#idle = timers.setTimeout(() => {
      this.#idle = undefined;
      if (this.#o.pending() > 0) {
        this.#arm(); // still something to deliver: stay awake
        return;
      }
      if (this.#asleep || !this.#o.link.power) return;
      this.#asleep = true;
      this.sleeps++;
      this.#o.link.power(false);
    }, this.#o.idleMs);
  }
}

/** A link whose radio can sleep while the link stays up (the Zigbee relay's RelayLink). */
export interface SleepyLink {
  readonly asleep: boolean;
  /** Something is under way that sleeping would cut short. */
  readonly busy: boolean;
  /** Sleeps; false when it cannot now (busy, not configured for sleep, closed). */
  sleep(): boolean;
  wake(): void;
}

/** RelaySleepDuty's defaults (the battery bench models them). */
export const RELAY_SLEEP_DEFAULTS = Object.freeze({ idleMs: 3_000, pollEveryMs: 20_000, pollAwakeMs: 500 });

export interface RelaySleepOptions {
  link: SleepyLink;
  bus: EventBus<MeterEvents>;
  timers: Timers;
  clock: Clock;
  /** Awake after the last upload, ack or downlink before sleeping, ms (default 3 s). */
  idleMs?: number;
  /**
   * The module wakes this often to poll its parent, ms (default 20 s): shorter than the parent's
   * buffering time (1.2 × its SP, 30 s for the master's 25 s), so an ack held for it is collected.
   */
  pollEveryMs?: number;
  /** How long a poll keeps it awake when nothing comes, ms (default 500: wake, poll, HELLO and READY). */
  pollAwakeMs?: number;
}

/**
 * The Zigbee slave's duty cycle: its XBee (an end device in pin sleep) sleeps between uploads, wakes
 * for a new record or status event (a publish wakes it too), and wakes every pollEveryMs to collect
 * what its parent holds for it, such as the platform's ack of a set sent just before it slept. It
 * sleeps while an ack is still owed: the ack waits at the parent, and if it is held too long and
 * lost, the comms unit sends the set again (the platform stores each record once).
 */
export class RelaySleepDuty {
  readonly #o: Required<RelaySleepOptions>;
  #idle: TimerHandle | undefined;
  #poll: TimerHandle | undefined;
  #subscriptions: { cancel(): void }[] = [];
  #since = 0;
  #awakeMs = 0;
  #asleepMs = 0;
  /** Asleep since this duty put it to sleep (a publish may wake the link before the duty hears of it). */
  #sleeping = false;
  /** Whether the module may sleep (operating parameter sleepRadio; MeterConfig.relaySleep). */
  #enabled: boolean;
  /** Between the meter's start() and stop(). */
  #running = false;
  sleeps = 0;
  wakes = 0;

  constructor(options: RelaySleepOptions & { enabled?: boolean }) {
    const { enabled, ...rest } = options;
    this.#o = { ...RELAY_SLEEP_DEFAULTS, ...rest };
    this.#enabled = enabled ?? true;
  }

  /** Whether the duty cycle runs (the module sleeps between uploads). */
  get enabled(): boolean {
    return this.#enabled;
  }

  /**
   * Switches the duty cycle on or off (operating parameter sleepRadio). Off wakes the module and
   * keeps SLEEP_RQ released, so it stays awake (it remains a pin-sleep end device: SM is not
   * rewritten, which would make it join again); on puts it back on its cycle.
   */
  setEnabled(on: boolean): void {
    if (on === this.#enabled) return;
    this.#enabled = on;
    if (!this.#running) return;
    if (on) this.#begin();
    else {
      this.#end();
      this.wake(0); // awake, and with the duty off nothing arms its sleep again
    }
  }

  /** Time awake and asleep since start(), ms; a link never opened counts as awake. */
  get times(): { awakeMs: number; asleepMs: number } {
    this.#account();
    return { awakeMs: this.#awakeMs, asleepMs: this.#asleepMs };
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#since = this.#o.clock.monotonic();
    if (this.#enabled) this.#begin();
  }

  stop(): void {
    this.#running = false;
    this.#end();
  }

  #begin(): void {
    const { bus, timers } = this.#o;
    const wake = () => this.wake(this.#o.idleMs);
    this.#subscriptions = [
      bus.on('record-appended', wake),
      bus.on('status-event', wake),
      bus.on('upload-sent', wake),
      bus.on('upload-acknowledged', wake),
      bus.on('downlink', wake),
    ];
    this.#poll = timers.setInterval(() => this.wake(this.#o.pollAwakeMs), this.#o.pollEveryMs);
    this.#arm(this.#o.idleMs);
  }

  #end(): void {
    for (const s of this.#subscriptions) s.cancel();
    this.#subscriptions = [];
    this.#o.timers.clear(this.#idle);
    this.#o.timers.clear(this.#poll);
    this.#idle = undefined;
    this.#poll = undefined;
  }

  /** Wakes the module (when asleep) and keeps it awake at least `ms`. */
  wake(ms: number): void {
    if (this.#sleeping) {
      this.#account();
      this.#sleeping = false;
      this.wakes++;
    }
    if (this.#o.link.asleep) this.#o.link.wake();
    this.#arm(ms);
  }

  #arm(ms: number): void {
    const { timers } = this.#o;
    timers.clear(this.#idle);
    this.#idle = undefined;
    if (!this.#enabled || !this.#running) return;
    this.#idle = timers.setTimeout(() => {
      this.#idle = undefined;
      const link = this.#o.link;
      if (link.asleep) return;
      if (link.busy) {
        this.#arm(this.#o.pollAwakeMs); // a transmission or a downlink under way: not now
        return;
      }
      this.#account();
      if (link.sleep()) {
        this.sleeps++;
        this.#sleeping = true;
      }
    }, ms);
  }

  /** Adds the time since the last change to awake or asleep. */
  #account(): void {
    const now = this.#o.clock.monotonic();
    const spent = now - this.#since;
    this.#since = now;
    if (this.#sleeping) this.#asleepMs += spent;
    else this.#awakeMs += spent;
  }
}

interface Pack {
  name: PackName;
  enable: Digital;
  gauge?: MAX17048;
  open?: () => MAX17048;
  percent: number;
  millivolts?: number;
  rate: number;
  low: boolean;
  state: ModuleState;
}

export class PowerUnit {
  readonly #o: Required<Omit<PowerOptions, 'parts' | 'preferences' | 'radio'>> &
    Pick<PowerOptions, 'parts' | 'preferences'>;
  readonly #packs = new Map<PackName, Pack>();
  readonly #modules = new Map<ModuleName, Digital>();
  #source: PackName | undefined;
  #timer: TimerHandle | undefined;
  #switching = false;
  #booting = false;
  /** Every switch made: [from, to], for tests and the status. */
  readonly switches: [string, string][] = [];
  /** The modem's duty cycle, when the meter's link is a cellular modem. */
  readonly radioDuty: RadioDuty | undefined;

  constructor(options: PowerOptions) {
    this.#o = { sampleMs: 60_000, lowPercent: 15, emptyPercent: 3, overlapMs: 50, ...options };
    this.radioDuty =
      options.radio && new RadioDuty({ ...options.radio, bus: options.bus, timers: options.timers });
    for (const name of PACK_ORDER) {
      const part = options.parts.packs[name];
      if (!part) continue;
      const enable = new part.enable.io({ pin: part.enable.pin, mode: 'output' });
      const gaugePart = part.gauge;
      this.#packs.set(name, {
        name,
        enable,
        open: gaugePart && (() => new MAX17048({ sensor: gaugePart })),
        percent: 0,
        rate: 0,
        low: false,
        state: gaugePart ? 'degraded' : 'absent',
      });
    }
    for (const name of ['reader', 'radio', 'sensors'] as ModuleName[]) {
      const part = options.parts.modules?.[name];
      if (!part) continue;
      const pin = new part.io({ pin: part.pin, mode: 'output' });
      pin.write(1);
      this.#modules.set(name, pin);
    }
  }

  /** The pack feeding the meter. */
  get source(): PackName | undefined {
    return this.#source;
  }

  /** State of charge per pack, percent. */
  get packs(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const p of this.#packs.values()) out[p.name] = p.percent;
    return out;
  }

  get gaugeStates(): Record<string, ModuleState> {
    const out: Record<string, ModuleState> = {};
    for (const p of this.#packs.values()) out[`gauge:${p.name}`] = p.state;
    return out;
  }

  /** Opens the gauges, reads them, picks the source and starts the gauge schedule. */
  start(): void {
    for (const p of this.#packs.values()) this.#openGauge(p);
    this.#booting = true;
    this.sample();
    this.#booting = false;
    // The first source: whichever the boot hardware had on (the backup, if none) until sample() chose.
    this.#timer = this.#o.timers.setInterval(() => this.sample(), this.#o.sampleMs);
    this.radioDuty?.start();
  }

  stop(): void {
    this.#o.timers.clear(this.#timer);
    this.#timer = undefined;
    this.radioDuty?.stop();
    for (const p of this.#packs.values()) {
      try {
        p.gauge?.close();
      } catch {
        // closing a failed gauge must not stop the others
      }
      p.gauge = undefined;
    }
  }

  /** Reads every gauge, records low and replaced packs, and switches pack when the source runs out. */
  sample(): void {
    const { bus, records } = this.#o;
    for (const p of this.#packs.values()) {
      if (!p.gauge) continue;
      try {
        const status = p.gauge.status();
        const b = p.gauge.sample().battery;
        if (status.voltageReset || (status.resetIndicator && !this.#booting)) {
          this.#replaced(p, status.voltageReset ? 'voltage reset' : 'power-up');
        } else if (status.resetIndicator) {
          // At boot every gauge has just powered up: a swap only if the charge jumped since last run.
          const saved = this.#o.preferences?.get('power', p.name);
          if (typeof saved === 'number' && b.percent > saved + 20)
            this.#replaced(p, `found at boot, ${saved} % before`);
          else p.gauge.clearStatus();
        }
        const last = this.#o.preferences?.get('power', p.name);
        if (typeof last !== 'number' || Math.abs(last - b.percent) >= 5 || status.resetIndicator)
          this.#o.preferences?.set('power', p.name, Math.round(b.percent)); // every 5 %: little flash wear
        p.percent = b.percent;
        p.millivolts = Math.round(b.voltage * 1000);
        p.rate = b.rate;
        if (p.state !== 'ok') this.#state(p, 'ok', 'gauge answers');
      } catch (error) {
        if (p.state !== 'failed') {
          this.#state(p, 'failed', (error as Error).message);
          bus.emit('fault', { unit: `power:gauge:${p.name}`, error });
        }
        continue;
      }
      if (!p.low && p.percent <= this.#o.lowPercent) {
        p.low = true;
        records.tryAppend(() =>
          records.appendOperation(
            OperationCode.BatteryLow,
            `${p.name} pack at ${p.percent.toFixed(0)} %`,
            null,
            {
              quantity: Math.round(p.percent),
            },
          ),
        );
        this.#event('battery-low', 'warning', true, `${p.name} pack at ${p.percent.toFixed(0)} %`, p.percent);
      } else if (p.low && p.percent > this.#o.lowPercent + 5) {
        p.low = false;
      }
    }
    this.#choose();
    const source = this.#source ? this.#packs.get(this.#source) : undefined;
    if (source) {
      bus.emit('battery', { percent: Math.round(source.percent), charging: source.rate > 0 });
      bus.emit('power-status', {
        source: source.name,
        packs: this.packs,
        ...(source.millivolts !== undefined ? { millivolts: source.millivolts } : {}),
      });
    }
  }

  /** Re-opens a failed gauge (the monitor's repair). */
  reinitialise(name: string): boolean {
    const p = this.#packs.get(name.replace(/^gauge:/, '') as PackName);
    if (!p) return false;
    try {
      p.gauge?.close();
    } catch {
      // already failed
    }
    p.gauge = undefined;
    return this.#openGauge(p);
  }

  /**
   * Power-cycles a module through its load switch: off, then on after `offMs`. Calls `done` once it
   * is powered again. False when the board has no switch for it.
   */
  powerCycle(module: ModuleName, offMs: number, done: () => void): boolean {
    const pin = this.#modules.get(module);
    if (!pin) return false;
    pin.write(0);
    this.#o.timers.setTimeout(() => {
      pin.write(1);
      done();
    }, offMs);
    return true;
  }

  /** Switches to `to` without a gap: backup on, new pack on, old pack off, backup off. */
  switchTo(to: PackName, reason: string): void {
    const from = this.#source;
    if (from === to || this.#switching) return;
    const next = this.#packs.get(to);
    if (!next) throw new RangeError(`no ${to} pack`);
    const backup = this.#packs.get('backup');
    const { timers, overlapMs, bus, records } = this.#o;
    this.#switching = true;
    backup?.enable.write(1); // the backup covers the change
    next.enable.write(1); // make…
    const finish = () => {
      for (const p of this.#packs.values()) if (p.name !== to && p.name !== 'backup') p.enable.write(0); // …then break
      if (to !== 'backup') backup?.enable.write(0);
      this.#switching = false;
    };
    if (from === undefined) finish();
    else timers.setTimeout(finish, overlapMs);
    this.#source = to;
    this.switches.push([from ?? 'none', to]);
    bus.emit('power-source', { from: from ?? 'none', to, reason });
    if (from !== undefined) {
      records.tryAppend(() => records.appendOperation('power-source', `${from} to ${to}: ${reason}`));
      this.#event(
        'pack-switched',
        to === 'backup' ? 'warning' : 'info',
        to === 'backup',
        `${from} to ${to}: ${reason}`,
      );
    }
  }

  #choose(): void {
    const { emptyPercent } = this.#o;
    const usable = (p: Pack | undefined) => p !== undefined && p.state === 'ok' && p.percent > emptyPercent;
    const current = this.#source ? this.#packs.get(this.#source) : undefined;
    // Stay on the source while it lasts, unless a preferred pack (a recharged one) is usable again.
    const best = PACK_ORDER.map((n) => this.#packs.get(n)).find((p) => usable(p));
    if (current && usable(current)) {
      if (
        best &&
        PACK_ORDER.indexOf(best.name) < PACK_ORDER.indexOf(current.name) &&
        best.percent > emptyPercent + 10
      )
        this.switchTo(best.name, `${best.name} pack usable again at ${best.percent.toFixed(0)} %`);
      return;
    }
    const target = best ?? this.#packs.get('backup') ?? [...this.#packs.values()][0];
    if (!target || target.name === this.#source) return;
    const why = current ? `${current.name} pack at ${current.percent.toFixed(0)} %` : 'start';
    this.switchTo(target.name, why);
  }

  #replaced(p: Pack, how: string): void {
    const { records } = this.#o;
    p.gauge?.quickStart();
    p.gauge?.clearStatus();
    p.low = false;
    records.tryAppend(() =>
      records.appendMaintenance(MaintenanceCode.BatteryReplaced, `${p.name} pack (${how})`),
    );
    this.#event('battery-replaced', 'info', false, `${p.name} pack (${how})`);
  }

  #openGauge(p: Pack): boolean {
    if (!p.open) return false;
    try {
      p.gauge = p.open();
      p.gauge.configure({ emptyAlert: this.#o.lowPercent, resetAlert: true });
      this.#state(p, 'ok', 'gauge opened');
      return true;
    } catch (error) {
      p.gauge = undefined;
      if (p.state !== 'failed') {
        this.#state(p, 'failed', (error as Error).message);
        this.#o.bus.emit('fault', { unit: `power:gauge:${p.name}`, error });
      }
      return false;
    }
  }

  #state(p: Pack, state: ModuleState, detail: string): void {
    p.state = state;
    this.#o.bus.emit('module-state', { module: `gauge:${p.name}`, state, detail });
  }

  #event(event: string, severity: 'warning' | 'info', active: boolean, detail: string, value?: number): void {
    this.#o.bus.emit(
      'status-event',
      statusEvent(this.#o.clock.now(), event, severity, active, detail, value),
    );
  }
}

// ---- The sleep budget --------------------------------------------------------------------------

/** Supply current of a part in a state, milliamps, with where the figure comes from. */
export interface CurrentFigure {
  part: string;
  state: string;
  milliamps: number;
  source: string;
  /**
   * False where the datasheet table the figure should come from was not found: the figure is a
   * working estimate, and the bench says so beside it.
   */
  fromDatasheet?: boolean;
}

/**
 * Where the A7670E's figures come from: SIMCom's hardware design manual for the series, read in the
 * copy LilyGO ships with its T-A7670 board (Xinyuan-LilyGO/LilyGO-T-A76XX, datasheet/A76XX/).
 */
export const A7670_MANUAL =
  'SIMCom A7670 Series Hardware Design Manual V1.06 (2021-09-22, Chinese edition "A7670系列硬件设计手册")';

/**
 * Typical supply currents of the meter's parts (3.3 V rail), from their datasheets; a figure whose
 * table was not found says so (fromDatasheet false) and is an estimate. These are the inputs of the
 * battery-life projection; change a figure here when a part changes or its table is found.
 */
export const CURRENT_FIGURES = Object.freeze({
  mcuDeepSleep: {
    part: 'ESP32-WROOM-32',
    state: 'deep sleep, RTC timer + memory',
    milliamps: 0.01,
    source: 'ESP32 datasheet v4.x, Table "Power consumption by power modes": 10 µA',
  },
  mcuLightSleep: {
    part: 'ESP32-WROOM-32',
    state: 'light sleep',
    milliamps: 0.8,
    source: 'ESP32 datasheet, same table: 0.8 mA',
  },
  mcuActive: {
    part: 'ESP32-WROOM-32',
    state: 'modem sleep, CPU 80 MHz',
    milliamps: 20,
    source: 'ESP32 datasheet, same table: 20–31 mA at 80 MHz',
  },
  radioTx: {
    part: 'ESP32 Wi-Fi',
    state: 'TX 802.11b, averaged with RX over a session',
    milliamps: 120,
    source: 'ESP32 datasheet, RF power table: TX 240 mA, RX 95–100 mA; 1:3 duty assumed',
  },
  readerOn: {
    part: 'MFRC522',
    state: 'antenna on (continuous wave)',
    milliamps: 73,
    source: 'MFRC522 Rev 3.9 §15 Table 157: ITVDD 60 mA + IDDD 6.5 mA + IDDA 7 mA',
  },
  readerPowerDown: {
    part: 'MFRC522',
    state: 'hard power-down',
    milliamps: 0.005,
    source: 'MFRC522 §15 Table 157: hard power-down 5 µA max',
  },
  display: {
    part: 'HD44780 20×4 LCD + backlight',
    state: 'on',
    milliamps: 21.5,
    source: 'typical module: 1.5 mA controller + 20 mA LED backlight',
  },
  accelerometer: {
    part: 'LIS3DH',
    state: 'normal mode 10 Hz',
    milliamps: 0.006,
    source: 'LIS3DH DocID 17530 §2.1 Table 5/10: 6 µA at 10 Hz (2 µA at 1 Hz)',
  },
  light: {
    part: 'VEML7700',
    state: 'on, 100 ms integration',
    milliamps: 0.045,
    source: 'VEML7700 Rev 1.7: supply current 45 µA (0.5 µA shut down)',
  },
  climate: {
    part: 'SHT31',
    state: 'idle between single shots',
    milliamps: 0.0002,
    source: 'SHT3x-DIS §2.2 Table 4: idle 0.2 µA, 600 µA for ≤15 ms per shot',
  },
  air: {
    part: 'ENS160',
    state: 'standard mode (heaters on)',
    milliamps: 18,
    source:
      'ENS160 datasheet §4: ~32 mW standard mode at 1.8 V (figure to confirm on the bench); deep sleep ~10 µA',
  },
  magnetometer: {
    part: 'QMC5883L',
    state: 'continuous 10 Hz, per bay',
    milliamps: 0.075,
    source: 'QMC5883L Rev 1.0 §2: 75 µA at 10 Hz',
  },
  modemSleep: {
    part: 'SIMCom A7670E',
    state: 'sleep mode (AT+CSCLK=1, DTR high), registered, LTE paging at DRX 0.32 s, no USB',
    milliamps: 2,
    source: `${A7670_MANUAL} §5.4 Table 40 "VBAT current (VBAT=3.8V)": LTE sleep mode @DRX=0.32 s typ. 2 mA (Table 3: sleep < 2.5 mA); a longer DRX the network sets draws less, not tabled`,
  },
  modemIdle: {
    part: 'SIMCom A7670E',
    state: 'idle, registered (LTE, DRX 0.32 s), MQTT session open, no USB',
    milliamps: 23,
    source: `${A7670_MANUAL} §5.4 Table 40: LTE idle mode @DRX=0.32 s typ. 23 mA`,
  },
  modemData: {
    part: 'SIMCom A7670E',
    state: 'LTE Cat-1 data (bring-up, TLS, publish, ack) at 23 dBm',
    milliamps: 600,
    source: `${A7670_MANUAL} §5.4 Table 40, LTE data at 23 dBm (the only power tabled): LTE-FDD B1 typ. 600 mA (5 and 10 MHz), B3 620/600, B5 570/580, B7 540, B8 520, B20 540 mA; an upper bound, since a nearer cell asks for less power`,
  },
  modemOff: {
    part: 'SIMCom A7670E',
    state: 'powered down (PWRKEY or AT+CPOF), VBAT applied',
    milliamps: 0.02,
    source: `${A7670_MANUAL} §3.1 Table 9 "VBAT pin": IVBAT(power-off) max 20 µA`,
  },
  gauge: {
    part: 'MAX17048',
    state: 'hibernate, per pack',
    milliamps: 0.003,
    source: 'MAX17048 Rev 7: 3 µA hibernate (23 µA active)',
  },
} satisfies Record<string, CurrentFigure>);

export interface DailyUse {
  taps: number;
  uploads: number;
  /** Seconds awake (display on, MCU active) per tap: selection, payment, receipt. */
  secondsPerTap?: number;
  /** Seconds the reader's antenna is on per tap (polling for the card). */
  readerSecondsPerTap?: number;
  /** Seconds of radio per upload (connect, publish, ack). */
  secondsPerUpload?: number;
  /** Minutes of air-quality measurement per day (heaters on). */
  airMinutesPerDay?: number;
  bays?: number;
  packs?: number;
  /** The link: Wi-Fi (the radio on only for uploads) or the cellular modem with its duty cycle. */
  radio?: 'wifi' | 'cellular';
  /** Modem wakes per day (RadioDuty: each new record, each status event, the hourly wake); default taps + 24. */
  modemWakes?: number;
  /** Seconds the modem stays connected and idle after its last upload before it sleeps (RadioDuty idleMs). */
  modemIdleSeconds?: number;
}

export interface Projection {
  /** Average current, mA. */
  averageMilliamps: number;
  /** mAh per day by contributor. */
  perDay: Record<string, number>;
  totalPerDay: number;
  /** Days of life on `capacityMah` at `deratePercent` usable. */
  days: (capacityMah: number, deratePercent?: number) => number;
}

/**
 * The modem's day under RadioDuty: each wake spends `upload` seconds at data current (bring-up,
 * TLS, publish, ack) and modemIdleSeconds connected and idle; the rest of the day it sleeps,
 * registered, so a call-in still reaches it.
 */
export function modemPerDay(use: DailyUse, upload: number): Record<string, number> {
  const f = CURRENT_FIGURES;
  const wakes = use.modemWakes ?? use.taps + 24;
  const idle = use.modemIdleSeconds ?? 30;
  const awake = Math.min(86_400, wakes * (upload + idle));
  const mah = (ma: number, seconds: number) => (ma * seconds) / 3600;
  return {
    'modem data (uploads)': mah(f.modemData.milliamps, Math.min(awake, wakes * upload)),
    'modem idle, connected': mah(f.modemIdle.milliamps, awake - Math.min(awake, wakes * upload)),
    'modem asleep, registered': mah(f.modemSleep.milliamps, 86_400 - awake),
  };
}

/** The sleep budget: charge per day from the time each part spends in each state. */
export function projectBatteryLife(use: DailyUse): Projection {
  const f = CURRENT_FIGURES;
  const tap = use.secondsPerTap ?? 20;
  const readerTap = use.readerSecondsPerTap ?? 5;
  const upload = use.secondsPerUpload ?? 15;
  const airMinutes = use.airMinutesPerDay ?? 24; // one minute an hour
  const bays = use.bays ?? 4;
  const packs = use.packs ?? 3;
  const day = 86_400;
  const mah = (ma: number, seconds: number) => (ma * seconds) / 3600;
  const awake = use.taps * tap + use.uploads * upload + airMinutes * 60;
  const perDay: Record<string, number> = {
    'MCU asleep': mah(f.mcuLightSleep.milliamps, Math.max(0, day - awake)),
    'MCU awake': mah(f.mcuActive.milliamps, awake),
    display: mah(f.display.milliamps, use.taps * tap),
    'reader antenna': mah(f.readerOn.milliamps, use.taps * readerTap),
    'reader power-down': mah(f.readerPowerDown.milliamps, day - use.taps * readerTap),
    ...(use.radio === 'cellular'
      ? modemPerDay(use, upload)
      : { radio: mah(f.radioTx.milliamps, use.uploads * upload) }),
    'air quality': mah(f.air.milliamps, airMinutes * 60),
    'bay magnetometers': mah(f.magnetometer.milliamps * bays, day),
    'accelerometer, light, climate': mah(
      f.accelerometer.milliamps + f.light.milliamps + f.climate.milliamps,
      day,
    ),
    'fuel gauges': mah(f.gauge.milliamps * packs, day),
  };
  const totalPerDay = Object.values(perDay).reduce((a, b) => a + b, 0);
  return {
    averageMilliamps: totalPerDay / 24,
    perDay,
    totalPerDay,
    days: (capacityMah, deratePercent = 80) => (capacityMah * deratePercent) / 100 / totalPerDay,
  };
}
