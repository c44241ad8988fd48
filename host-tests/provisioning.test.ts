import assert from 'node:assert/strict';
import { FACTORY_DOMAIN, personalise, ProvisioningError, readProvisioning } from '../firmware/boot';
import { Meter } from '../firmware/meter';
import { Slot } from '../firmware/units/security';
import { VirtualBoard } from '../hal/mock/board';
import { VirtualClock } from '../hal/mock/clock';
import { VirtualBroker } from '../hal/mock/mqtt';
import { nobleCrypto } from '../hal/nobleCrypto';
import type { PreferenceValue } from '../hal/preferences';
import { deriveMeterKeys } from '../protocol/keys';
import {
  linPreferencesJson,
  nvsCsv,
  type PreferenceEntry,
  ProvisioningInputError,
  type ProvisioningInput,
  preferenceEntries,
} from '../tools/provisioning';
import { VirtualPlatform } from '../sim/fleet/virtualPlatform';

const MASTER = Uint8Array.from({ length: 32 }, (_, i) => 255 - i);
const METER = 2207;

function input(overrides: Partial<ProvisioningInput> = {}): ProvisioningInput {
  return {
    meterId: METER,
    bays: [4, 5, 6],
    broker: { host: 'mqtt.city.example', port: 8883, user: `meter-${METER}`, password: 'p,w"d' },
    network: { ssid: 'Street, east', password: 'wifi secret' },
    rate: { perHour: 300, currency: 978 },
    modeKey: 'cancel,cancel,cancel,up,down,ok',
    keys: deriveMeterKeys(nobleCrypto, MASTER, METER, 1),
    releaseKey: Uint8Array.from({ length: 32 }, (_, i) => i + 1),
    ...overrides,
  };
}

/** Loads the lin preference module's file the way modules/files/preference/lin/preference.js reads it. */
function loadLinPreferences(board: VirtualBoard, json: string): void {
  const domains = JSON.parse(json) as Record<string, Record<string, unknown>>;
  for (const [domain, keys] of Object.entries(domains)) {
    for (const [key, stored] of Object.entries(keys)) {
      const value =
        stored && typeof stored === 'object'
          ? Uint8Array.from((stored as { buffer: string }).buffer.split(',').map(Number)).buffer
          : (stored as PreferenceValue);
      board.preferences.set(domain, key, value);
    }
  }
}

/** A CSV reader enough for nvs_partition_gen.py's format: quoted fields with doubled quotes. */
function parseCsv(text: string): string[][] {
  return text
    .trim()
    .split('\n')
    .map((line) => {
      const fields: string[] = [];
      let field = '';
      let quoted = false;
      for (let i = 0; i < line.length; i++) {
        const c = line[i];
        if (quoted && c === '"' && line[i + 1] === '"') {
          field += '"';
          i++;
        } else if (c === '"') quoted = !quoted;
        else if (c === ',' && !quoted) {
          fields.push(field);
          field = '';
        } else field += c;
      }
      fields.push(field);
      return fields;
    });
}

describe('factory provisioning: what the station writes is what the meter reads', () => {
  it('a meter provisioned through the preferences file boots, moves its keys into the secure parts and is understood by the platform', () => {
    const clock = new VirtualClock('2026-06-01T08:00:00Z');
    const broker = new VirtualBroker(clock);
    const platform = new VirtualPlatform(broker, nobleCrypto);
    // A provisioned meter manages its time: the platform answers its time requests.
    platform.timeNow = () => clock.now();
    const firmwareKey = new Uint8Array(32).fill(0x42); // the release key's public half, as the station has it
    const given = input({ firmwareKey });
    platform.register(METER, given.keys);
    const board = new VirtualBoard({ mqtt: broker.link(), clock });
    loadLinPreferences(board, linPreferencesJson(preferenceEntries(given)));

    const provisioning = readProvisioning(board.preferences);
    assert.equal(provisioning.meterId, METER);
    assert.deepEqual(provisioning.bays, [4, 5, 6]);
    assert.deepEqual(provisioning.broker, given.broker);
    assert.deepEqual(provisioning.network, given.network);
    assert.equal(provisioning.config.rate?.perHour, 300);
    assert.equal(provisioning.config.rate?.currency, 978);
    assert.deepEqual(provisioning.config.maintenance?.sequence, [
      'cancel',
      'cancel',
      'cancel',
      'up',
      'down',
      'ok',
    ]);

    assert.equal(personalise(board.hardware, METER), true);
    assert.deepEqual(
      board.preferences.keys(FACTORY_DOMAIN),
      [],
      'the key material is gone from the preferences',
    );
    assert.equal(board.sam.state.meterId, METER, 'the SAM holds the meter id with its keys');
    assert.deepEqual(
      board.secureElement.state.slots[Slot.FIRMWARE_KEY],
      firmwareKey,
      'the firmware release key is pinned in the secure element',
    );
    assert.equal(personalise(board.hardware, METER), false, 'a second start finds nothing to move');

    const meter = new Meter(board.hardware, provisioning.config);
    meter.start();
    clock.advance(5_000);
    assert.deepEqual(platform.refused, []);
    assert.ok(platform.records(METER).length >= 1, 'the boot record reached the platform and verified');
    assert.deepEqual(provisioning.config.time, { sntpHosts: ['pool.ntp.org'] });
    assert.ok(platform.timeAnswers.length >= 1, 'the meter asked the platform for the time');
    meter.stop();
  });

  it('an mqtts broker goes with the CA the meter verifies it against; without the CA it is refused', () => {
    const ca = Uint8Array.of(0x30, 0x82, 1, 2, 3);
    const board = new VirtualBoard({
      mqtt: new VirtualBroker(new VirtualClock('2026-06-01T08:00:00Z')).link(),
    });
    const tls = { host: 'mqtt.city.example', port: 8883, tls: true, user: String(METER), password: 'pw' };
    const entries = preferenceEntries(input({ broker: { ...tls, ca } }));
    assert.ok(entries.some((e) => e.key === 'broker' && e.value === 'mqtts://mqtt.city.example:8883'));
    loadLinPreferences(board, linPreferencesJson(entries));
    assert.deepEqual(readProvisioning(board.preferences).broker, { ...tls, ca });
    assert.throws(() => preferenceEntries(input({ broker: tls })), ProvisioningInputError);
    board.preferences.delete('meter', 'brokerCa');
    assert.throws(() => readProvisioning(board.preferences), /meter\.brokerCa/);
  });

  it('renders the ESP-IDF NVS CSV with namespaces, typed values, quoted commas and blobs as hex2bin', () => {
    const entries = preferenceEntries(input());
    const rows = parseCsv(nvsCsv(entries));
    assert.deepEqual(rows[0], ['key', 'type', 'encoding', 'value']);
    const namespaces = rows.filter((row) => row[1] === 'namespace').map((row) => row[0]);
    assert.deepEqual(namespaces, ['factory', 'meter', 'network']);
    const byKey = new Map(rows.filter((row) => row[1] === 'data').map((row) => [row[0], row]));
    assert.deepEqual(byKey.get('id'), ['id', 'data', 'i32', String(METER)]);
    assert.deepEqual(byKey.get('bays'), ['bays', 'data', 'string', '4,5,6']);
    assert.deepEqual(byKey.get('mqttPass'), ['mqttPass', 'data', 'string', 'p,w"d']);
    assert.deepEqual(byKey.get('ssid'), ['ssid', 'data', 'string', 'Street, east']);
    const releaseKey = byKey.get('releaseKey');
    assert.equal(releaseKey?.[2], 'hex2bin');
    assert.equal(releaseKey?.[3], Buffer.from(input().releaseKey).toString('hex'));
    assert.equal(rows.length, 1 + namespaces.length + entries.length);
  });

  it('refuses what NVS or the meter cannot hold, with a typed error', () => {
    assert.throws(() => preferenceEntries(input({ meterId: 0 })), ProvisioningInputError);
    assert.throws(() => preferenceEntries(input({ bays: [1, -2] })), ProvisioningInputError);
    assert.throws(
      () => preferenceEntries(input({ network: { ssid: 'line\nbreak' } })),
      ProvisioningInputError,
    );
    const { secrets: _, ...noSecrets } = input().keys;
    assert.throws(() => preferenceEntries(input({ keys: noSecrets })), /no secrets/);
  });

  it('a board with missing or malformed settings says which, and a bad key set is refused whole and kept', () => {
    const board = new VirtualBoard({ mqtt: new VirtualBroker(new VirtualClock()).link() });
    assert.throws(
      () => readProvisioning(board.preferences),
      (error: Error) => {
        assert.ok(error instanceof ProvisioningError);
        assert.match(error.message, /meter\.id, meter\.bays, meter\.broker missing/);
        return true;
      },
    );
    const entries: PreferenceEntry[] = preferenceEntries(input());
    loadLinPreferences(board, linPreferencesJson(entries));
    board.preferences.set('meter', 'broker', 'host:99999');
    assert.throws(() => readProvisioning(board.preferences), /meter\.broker "host:99999"/);
    board.preferences.set('meter', 'broker', 'host:1883');
    board.preferences.set('meter', 'modeKey', 'cancel,jump');
    assert.throws(() => readProvisioning(board.preferences), /meter\.modeKey/);

    board.preferences.set(FACTORY_DOMAIN, 'keyB', new Uint8Array(16).buffer);
    assert.throws(() => personalise(board.hardware, METER), /factory\.keyB must be 32 bytes/);
    assert.equal(board.sam.state.meterId, 0, 'nothing was installed');
    assert.equal(
      board.preferences.keys(FACTORY_DOMAIN).length,
      7,
      'the factory set stays for the station to fix',
    );
  });
});
