// What a board does at power-on before the meter runs, the same on the ESP32 and the host build:
// read what the factory station wrote into the preferences (identity, bays, broker and its
// credentials, network, tariff), move the one-time key material into the secure parts and erase
// it from the preferences, then build the meter. tools/flash.ts and tools/device.ts write the
// preferences read here; docs/device.md lists them.
import type { MeterHardware } from '../hal/hardware';
import type { Preferences } from '../hal/preferences';
import { utf8 } from '../protocol/bytes';
import { RecordStore } from './units/storage';
import { provisionBoard } from './units/security';
import type { KeyName } from './events';
import type { MeterConfig } from './meter';

/** The preference domains the factory writes (NVS namespaces: at most 15 characters). */
export const METER_DOMAIN = 'meter';
export const NETWORK_DOMAIN = 'network';
/** One-time key material, erased once it is in the secure parts. */
export const FACTORY_DOMAIN = 'factory';

export interface BrokerSettings {
  host: string;
  port: number;
  /** MQTT over TLS (meter.broker "mqtts://host:port"), verified against `ca`. */
  tls?: boolean;
  /** The CA certificate (DER) the broker's certificate is verified against (meter.brokerCa). */
  ca?: Uint8Array;
  /** Per-meter broker credentials. */
  user?: string;
  password?: string;
}

export interface Provisioning {
  meterId: number;
  bays: number[];
  broker: BrokerSettings;
  /** The Wi-Fi the board joins (absent where the host's network is used). */
  network?: { ssid: string; password?: string };
  /**
   * The link the meter reaches the platform by (network.link): 'wifi' (the board's Wi-Fi and the
   * ESP32's own MQTT client) or 'cellular' (the A7670E modem, its MQTT and TLS stack). It also picks
   * the board profile (hal/moddable/profiles.ts).
   */
  link: 'wifi' | 'cellular';
  /** The cellular modem's APN (network.apn), on boards whose link is the modem. */
  cellular?: { apn: string };
  config: MeterConfig;
}

export class ProvisioningError extends Error {
  override readonly name = 'ProvisioningError';
}

const KEY_NAMES: readonly KeyName[] = Object.freeze(['bay', 'up', 'down', 'ok', 'cancel']);

function text(preferences: Preferences, domain: string, key: string): string | undefined {
  const value = preferences.get(domain, key);
  return typeof value === 'string' && value.length > 0 ? value : undefined;
}

function integer(preferences: Preferences, domain: string, key: string): number | undefined {
  const value = preferences.get(domain, key);
  return typeof value === 'number' && Number.isInteger(value) ? value : undefined;
}

/** Parses "host:port", "mqtt://host:port" or "mqtts://host:port" (port 1883, or 8883 for mqtts, when absent). */
export function parseBroker(address: string): { host: string; port: number; tls?: boolean } {
  const scheme = /^(mqtts?):\/\//.exec(address);
  const tls = scheme?.[1] === 'mqtts';
  const rest = scheme ? address.slice(scheme[0].length) : address;
  const colon = rest.lastIndexOf(':');
  const host = colon < 0 ? rest : rest.slice(0, colon);
  const port = colon < 0 ? (tls ? 8883 : 1883) : Number(rest.slice(colon + 1));
  if (!host || /[/@\s]/.test(host) || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new ProvisioningError(`meter.broker "${address}" is not [mqtt://|mqtts://]host:port`);
  }
  return tls ? { host, port, tls } : { host, port };
}

/** Reads the provisioned settings; throws ProvisioningError naming what is missing or wrong. */
export function readProvisioning(preferences: Preferences): Provisioning {
  const meterId = integer(preferences, METER_DOMAIN, 'id');
  const baysText = text(preferences, METER_DOMAIN, 'bays');
  const brokerText = text(preferences, METER_DOMAIN, 'broker');
  const missing = [
    meterId === undefined || meterId <= 0 ? 'meter.id' : '',
    baysText ? '' : 'meter.bays',
    brokerText ? '' : 'meter.broker',
  ].filter(Boolean);
  if (missing.length > 0 || meterId === undefined || !baysText || !brokerText) {
    throw new ProvisioningError(`not provisioned: ${missing.join(', ')} missing`);
  }
  const bays = baysText.split(',').map(Number);
  if (bays.some((bay) => !Number.isInteger(bay) || bay <= 0) || new Set(bays).size !== bays.length) {
    throw new ProvisioningError(`meter.bays "${baysText}" is not a list of distinct bay numbers`);
  }
  const broker: BrokerSettings = parseBroker(brokerText);
  const user = text(preferences, METER_DOMAIN, 'mqttUser');
  const password = text(preferences, METER_DOMAIN, 'mqttPass');
  if (user) broker.user = user;
  if (password) broker.password = password;
  if (broker.tls) {
    const ca = preferences.get(METER_DOMAIN, 'brokerCa');
    if (!(ca instanceof ArrayBuffer) || ca.byteLength === 0) {
      throw new ProvisioningError(
        'meter.broker is mqtts but meter.brokerCa (the CA certificate, DER) is missing',
      );
    }
    broker.ca = new Uint8Array(ca.slice(0));
  }

  const modeKeyText = text(preferences, METER_DOMAIN, 'modeKey');
  const modeKey = modeKeyText?.split(',') as KeyName[] | undefined;
  if (modeKey?.some((key) => !KEY_NAMES.includes(key))) {
    throw new ProvisioningError(
      `meter.modeKey "${modeKeyText}" names a key other than ${KEY_NAMES.join(', ')}`,
    );
  }
  const config: MeterConfig = {
    meterId,
    bays,
    // Display and reader antenna off after two idle minutes; a key wakes the meter. The radio
    // stays on so that downlinks (tariffs, renewals) arrive while the meter sleeps.
    sleep: { idleMs: 120_000 },
    rate: {
      currency: integer(preferences, METER_DOMAIN, 'currency') ?? 826,
      perHour: integer(preferences, METER_DOMAIN, 'perHour') ?? 240,
      minMinutes: 15,
      maxMinutes: 240,
      stepMinutes: 15,
    },
  };
  if (modeKey) config.maintenance = { sequence: modeKey, maxAttempts: 3, lockoutMs: 15 * 60_000 };
  // Time management is always on for a provisioned meter: without it a real board's records would
  // carry 1970. SNTP servers from meter.sntp (comma separated), else the public pool; a cellular
  // board takes the network's time and every meter the platform's sealed time exchange.
  const sntpText = text(preferences, METER_DOMAIN, 'sntp');
  const sntpHosts = (sntpText ?? 'pool.ntp.org').split(',').map((h) => h.trim());
  if (sntpHosts.some((h) => !/^[A-Za-z0-9.-]{1,253}$/.test(h))) {
    throw new ProvisioningError(`meter.sntp "${sntpText}" is not a list of host names`);
  }
  config.time = { sntpHosts };
  // The platform's call-in numbers (meter.callIn, comma separated, international form).
  const callInText = text(preferences, METER_DOMAIN, 'callIn');
  if (callInText) {
    const numbers = callInText.split(',').map((n) => n.trim());
    if (numbers.some((n) => !/^\+[1-9]\d{6,14}$/.test(n))) {
      throw new ProvisioningError(`meter.callIn "${callInText}" is not a list of +E.164 numbers`);
    }
    config.callIn = { numbers };
  }
  const apn = text(preferences, NETWORK_DOMAIN, 'apn');
  const ssid = text(preferences, NETWORK_DOMAIN, 'ssid');
  // network.link names the link; without it a board provisioned with an APN and no SSID is cellular.
  const linkText = text(preferences, NETWORK_DOMAIN, 'link') ?? (apn && !ssid ? 'cellular' : 'wifi');
  if (linkText !== 'wifi' && linkText !== 'cellular') {
    throw new ProvisioningError(`network.link "${linkText}" is neither wifi nor cellular`);
  }
  if (linkText === 'cellular' && !apn) {
    throw new ProvisioningError("network.link is cellular but network.apn (the SIM's APN) is missing");
  }
  const provisioning: Provisioning = { meterId, bays, broker, link: linkText, config };
  if (apn) provisioning.cellular = { apn };
  if (ssid) {
    provisioning.network = { ssid };
    const networkPassword = text(preferences, NETWORK_DOMAIN, 'password');
    if (networkPassword) provisioning.network.password = networkPassword;
  }
  return provisioning;
}

const BASE64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/**
 * A DER certificate as PEM (RFC 7468: base64 in 64-character lines between the CERTIFICATE
 * labels), the form the A7670E's certificate store takes (AT+CCERTDOWN); meter.brokerCa is DER.
 */
export function pemCertificate(der: Uint8Array): Uint8Array {
  if (der.length === 0) throw new ProvisioningError('meter.brokerCa is empty');
  let body = '';
  for (let i = 0; i < der.length; i += 3) {
    const n = (der[i] << 16) | ((der[i + 1] ?? 0) << 8) | (der[i + 2] ?? 0);
    body += BASE64[(n >> 18) & 63] + BASE64[(n >> 12) & 63];
    body += i + 1 < der.length ? BASE64[(n >> 6) & 63] : '=';
    body += i + 2 < der.length ? BASE64[n & 63] : '=';
  }
  const lines: string[] = [];
  for (let i = 0; i < body.length; i += 64) lines.push(body.slice(i, i + 64));
  return utf8(`-----BEGIN CERTIFICATE-----\n${lines.join('\n')}\n-----END CERTIFICATE-----\n`);
}

const FACTORY_KEYS = Object.freeze([
  'epoch',
  'keyA',
  'keyB',
  'keyM',
  'keyC',
  'keyD',
  'releaseKey',
  'cardTokenKey',
  'firmwareKey',
]);

function bytes(preferences: Preferences, key: string, length: number): Uint8Array {
  const value = preferences.get(FACTORY_DOMAIN, key);
  if (!(value instanceof ArrayBuffer) || value.byteLength !== length) {
    throw new ProvisioningError(`factory.${key} must be ${length} bytes`);
  }
  return new Uint8Array(value);
}

/**
 * Moves the factory's key material (keys A, B, M for the secure parts; C and D; the release key;
 * the card-token key; the firmware release key) into their places and erases it from the preferences. Returns false when there is none (the
 * meter was personalised before). A malformed set is refused whole and left for the station.
 */
export function personalise(hardware: MeterHardware, meterId: number): boolean {
  const preferences = hardware.preferences;
  if (preferences.get(FACTORY_DOMAIN, 'epoch') === undefined) return false;
  const epoch = integer(preferences, FACTORY_DOMAIN, 'epoch');
  if (epoch === undefined || epoch < 1) throw new ProvisioningError('factory.epoch must be a key epoch');
  const a = bytes(preferences, 'keyA', 32);
  const b = bytes(preferences, 'keyB', 32);
  const m = bytes(preferences, 'keyM', 32);
  const uplink = bytes(preferences, 'keyC', 32);
  const downlink = bytes(preferences, 'keyD', 32);
  const releaseKey = bytes(preferences, 'releaseKey', 32);
  // The fleet's card-token key; a station from before card tokens writes none (no card sales then).
  const cardTokenKey =
    preferences.get(FACTORY_DOMAIN, 'cardTokenKey') === undefined
      ? undefined
      : bytes(preferences, 'cardTokenKey', 32);
  // The firmware release key (public) pinned for updates (414a); a station without one pins none.
  const firmwareKey =
    preferences.get(FACTORY_DOMAIN, 'firmwareKey') === undefined
      ? undefined
      : bytes(preferences, 'firmwareKey', 32);
  try {
    provisionBoard(
      hardware,
      { epoch, uplink, downlink, secrets: { a, b, m }, cardTokenKey },
      meterId,
      firmwareKey ? { firmwareKey } : {},
    );
    RecordStore.provisionReleaseKey(preferences, releaseKey);
  } finally {
    for (const key of [a, b, m, uplink, downlink, releaseKey]) key.fill(0);
    cardTokenKey?.fill(0);
  }
  for (const key of FACTORY_KEYS) preferences.delete(FACTORY_DOMAIN, key);
  return true;
}
