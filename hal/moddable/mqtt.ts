// The meter's MQTT link on the SDK's `mqtt` client (modules/network/mqtt/mqtt.js) over Wi-Fi.
// That client sends QoS 1 PUBLISH packets but neither surfaces PUBACK nor retransmits, and it
// subscribes at QoS 0; delivery is end-to-end in ParkLink anyway (an upload set stays in the
// upload store until the platform's acknowledgement frame, downlinks are versioned and acked).
// Reconnection with exponential backoff and jitter runs here, on the `timer` module.
/// <reference path="./typings.d.ts" />
import Client from 'mqtt';
import Timer from 'timer';
import type { BrokerEndpoint, MqttEvents, MqttLink } from '../mqtt';

export interface ModdableMqttOptions {
  host: string;
  port?: number;
  /** MQTT client id: the meter id. */
  id: string;
  user?: string;
  password?: string;
  /**
   * mqtts: the SDK's SecureSocket class (modules/crypt/securesocket, which the build must include)
   * and the CA certificate (DER) the broker's certificate is verified against.
   */
  tls?: { Socket: unknown; ca: ArrayBuffer };
  /** Keep-alive in milliseconds (default 60 s). */
  keepAliveMs?: number;
  /** First retry delay (default 1 s), doubled per failure up to maxBackoffMs (default 5 min). */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** A uniform [0, 1) source for backoff jitter; timing only, not key material. */
  jitter?: () => number;
}

type TimerObject = ReturnType<typeof Timer.set>;

export class ModdableMqttLink implements MqttLink {
  readonly #options: ModdableMqttOptions;
  #client: Client | undefined;
  #events: MqttEvents | undefined;
  #connected = false;
  #retry: TimerObject | undefined;
  #backoff: number;
  #off = false;
  #endpoint: BrokerEndpoint;
  readonly #topics = new Set<string>();

  constructor(options: ModdableMqttOptions) {
    this.#options = options;
    this.#endpoint = { host: options.host, port: options.port ?? 1883 };
    this.#backoff = options.minBackoffMs ?? 1_000;
  }

  get connected(): boolean {
    return this.#connected;
  }

  open(events: MqttEvents): void {
    this.#events = events;
    this.#connect();
  }

  subscribe(topic: string): void {
    this.#topics.add(topic); // renewed on every (re)connect: the client asks for a clean session
    if (this.#connected) this.#client?.subscribe(topic);
  }

  publish(topic: string, payload: Uint8Array): boolean {
    if (!this.#connected || !this.#client) return false;
    try {
      this.#client.publish(topic, payload.slice().buffer as ArrayBuffer, { quality: 1 });
      return true;
    } catch {
      this.#dropped();
      return false;
    }
  }

  close(): void {
    this.#events = undefined;
    Timer.clear(this.#retry);
    this.#retry = undefined;
    const client = this.#client;
    this.#client = undefined;
    this.#connected = false;
    client?.close();
  }

  /**
   * Sleep: off closes the connection and stops reconnecting, so the Wi-Fi station goes idle (its
   * modem sleep); on connects again with the same events.
   */
  power(on: boolean): void {
    if (!on) {
      if (this.#off) return;
      this.#off = true;
      this.#drop();
    } else if (this.#off) {
      this.#off = false;
      this.#backoff = this.#options.minBackoffMs ?? 1_000;
      this.#connect();
    }
  }

  get endpoint(): BrokerEndpoint {
    return { ...this.#endpoint };
  }

  /** Closes the connection (if any) and connects to `endpoint`, with the first backoff again. */
  setEndpoint(endpoint: BrokerEndpoint): void {
    this.#endpoint = { host: endpoint.host, port: endpoint.port };
    if (!this.#events || this.#off) return;
    this.#drop();
    this.#backoff = this.#options.minBackoffMs ?? 1_000;
    this.#connect();
  }

  /** Stops any retry and closes the connection, telling the events when it was up. */
  #drop(): void {
    Timer.clear(this.#retry);
    this.#retry = undefined;
    const client = this.#client;
    const wasConnected = this.#connected;
    this.#client = undefined;
    this.#connected = false;
    try {
      client?.close();
    } catch {
      // already closed
    }
    if (wasConnected) this.#events?.onDisconnect();
  }

  #connect(): void {
    this.#retry = undefined;
    if (!this.#events || this.#off) return;
    const options = this.#options;
    let client: Client;
    try {
      client = new Client({
        host: this.#endpoint.host,
        port: this.#endpoint.port,
        id: options.id,
        user: options.user,
        password: options.password,
        timeout: options.keepAliveMs ?? 60_000,
        ...(options.tls
          ? {
              Socket: options.tls.Socket,
              secure: { protocolVersion: 0x303, certificate: options.tls.ca, verify: true },
            }
          : {}),
      });
    } catch {
      this.#scheduleRetry();
      return;
    }
    this.#client = client;
    client.onReady = () => {
      if (this.#client !== client) return;
      this.#connected = true;
      this.#backoff = options.minBackoffMs ?? 1_000;
      for (const topic of this.#topics) client.subscribe(topic);
      this.#events?.onConnect();
    };
    client.onMessage = (topic, body) => {
      if (this.#client === client) this.#events?.onMessage(topic, new Uint8Array(body));
    };
    client.onClose = () => {
      if (this.#client === client) this.#dropped();
    };
  }

  #dropped(): void {
    const client = this.#client;
    const wasConnected = this.#connected;
    this.#client = undefined;
    this.#connected = false;
    try {
      client?.close(true);
    } catch {
      // already closed by the client itself
    }
    if (wasConnected) this.#events?.onDisconnect();
    this.#scheduleRetry();
  }

  #scheduleRetry(): void {
    if (!this.#events || this.#retry || this.#off) return;
    const max = this.#options.maxBackoffMs ?? 300_000;
    const delay = Math.min(this.#backoff, max);
    this.#backoff = Math.min(this.#backoff * 2, max);
    // Full jitter in the upper half, so that a fleet does not reconnect in step after an outage.
    const jitter = this.#options.jitter ?? Math.random;
    this.#retry = Timer.set(() => this.#connect(), Math.round(delay / 2 + (jitter() * delay) / 2));
  }
}
