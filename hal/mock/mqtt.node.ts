// The meter's MQTT link on the host (Node only): mqtt.js against a real broker or the platform's
// in-process one, for virtual meters. QoS 1, a persistent session (clean session false) under a
// stable client id per meter, automatic reconnection; subscriptions are renewed on every connect.
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { MqttEvents, MqttLink } from '../mqtt';

export interface NodeMqttLinkOptions {
  /** mqtt://host:port, or mqtts://host:port (verified against `ca`, else the system's CAs) */
  url: string;
  /** The CA certificate(s) (PEM) an mqtts broker's certificate is verified against. */
  ca?: string | Buffer;
  /** Stable per meter (see meterClientId) so the broker keeps the session across reconnections. */
  clientId: string;
  username?: string;
  password?: string;
  /** Delay between reconnection attempts, default 1000 ms. */
  reconnectPeriodMs?: number;
  /** Default 30 s. */
  keepaliveSeconds?: number;
  /** Default false: the broker keeps subscriptions and queued QoS 1 messages while the meter is away. */
  cleanSession?: boolean;
}

export { meterClientId } from '../../protocol/topics';

export class NodeMqttLink implements MqttLink {
  private client: MqttClient | undefined;
  private events: MqttEvents | undefined;
  private readonly topics = new Set<string>();
  /** Topics the broker has granted on the current connection. */
  private readonly granted = new Set<string>();

  constructor(private readonly options: NodeMqttLinkOptions) {}

  get connected(): boolean {
    return this.client?.connected ?? false;
  }

  open(events: MqttEvents): void {
    if (this.client) throw new Error('MQTT link already open');
    this.events = events;
    const options: IClientOptions = {
      clientId: this.options.clientId,
      protocolVersion: 4,
      clean: this.options.cleanSession ?? false,
      reconnectPeriod: this.options.reconnectPeriodMs ?? 1000,
      keepalive: this.options.keepaliveSeconds ?? 30,
      connectTimeout: 10_000,
      resubscribe: false,
    };
    if (this.options.username !== undefined) options.username = this.options.username;
    if (this.options.password !== undefined) options.password = this.options.password;
    if (this.options.ca !== undefined) {
      options.ca = this.options.ca;
      options.rejectUnauthorized = true;
    }
    const client = mqtt.connect(this.options.url, options);
    this.client = client;
    client.on('connect', () => {
      // Renew every subscription: the session may be new (first connect, broker restarted).
      if (this.topics.size > 0) this.grant([...this.topics]);
      this.events?.onConnect();
    });
    client.on('close', () => {
      this.granted.clear();
      this.events?.onDisconnect();
    });
    client.on('message', (topic, payload) => {
      this.events?.onMessage(topic, new Uint8Array(payload.buffer, payload.byteOffset, payload.length));
    });
    // Connection errors are followed by 'close' and a reconnection attempt; nothing to throw.
    client.on('error', () => {});
  }

  subscribe(topic: string): void {
    this.topics.add(topic);
    if (this.client?.connected) this.grant([topic]);
  }

  /**
   * Whether the broker has granted `topic` on this connection: a downlink published before then
   * reaches no session (tests wait for it before the platform sends one).
   */
  subscribed(topic: string): boolean {
    return this.granted.has(topic);
  }

  private grant(topics: string[]): void {
    this.client?.subscribe(topics, { qos: 1 }, (error, granted) => {
      if (error) return;
      for (const g of granted ?? []) if (g.qos === 1) this.granted.add(g.topic);
    });
  }

  /** Resolves when the broker has granted the subscription (tests, tools). */
  async subscribeAsync(topic: string): Promise<void> {
    this.topics.add(topic);
    if (!this.client) throw new Error('MQTT link is not open');
    const granted = await this.client.subscribeAsync(topic, { qos: 1 });
    if (granted.some((g) => g.qos !== 1)) throw new Error(`broker refused QoS 1 on ${topic}`);
    this.granted.add(topic);
  }

  publish(topic: string, payload: Uint8Array): boolean {
    const client = this.client;
    if (!client?.connected) return false;
    client.publish(topic, Buffer.from(payload), { qos: 1 }, () => {});
    return true;
  }

  /** Resolves when the broker has acknowledged the publish (PUBACK). */
  async publishAsync(topic: string, payload: Uint8Array): Promise<void> {
    if (!this.client) throw new Error('MQTT link is not open');
    await this.client.publishAsync(topic, Buffer.from(payload), { qos: 1 });
  }

  close(): void {
    void this.closeAsync();
  }

  /** Sleep: off ends the connection (and its reconnecting); on connects again with the same events. */
  power(on: boolean): void {
    if (!on) {
      const client = this.client;
      this.client = undefined;
      client?.end(true);
    } else if (!this.client && this.events) {
      const events = this.events;
      this.events = undefined;
      this.open(events);
    }
  }

  /** Disconnects cleanly and stops reconnecting. */
  async closeAsync(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (client) await client.endAsync();
    this.events = undefined;
  }

  /** Resolves on the next (or current) connection. */
  waitConnected(): Promise<void> {
    const client = this.client;
    if (!client) return Promise.reject(new Error('MQTT link is not open'));
    if (client.connected) return Promise.resolve();
    return new Promise((resolve) => client.once('connect', () => resolve()));
  }
}
