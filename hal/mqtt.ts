// The meter's MQTT 3.1.1 link (QoS 1), whatever carries it: the modem's own MQTT stack, Moddable's
// `mqtt` client over WiFi, or an in-process broker on the host.

export interface MqttEvents {
  onConnect(): void;
  onDisconnect(): void;
  onMessage(topic: string, payload: Uint8Array): void;
}

/** Where a link reaches its broker. */
export interface BrokerEndpoint {
  host: string;
  port: number;
}

export interface MqttLink {
  readonly connected: boolean;
  /** Starts connecting; `events` are called from then on. Reconnection is the link's job. */
  open(events: MqttEvents): void;
  subscribe(topic: string): void;
  /** QoS 1 publish; returns false when the link is down and nothing was sent. */
  publish(topic: string, payload: Uint8Array): boolean;
  close(): void;
  /**
   * Switches the radio (modem, Wi-Fi) off and on again for sleep: off drops the connection and stops
   * reconnecting; on reconnects. Optional: a link without a switchable radio leaves it out.
   */
  power?(on: boolean): void;
  /**
   * The broker endpoint the link connects to now. Optional: absent on a link that does not choose
   * its broker (a Zigbee relay path goes through its master).
   */
  readonly endpoint?: BrokerEndpoint;
  /**
   * Connects to another broker endpoint from now on: an open link drops its connection and connects
   * there (subscriptions are renewed by the onConnect handler, as after any reconnection).
   */
  setEndpoint?(endpoint: BrokerEndpoint): void;
  /**
   * Whether the link is connected through its endpoint; absent means `connected` says it. A link
   * over several paths says false while a path without an endpoint (a relay) carries the traffic.
   */
  readonly endpointConnected?: boolean;
}
