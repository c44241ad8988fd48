// Security & environment (48), seed claim 1b–e: the cover's light sensor, tilt and vibration from
// the accelerometer (its interrupt wakes the meter), temperature and humidity driving the fan with
// hysteresis, air quality, and a magnetometer per bay for occupancy. Samples on the schedule the
// platform sets (downlink 0x84), raises alarms into the operation records and the uplink (0x04),
// plays the alarm through notification (the 'tamper' event), and sends the periodic status report.
import type { Clock, TimerHandle, Timers } from '../../hal/clock';
import type { Digital } from '../../hal/io';
import type { Preferences } from '../../hal/preferences';
import type { SensorParts } from '../../hal/sensors';
import { ENS160, Validity } from '../../drivers/sensors/ens160';
import { Config as AccelConfig, LIS3DH } from '../../drivers/sensors/lis3dh';
import { QMC5883L } from '../../drivers/sensors/qmc5883l';
import { SHT3x } from '../../drivers/sensors/sht3x';
import { VEML7700 } from '../../drivers/sensors/veml7700';
import { fromHex, toHex } from '../../protocol/bytes';
import { ProtocolError } from '../../protocol/errors';
import {
  DEFAULT_SETTINGS,
  decodeSettings,
  encodeSettings,
  encodeStatusMessage,
  type GuardSettings,
  type ModuleState,
  SETTINGS_FRAME,
  STATUS_FRAME,
  type StatusEvent,
  statusEvent,
} from '../../protocol/status';
import type { EventBus } from '../bus';
import type { MeterEvents } from '../events';
import type { Bays } from './bays';
import type { MainRecord } from './records';

/** A sensor's output repeated exactly this many times is a stuck chip (live outputs carry noise). */
export const STUCK_SAMPLES = 6;
const COVER_MS = 1_000;
const UNPAID_AFTER_S = 600;

export class SensorStuckError extends Error {
  override readonly name: string = 'SensorStuckError';
  constructor(sensor: string, what = 'output has not changed') {
    super(`${sensor} ${what} in ${STUCK_SAMPLES} samples`);
  }
}

export class SensorReadError extends Error {
  override readonly name: string = 'SensorReadError';
  constructor(sensor: string, message: string) {
    super(`${sensor}: ${message}`);
  }
}

/**
 * One bay's vehicle detector over its magnetometer: a baseline from the first samples, the
 * deviation from it, arrive/leave each after `debounce` agreeing samples with hysteresis, and the
 * baseline following slow drift (temperature, the earth's field) while the bay is empty.
 */
export class BayDetector {
  readonly #calibrationSamples: number;
  readonly #debounce: number;
  #sum = [0, 0, 0];
  #count = 0;
  baseline: [number, number, number] | undefined;
  occupied = false;
  #agree = 0;
  /** Deviation of the last sample from the baseline, µT. */
  deviation = 0;

  constructor(calibrationSamples = 8, debounce = 3) {
    this.#calibrationSamples = calibrationSamples;
    this.#debounce = debounce;
  }

  /** Starts a new calibration (the bay must be empty). */
  calibrate(): void {
    this.#sum = [0, 0, 0];
    this.#count = 0;
    this.baseline = undefined;
    this.occupied = false;
    this.#agree = 0;
  }

  /** Feeds one sample; returns 'arrived' or 'left' on a debounced change. */
  feed(x: number, y: number, z: number, threshold: number): 'arrived' | 'left' | undefined {
    if (!this.baseline) {
      this.#sum[0] += x;
      this.#sum[1] += y;
      this.#sum[2] += z;
      if (++this.#count >= this.#calibrationSamples)
        this.baseline = [this.#sum[0] / this.#count, this.#sum[1] / this.#count, this.#sum[2] / this.#count];
      return undefined;
    }
    const b = this.baseline;
    const d = Math.hypot(x - b[0], y - b[1], z - b[2]);
    this.deviation = d;
    const changing = this.occupied ? d < threshold / 2 : d > threshold;
    if (!this.occupied && d < threshold / 2) {
      // Drift: an empty bay's field wanders slowly; follow it with a long time constant.
      b[0] += (x - b[0]) / 64;
      b[1] += (y - b[1]) / 64;
      b[2] += (z - b[2]) / 64;
    }
    this.#agree = changing ? this.#agree + 1 : 0;
    if (this.#agree < this.#debounce) return undefined;
    this.#agree = 0;
    this.occupied = !this.occupied;
    return this.occupied ? 'arrived' : 'left';
  }
}

/** A chip that can check itself over two samples (the VEML7700's window flag). */
interface SelfTesting {
  armSelfTest(): void;
  selfTestPassed(): boolean;
}

interface Slot<T> {
  name: string;
  open: () => T;
  driver?: T;
  state: ModuleState;
  last?: string;
  repeats: number;
  /**
   * How a stuck output is told from a steady one: true, live outputs carry noise, so an exact
   * repeat is stuck; 'self-test', a repeat arms the chip's own check (VEML7700 window flag);
   * 'fresh', the chip flags each new result (ENS160 NEWDAT), and none in a row is stuck.
   */
  stuckCheck: boolean | 'self-test' | 'fresh';
  /** A self-test armed at the last sample, checked at this one. */
  armed?: boolean;
}

export interface GuardOptions {
  parts: SensorParts;
  bus: EventBus<MeterEvents>;
  records: MainRecord;
  bays: Bays;
  clock: Clock;
  timers: Timers;
  preferences: Preferences;
  /** Sends an uplink frame outside the record chain; false when the link is down. */
  send: (type: number, body: Uint8Array) => boolean;
  /**
   * Whether paid time in a bay vacated at `at` (epoch seconds) is non-transferable, so the bay's
   * session ends: the tariff's flag for that bay and time, or the meter's configured override.
   */
  nonTransferable?: (bayId: number, at: number) => boolean;
  /** Wakes the meter from sleep (key input's wake). */
  wake?: (reason: string) => void;
  /** Blocks for `ms` (drivers that need a settling time on the device). */
  delay?: (ms: number) => void;
}

/** What the guard last measured, for the status report and tests. */
export interface GuardReadings {
  lux?: number;
  coverOpen: boolean;
  tilt?: number;
  temperature?: number;
  humidity?: number;
  aqi?: number;
  tvoc?: number;
  eco2?: number;
  fan: boolean;
}

export class GuardUnit {
  readonly #o: GuardOptions;
  #settings: GuardSettings;
  readonly readings: GuardReadings = { coverOpen: false, fan: false };
  readonly #cover: Slot<VEML7700>;
  readonly #motion: Slot<LIS3DH>;
  readonly #climate: Slot<SHT3x>;
  readonly #air: Slot<ENS160>;
  readonly #bays: Slot<QMC5883L>[];
  readonly detectors: BayDetector[];
  readonly #occupiedSince = new Map<number, number>();
  readonly #unpaidTimers = new Map<number, TimerHandle>();
  readonly #alarms = new Set<string>();
  #fan: Digital | undefined;
  #upright: [number, number, number] | undefined;
  #timers: TimerHandle[] = [];
  #power: MeterEvents['power-status'] | undefined;
  readonly #modules = new Map<string, ModuleState>();
  #started = false;

  constructor(options: GuardOptions) {
    this.#o = options;
    const { parts, bus } = options;
    this.#settings = this.#savedSettings();
    const slot = <T>(
      name: string,
      open: (() => T) | undefined,
      stuckCheck: Slot<T>['stuckCheck'],
    ): Slot<T> => ({
      name,
      open: open ?? (() => undefined as T),
      state: open ? 'degraded' : 'absent',
      repeats: 0,
      stuckCheck,
    });
    const onError = (name: string) => (message: string) => {
      throw new SensorReadError(name, message);
    };
    const { cover, motion, climate, air } = parts;
    this.#cover = slot(
      'cover',
      cover && (() => new VEML7700({ sensor: cover, onError: onError('cover') })),
      'self-test',
    );
    this.#motion = slot(
      'motion',
      motion &&
        (() =>
          new LIS3DH({
            sensor: motion.sensor,
            alert: motion.alert,
            onAlert: () => this.#onMotionAlert(),
            onError: onError('motion'),
          })),
      true,
    );
    this.#climate = slot(
      'climate',
      climate && (() => new SHT3x({ sensor: climate, onError: onError('climate'), delay: options.delay })),
      true,
    );
    this.#air = slot('air', air && (() => new ENS160({ sensor: air, onError: onError('air') })), 'fresh');
    this.#bays = options.bays.ids.map((id, i) => {
      const part = parts.bays?.[i];
      return slot(
        `bay${id}`,
        part && (() => new QMC5883L({ sensor: part, onError: onError(`bay${id}`) })),
        true,
      );
    });
    this.detectors = this.#bays.map(() => new BayDetector());
    const fanError = this.#openFan();
    // The meter runs without forced cooling; the monitor hears of it and calls reinitialise('fan').
    if (fanError) bus.emit('fault', { unit: 'sensor:fan', error: fanError });

    bus.on('downlink', (d) => {
      if (d.type === SETTINGS_FRAME) this.#applySettings(d.body);
    });
    bus.on('power-status', (p) => {
      this.#power = p;
    });
    bus.on('module-state', (m) => {
      this.#modules.set(m.module, m.state);
    });
    bus.on('bay-overtime', ({ bayId }) => {
      if (this.#occupiedSince.has(bayId)) this.#unpaid(bayId);
    });
    bus.on('payment-accepted', ({ bayId }) => this.#clearUnpaid(bayId));
    bus.on('renewal-applied', ({ bayId }) => this.#clearUnpaid(bayId));
  }

  get settings(): GuardSettings {
    return this.#settings;
  }

  /** Module state of every sensor, by name. */
  get sensorStates(): Record<string, ModuleState> {
    const out: Record<string, ModuleState> = {};
    for (const s of this.#slots()) out[s.name] = s.state;
    return out;
  }

  /** Bays with a vehicle now. */
  get occupied(): number[] {
    return [...this.#occupiedSince.keys()];
  }

  /** Opens every fitted sensor and starts the schedules. */
  start(): void {
    if (this.#started) return;
    this.#started = true;
    for (const s of this.#slots()) if (s.state !== 'absent') this.#openSlot(s);
    this.#schedule();
  }

  /**
   * The status report interval from the operating parameters (0x89), over the one in the guard's
   * settings; the schedule restarts with it when the guard is running.
   */
  setStatusInterval(seconds: number): void {
    this.#settings = { ...this.#settings, statusSeconds: seconds };
    if (this.#started) this.#schedule();
  }

  stop(): void {
    this.#started = false;
    for (const t of this.#timers) this.#o.timers.clear(t);
    this.#timers = [];
    for (const t of this.#unpaidTimers.values()) this.#o.timers.clear(t);
    this.#unpaidTimers.clear();
    for (const s of this.#slots()) this.#closeSlot(s);
    this.#fan?.close();
    this.#fan = undefined;
  }

  /** Closes every sensor before their supply is switched off (a power cycle); reinitialise('sensors') reopens. */
  suspend(): void {
    for (const s of this.#slots()) {
      if (s.state === 'absent') continue;
      this.#closeSlot(s);
      this.#setState(s, 'repairing', 'power cycle');
    }
  }

  /**
   * The repair hook for the monitoring engine: closes and re-opens a sensor's driver (after a
   * power cycle too). True when it answers again.
   */
  reinitialise(name: string): boolean {
    if (name === 'fan') return this.#openFan() === undefined;
    const targets =
      name === 'sensors'
        ? this.#slots().filter((s) => s.state !== 'absent')
        : this.#slots().filter((s) => s.name === name);
    let ok = targets.length > 0;
    for (const s of targets) {
      this.#closeSlot(s);
      if (!this.#openSlot(s)) ok = false;
    }
    return ok;
  }

  /** One round of the environment and security sensors (the sampling schedule calls it). */
  sampleEnvironment(): void {
    const t = this.#settings.thresholds;
    const motion = this.#read(this.#motion, (d) => {
      const a = d.sample().accelerometer;
      return { key: `${a.x},${a.y},${a.z}`, value: a };
    });
    if (motion) {
      const v: [number, number, number] = [motion.x, motion.y, motion.z];
      this.#upright ??= v;
      const u = this.#upright;
      const cos = (v[0] * u[0] + v[1] * u[1] + v[2] * u[2]) / (Math.hypot(...v) * Math.hypot(...u) || 1);
      const tilt = (Math.acos(Math.max(-1, Math.min(1, cos))) * 180) / Math.PI;
      this.readings.tilt = tilt;
      this.#alarm('tilt', tilt > t.tiltDegrees, tilt, 'security');
    }
    const climate = this.#read(this.#climate, (d) => {
      const s = d.sample();
      return { key: `${s.thermometer.temperature},${s.hygrometer.humidity}`, value: s };
    });
    if (climate) {
      const temperature = climate.thermometer.temperature;
      const humidity = climate.hygrometer.humidity;
      if (temperature !== undefined) {
        this.readings.temperature = temperature;
        this.#alarm('over-temperature', temperature > t.temperatureHigh, temperature, 'environment');
        this.#fanControl(temperature);
      }
      if (humidity !== undefined) {
        this.readings.humidity = humidity;
        this.#alarm('humidity', humidity > t.humidityHigh, humidity, 'environment');
      }
      if (temperature !== undefined && humidity !== undefined && this.#air.driver) {
        const air = this.#air.driver;
        this.#guarded(this.#air, () => air.configure({ compensation: { temperature, humidity } }));
      }
    }
    const air = this.#read(this.#air, (d) => {
      const s = d.sample().airQuality;
      return { key: `${s.aqi},${s.tvoc},${s.eco2}`, value: s, fresh: s.fresh };
    });
    if (air && air.validity === Validity.NORMAL) {
      Object.assign(this.readings, { aqi: air.aqi, tvoc: air.tvoc, eco2: air.eco2 });
      this.#alarm('air-quality', air.aqi >= t.aqi, air.aqi, 'environment');
    }
  }

  /** The cover sensor: an edge from dark to light is 'cover-opened' (security management answers it). */
  sampleCover(): void {
    const reading = this.#read(this.#cover, (d) => {
      const s = d.sample().lightmeter;
      return { key: String(s.counts), value: s.illuminance };
    });
    if (reading === undefined) return;
    this.readings.lux = reading;
    const open = reading > this.#settings.thresholds.coverLux;
    if (open === this.readings.coverOpen) return;
    this.readings.coverOpen = open;
    const at = this.#o.clock.monotonic();
    // The tamper response (security management) listens for this edge first; the records and uplink follow.
    this.#o.bus.emit(open ? 'cover-opened' : 'cover-closed', { at });
    this.#event(
      open ? 'cover-opened' : 'cover-closed',
      open ? 'alarm' : 'info',
      open,
      `cover sensor ${reading.toFixed(1)} lx`,
      reading,
    );
  }

  /** One round of the bay magnetometers. */
  sampleBays(): void {
    const threshold = this.#settings.thresholds.vehicleMicroTesla;
    this.#bays.forEach((slot, i) => {
      const field = this.#read(slot, (d) => {
        const m = d.sample().magnetometer;
        return { key: `${m.x},${m.y},${m.z}`, value: m };
      });
      if (!field) return;
      const change = this.detectors[i].feed(field.x, field.y, field.z, threshold);
      if (change) this.#bayChanged(this.#o.bays.ids[i], change === 'arrived');
    });
  }

  /** Re-learns a bay's empty-field baseline (maintenance, or a downlink). */
  calibrateBay(bayId: number): void {
    const i = this.#o.bays.ids.indexOf(bayId);
    if (i >= 0) this.detectors[i].calibrate();
  }

  /** Sends the status report now (the schedule calls it every statusSeconds). */
  sendStatus(): boolean {
    const { clock, bays } = this.#o;
    const now = Math.floor(clock.now() / 1000);
    const r = this.readings;
    const sensors: Record<string, number> = {};
    const put = (k: string, v: number | undefined) => {
      if (v !== undefined && Number.isFinite(v)) sensors[k] = v;
    };
    put('temperature', r.temperature);
    put('humidity', r.humidity);
    put('lux', r.lux);
    put('tilt', r.tilt);
    put('aqi', r.aqi);
    put('tvoc', r.tvoc);
    put('eco2', r.eco2);
    const modules: Record<string, ModuleState> = { ...Object.fromEntries(this.#modules) };
    for (const s of this.#slots()) if (s.state !== 'absent') modules[`sensor:${s.name}`] = s.state;
    const faults = Object.entries(modules)
      .filter(([, state]) => state === 'failed' || state === 'repairing')
      .map(([name]) => name);
    const body = encodeStatusMessage({
      kind: 'status',
      at: now,
      battery: {
        source: this.#power?.source ?? 'unknown',
        packs: Object.fromEntries(
          Object.entries(this.#power?.packs ?? {}).map(([k, v]) => [k, Math.round(v)]),
        ),
        ...(this.#power?.millivolts !== undefined ? { millivolts: this.#power.millivolts } : {}),
      },
      sensors,
      modules,
      faults,
      bays: bays.ids.map((bayId) => ({
        bayId,
        occupied: this.#occupiedSince.has(bayId),
        since: this.#occupiedSince.get(bayId) ?? 0,
        paid: bays.paidUntil(bayId) > now,
      })),
      fan: r.fan,
      settings: this.#settings.version,
    });
    return this.#o.send(STATUS_FRAME, body);
  }

  // ---- internals ----

  #slots(): Slot<unknown>[] {
    return [this.#cover, this.#motion, this.#climate, this.#air, ...this.#bays] as Slot<unknown>[];
  }

  #schedule(): void {
    const { timers } = this.#o;
    for (const t of this.#timers) timers.clear(t);
    const s = this.#settings;
    this.#timers = [
      timers.setInterval(() => this.sampleCover(), COVER_MS),
      timers.setInterval(() => this.sampleEnvironment(), s.sampleSeconds * 1000),
      timers.setInterval(() => this.sampleBays(), s.baySeconds * 1000),
      timers.setInterval(() => this.sendStatus(), s.statusSeconds * 1000),
    ];
  }

  /** Opens the fan's output (off) when fitted and not open; the error when it cannot be. */
  #openFan(): unknown {
    const fan = this.#o.parts.fan;
    if (!fan || this.#fan) return undefined;
    try {
      const pin = new fan.io({ pin: fan.pin, mode: 'output' });
      pin.write(0);
      this.#fan = pin;
    } catch (error) {
      return error;
    }
    return undefined;
  }

  #openSlot<T>(s: Slot<T>): boolean {
    try {
      s.driver = s.open();
      s.last = undefined;
      s.repeats = 0;
      s.armed = false;
      if (s === (this.#motion as Slot<unknown>)) this.#configureMotion();
      this.#setState(s, 'ok', 'opened');
      return true;
    } catch (error) {
      s.driver = undefined;
      this.#fail(s, error);
      return false;
    }
  }

  #closeSlot<T>(s: Slot<T>): void {
    const driver = s.driver as { close(): void } | undefined;
    s.driver = undefined;
    try {
      driver?.close();
    } catch {
      // closing a failed chip must not stop the repair
    }
  }

  #configureMotion(): void {
    const d = this.#motion.driver;
    if (!d) return;
    const g = this.#settings.thresholds.vibrationG;
    d.configure({
      rate: AccelConfig.DataRate.HZ_10,
      range: g > 1.9 ? AccelConfig.Range.RANGE_8_G : AccelConfig.Range.RANGE_2_G,
      alert: { threshold: g, duration: 0 },
    });
  }

  /** Reads a sensor; a failure or a stuck output marks it failed and reports a fault. */
  #read<T, V>(s: Slot<T>, sample: (driver: T) => { key: string; value: V; fresh?: boolean }): V | undefined {
    const driver = s.driver;
    if (!driver || s.state === 'failed') return undefined;
    try {
      const { key, value, fresh } = sample(driver);
      if (s.stuckCheck === 'fresh') {
        s.repeats = fresh === false ? s.repeats + 1 : 0;
        if (s.repeats >= STUCK_SAMPLES) throw new SensorStuckError(s.name, 'has had no new data');
      } else if (s.stuckCheck === 'self-test') {
        const chip = driver as unknown as SelfTesting;
        if (s.armed) {
          s.armed = false;
          if (!chip.selfTestPassed())
            throw new SensorStuckError(s.name, 'failed its self-test after equal output');
          s.repeats = 0; // steady, not stuck: count again
        } else {
          s.repeats = key === s.last ? s.repeats + 1 : 0;
          if (s.repeats >= STUCK_SAMPLES - 1) {
            chip.armSelfTest();
            s.armed = true;
          }
        }
        s.last = key;
      } else if (s.stuckCheck) {
        s.repeats = key === s.last ? s.repeats + 1 : 0;
        s.last = key;
        if (s.repeats >= STUCK_SAMPLES - 1) throw new SensorStuckError(s.name);
      }
      return value;
    } catch (error) {
      this.#fail(s, error);
      return undefined;
    }
  }

  #guarded<T>(s: Slot<T>, action: () => void): void {
    try {
      action();
    } catch (error) {
      this.#fail(s, error);
    }
  }

  #fail<T>(s: Slot<T>, error: unknown): void {
    const wasFailed = s.state === 'failed';
    this.#setState(s, 'failed', (error as Error)?.message ?? String(error));
    if (!wasFailed) this.#o.bus.emit('fault', { unit: `sensor:${s.name}`, error });
  }

  #setState<T>(s: Slot<T>, state: ModuleState, detail: string): void {
    if (s.state === state) return;
    s.state = state;
    this.#o.bus.emit('module-state', { module: `sensor:${s.name}`, state, detail });
  }

  #onMotionAlert(): void {
    const d = this.#motion.driver;
    if (!d) return;
    let source = 0;
    try {
      const status = d.status(); // reading INT1_SRC releases the latched line
      if (!status.active) return; // an edge without IA (a chip reset) is not a knock
      source = status.source;
    } catch (error) {
      this.#fail(this.#motion, error);
      return;
    }
    this.#o.wake?.('motion');
    const g = this.#settings.thresholds.vibrationG;
    this.#alarm('vibration', true, g, 'security', `INT1_SRC 0x${source.toString(16)}`);
    // A knock is momentary: the alarm clears at the next sample round.
    this.#alarms.delete('vibration');
  }

  /** Raises or clears an alarm: record, bus event, uplink, and the alarm sound for security ones. */
  #alarm(
    kind: string,
    active: boolean,
    value: number,
    family: 'security' | 'environment',
    note?: string,
  ): void {
    if (active === this.#alarms.has(kind)) return;
    if (active) this.#alarms.add(kind);
    else this.#alarms.delete(kind);
    const { bus, records, clock } = this.#o;
    bus.emit('guard-alarm', { kind, active, value, at: clock.monotonic() });
    if (active && family === 'security') bus.emit('tamper', { source: kind });
    const detail = `${kind} ${active ? 'raised' : 'cleared'}: ${value.toFixed(1)}${note ? ` (${note})` : ''}`;
    records.tryAppend(() =>
      records.appendOperation(`${family}-${kind}`, detail, null, { quantity: Math.round(value * 10) }),
    );
    this.#event(kind, active ? (family === 'security' ? 'alarm' : 'warning') : 'info', active, detail, value);
  }

  #fanControl(temperature: number): void {
    const t = this.#settings.thresholds;
    const on = this.readings.fan ? temperature > t.fanOff : temperature > t.fanOn;
    if (on === this.readings.fan) return;
    this.readings.fan = on;
    this.#fan?.write(on ? 1 : 0);
    this.#o.bus.emit('fan', { on, temperature });
  }

  #bayChanged(bayId: number, occupied: boolean): void {
    const { bus, bays, clock, records } = this.#o;
    const now = Math.floor(clock.now() / 1000);
    const paidUntil = bays.paidUntil(bayId);
    const paid = paidUntil > now;
    bus.emit('bay-occupancy', { bayId, occupied, paid, at: now });
    if (occupied) {
      this.#occupiedSince.set(bayId, now);
      this.#event(
        'bay-arrived',
        'info',
        true,
        `vehicle in bay ${bayId}${paid ? ' (paid)' : ''}`,
        undefined,
        bayId,
      );
      if (!paid) {
        this.#clearUnpaid(bayId);
        this.#unpaidTimers.set(
          bayId,
          this.#o.timers.setTimeout(() => {
            this.#unpaidTimers.delete(bayId);
            if (this.#occupiedSince.has(bayId) && bays.paidUntil(bayId) <= Math.floor(clock.now() / 1000))
              this.#unpaid(bayId);
          }, UNPAID_AFTER_S * 1000),
        );
      }
      return;
    }
    this.#occupiedSince.delete(bayId);
    this.#clearUnpaid(bayId);
    this.#event('bay-left', 'info', false, `bay ${bayId} vacated`, undefined, bayId);
    if (paid && this.#o.nonTransferable?.(bayId, now)) {
      bays.setPaidUntil(bayId, now);
      records.tryAppend(() =>
        records.appendOperation(
          'session-ended-early',
          `bay ${bayId} vacated ${paidUntil - now} s before its paid time; time is non-transferable`,
          null,
          { period: { from: now, to: paidUntil }, quantity: paidUntil - now },
        ),
      );
      bus.emit('bay-session-ended', { bayId, at: now, paidUntil, reason: 'vacated' });
      this.#event(
        'bay-session-ended',
        'info',
        false,
        `session ended early, ${paidUntil - now} s unused`,
        paidUntil - now,
        bayId,
      );
    }
  }

  #unpaid(bayId: number): void {
    const since = this.#occupiedSince.get(bayId) ?? Math.floor(this.#o.clock.now() / 1000);
    const { records, bus } = this.#o;
    bus.emit('bay-unpaid', { bayId, since });
    records.tryAppend(() =>
      records.appendOperation('bay-unpaid', `vehicle in bay ${bayId} since ${since} without a paid session`),
    );
    this.#event(
      'bay-unpaid',
      'warning',
      true,
      `occupied since ${since} without a paid session`,
      undefined,
      bayId,
    );
  }

  #clearUnpaid(bayId: number): void {
    this.#o.timers.clear(this.#unpaidTimers.get(bayId));
    this.#unpaidTimers.delete(bayId);
  }

  #event(
    event: string,
    severity: StatusEvent['severity'],
    active: boolean,
    detail: string,
    value?: number,
    bayId?: number,
  ): void {
    // The meter's status channel (monitor.ts) sends it, or keeps it while the link is down.
    this.#o.bus.emit(
      'status-event',
      statusEvent(this.#o.clock.now(), event, severity, active, detail, value, bayId),
    );
  }

  #applySettings(body: Uint8Array): void {
    let settings: GuardSettings;
    try {
      settings = decodeSettings(body);
    } catch (error) {
      const reason = error instanceof ProtocolError ? error.message : String(error);
      this.#event('settings-refused', 'warning', false, reason.slice(0, 200));
      this.#o.bus.emit('fault', { unit: 'guard', error });
      return;
    }
    if (settings.version <= this.#settings.version && this.#settings.version !== 0) {
      this.#event(
        'settings-applied',
        'info',
        false,
        `version ${settings.version} not newer than ${this.#settings.version}`,
        this.#settings.version,
      );
      return;
    }
    this.#settings = settings;
    this.#o.preferences.set('guard', 'settings', toHex(encodeSettings(settings)));
    this.#o.records.tryAppend(() =>
      this.#o.records.appendOperation(
        'guard-settings',
        `settings version ${settings.version} applied`,
        null,
        { quantity: settings.version },
      ),
    );
    if (this.#started) {
      this.#configureMotion();
      this.#schedule();
    }
    this.#event('settings-applied', 'info', false, `version ${settings.version}`, settings.version);
  }

  #savedSettings(): GuardSettings {
    const saved = this.#o.preferences.get('guard', 'settings');
    if (typeof saved !== 'string') return DEFAULT_SETTINGS;
    try {
      return decodeSettings(fromHex(saved));
    } catch {
      return DEFAULT_SETTINGS;
    }
  }
}
