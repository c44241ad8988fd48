// Monitoring engine (413), seed claim 14: the state of every module (reader, sensors, radio,
// storage, power, secure parts, display, BLE), a fault log kept as operation records, automatic
// repair — re-initialise the driver, power-cycle the module through its load switch, fall back to
// the other radio path — and escalation to the platform of what it could not repair; a failed
// module is tried again every few minutes and is back in service once it answers. It feeds the
// hardware watchdog only while the firmware is alive, so a hung firmware is restarted; the restart
// is recorded at boot. The status channel carries its events (and the guard's) to the platform.
import type { Clock, TimerHandle, Timers } from '../../hal/clock';
import type { BrokerEndpoint, MqttEvents, MqttLink } from '../../hal/mqtt';
import type { ModuleName } from '../../hal/sensors';
import type { Watchdog } from '../../hal/watchdog';
import { MaintenanceCode, OperationCode } from '../../protocol/records';
import {
  encodeStatusMessage,
  type ModuleState,
  STATUS_FRAME,
  type StatusEvent,
  statusEvent,
} from '../../protocol/status';
import type { EventBus } from '../bus';
import type { MeterEvents } from '../events';
import type { MainRecord } from './records';

/**
 * The modules watched. Besides the seed's five: `secure` (the secure element and the SAM: keys and
 * card authentication), `display` and `ble` (the maintenance handheld's link).
 */
export type MonitoredModule =
  | 'reader'
  | 'sensors'
  | 'radio'
  | 'storage'
  | 'power'
  | 'secure'
  | 'display'
  | 'ble';
export const MODULES: readonly MonitoredModule[] = Object.freeze([
  'reader',
  'sensors',
  'radio',
  'storage',
  'power',
  'secure',
  'display',
  'ble',
]);

/** More repairs than this in an hour and a part is escalated instead of repaired again. */
const MAX_REPAIRS_PER_HOUR = 3;
const HOUR_MS = 3_600_000;
/** Modules with a load switch the power unit can cycle. */
const SWITCHED: readonly MonitoredModule[] = Object.freeze(['reader', 'radio', 'sensors']);

/**
 * An MqttLink over two or more radio paths (e.g. the cellular modem, then the Zigbee relay): the
 * units talk to it as to one link; the monitor moves it to the next path when the active one is
 * dead. The first path is the preferred one: it stays open while another carries the traffic (its
 * link keeps reconnecting, as links do), and the moment it connects again the traffic comes back to
 * it and the fallback is closed. Only the active path's messages reach the units.
 */
export class FailoverLink implements MqttLink {
  readonly paths: readonly { name: string; link: MqttLink }[];
  #active = 0;
  /** The path traffic returns to whenever it connects (operating parameter preferredLink). */
  #preferred = 0;
  #events: MqttEvents | undefined;
  readonly #topics = new Set<string>();
  readonly #open = new Set<number>();
  /** Told each time the active path changes (the monitor records it). */
  onSwitch: ((path: string, reason: 'failover' | 'recovered') => void) | undefined;

  constructor(paths: readonly { name: string; link: MqttLink }[]) {
    if (paths.length === 0) throw new RangeError('a failover link needs a path');
    this.paths = paths;
  }

  get active(): string {
    return this.paths[this.#active].name;
  }

  /** The name of the preferred path. */
  get preferred(): string {
    return this.paths[this.#preferred].name;
  }

  get connected(): boolean {
    return this.paths[this.#active].link.connected;
  }

  /** The broker endpoint of the first path that chooses one (a relay path does not), active or not. */
  get endpoint(): BrokerEndpoint | undefined {
    return this.paths.find((p) => p.link.endpoint !== undefined)?.link.endpoint;
  }

  /** Connected through a path that chooses its broker (not while a relay path carries the traffic). */
  get endpointConnected(): boolean {
    const active = this.paths[this.#active].link;
    return active.endpoint !== undefined && active.connected;
  }

  /** Moves every path that chooses its broker to `endpoint` (a relay path goes through its master). */
  setEndpoint(endpoint: BrokerEndpoint): void {
    for (const p of this.paths) p.link.setEndpoint?.(endpoint);
  }

  /** Opens the active path (its failure to open is thrown) and, when it is not the preferred one, that one. */
  open(events: MqttEvents): void {
    this.#events = events;
    this.#openPath(this.#active);
    this.#openPreferred();
  }

  /**
   * Makes path `index` the preferred one (operating parameter preferredLink): opened if it is not,
   * and given the traffic as soon as it is connected; until then the active path keeps it, so a
   * preferred path that never connects strands nothing. False when there is no such path.
   */
  prefer(index: number): boolean {
    if (!Number.isInteger(index) || index < 0 || index >= this.paths.length) return false;
    if (index === this.#preferred) return true;
    this.#preferred = index;
    if (!this.#events || index === this.#active) return true;
    if (this.#open.has(index) && this.paths[index].link.connected) this.#switchTo(index, 'recovered');
    else this.#openPreferred();
    return true;
  }

  subscribe(topic: string): void {
    this.#topics.add(topic);
    this.paths[this.#active].link.subscribe(topic);
  }

  publish(topic: string, payload: Uint8Array): boolean {
    return this.paths[this.#active].link.publish(topic, payload);
  }

  close(): void {
    this.#events = undefined;
    for (const index of this.#open) this.paths[index].link.close();
    this.#open.clear();
  }

  power(on: boolean): void {
    for (const index of this.#open) this.paths[index].link.power?.(on);
  }

  /** Moves to the next path; false when there is only one. */
  failover(): boolean {
    if (this.paths.length < 2) return false;
    this.#switchTo((this.#active + 1) % this.paths.length, 'failover');
    return true;
  }

  #openPreferred(): void {
    if (this.#active === this.#preferred || !this.#events) return;
    try {
      this.#openPath(this.#preferred);
    } catch {
      // the preferred path is tried again on the next open; the active one carries the traffic
    }
  }

  #switchTo(index: number, reason: 'failover' | 'recovered'): void {
    const old = this.#active;
    this.#active = index;
    // The preferred path stays open to be noticed when it comes back; another path left is closed.
    if (old !== this.#preferred && this.#open.delete(old)) this.paths[old].link.close();
    if (this.#events) {
      if (this.#open.has(index) && this.paths[index].link.connected) this.#connected(index);
      else {
        try {
          this.#openPath(index);
        } catch {
          // a path that does not open stays down: the monitor's ladder goes on to escalate
        }
      }
    }
    this.onSwitch?.(this.paths[index].name, reason);
  }

  #openPath(index: number): void {
    if (this.#open.has(index)) return;
    this.#open.add(index);
    try {
      this.paths[index].link.open(this.#forward(index));
    } catch (error) {
      this.#open.delete(index);
      throw error;
    }
  }

  #connected(index: number): void {
    for (const topic of this.#topics) this.paths[index].link.subscribe(topic);
    this.#events?.onConnect();
  }

  #forward(index: number): MqttEvents {
    return {
      onConnect: () => {
        if (index === this.#preferred && this.#active !== index) {
          this.#switchTo(index, 'recovered'); // the preferred path is back: traffic returns to it
          return;
        }
        if (index === this.#active) this.#connected(index);
      },
      onDisconnect: () => {
        if (index === this.#active) this.#events?.onDisconnect();
      },
      onMessage: (topic, payload) => {
        if (index === this.#active) this.#events?.onMessage(topic, payload);
      },
    };
  }
}

/** Events kept for the platform while the uplink cannot take them: the newest this many. */
const OUTBOX = 16;

/**
 * The meter's status events (uplink 0x04) on their way to the platform: every 'status-event' on the
 * bus (the monitor's faults, repairs and escalations, the guard's alarms) is sent at once, or kept
 * (the newest 16) while the link is down or the keys are not loaded, and sent on the next event or
 * the next `flushMs` tick. It runs on every meter, with or without the guard's sensors.
 */
export class StatusChannel {
  readonly #send: (type: number, body: Uint8Array) => boolean;
  readonly #timers: Timers;
  readonly #flushMs: number;
  readonly #outbox: Uint8Array[] = [];
  #timer: TimerHandle | undefined;

  constructor(options: {
    bus: EventBus<MeterEvents>;
    send: (type: number, body: Uint8Array) => boolean;
    timers: Timers;
    /** How often kept events are tried again, ms (default 60 s). */
    flushMs?: number;
  }) {
    this.#send = options.send;
    this.#timers = options.timers;
    this.#flushMs = options.flushMs ?? 60_000;
    options.bus.on('status-event', (e) => this.post(e));
  }

  /** Events waiting for the link. */
  get pending(): number {
    return this.#outbox.length;
  }

  start(): void {
    this.#timers.clear(this.#timer);
    this.#timer = this.#timers.setInterval(() => this.flush(), this.#flushMs);
  }

  stop(): void {
    this.#timers.clear(this.#timer);
    this.#timer = undefined;
  }

  /** Sends an event now, or keeps it for the next chance. */
  post(e: StatusEvent): void {
    const body = encodeStatusMessage({ ...e, detail: e.detail.slice(0, 200) });
    this.flush();
    if (this.#outbox.length === 0 && this.#send(STATUS_FRAME, body)) return;
    this.#outbox.push(body);
    if (this.#outbox.length > OUTBOX) this.#outbox.shift();
  }

  flush(): void {
    while (this.#outbox.length > 0 && this.#send(STATUS_FRAME, this.#outbox[0])) this.#outbox.shift();
  }
}

export interface MonitorOptions {
  bus: EventBus<MeterEvents>;
  records: MainRecord;
  clock: Clock;
  timers: Timers;
  /** Modules the board does not have (no secure parts, no sensors…): reported 'absent'. */
  absent?: readonly MonitoredModule[];
  /** Repair hooks by module: re-open a driver by part name (true when it answers again). */
  reinitialise?: Partial<Record<MonitoredModule, (part: string) => boolean>>;
  /** Health checks by module, run each check while the module is ok: an error is a fault to repair. */
  selfTest?: Partial<Record<MonitoredModule, () => Error | undefined>>;
  /** Power-cycles a module through its load switch (the power unit's). */
  powerCycle?: (module: ModuleName, offMs: number, done: () => void) => boolean;
  /** The radio, watched for being down; a FailoverLink can change path. */
  radio?: MqttLink;
  watchdog?: Watchdog;
  /** Watchdog timeout, ms (default 60 s); fed every `checkMs`. */
  watchdogMs?: number;
  /** Period of the health check, ms (default 10 s). */
  checkMs?: number;
  /** How long the radio may stay down before it is a fault, ms (default 10 min). */
  radioDownMs?: number;
  /** Off time of a power cycle, ms. */
  powerCycleMs?: number;
  /**
   * How often a failed module is tried again, ms (default 5 min): re-initialised, power-cycled
   * and re-initialised, quietly; it is back in service, with a repair record, once it answers.
   */
  retryMs?: number;
}

interface ModuleStatus {
  state: ModuleState;
  detail: string;
  since: number;
  /** The part that failed, and when to try it again (failed modules only). */
  part?: string;
  retryAt?: number;
  /** Wall time (epoch s) the module was given up on: out of service until it answers again. */
  outOfServiceSince?: number;
}

export class MonitorUnit {
  readonly #o: Required<
    Omit<MonitorOptions, 'reinitialise' | 'selfTest' | 'powerCycle' | 'radio' | 'watchdog' | 'absent'>
  > &
    Pick<MonitorOptions, 'reinitialise' | 'selfTest' | 'powerCycle' | 'radio' | 'watchdog'>;
  readonly #modules = new Map<MonitoredModule, ModuleStatus>();
  readonly #probes = new Map<string, () => boolean>();
  /** Repair times per module/part, for the hourly limit. */
  readonly #repairs = new Map<string, number[]>();
  /** Modules with a repair or a retry under way (a power cycle may be pending). */
  readonly #busy = new Set<MonitoredModule>();
  /** The part each repair under way is for. */
  readonly #repairing = new Map<MonitoredModule, string>();
  #timer: TimerHandle | undefined;
  #radioDownSince: number | undefined;
  #radioStep = 0;
  /** Faults logged since boot, newest last (also in the records). */
  readonly faultLog: { at: number; module: MonitoredModule; part: string; detail: string }[] = [];

  constructor(options: MonitorOptions) {
    this.#o = {
      watchdogMs: 60_000,
      checkMs: 10_000,
      radioDownMs: 600_000,
      powerCycleMs: 500,
      retryMs: 300_000,
      ...options,
    };
    for (const m of MODULES)
      this.#modules.set(m, { state: options.absent?.includes(m) ? 'absent' : 'ok', detail: '', since: 0 });
    const radio = options.radio;
    if (radio instanceof FailoverLink) {
      radio.onSwitch = (path, reason) => {
        if (reason !== 'recovered') return; // a failover is this engine's own step, recorded there
        this.#radioDownSince = undefined;
        this.#radioStep = 0;
        this.#repaired('radio', 'radio', `back on the ${path} path`);
      };
    }
    options.bus.on('fault', (f) => this.#onFault(f.unit, f.error));
    options.bus.on('module-state', (m) => {
      // A part reported back in service (a sensor that answers again) clears its module.
      const module = moduleOf(m.module);
      const status = module && this.#modules.get(module);
      if (module && this.#busy.has(module)) return; // the repair under way decides
      if (module && status && m.state === 'ok' && status.state === 'failed' && module !== 'radio')
        this.#set(module, 'ok', m.detail);
    });
  }

  /** Each module's state. */
  get states(): Record<MonitoredModule, ModuleState> {
    const out = {} as Record<MonitoredModule, ModuleState>;
    for (const [m, s] of this.#modules) out[m] = s.state;
    return out;
  }

  /** A liveness probe: while any returns false the watchdog is not fed (a hung unit restarts the meter). */
  addProbe(name: string, alive: () => boolean): void {
    this.#probes.set(name, alive);
  }

  /** Records a watchdog restart found at boot, arms the watchdog and starts the health checks. */
  start(): void {
    const { watchdog, records, timers, checkMs, watchdogMs } = this.#o;
    if (watchdog?.lastReset === 'watchdog') {
      records.tryAppend(() =>
        records.appendOperation(
          'watchdog-restart',
          'abnormal restart: the watchdog restarted a hung firmware',
        ),
      );
      this.#event('watchdog-restart', 'fault', false, 'abnormal restart by the watchdog');
    }
    watchdog?.start(watchdogMs);
    for (const m of MODULES)
      this.#o.bus.emit('module-state', { module: m, state: this.#modules.get(m)!.state, detail: 'start' });
    this.#timer = timers.setInterval(() => this.check(), checkMs);
  }

  /** A planned stop: the watchdog is disarmed. */
  stop(): void {
    this.#o.timers.clear(this.#timer);
    this.#timer = undefined;
    this.#o.watchdog?.stop();
  }

  /** One health check: the radio, failed modules, the probes, then the watchdog is fed if all is alive. */
  check(): void {
    this.#checkRadio();
    for (const [module, status] of this.#modules) {
      if (status.state === 'failed' && status.part !== undefined) this.#retry(module, status);
    }
    for (const [module, test] of Object.entries(this.#o.selfTest ?? {}) as [
      MonitoredModule,
      (() => Error | undefined) | undefined,
    ][]) {
      if (!test || this.#modules.get(module)!.state !== 'ok') continue;
      const error = test();
      if (error) this.#onFault(module, error);
    }
    let alive = true;
    for (const [name, probe] of this.#probes) {
      let ok = false;
      try {
        ok = probe();
      } catch {
        ok = false;
      }
      if (!ok) {
        alive = false;
        if (this.faultLog.at(-1)?.part !== name) this.#log('power', name, `${name} is not responding`);
      }
    }
    if (alive) this.#o.watchdog?.feed();
  }

  #checkRadio(): void {
    const { radio, clock, radioDownMs } = this.#o;
    if (!radio) return;
    const now = clock.monotonic();
    if (radio.connected) {
      if (this.#radioStep > 0) {
        this.#repaired(
          'radio',
          'radio',
          this.#radioStep === 1
            ? 'power-cycled'
            : radio instanceof FailoverLink && radio.active === radio.preferred
              ? `back on the ${radio.active} path`
              : `fell back to ${(radio as FailoverLink).active ?? 'the other path'}`,
        );
      }
      this.#radioDownSince = undefined;
      this.#radioStep = 0;
      return;
    }
    this.#radioDownSince ??= now;
    const down = now - this.#radioDownSince;
    if (down < radioDownMs * (this.#radioStep + 1)) return;
    // Down too long at this step of the ladder: take the next step.
    if (this.#radioStep === 0) {
      this.#log('radio', 'radio', `link down for ${Math.round(down / 1000)} s`);
      this.#set('radio', 'repairing', 'power-cycling the radio');
      this.#radioStep = 1;
      if (!this.#o.powerCycle?.('radio', this.#o.powerCycleMs, () => {})) {
        radio.power?.(false);
        radio.power?.(true);
      }
      return;
    }
    if (this.#radioStep === 1 && radio instanceof FailoverLink && radio.failover()) {
      this.#radioStep = 2;
      this.#set('radio', 'repairing', `fell back to ${radio.active}`);
      this.#o.records.tryAppend(() =>
        this.#o.records.appendMaintenance(
          MaintenanceCode.Diagnosis,
          `radio: fell back to the ${radio.active} path`,
        ),
      );
      return;
    }
    if (this.#modules.get('radio')!.state !== 'failed') {
      this.#escalate('radio', 'radio', `link down for ${Math.round(down / 1000)} s; repairs did not help`);
      this.#radioStep++;
      return;
    }
    // Escalated, and no path works: keep walking the paths, each for radioDownMs, so that whichever
    // comes back first carries the traffic (the preferred one takes it back on its own when it
    // connects). Meanwhile the record sets wait in the upload store, for a handheld or a path.
    if (radio instanceof FailoverLink && radio.failover()) this.#radioStep++;
  }

  /**
   * A failed module tried again, at most every `retryMs`: its driver re-opened, else (a switched
   * module) its supply cycled and the driver re-opened. Nothing is recorded until it answers.
   */
  #retry(module: MonitoredModule, status: ModuleStatus): void {
    const now = this.#o.clock.monotonic();
    const reinit = this.#reinitialiser(module);
    const part = status.part;
    if (!reinit || part === undefined || this.#busy.has(module) || now < (status.retryAt ?? 0)) return;
    status.retryAt = now + this.#o.retryMs;
    this.#busy.add(module);
    if (reinit(part)) {
      this.#busy.delete(module);
      this.#repaired(module, part, 'answers again');
      return;
    }
    const cycled =
      SWITCHED.includes(module) &&
      module !== 'radio' && // the radio has its own ladder
      this.#o.powerCycle?.(module as ModuleName, this.#o.powerCycleMs, () => {
        const back = reinit(module === 'sensors' ? 'sensors' : part);
        this.#busy.delete(module);
        if (back && this.#modules.get(module)?.state === 'failed')
          this.#repaired(module, part, 'answers again after a power cycle');
      });
    if (!cycled) this.#busy.delete(module);
  }

  #onFault(unit: string, error: unknown): void {
    const module = moduleOf(unit);
    if (!module) return;
    const part = unit.replace(/^(sensor|power|reader|radio|secure|display|ble):/, '');
    const detail = (error as Error)?.message ?? String(error);
    if (this.#busy.has(module)) {
      // A repair of this module is under way (its parts re-opened, its supply cycled): what fails
      // meanwhile is its business; another part's fault is logged, not repaired twice at once.
      if (this.#modules.get(module)?.part !== part && this.#repairing.get(module) !== part)
        this.#log(module, part, detail);
      return;
    }
    this.#log(module, part, detail);
    this.#repair(module, part);
  }

  #log(module: MonitoredModule, part: string, detail: string): void {
    const { records, clock } = this.#o;
    this.faultLog.push({ at: Math.floor(clock.now() / 1000), module, part, detail });
    if (this.faultLog.length > 64) this.faultLog.shift();
    records.tryAppend(() => records.appendOperation('fault', `${module}/${part}: ${detail}`.slice(0, 200)));
    this.#event('module-fault', 'fault', true, `${module}/${part}: ${detail}`.slice(0, 200));
  }

  /** The ladder: re-initialise; power-cycle and re-initialise; escalate. */
  #repair(module: MonitoredModule, part: string): void {
    const now = this.#o.clock.monotonic();
    const key = `${module}/${part}`;
    const repairs = (this.#repairs.get(key) ?? []).filter((t) => now - t < HOUR_MS);
    this.#repairs.set(key, repairs);
    if (repairs.length >= MAX_REPAIRS_PER_HOUR) {
      this.#escalate(module, part, `${repairs.length} repairs in the last hour`);
      return;
    }
    repairs.push(now);
    this.#set(module, 'repairing', part);
    this.#busy.add(module);
    this.#repairing.set(module, part);
    const done = () => {
      this.#busy.delete(module);
      this.#repairing.delete(module);
    };
    const reinit = this.#reinitialiser(module);
    if (reinit?.(part)) {
      done();
      this.#repaired(module, part, 're-initialised');
      return;
    }
    const cycled =
      SWITCHED.includes(module) &&
      this.#o.powerCycle?.(module as ModuleName, this.#o.powerCycleMs, () => {
        // Without a driver hook the module's owner re-opens it on next use (the reader does).
        const back = !reinit || reinit(module === 'sensors' ? 'sensors' : part);
        done();
        if (back) this.#repaired(module, part, 'power-cycled');
        else this.#escalate(module, part, 'no answer after a power cycle');
      });
    if (!cycled) {
      done();
      this.#escalate(module, part, reinit ? 're-initialisation failed' : 'no automatic repair');
    }
  }

  /** The module's re-initialise hook, a throw counting as no answer. */
  #reinitialiser(module: MonitoredModule): ((part: string) => boolean) | undefined {
    const hook = this.#o.reinitialise?.[module];
    if (!hook) return undefined;
    return (part) => {
      try {
        return hook(part);
      } catch {
        return false;
      }
    };
  }

  #repaired(module: MonitoredModule, part: string, how: string): void {
    const { records, clock } = this.#o;
    const status = this.#modules.get(module);
    const since = status?.outOfServiceSince;
    if (status && since !== undefined) {
      // The operation record of claim 10b for the time the module was out of service.
      status.outOfServiceSince = undefined;
      const to = Math.max(since, Math.floor(clock.now() / 1000));
      records.tryAppend(() =>
        records.appendOperation(OperationCode.Downtime, `${module}/${part} out of service`, null, {
          period: { from: since, to },
        }),
      );
    }
    records.tryAppend(() => records.appendMaintenance(MaintenanceCode.Repair, `${module}/${part}: ${how}`));
    this.#set(module, 'ok', how);
    this.#event('module-repaired', 'info', false, `${module}/${part}: ${how}`);
  }

  #escalate(module: MonitoredModule, part: string, why: string): void {
    this.#set(module, 'failed', why);
    const status = this.#modules.get(module)!;
    status.part = part;
    status.outOfServiceSince ??= Math.floor(this.#o.clock.now() / 1000);
    status.retryAt = this.#o.clock.monotonic() + this.#o.retryMs;
    this.#o.records.tryAppend(() =>
      this.#o.records.appendOperation('fault-escalated', `${module}/${part}: ${why}`.slice(0, 200)),
    );
    this.#event('escalation', 'fault', true, `${module}/${part}: ${why}`.slice(0, 200));
  }

  #set(module: MonitoredModule, state: ModuleState, detail: string): void {
    const status = this.#modules.get(module)!;
    if (status.state === state && status.detail === detail) return;
    status.state = state;
    status.detail = detail;
    status.since = this.#o.clock.monotonic();
    if (state !== 'failed') {
      status.part = undefined;
      status.retryAt = undefined;
    }
    this.#o.bus.emit('module-state', { module, state, detail });
  }

  #event(event: string, severity: StatusEvent['severity'], active: boolean, detail: string): void {
    this.#o.bus.emit('status-event', statusEvent(this.#o.clock.now(), event, severity, active, detail));
  }
}

/** The module a fault's unit name belongs to. */
export function moduleOf(unit: string): MonitoredModule | undefined {
  const prefix = unit.split(':', 1)[0];
  if (prefix === 'secure' || prefix === 'display' || prefix === 'ble') return prefix;
  if (unit.startsWith('sensor:')) return 'sensors';
  if (unit.startsWith('power:') || unit.startsWith('gauge:')) return 'power';
  if (/rfid|reader|transactions/.test(unit)) return 'reader';
  if (/comms|mqtt|radio/.test(unit)) return 'radio';
  if (/storage|records/.test(unit)) return 'storage';
  return undefined;
}
