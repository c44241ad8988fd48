// The HAL's MqttLink over the A7670's own MQTT stack, so the comms unit runs unchanged on a
// kerbside meter with no Wi-Fi. Bring-up, in the A76XX manual's order: PWRKEY on and AT sync; caller
// ID and SMS delivery for call-in; SIM; EPS registration; APN; TLS with the platform's CA; MQTT
// service, client, connect; then the meter's subscriptions. Anything that fails is reported and the
// whole bring-up tried again with a growing delay (reconnection is the link's job). power(false)
// disconnects and lets the module sleep (AT+CSCLK=1, DTR high): still registered, so a call or an
// SMS from the platform still reaches it.
import type { TimerHandle, Timers } from '../../hal/clock';
import type { CallInEvent, CallInSource } from '../../hal/dialup';
import type { BrokerEndpoint, MqttEvents, MqttLink } from '../../hal/mqtt';
import type { NetworkTimeSource, TimeDone } from '../../hal/time';
import {
  type A7670,
  asciiBytes,
  CmeError,
  type Done,
  ModemError,
  MqttResultError,
  RegistrationStatus,
  type Urc,
} from './a7670';

/** Registration refused by the network, or no network found in time. */
export class RegistrationError extends Error {
  override readonly name = 'RegistrationError';
  readonly stat: number;
  constructor(stat: number, message: string) {
    super(message);
    this.stat = stat;
  }
}

export interface ModemLinkOptions {
  modem: A7670;
  timers: Timers;
  broker: { host: string; port: number; user?: string; password?: string };
  clientId: string;
  apn: string;
  /** The CA the platform's broker certificate chains to (PEM bytes) and its file name on the module. */
  tls?: { caName: string; ca: Uint8Array };
  keepAliveSeconds?: number;
  /** First retry delay after a failed bring-up, ms (doubles up to maxRetryMs). */
  retryMs?: number;
  maxRetryMs?: number;
  /** How long to wait for registration before calling it no coverage, ms. */
  registrationTimeoutMs?: number;
  /** Every failure of the bring-up or a publish (the monitor's view of the radio). */
  onError?: (error: Error) => void;
}

export type ModemLinkState = 'off' | 'starting' | 'up' | 'waiting' | 'sleeping';

const CLIENT = 0;
const MAX_QUEUED_PUBLISHES = 8;

type Step = (next: Done<void>) => void;

/** Runs steps in order; the first error ends the run. */
function sequence(steps: Step[], done: Done<void>): void {
  let i = 0;
  const next: Done<void> = (error) => {
    if (error || i === steps.length) {
      done(error);
      return;
    }
    steps[i++](next);
  };
  next(undefined);
}

/** The network has not sent its time (NITZ) since the modem was switched on. */
export class NetworkTimeUnavailable extends Error {
  override readonly name = 'NetworkTimeUnavailable';
}

export class ModemLink implements MqttLink, CallInSource, NetworkTimeSource {
  readonly #o: Required<Omit<ModemLinkOptions, 'tls' | 'onError'>> &
    Pick<ModemLinkOptions, 'tls' | 'onError'>;
  readonly #modem: A7670;
  readonly #filters = new Set<string>();
  readonly #publishes: { topic: string; payload: Uint8Array }[] = [];
  #events: MqttEvents | undefined;
  #state: ModemLinkState = 'off';
  #wanted = true;
  #generation = 0;
  #retryMs: number;
  #retry: TimerHandle | undefined;
  #publishing = false;
  #hangingUp = false;
  onCallIn: ((event: CallInEvent) => void) | undefined;
  /** Last failure (for the monitor and tests). */
  lastError: Error | undefined;
  /** Signal at the last bring-up: +CSQ rssi (0..31, 99 unknown). */
  rssi: number | undefined;
  /** Publishes handed to the module and confirmed by +CMQTTPUB: 0,0. */
  published = 0;
  /** Bring-ups that reached the broker. */
  connects = 0;

  constructor(options: ModemLinkOptions) {
    this.#o = {
      keepAliveSeconds: 120,
      retryMs: 5_000,
      maxRetryMs: 300_000,
      registrationTimeoutMs: 120_000,
      ...options,
    };
    this.#modem = options.modem;
    this.#retryMs = this.#o.retryMs;
    this.#modem.configure({ onUrc: (urc) => this.#onUrc(urc) });
  }

  get state(): ModemLinkState {
    return this.#state;
  }

  get connected(): boolean {
    return this.#state === 'up';
  }

  open(events: MqttEvents): void {
    this.#events = events;
    this.#wanted = true;
    if (this.#state === 'off' || this.#state === 'waiting') this.#bringUp();
  }

  subscribe(topic: string): void {
    this.#filters.add(topic);
    if (this.#state === 'up') this.#subscribe(topic, () => {});
  }

  publish(topic: string, payload: Uint8Array): boolean {
    if (this.#state !== 'up' || this.#publishes.length >= MAX_QUEUED_PUBLISHES) return false;
    this.#publishes.push({ topic, payload: payload.slice() });
    this.#pump();
    return true;
  }

  close(): void {
    this.#events = undefined;
    this.#wanted = false;
    this.#generation++;
    this.#o.timers.clear(this.#retry);
    this.#publishes.length = 0;
    this.#state = 'off';
    this.#modem.close();
  }

  get endpoint(): BrokerEndpoint {
    return { host: this.#o.broker.host, port: this.#o.broker.port };
  }

  /**
   * The broker endpoint from now on: a link up or coming up disconnects, releases its client and
   * connects again there (the module's MQTT service restarted, as for sleep).
   */
  setEndpoint(endpoint: BrokerEndpoint): void {
    this.#o.broker = { ...this.#o.broker, host: endpoint.host, port: endpoint.port };
    if (!this.#events || !this.#wanted || (this.#state !== 'up' && this.#state !== 'starting')) return;
    this.power(false);
    this.power(true);
  }

  /** Off: disconnect, release the client and let the module sleep. On: wake and connect again. */
  power(on: boolean): void {
    if (on) {
      if (this.#wanted && this.#state !== 'sleeping') return;
      this.#wanted = true;
      this.#modem.wake();
      if (this.#events && this.#state !== 'starting' && this.#state !== 'up') this.#bringUp();
      return;
    }
    if (!this.#wanted) return;
    this.#wanted = false;
    this.#generation++;
    this.#o.timers.clear(this.#retry);
    const wasUp = this.#state === 'up';
    this.#publishes.length = 0;
    this.#state = 'sleeping';
    if (wasUp) this.#events?.onDisconnect();
    const m = this.#modem;
    // Best effort: each step runs whatever the one before answered; the module sleeps in the end.
    m.command(`AT+CMQTTDISC=${CLIENT},60`, { final: '+CMQTTDISC: ', timeoutMs: 65_000 }, () =>
      m.command(`AT+CMQTTREL=${CLIENT}`, {}, () =>
        m.command('AT+CMQTTSTOP', { final: '+CMQTTSTOP: ' }, () => m.sleep(() => {})),
      ),
    );
  }

  // ---- bring-up ----

  #bringUp(): void {
    const generation = ++this.#generation;
    this.#state = 'starting';
    const m = this.#modem;
    const o = this.#o;
    const live =
      (step: Step): Step =>
      (next) => {
        if (generation !== this.#generation) return; // power(false) or close() came in between
        step(next);
      };
    const steps: Step[] = [
      (next) => m.powerOn(next),
      // Caller ID on (TS 27.007 §7.18), SMS in text mode (TS 27.005 §3.2.3) routed straight to the
      // UART as +CMT (§3.4.1 mt=2), registration changes as +CEREG URCs (TS 27.007 §10.1.22 n=1).
      (next) => m.command('AT+CLIP=1', {}, (e) => next(e)),
      (next) => m.command('AT+CMGF=1', {}, (e) => next(e)),
      (next) => m.command('AT+CNMI=2,2,0,0,0', {}, (e) => next(e)),
      (next) => m.command('AT+CSDH=1', {}, (e) => next(e)), // +CMT with the text's length (§3.3.3)
      (next) => m.command('AT+CEREG=1', {}, (e) => next(e)),
      // The network's time (NITZ) into the module's clock, reported as +CTZV: a time source for the
      // meter (networkTime). Before registration, since networks send it on attach; a module that
      // refuses it still carries the link.
      (next) => m.enableNetworkTime(() => next(undefined)),
      (next) =>
        m.simState((error, state) => {
          if (error) next(error);
          else if (state !== 'READY') next(new ModemError('error', `SIM not ready: ${state}`));
          else next(undefined);
        }),
      (next) => this.#awaitRegistration(generation, next),
      (next) =>
        m.signalQuality((error, q) => {
          if (q) this.rssi = q.rssi;
          next(error);
        }),
      // PDP context 1 with the operator's APN (TS 27.007 §10.1.1); AT+CMQTTSTART activates it.
      (next) => m.command(`AT+CGDCONT=1,"IP","${o.apn}"`, {}, (e) => next(e)),
      ...this.#tlsSteps(),
      // §18.2.1: ERROR here means the service is already running (after a lost connection).
      (next) =>
        m.command('AT+CMQTTSTART', { final: '+CMQTTSTART: ', timeoutMs: 12_000 }, (e) =>
          next(e instanceof ModemError && e.kind === 'error' ? undefined : e),
        ),
      // §18.2.3: server type 1 is TLS, 0 plain TCP; result 19 "client is used" means it is ours already.
      (next) =>
        m.command(
          `AT+CMQTTACCQ=${CLIENT},"${o.clientId}",${o.tls ? 1 : 0}`,
          { info: '+CMQTTACCQ: ' },
          (e, lines) => next(e && lines?.some((l) => l.endsWith(`${CLIENT},19`)) ? undefined : e),
        ),
      ...(o.tls ? [(next: Done<void>) => m.command(`AT+CMQTTSSLCFG=${CLIENT},0`, {}, (e) => next(e))] : []),
      (next) => {
        const credentials = o.broker.user ? `,"${o.broker.user}","${o.broker.password ?? ''}"` : '';
        m.command(
          `AT+CMQTTCONNECT=${CLIENT},"tcp://${o.broker.host}:${o.broker.port}",${o.keepAliveSeconds},1${credentials}`,
          { final: '+CMQTTCONNECT: ', timeoutMs: 30_000 },
          (e) => next(e),
        );
      },
    ];
    sequence(steps.map(live), (error) => {
      if (generation !== this.#generation) return;
      if (error) {
        this.#fail(error);
        return;
      }
      this.#state = 'up';
      this.connects++;
      this.#retryMs = o.retryMs;
      this.lastError = undefined;
      for (const topic of this.#filters) this.#subscribe(topic, () => {});
      this.#events?.onConnect();
    });
  }

  /** §19: the CA file on the module (downloaded once), TLS 1.2, server verified against it. */
  #tlsSteps(): Step[] {
    const tls = this.#o.tls;
    if (!tls) return [];
    const m = this.#modem;
    return [
      (next) =>
        m.command('AT+CCERTLIST', {}, (error, lines) => {
          if (error) {
            next(error);
            return;
          }
          if (lines?.some((l) => l.includes(tls.caName))) {
            next(undefined);
            return;
          }
          m.command(
            `AT+CCERTDOWN="${tls.caName}",${tls.ca.length}`,
            { data: tls.ca, timeoutMs: 20_000 },
            (e) => next(e),
          );
        }),
      (next) => m.command('AT+CSSLCFG="sslversion",0,4', {}, (e) => next(e)),
      (next) => m.command('AT+CSSLCFG="authmode",0,1', {}, (e) => next(e)),
      (next) => m.command(`AT+CSSLCFG="cacert",0,"${tls.caName}"`, {}, (e) => next(e)),
    ];
  }

  /** Polls +CEREG? until home or roaming; denied is final, the rest waits for coverage. */
  #awaitRegistration(generation: number, done: Done<void>): void {
    const pollMs = 2_000;
    let waited = 0;
    const poll = () => {
      if (generation !== this.#generation) return;
      this.#modem.registration((error, stat) => {
        if (error) done(error);
        else if (stat === RegistrationStatus.HOME || stat === RegistrationStatus.ROAMING) done(undefined);
        else if (stat === RegistrationStatus.DENIED)
          done(new RegistrationError(stat, 'registration denied by the network'));
        else {
          waited += pollMs;
          if (waited > this.#o.registrationTimeoutMs)
            done(new RegistrationError(stat ?? 0, 'no coverage: not registered in time'));
          else this.#o.timers.setTimeout(poll, pollMs);
        }
      });
    };
    poll();
  }

  #fail(error: Error): void {
    this.lastError = error;
    this.#o.onError?.(error);
    if (!this.#wanted) return;
    this.#state = 'waiting';
    const delay = this.#retryMs;
    this.#retryMs = Math.min(this.#retryMs * 2, this.#o.maxRetryMs);
    this.#o.timers.clear(this.#retry);
    // A module that stopped answering is power-cycled before the next try.
    const hung = error instanceof ModemError && (error.kind === 'timeout' || error.kind === 'power');
    this.#retry = this.#o.timers.setTimeout(() => {
      this.#retry = undefined;
      if (!this.#wanted || !this.#events) return;
      if (hung && this.#modem.on) this.#modem.powerOff(() => this.#bringUp());
      else this.#bringUp();
    }, delay);
  }

  #lost(error: Error): void {
    if (this.#state !== 'up') return;
    this.#generation++;
    this.#publishes.length = 0;
    this.#publishing = false;
    this.#state = 'waiting';
    this.#events?.onDisconnect();
    this.#fail(error);
  }

  // ---- MQTT verbs (§18.2) ----

  #subscribe(topic: string, done: Done<void>): void {
    const bytes = asciiBytes(topic);
    this.#modem.command(
      `AT+CMQTTSUB=${CLIENT},${bytes.length},1`,
      { data: bytes, final: '+CMQTTSUB: ', timeoutMs: 15_000 },
      (error) => {
        if (error) this.#o.onError?.(error);
        done(error);
      },
    );
  }

  /** One publish at a time: topic, payload and PUB share the client's single publish buffer. */
  #pump(): void {
    if (this.#publishing || this.#state !== 'up') return;
    const next = this.#publishes.shift();
    if (!next) return;
    this.#publishing = true;
    const generation = this.#generation;
    const m = this.#modem;
    const topic = asciiBytes(next.topic);
    sequence(
      [
        (n) => m.command(`AT+CMQTTTOPIC=${CLIENT},${topic.length}`, { data: topic }, (e) => n(e)),
        (n) =>
          m.command(`AT+CMQTTPAYLOAD=${CLIENT},${next.payload.length}`, { data: next.payload }, (e) => n(e)),
        (n) =>
          m.command(`AT+CMQTTPUB=${CLIENT},1,60`, { final: '+CMQTTPUB: ', timeoutMs: 65_000 }, (e) => n(e)),
      ],
      (error) => {
        if (generation !== this.#generation) return;
        this.#publishing = false;
        if (error) {
          this.#lost(error);
          return;
        }
        this.published++;
        this.#pump();
      },
    );
  }

  /**
   * The network's time as the module's clock holds it (AT+CCLK?), once a +CTZV has shown the
   * network sent it; before that the module's clock is only its own count since power-on.
   */
  networkTime(done: TimeDone): void {
    const m = this.#modem;
    if (!m.on) {
      done(new NetworkTimeUnavailable('the modem is off'));
      return;
    }
    if (this.#state === 'sleeping') {
      // Not woken for the time: the duty cycle decides when the modem is up; the next poll asks again.
      done(new NetworkTimeUnavailable('the modem sleeps'));
      return;
    }
    if (m.networkZone === undefined) {
      done(new NetworkTimeUnavailable('the network has not sent its time since the modem started'));
      return;
    }
    m.clock((error, clock) => {
      if (error || !clock) done(error ?? new NetworkTimeUnavailable('no clock'));
      else done(undefined, { timeMs: clock.utcMs, resolutionMs: 1000 });
    });
  }

  // ---- URCs ----

  #onUrc(urc: Urc): void {
    switch (urc.kind) {
      case 'mqtt-message':
        if (this.#state === 'up') this.#events?.onMessage(urc.topic, urc.payload);
        return;
      case 'mqtt-lost':
        this.#lost(new MqttResultError('+CMQTTCONNLOST', urc.cause));
        return;
      case 'mqtt-no-net':
        this.#lost(new ModemError('error', '+CMQTTNONET: the PDP context went down'));
        return;
      case 'caller':
        // A call is a signal only: never answered (no charge, no voice path); hung up at once (ATH).
        if (this.#hangingUp) return; // +CLIP repeats with every RING until the hang-up lands
        this.#hangingUp = true;
        this.#modem.command('ATH', {}, () => {
          this.#hangingUp = false;
        });
        this.onCallIn?.({ kind: 'call', number: urc.number });
        return;
      case 'sms':
        this.onCallIn?.({ kind: 'sms', number: urc.sender, text: urc.text });
        return;
      case 'sim':
        if (urc.state !== 'READY' && this.#state === 'up')
          this.#lost(new CmeError('+CPIN', urc.state === 'NOT INSERTED' ? 10 : 13));
        return;
      default:
        return;
    }
  }
}
