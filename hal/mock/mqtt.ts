// An in-memory MQTT broker for virtual meters that run without a network (under XS, in unit
// tests): topic filters with + and #, QoS 1 delivered on the virtual clock's next tick, and a switch
// that takes the link down as a lost signal would.
import type { Timers } from '../clock';
import type { BrokerEndpoint, MqttEvents, MqttLink } from '../mqtt';

export function topicMatches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length || (f[i] !== '+' && f[i] !== t[i])) return false;
  }
  return f.length === t.length;
}

/** The endpoint a virtual link starts on. */
export const VIRTUAL_BROKER_ENDPOINT: Readonly<BrokerEndpoint> = Object.freeze({
  host: 'broker.virtual',
  port: 8883,
});

function endpointKey(e: BrokerEndpoint): string {
  return `${e.host}:${e.port}`;
}

export class VirtualBroker {
  readonly #links = new Set<VirtualMqttLink>();
  /** Endpoints nobody answers on (a wrong host or port); every other endpoint reaches this broker. */
  readonly #refused = new Set<string>();
  /** Links opened on an endpoint nobody answers on, waiting for it. */
  readonly #waiting = new Set<VirtualMqttLink>();
  readonly #timers: Timers;
  /** Every message published, in order (for tests). */
  readonly published: { topic: string; payload: Uint8Array }[] = [];

  constructor(timers: Timers) {
    this.#timers = timers;
  }

  connect(link: VirtualMqttLink): void {
    this.#links.add(link);
  }

  disconnect(link: VirtualMqttLink): void {
    this.#links.delete(link);
  }

  route(topic: string, payload: Uint8Array): void {
    this.published.push({ topic, payload: payload.slice() });
    for (const link of this.#links) {
      if (link.wants(topic)) this.#timers.setTimeout(() => link.deliver(topic, payload.slice()), 0);
    }
  }

  /** Whether a link on `endpoint` reaches this broker. */
  answers(endpoint: BrokerEndpoint): boolean {
    return !this.#refused.has(endpointKey(endpoint));
  }

  /**
   * Makes `endpoint` one nobody answers on (a wrong host or port), or answered again; links waiting
   * on it connect then.
   */
  refuse(endpoint: BrokerEndpoint, refused = true): void {
    if (refused) this.#refused.add(endpointKey(endpoint));
    else this.#refused.delete(endpointKey(endpoint));
    for (const link of [...this.#waiting]) link.retry();
  }

  /** @internal a link that could not reach its endpoint */
  wait(link: VirtualMqttLink, waiting: boolean): void {
    if (waiting) this.#waiting.add(link);
    else this.#waiting.delete(link);
  }

  /** A new client link on this broker. */
  link(): VirtualMqttLink {
    return new VirtualMqttLink(this);
  }
}

export class VirtualMqttLink implements MqttLink {
  readonly #broker: VirtualBroker;
  readonly #filters = new Set<string>();
  #events: MqttEvents | undefined;
  #up = false;
  #signal = true;
  #powered = true;
  #endpoint: BrokerEndpoint = { ...VIRTUAL_BROKER_ENDPOINT };
  /** Endpoints tried, in order (for tests). */
  readonly endpointsTried: BrokerEndpoint[] = [];
  /** While set, open() throws this message (a modem or network stack that did not start). */
  openFault: string | undefined;

  constructor(broker: VirtualBroker) {
    this.#broker = broker;
  }

  get connected(): boolean {
    return this.#up;
  }

  open(events: MqttEvents): void {
    if (this.openFault !== undefined) throw new Error(this.openFault);
    this.#events = events;
    this.#tryConnect();
  }

  get endpoint(): BrokerEndpoint {
    return { ...this.#endpoint };
  }

  /** Drops the connection and connects to `endpoint`, when the broker answers there. */
  setEndpoint(endpoint: BrokerEndpoint): void {
    this.#endpoint = { ...endpoint };
    const events = this.#events;
    if (!events) return;
    const wasUp = this.#up;
    this.#drop();
    if (wasUp) events.onDisconnect();
    this.#tryConnect();
  }

  /** @internal the broker answers on another endpoint now */
  retry(): void {
    this.#tryConnect();
  }

  subscribe(topic: string): void {
    this.#filters.add(topic);
  }

  publish(topic: string, payload: Uint8Array): boolean {
    if (!this.#up) return false;
    this.#broker.route(topic, payload);
    return true;
  }

  close(): void {
    this.#events = undefined;
    this.#drop();
  }

  /** Takes the link down or up again, as losing and regaining the cellular signal would. */
  setSignal(on: boolean): void {
    this.#signal = on;
    if (!on) {
      const events = this.#events;
      this.#drop();
      events?.onDisconnect();
    } else this.#tryConnect();
  }

  /** The radio switched off (sleep) and on: like a lost signal, but the meter's own doing. */
  power(on: boolean): void {
    if (on === this.#powered) return;
    this.#powered = on;
    if (!on) {
      const events = this.#events;
      const wasUp = this.#up;
      this.#drop();
      if (wasUp) events?.onDisconnect();
    } else this.#tryConnect();
  }

  get powered(): boolean {
    return this.#powered;
  }

  wants(topic: string): boolean {
    for (const filter of this.#filters) if (topicMatches(filter, topic)) return true;
    return false;
  }

  deliver(topic: string, payload: Uint8Array): void {
    if (this.#up) this.#events?.onMessage(topic, payload);
  }

  #tryConnect(): void {
    if (!this.#events || this.#up || !this.#signal || !this.#powered) return;
    this.endpointsTried.push({ ...this.#endpoint });
    const reached = this.#broker.answers(this.#endpoint);
    this.#broker.wait(this, !reached);
    if (reached) this.#connect();
  }

  #connect(): void {
    this.#up = true;
    this.#broker.connect(this);
    this.#events?.onConnect();
  }

  #drop(): void {
    this.#up = false;
    this.#broker.wait(this, false);
    this.#filters.clear();
    this.#broker.disconnect(this);
  }
}

/** A link that is always up, keeps every payload published, and lets a test deliver downlinks. */
export class RecordingMqttLink implements MqttLink {
  readonly connected = true;
  readonly sent: Uint8Array[] = [];
  #events: MqttEvents | undefined;

  open(events: MqttEvents): void {
    this.#events = events;
    events.onConnect();
  }

  subscribe(): void {}

  publish(_topic: string, payload: Uint8Array): boolean {
    this.sent.push(payload);
    return true;
  }

  close(): void {}

  /** Hands `payload` to the meter as if it had arrived on `topic`. */
  deliver(topic: string, payload: Uint8Array): void {
    this.#events?.onMessage(topic, payload);
  }
}
