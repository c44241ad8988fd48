// The meter's MQTT 3.1.1 link (QoS 1), whatever carries it: the modem's own MQTT stack, Moddable's
// `mqtt` client over WiFi, or an in-process broker on the host.

export interface MqttEvents {
  onConnect(): void;
  onDisconnect(): void;
  onMessage(topic: string, payload: Uint8Array): void;
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
}
