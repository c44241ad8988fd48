// Who may use the broker and for what. Each meter has its own MQTT credentials: its user name is its
// decimal id, its password is derived from the master key, so the platform verifies it without
// storing it and the factory writes it into the meter (tools/factory.ts, tools/provisioning.ts):
//   broker key       = HMAC-SHA-256(C of the reserved slot meter 0 / epoch 0, "ParkLink MQTT password key v1")
//   meter password   = base64url(HMAC-SHA-256(broker key, "parklink mqtt password" || meter id, u32 big-endian))
//   platform password = base64url(HMAC-SHA-256(broker key, "parklink mqtt platform password"))
// A meter publishes only to its own uplink topic and subscribes only to its own downlink topic (and a
// Zigbee relay master to those of the slaves assigned to it), under its own client id; the platform (user "parklink-platform") reads every uplink and writes every
// downlink. The embedded aedes broker enforces this here; deploy/mosquitto/ does the same for Mosquitto.
import { createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';
import { meterClientId, meterIdOfTopic } from '../../protocol/topics';
import { relayMayUse } from '../../protocol/relay';
import type { Keystore } from '../keys/keystore';

export const PLATFORM_MQTT_USER = 'parklink-platform';

/** Who a connected client is, once its credentials are checked. */
export type BrokerIdentity = { kind: 'platform' } | { kind: 'meter'; meterId: number };

export class BrokerCredentials {
  #key: Buffer | undefined;

  constructor(keystore: Keystore) {
    const slot = keystore.meterKeys(0, 0);
    try {
      this.#key = createHmac('sha256', slot.uplink).update('ParkLink MQTT password key v1').digest();
    } finally {
      slot.uplink.fill(0);
      slot.downlink.fill(0);
      if (slot.secrets) for (const part of [slot.secrets.a, slot.secrets.b, slot.secrets.m]) part.fill(0);
    }
  }

  #mac(message: Buffer): Buffer {
    if (!this.#key) throw new Error('broker credentials closed');
    return createHmac('sha256', this.#key).update(message).digest();
  }

  /** The MQTT user name of a meter: its id in decimal. */
  static meterUser(meterId: number): string {
    return String(meterId);
  }

  meterPassword(meterId: number): string {
    if (!Number.isInteger(meterId) || meterId < 1 || meterId > 0xffffffff)
      throw new RangeError(`meter id ${meterId} is not a u32 above 0`);
    const id = Buffer.alloc(4);
    id.writeUInt32BE(meterId);
    return this.#mac(Buffer.concat([Buffer.from('parklink mqtt password'), id])).toString('base64url');
  }

  platformPassword(): string {
    return this.#mac(Buffer.from('parklink mqtt platform password')).toString('base64url');
  }

  /** The identity these credentials prove, or undefined; a meter must use its own client id. */
  verify(
    username: string | undefined,
    password: Buffer | undefined,
    clientId: string,
  ): BrokerIdentity | undefined {
    if (username === undefined || password === undefined) return undefined;
    let expected: string;
    let identity: BrokerIdentity;
    if (username === PLATFORM_MQTT_USER) {
      expected = this.platformPassword();
      identity = { kind: 'platform' };
    } else {
      if (!/^[1-9][0-9]{0,9}$/.test(username)) return undefined;
      const meterId = Number(username);
      if (meterId > 0xffffffff) return undefined;
      expected = this.meterPassword(meterId);
      identity = { kind: 'meter', meterId };
      // One session per meter, and only the meter's: another meter cannot take it over.
      if (clientId !== meterClientId(meterId)) return undefined;
    }
    const wanted = Buffer.from(expected);
    if (password.length !== wanted.length || !timingSafeEqual(password, wanted)) return undefined;
    return identity;
  }

  close(): void {
    this.#key?.fill(0);
    this.#key = undefined;
  }
}

/**
 * Whether `identity` may publish to `topic`: a meter its own uplink and those of the slaves it relays
 * for over Zigbee (`relaySlaves`, assigned by the platform), the platform any downlink.
 */
export function mayPublish(
  identity: BrokerIdentity,
  topic: string,
  relaySlaves: readonly number[] = [],
): boolean {
  if (identity.kind === 'meter') return relayMayUse(identity.meterId, relaySlaves, topic, 'publish');
  return /\/down$/.test(topic) && meterIdOfTopic(topic) !== undefined;
}

const UPLINK_FILTER = /^(\$share\/[^/#+]+\/)?parklink\/v1\/meters\/(\+|[0-9]{1,10})\/up$/;

/**
 * Whether `identity` may subscribe to `filter`: a meter its own downlink and its relay slaves'
 * (no wildcards), the platform the uplinks.
 */
export function maySubscribe(
  identity: BrokerIdentity,
  filter: string,
  relaySlaves: readonly number[] = [],
): boolean {
  if (identity.kind === 'meter') return relayMayUse(identity.meterId, relaySlaves, filter, 'subscribe');
  return UPLINK_FILTER.test(filter);
}

/** `url` with the platform's user name and password in it (mqtt.js reads them from there). */
export function withCredentials(url: string, username: string, password: string): string {
  const parsed = new URL(url);
  if (parsed.username) return url; // the operator's own credentials (MQTT_URL) win
  parsed.username = encodeURIComponent(username);
  parsed.password = encodeURIComponent(password);
  return parsed.toString();
}

/**
 * A line of Mosquitto's password file (password_file) for `username`, hashed as mosquitto_passwd
 * 2.0 does: $7$<iterations>$<base64 salt>$<base64 PBKDF2-HMAC-SHA-512, 64 bytes>.
 */
export function mosquittoPasswordLine(
  username: string,
  password: string,
  salt: Uint8Array = randomBytes(12),
  iterations = 101,
): string {
  if (!/^[^:\s]+$/.test(username)) throw new RangeError(`"${username}" cannot be a password file user name`);
  const hash = pbkdf2Sync(password, salt, iterations, 64, 'sha512');
  return `${username}:$7$${iterations}$${Buffer.from(salt).toString('base64')}$${hash.toString('base64')}`;
}

/** Mosquitto's password file for the platform and `meterIds` (one line each). */
export function mosquittoPasswordFile(credentials: BrokerCredentials, meterIds: Iterable<number>): string {
  const lines = [mosquittoPasswordLine(PLATFORM_MQTT_USER, credentials.platformPassword())];
  for (const id of meterIds)
    lines.push(mosquittoPasswordLine(BrokerCredentials.meterUser(id), credentials.meterPassword(id)));
  return `${lines.join('\n')}\n`;
}
