// What the factory station writes into a meter's preferences, in the domains and keys that
// firmware/boot.ts reads: identity, bays, broker and its per-meter credentials, Wi-Fi, tariff, and
// the one-time key material the meter moves into its secure parts at its first start. Rendered as
// the ESP-IDF NVS partition CSV (for nvs_partition_gen.py and esptool) or as the preferences file of
// the Moddable runtime's lin preference module (the host build).
import { FACTORY_DOMAIN, METER_DOMAIN, NETWORK_DOMAIN } from '../firmware/boot';
import type { MeterKeys } from '../protocol/keys';

export interface ProvisioningInput {
  meterId: number;
  bays: readonly number[];
  /** `tls` writes meter.broker as mqtts://host:port; `ca` is the CA certificate (DER) for it. */
  broker: { host: string; port: number; tls?: boolean; ca?: Uint8Array; user?: string; password?: string };
  network?: { ssid: string; password?: string };
  /** A cellular meter (network.link = cellular): the SIM's APN. Not with `network`. */
  cellular?: { apn: string };
  rate?: { perHour: number; currency: number };
  /** Comma-separated mode key sequence, e.g. "cancel,cancel,cancel,up,down,ok". */
  modeKey?: string;
  /**
   * The meter's keys as the platform derived them (with the secrets for the secure parts), and the
   * fleet's card-token key (platform.provisionMeter gives it): without it the meter sells to no card.
   */
  keys: MeterKeys & { cardTokenKey?: Uint8Array };
  releaseKey: Uint8Array;
  /** The firmware release key's public half (Ed25519, 32 bytes), pinned in the meter for updates. */
  firmwareKey?: Uint8Array;
}

export type PreferenceEntry =
  | { domain: string; key: string; type: 'i32'; value: number }
  | { domain: string; key: string; type: 'string'; value: string }
  | { domain: string; key: string; type: 'blob'; value: Uint8Array };

export class ProvisioningInputError extends Error {
  override readonly name = 'ProvisioningInputError';
}

/** NVS limits every namespace and key to 15 characters and a string to 4000 bytes. */
function checkEntry(entry: PreferenceEntry): PreferenceEntry {
  for (const name of [entry.domain, entry.key]) {
    if (!/^[A-Za-z][A-Za-z0-9_]{0,14}$/.test(name))
      throw new ProvisioningInputError(`bad NVS name "${name}"`);
  }
  if (entry.type === 'i32' && (entry.value | 0) !== entry.value) {
    throw new ProvisioningInputError(`${entry.domain}.${entry.key}: ${entry.value} is not a 32-bit integer`);
  }
  if (
    entry.type === 'string' &&
    (entry.value.length === 0 || entry.value.length > 4000 || /[\r\n]/.test(entry.value))
  ) {
    throw new ProvisioningInputError(
      `${entry.domain}.${entry.key}: string empty, too long or with a line break`,
    );
  }
  return entry;
}

export function preferenceEntries(input: ProvisioningInput): PreferenceEntry[] {
  const { meterId, bays, broker, keys } = input;
  if (!Number.isInteger(meterId) || meterId <= 0 || meterId > 0x7fffffff) {
    throw new ProvisioningInputError(`meter id ${meterId} is not a positive 31-bit integer`);
  }
  if (bays.length === 0 || bays.some((bay) => !Number.isInteger(bay) || bay <= 0)) {
    throw new ProvisioningInputError('bays must be positive integers');
  }
  if (!keys.secrets) throw new ProvisioningInputError('the keys carry no secrets for the secure parts');
  const entries: PreferenceEntry[] = [
    { domain: METER_DOMAIN, key: 'id', type: 'i32', value: meterId },
    { domain: METER_DOMAIN, key: 'bays', type: 'string', value: bays.join(',') },
    {
      domain: METER_DOMAIN,
      key: 'broker',
      type: 'string',
      value: `${broker.tls ? 'mqtts://' : ''}${broker.host}:${broker.port}`,
    },
  ];
  if (broker.tls) {
    if (!broker.ca || broker.ca.length === 0)
      throw new ProvisioningInputError('an mqtts broker needs the CA certificate the meter verifies it with');
    entries.push({ domain: METER_DOMAIN, key: 'brokerCa', type: 'blob', value: broker.ca });
  }
  if (broker.user)
    entries.push({ domain: METER_DOMAIN, key: 'mqttUser', type: 'string', value: broker.user });
  if (broker.password)
    entries.push({ domain: METER_DOMAIN, key: 'mqttPass', type: 'string', value: broker.password });
  if (input.rate) {
    entries.push({ domain: METER_DOMAIN, key: 'perHour', type: 'i32', value: input.rate.perHour });
    entries.push({ domain: METER_DOMAIN, key: 'currency', type: 'i32', value: input.rate.currency });
  }
  if (input.modeKey)
    entries.push({ domain: METER_DOMAIN, key: 'modeKey', type: 'string', value: input.modeKey });
  if (input.network && input.cellular)
    throw new ProvisioningInputError('a meter is provisioned for Wi-Fi or for cellular, not both');
  if (input.cellular) {
    if (!input.cellular.apn) throw new ProvisioningInputError("a cellular meter needs its SIM's APN");
    entries.push({ domain: NETWORK_DOMAIN, key: 'link', type: 'string', value: 'cellular' });
    entries.push({ domain: NETWORK_DOMAIN, key: 'apn', type: 'string', value: input.cellular.apn });
  }
  if (input.network) {
    entries.push({ domain: NETWORK_DOMAIN, key: 'link', type: 'string', value: 'wifi' });
    entries.push({ domain: NETWORK_DOMAIN, key: 'ssid', type: 'string', value: input.network.ssid });
    if (input.network.password) {
      entries.push({
        domain: NETWORK_DOMAIN,
        key: 'password',
        type: 'string',
        value: input.network.password,
      });
    }
  }
  entries.push(
    { domain: FACTORY_DOMAIN, key: 'epoch', type: 'i32', value: keys.epoch },
    { domain: FACTORY_DOMAIN, key: 'keyA', type: 'blob', value: keys.secrets.a },
    { domain: FACTORY_DOMAIN, key: 'keyB', type: 'blob', value: keys.secrets.b },
    { domain: FACTORY_DOMAIN, key: 'keyM', type: 'blob', value: keys.secrets.m },
    { domain: FACTORY_DOMAIN, key: 'keyC', type: 'blob', value: keys.uplink },
    { domain: FACTORY_DOMAIN, key: 'keyD', type: 'blob', value: keys.downlink },
    { domain: FACTORY_DOMAIN, key: 'releaseKey', type: 'blob', value: input.releaseKey },
  );
  if (keys.cardTokenKey)
    entries.push({ domain: FACTORY_DOMAIN, key: 'cardTokenKey', type: 'blob', value: keys.cardTokenKey });
  if (input.firmwareKey)
    entries.push({ domain: FACTORY_DOMAIN, key: 'firmwareKey', type: 'blob', value: input.firmwareKey });
  return entries.map(checkEntry);
}

function csvField(value: string): string {
  return /[",]/.test(value) ? `"${value.replaceAll('"', '""')}"` : value;
}

/** The NVS partition CSV of ESP-IDF's nvs_partition_gen.py: a namespace row, then its keys. */
export function nvsCsv(entries: readonly PreferenceEntry[]): string {
  const lines = ['key,type,encoding,value'];
  let namespace: string | undefined;
  for (const entry of [...entries].sort((a, b) => (a.domain < b.domain ? -1 : a.domain > b.domain ? 1 : 0))) {
    if (entry.domain !== namespace) {
      namespace = entry.domain;
      lines.push(`${namespace},namespace,,`);
    }
    const value =
      entry.type === 'blob'
        ? Buffer.from(entry.value).toString('hex')
        : entry.type === 'i32'
          ? String(entry.value)
          : entry.value;
    const encoding = entry.type === 'blob' ? 'hex2bin' : entry.type;
    lines.push(`${entry.key},data,${encoding},${csvField(value)}`);
  }
  return `${lines.join('\n')}\n`;
}

/**
 * The file of the SDK's lin preference module (modules/files/preference/lin/preference.js):
 * { domain: { key: value } }, an ArrayBuffer as { buffer: "1,2,3" }.
 */
export function linPreferencesJson(entries: readonly PreferenceEntry[]): string {
  const domains: Record<string, Record<string, unknown>> = {};
  for (const entry of entries) {
    domains[entry.domain] ??= {};
    domains[entry.domain][entry.key] =
      entry.type === 'blob' ? { buffer: Array.from(entry.value).join(',') } : entry.value;
  }
  return JSON.stringify(domains);
}
