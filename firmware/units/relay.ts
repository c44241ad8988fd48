// The Zigbee master/slave relay of the communication unit (412b), over an XBee in API mode.
//
// Slave (a meter with no connection of its own): RelayLink is its MqttLink. A publish on its own
// uplink topic is cut into fragments and sent to the master; downlinks come back the same way and
// are handed to the units as messages on its downlink topic. It is "connected" while the master
// answers its HELLOs with READY up; anything unacknowledged is the comms unit's to resend, as on
// any link.
//
// Master (a neighbour with a connection): RelayMaster publishes each slave's reassembled frames on
// that slave's uplink topic over its own connection, subscribes the slave's downlink topic and
// forwards what arrives there. It never has the slave's keys: the frames are sealed end to end, so
// it can neither read nor alter them (the platform refuses a frame whose seal does not verify), and
// it keeps no copy once a frame is handed on (nothing to replay). protocol/relay.ts has the format.
//
// Pin sleep: a slave whose module has SLEEP_RQ wired is a Zigbee end device (SM = 1) that the power
// unit (RelaySleepDuty) puts to sleep between uploads. The link stays up while the module sleeps;
// a publish wakes it first. Its parent (the master's module, a router: SM = 0) holds what comes for
// it while it sleeps, for 1.2 × SP, and it gets them when it wakes to poll; a downlink held longer is
// lost, and whatever was not acknowledged goes again from the slave's comms unit, as on any link.
import type { Clock, TimerHandle, Timers } from '../../hal/clock';
import type { BrokerEndpoint, MqttEvents, MqttLink } from '../../hal/mqtt';
import type { MeterHardware } from '../../hal/hardware';
import { address64Hex, ModemStatus, XBee, type TransmitResult } from '../../drivers/radio/xbee';
import type { SleepyLink } from './power';
import {
  decodeRelay,
  encodeHello,
  encodeReady,
  type Fragment,
  fragment,
  Reassembler,
  RelayKind,
} from '../../protocol/relay';
import { downlinkTopic, meterIdOfTopic, uplinkTopic } from '../../protocol/topics';

/** One Zigbee payload at a time, messages in order; a message with a fragment not delivered is dropped, not kept. */
class SendQueue {
  readonly #radio: XBee;
  readonly #queue: {
    dest: Uint8Array;
    payloads: readonly Uint8Array[];
    next: number;
    done?: (ok: boolean) => void;
  }[] = [];
  #busy = false;
  #generation = 0;

  constructor(radio: XBee) {
    this.#radio = radio;
  }

  get heldBytes(): number {
    let n = 0;
    for (const m of this.#queue) for (let i = m.next; i < m.payloads.length; i++) n += m.payloads[i].length;
    return n;
  }

  /** Something waits to be sent or for its Transmit Status. */
  get busy(): boolean {
    return this.#busy || this.#queue.length > 0;
  }

  /** Sends `payloads` in order, stopping at the first not delivered; `done(true)` when all were. */
  send(dest: Uint8Array, payloads: readonly Uint8Array[], done?: (ok: boolean) => void): void {
    this.#queue.push({ dest, payloads, next: 0, done });
    this.#pump();
  }

  clear(): void {
    const dropped = this.#queue.splice(0);
    this.#generation++;
    this.#busy = false;
    for (const m of dropped) m.done?.(false);
  }

  #pump(): void {
    if (this.#busy) return;
    const message = this.#queue[0];
    if (!message) return;
    this.#busy = true;
    const generation = this.#generation;
    const finish = (ok: boolean) => {
      if (generation !== this.#generation) return; // cleared meanwhile (a module reset)
      this.#busy = false;
      message.next++;
      if (!ok || message.next === message.payloads.length) {
        this.#queue.shift();
        message.done?.(ok);
      }
      this.#pump();
    };
    this.#radio.transmit(message.dest, message.payloads[message.next]).then(
      (result: TransmitResult) => finish(result.ok),
      () => finish(false),
    );
  }
}

export interface RelayLinkOptions {
  radio: XBee;
  /** The master's 64-bit Zigbee address. */
  master: Uint8Array;
  meterId: number;
  timers: Timers;
  clock: Clock;
  /** HELLO period, ms; the master is taken as gone after three unanswered. */
  helloMs?: number;
  /** A random 16-bit number drawn at start: the relay session, and the first message id. */
  session?: number;
  reassemblyMs?: number;
}

/** The slave's MqttLink over the Zigbee relay; with SLEEP_RQ wired, a link the power unit can put to sleep. */
export class RelayLink implements MqttLink, SleepyLink {
  readonly #o: RelayLinkOptions;
  readonly #helloMs: number;
  readonly #queue: SendQueue;
  readonly #downlinks: Reassembler;
  #events: MqttEvents | undefined;
  #timer: TimerHandle | undefined;
  #connected = false;
  #lastReady = -Infinity;
  #messageId: number;
  readonly #session: number;
  #masterSession: number | undefined;
  #maxPayload = 0;
  #configuring = false;
  #poweredOff = false;
  /** The module is configured as a pin-sleep end device (until its next reset). */
  #pinSleep = false;
  #asleep = false;
  /** Messages handed to the radio, fully delivered to the master, and lost on the way. */
  readonly stats = { published: 0, delivered: 0, failed: 0, downlinks: 0, ignored: 0 };

  constructor(options: RelayLinkOptions) {
    if (options.master.length !== 8) throw new RangeError('the master address is 8 bytes');
    this.#o = options;
    this.#helloMs = options.helloMs ?? 5_000;
    this.#queue = new SendQueue(options.radio);
    this.#session = (options.session ?? 0) & 0xffff;
    this.#messageId = this.#session;
    this.#downlinks = new Reassembler({ timeoutMs: options.reassemblyMs ?? 30_000 });
  }

  get connected(): boolean {
    return this.#connected;
  }

  open(events: MqttEvents): void {
    this.#events = events;
    const radio = this.#o.radio;
    radio.onReceive = (source, payload) => this.#receive(source, payload);
    radio.onModemStatus = (status) => {
      if (status === ModemStatus.HARDWARE_RESET || status === ModemStatus.WATCHDOG_RESET) {
        // Down until the module is configured again and the master answers: the next READY is a
        // new connection, on which the comms unit sends again whatever waits.
        this.#maxPayload = 0;
        this.#pinSleep = false; // settings written without WR are gone
        this.#asleep = false;
        if (radio.sleepRequested) radio.wake().catch(() => {}); // SLEEP_RQ released for the fresh module
        this.#queue.clear();
        this.#setConnected(false);
      }
      if (status === ModemStatus.JOINED) this.#tick();
    };
    this.#poweredOff = false;
    if (this.#asleep) {
      // Put to sleep when the link closed or lost power: awake again for the link.
      this.#asleep = false;
      radio.wake().catch(() => {
        this.#maxPayload = 0;
        this.#pinSleep = false;
      });
    }
    this.#o.timers.clear(this.#timer);
    this.#timer = this.#o.timers.setInterval(() => this.#tick(), this.#helloMs);
    this.#tick();
  }

  subscribe(topic: string): void {
    if (topic !== downlinkTopic(this.#o.meterId))
      throw new RangeError(`the relay carries only this meter's downlink, not ${topic}`);
  }

  publish(topic: string, payload: Uint8Array): boolean {
    if (topic !== uplinkTopic(this.#o.meterId))
      throw new RangeError(`the relay carries only this meter's uplink, not ${topic}`);
    if (!this.#connected || this.#maxPayload === 0) return false;
    this.wake(); // the transmissions wait for ON/SLEEP
    const fragments = fragment(RelayKind.UP, this.#o.meterId, this.#messageId, payload, this.#maxPayload);
    this.#messageId = (this.#messageId + 1) & 0xffff;
    this.stats.published++;
    this.#queue.send(this.#o.master, fragments, (ok) => {
      if (ok) this.stats.delivered++;
      else this.stats.failed++;
    });
    return true;
  }

  close(): void {
    this.#o.timers.clear(this.#timer);
    this.#timer = undefined;
    this.#queue.clear();
    this.#downlinks.clear();
    // A module configured for pin sleep sleeps while its link is not in use.
    if (this.#pinSleep && !this.#asleep) {
      this.#asleep = true;
      this.#o.radio.sleep();
    }
    this.#setConnected(false);
    this.#events = undefined;
    this.#o.radio.onReceive = undefined;
    this.#o.radio.onModemStatus = undefined;
  }

  power(on: boolean): void {
    if (!on) {
      this.#poweredOff = true;
      this.#o.timers.clear(this.#timer);
      this.#timer = undefined;
      this.#queue.clear();
      this.#setConnected(false);
    } else if (this.#events && this.#poweredOff) this.open(this.#events);
  }

  /** Asleep: SLEEP_RQ asserted by sleep(), not yet released. */
  get asleep(): boolean {
    return this.#asleep;
  }

  /** Frames wait to be sent, a downlink is half assembled, or the module is being configured. */
  get busy(): boolean {
    return this.#queue.busy || this.#downlinks.pending > 0 || this.#configuring;
  }

  /**
   * Puts the module to pin sleep; false (and nothing done) when it is not a configured end device,
   * the link is not open, or something is under way (busy). The link stays up: the master's READY
   * is not expected while asleep.
   */
  sleep(): boolean {
    if (this.#asleep) return true;
    if (!this.#pinSleep || !this.#events || this.#poweredOff || this.busy) return false;
    this.#asleep = true;
    this.#o.timers.clear(this.#timer);
    this.#timer = undefined;
    this.#o.radio.sleep();
    return true;
  }

  /**
   * Wakes the module (it polls its parent for what was held meanwhile) and says HELLO, so the
   * master knows it is there; the HELLO period starts again.
   */
  wake(): void {
    if (!this.#asleep) return;
    this.#asleep = false;
    // Asleep is not silent by choice: give the master three HELLO periods from now to answer.
    this.#lastReady = Math.max(this.#lastReady, this.#o.clock.monotonic());
    this.#o.radio.wake().then(
      () => {},
      () => {
        // ON/SLEEP never rose: configure the module again on the next tick.
        this.#maxPayload = 0;
        this.#pinSleep = false;
      },
    );
    if (this.#events && !this.#poweredOff) {
      this.#o.timers.clear(this.#timer);
      this.#timer = this.#o.timers.setInterval(() => this.#tick(), this.#helloMs);
      this.#tick();
    }
  }

  #tick(): void {
    if (!this.#events || this.#poweredOff || this.#asleep) return;
    const now = this.#o.clock.monotonic();
    if (this.#connected && now - this.#lastReady > 3 * this.#helloMs) this.#setConnected(false);
    this.#downlinks.expire(now);
    if (this.#maxPayload === 0) {
      this.#configure();
      return;
    }
    this.#o.radio.transmit(this.#o.master, encodeHello(this.#o.meterId, this.#session)).then(
      () => {},
      () => {},
    );
  }

  #configure(): void {
    if (this.#configuring) return;
    this.#configuring = true;
    const radio = this.#o.radio;
    // An end device with pin sleep when SLEEP_RQ is wired (a change of SM makes it join again).
    const sleepSetup = radio.canSleep && !this.#pinSleep ? radio.configurePinSleep() : Promise.resolve();
    sleepSetup
      .then(() => {
        this.#pinSleep = radio.canSleep;
        return radio.configure();
      })
      .then(
        (info) => {
          this.#configuring = false;
          if (info.association !== 0) return; // not joined yet: the JOINED status or the next tick tries again
          this.#maxPayload = info.maxPayload;
          this.#tick();
        },
        () => {
          this.#configuring = false;
        },
      );
  }

  #receive(source: Uint8Array, payload: Uint8Array): void {
    if (address64Hex(source) !== address64Hex(this.#o.master)) {
      this.stats.ignored++;
      return;
    }
    let message: ReturnType<typeof decodeRelay>;
    try {
      message = decodeRelay(payload);
    } catch {
      this.stats.ignored++;
      return;
    }
    if (message.meterId !== this.#o.meterId) {
      this.stats.ignored++;
      return;
    }
    if (message.kind === RelayKind.READY) {
      // A master that restarted numbers its downlinks afresh.
      if (message.session !== this.#masterSession) this.#downlinks.forget('master');
      this.#masterSession = message.session;
      this.#lastReady = this.#o.clock.monotonic();
      this.#setConnected(message.up);
      return;
    }
    if (message.kind !== RelayKind.DOWN) {
      this.stats.ignored++;
      return;
    }
    const whole = this.#downlinks.add('master', message, this.#o.clock.monotonic());
    if (whole) {
      this.stats.downlinks++;
      this.#events?.onMessage(downlinkTopic(this.#o.meterId), whole);
    }
  }

  #setConnected(up: boolean): void {
    if (up === this.#connected) return;
    this.#connected = up;
    if (up) this.#events?.onConnect();
    else this.#events?.onDisconnect();
  }
}

export interface RelayMasterOptions {
  radio: XBee;
  /** The master's connection to the broker (its own client of a SharedLink, or a second session). */
  link: MqttLink;
  timers: Timers;
  clock: Clock;
  /** Slave meter ids this master may relay (as the platform assigned them); all when absent. */
  slaves?: readonly number[];
  /** A random 16-bit number drawn at start: the relay session, and the first downlink message id. */
  session?: number;
  reassemblyMs?: number;
  /**
   * The sleep period SP its module is given as a parent, ms (default 25 000): it holds a packet for
   * a sleeping slave 1.2 × SP (at most 30 s), so slaves poll at least this often.
   */
  childSleepPeriodMs?: number;
}

/** The master's default SP as a parent (ms), and the Transmit Status wait it implies. */
export const CHILD_SLEEP_PERIOD_MS = 25_000;
/**
 * User Guide 90001539, "Transmission timeouts > Extended timeout": to an end device, up to three
 * attempts of (50 × NH + 1.2 × SP) ms each; NH is 30 by default.
 */
export function extendedTransmitTimeoutMs(sleepPeriodMs: number, nh = 30): number {
  return 3 * (50 * nh + Math.min(30_000, 1.2 * sleepPeriodMs)) + 1_000;
}

interface Slave {
  address: Uint8Array;
  lastHello: number;
  session: number;
}

/** The master's side: relays its slaves' frames, holding nothing once a frame is handed on. */
export class RelayMaster {
  readonly #o: RelayMasterOptions;
  readonly #slaves = new Map<number, Slave>();
  readonly #uplinks: Reassembler;
  /** One queue per destination: a sleeping slave's wait does not hold up the others. */
  readonly #queues = new Map<string, SendQueue>();
  #maxPayload = 0;
  #configuring = false;
  #started = false;
  #timer: TimerHandle | undefined;
  /** Frames published for slaves, downlinks forwarded, and what was dropped. */
  readonly stats = { up: 0, down: 0, upDropped: 0, downDropped: 0, refused: 0 };

  constructor(options: RelayMasterOptions) {
    this.#o = options;
    this.#uplinks = new Reassembler({ timeoutMs: options.reassemblyMs ?? 30_000 });
    this.#session = (options.session ?? 0) & 0xffff;
    this.#nextDownId = this.#session;
  }

  readonly #session: number;

  /** Bytes of slaves' frames this master holds now: incomplete uplinks and downlink fragments not yet sent. */
  get heldBytes(): number {
    let queued = 0;
    for (const q of this.#queues.values()) queued += q.heldBytes;
    return this.#uplinks.heldBytes + queued;
  }

  /** The slaves that said HELLO since the start. */
  get slaves(): number[] {
    return [...this.#slaves.keys()];
  }

  start(): void {
    if (this.#started) return;
    this.#started = true;
    const { radio, link } = this.#o;
    radio.onReceive = (source, payload) => this.#receive(source, payload);
    radio.onModemStatus = (status) => {
      if (status === ModemStatus.HARDWARE_RESET || status === ModemStatus.WATCHDOG_RESET) {
        this.#maxPayload = 0;
        this.#clearQueues();
        this.#uplinks.clear();
      }
      if (status === ModemStatus.JOINED) this.#configure();
    };
    link.open({
      onConnect: () => {
        for (const [id, slave] of this.#slaves) {
          link.subscribe(downlinkTopic(id));
          this.#send(slave.address, [encodeReady(id, true, this.#session)]);
        }
      },
      onDisconnect: () => {
        for (const [id, slave] of this.#slaves)
          this.#send(slave.address, [encodeReady(id, false, this.#session)]);
      },
      onMessage: (topic, payload) => this.#downlink(topic, payload),
    });
    this.#configure();
    // Until the module has answered (it may still be booting), and to let stale assemblies go.
    this.#timer = this.#o.timers.setInterval(() => {
      if (this.#maxPayload === 0) this.#configure();
      const now = this.#o.clock.monotonic();
      this.#uplinks.expire(now);
      // A slave silent for a minute (twelve HELLOs) is gone: its downlinks are no longer forwarded.
      for (const [id, slave] of this.#slaves) if (now - slave.lastHello > 60_000) this.#slaves.delete(id);
    }, 5_000);
  }

  stop(): void {
    if (!this.#started) return;
    this.#started = false;
    this.#o.timers.clear(this.#timer);
    this.#timer = undefined;
    this.#clearQueues();
    this.#uplinks.clear();
    this.#o.radio.onReceive = undefined;
    this.#o.radio.onModemStatus = undefined;
    this.#o.link.close();
  }

  #clearQueues(): void {
    for (const q of this.#queues.values()) q.clear();
    this.#queues.clear();
  }

  #configure(): void {
    if (this.#configuring) return;
    this.#configuring = true;
    const radio = this.#o.radio;
    // A router that never sleeps, holding packets for its sleeping slaves 1.2 × SP.
    radio
      .configureParent(this.#o.childSleepPeriodMs ?? CHILD_SLEEP_PERIOD_MS)
      .then(() => radio.configure())
      .then(
        (info) => {
          this.#configuring = false;
          this.#maxPayload = info.maxPayload;
        },
        () => {
          this.#configuring = false;
        },
      );
  }

  #send(dest: Uint8Array, payloads: Uint8Array[], done?: (ok: boolean) => void): void {
    const key = address64Hex(dest);
    let queue = this.#queues.get(key);
    if (!queue) {
      queue = new SendQueue(this.#o.radio);
      this.#queues.set(key, queue);
    }
    queue.send(dest, payloads, done);
  }

  #receive(source: Uint8Array, payload: Uint8Array): void {
    let message: ReturnType<typeof decodeRelay>;
    try {
      message = decodeRelay(payload);
    } catch {
      this.stats.refused++;
      return;
    }
    const { slaves } = this.#o;
    if (slaves && !slaves.includes(message.meterId)) {
      this.stats.refused++;
      return;
    }
    const now = this.#o.clock.monotonic();
    if (message.kind === RelayKind.HELLO) {
      const known = this.#slaves.get(message.meterId);
      if (!known)
        this.#slaves.set(message.meterId, {
          address: source.slice(),
          lastHello: now,
          session: message.session,
        });
      else {
        // A slave that restarted numbers its messages afresh; a replaced module keeps the meter's relay.
        if (known.session !== message.session) this.#uplinks.forget(address64Hex(known.address));
        known.address = source.slice();
        known.lastHello = now;
        known.session = message.session;
      }
      const up = this.#o.link.connected;
      if (up && !known) this.#o.link.subscribe(downlinkTopic(message.meterId));
      this.#send(source.slice(), [encodeReady(message.meterId, up, this.#session)]);
      return;
    }
    if (message.kind !== RelayKind.UP) {
      this.stats.refused++;
      return;
    }
    // Only from the node that said HELLO for this meter.
    const slave = this.#slaves.get(message.meterId);
    if (!slave || address64Hex(slave.address) !== address64Hex(source)) {
      this.stats.refused++;
      return;
    }
    const whole = this.#uplinks.add(address64Hex(source), message as Fragment, now);
    if (!whole) return;
    // Handed on as received, or dropped: the slave's comms unit resends whatever the platform does not acknowledge.
    if (this.#o.link.publish(uplinkTopic(message.meterId), whole)) this.stats.up++;
    else this.stats.upDropped++;
  }

  #downlink(topic: string, payload: Uint8Array): void {
    const meterId = meterIdOfTopic(topic);
    const slave = meterId === undefined ? undefined : this.#slaves.get(meterId);
    if (meterId === undefined || !slave || topic !== downlinkTopic(meterId) || this.#maxPayload === 0) {
      this.stats.downDropped++;
      return;
    }
    let fragments: Uint8Array[];
    try {
      fragments = fragment(RelayKind.DOWN, meterId, this.#nextDownId, payload, this.#maxPayload);
      this.#nextDownId = (this.#nextDownId + 1) & 0xffff;
    } catch {
      this.stats.downDropped++;
      return;
    }
    this.#send(slave.address, fragments, (ok) => {
      if (ok) this.stats.down++;
      else this.stats.downDropped++;
    });
  }

  #nextDownId: number;
}

/**
 * One broker connection shared by several users on the same meter (the units and the relay
 * master): each client gets the connection events and the messages of the topics it subscribed.
 */
export class SharedLink {
  readonly #link: MqttLink;
  readonly #clients = new Set<SharedClient>();
  #open = false;

  constructor(link: MqttLink) {
    this.#link = link;
  }

  client(): MqttLink {
    return new SharedClient(this, this.#link);
  }

  /** @internal */
  attach(client: SharedClient): void {
    this.#clients.add(client);
    if (this.#open) {
      if (this.#link.connected) client.events?.onConnect();
      return;
    }
    this.#open = true;
    this.#link.open({
      onConnect: () => {
        for (const c of this.#clients) c.events?.onConnect();
      },
      onDisconnect: () => {
        for (const c of this.#clients) c.events?.onDisconnect();
      },
      onMessage: (topic, payload) => {
        for (const c of this.#clients) if (c.topics.has(topic)) c.events?.onMessage(topic, payload);
      },
    });
  }

  /** @internal */
  detach(client: SharedClient): void {
    this.#clients.delete(client);
    if (this.#clients.size === 0 && this.#open) {
      this.#open = false;
      this.#link.close();
    }
  }
}

class SharedClient implements MqttLink {
  readonly #shared: SharedLink;
  readonly #link: MqttLink;
  readonly topics = new Set<string>();
  events: MqttEvents | undefined;

  constructor(shared: SharedLink, link: MqttLink) {
    this.#shared = shared;
    this.#link = link;
  }

  get connected(): boolean {
    return this.events !== undefined && this.#link.connected;
  }

  open(events: MqttEvents): void {
    this.events = events;
    this.#shared.attach(this);
  }

  subscribe(topic: string): void {
    this.topics.add(topic);
    this.#link.subscribe(topic);
  }

  publish(topic: string, payload: Uint8Array): boolean {
    return this.events !== undefined && this.#link.publish(topic, payload);
  }

  close(): void {
    this.events = undefined;
    this.#shared.detach(this);
  }

  power(on: boolean): void {
    this.#link.power?.(on);
  }

  get endpoint(): BrokerEndpoint | undefined {
    return this.#link.endpoint;
  }

  /** The master's own broker connection moves, for it and the slaves it relays for. */
  setEndpoint(endpoint: BrokerEndpoint): void {
    this.#link.setEndpoint?.(endpoint);
  }
}

/** The relay's role in the meter's configuration. */
export type RelayRole =
  | { role: 'slave' /** The master's 64-bit Zigbee address, 16 hex digits. */; master: string }
  | {
      role: 'master' /** Slaves the platform assigned to this master; all when absent. */;
      slaves?: readonly number[];
      /** SP as a parent, ms (default CHILD_SLEEP_PERIOD_MS): it holds a sleeping slave's packets 1.2 × SP. */
      childSleepPeriodMs?: number;
    };

/**
 * Builds the relay from the board's Zigbee module and the configured role: a slave gets a fallback
 * path (its RelayLink); a master gets its relay unit and shares its connection with the units.
 */
export function zigbeeRelay(
  hardware: MeterHardware,
  meterId: number,
  role: RelayRole | undefined,
): {
  primary?: MqttLink;
  fallback?: { name: string; link: MqttLink };
  master?: RelayMaster;
  /** The slave's link, for the power unit's RelaySleepDuty. */
  slave?: RelayLink;
} {
  if (!role) return {};
  if (!hardware.zigbee) throw new RangeError('a relay role needs a Zigbee module on the board');
  const { clock, timers } = hardware;
  const { serial, reset, sleepRequest, onSleep } = hardware.zigbee;
  if (role.role === 'slave') {
    // A slave is an end device: pin sleep when SLEEP_RQ is wired (ON/SLEEP too, when it is).
    const sleep = sleepRequest && { request: sleepRequest, status: onSleep };
    const radio = new XBee({ serial, reset, timers, sleep });
    if (!/^[0-9a-fA-F]{16}$/.test(role.master)) throw new RangeError('the master address is 16 hex digits');
    const master = new Uint8Array(8);
    for (let i = 0; i < 8; i++) master[i] = Number.parseInt(role.master.slice(2 * i, 2 * i + 2), 16);
    const link = new RelayLink({ radio, master, meterId, timers, clock, session: session(hardware) });
    return { fallback: { name: 'zigbee-relay', link }, slave: link };
  }
  // A master is a router, never asleep; a Transmit Status to a sleeping slave takes the extended timeout.
  const radio = new XBee({
    serial,
    reset,
    timers,
    transmitTimeoutMs: extendedTransmitTimeoutMs(role.childSleepPeriodMs ?? CHILD_SLEEP_PERIOD_MS),
  });
  const shared = new SharedLink(hardware.mqtt);
  const relayMaster = new RelayMaster({
    radio,
    link: shared.client(),
    timers,
    clock,
    slaves: role.slaves,
    childSleepPeriodMs: role.childSleepPeriodMs,
    session: session(hardware),
  });
  return { primary: shared.client(), master: relayMaster };
}

function session(hardware: MeterHardware): number {
  const id = new Uint8Array(2);
  hardware.random.fill(id);
  return (id[0] << 8) | id[1];
}
