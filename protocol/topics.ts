// MQTT topics: one tree per meter. Platform instances share the uplinks through a shared subscription.

export const TOPIC_ROOT = 'parklink/v1/meters';

export function uplinkTopic(meterId: number): string {
  return `${TOPIC_ROOT}/${meterId}/up`;
}

export function downlinkTopic(meterId: number): string {
  return `${TOPIC_ROOT}/${meterId}/down`;
}

export const UPLINK_WILDCARD = `${TOPIC_ROOT}/+/up`;

/** The meter id in an uplink or downlink topic, or undefined when the topic is not one of ours. */
export function meterIdOfTopic(topic: string): number | undefined {
  const match = /^parklink\/v1\/meters\/(\d{1,10})\/(up|down)$/.exec(topic);
  if (!match) return undefined;
  const id = Number(match[1]);
  return id <= 0xffffffff ? id : undefined;
}

/** The MQTT client id a meter connects with (one session per meter at the broker). */
export function meterClientId(meterId: number): string {
  return `parklink-meter-${meterId}`;
}
