// The ESP32 board profiles (hal/moddable/profiles.ts) and the provisioning that picks one: each
// profile's pin map is free of clashes with itself and with what its board reserves; the link is
// read from network.link (cellular needs an APN); the broker's CA goes to the modem as PEM; the
// factory station writes the link and refuses Wi-Fi and cellular together.
import assert from 'node:assert/strict';
import { pemCertificate, ProvisioningError, readProvisioning } from '../../firmware/boot';
import { MemoryPreferences } from '../../hal/mock/preferences';
import {
  bayMismatch,
  boardProfile,
  DEVKITC_PROFILE,
  pinMapClashes,
  profilePins,
  T_A7670_PROFILE,
} from '../../hal/moddable/profiles';
import { FlashUsageError, parseArguments } from '../../tools/flash';
import { ProvisioningInputError, preferenceEntries } from '../../tools/provisioning';
import { deriveMeterKeys } from '../../protocol/keys';
import { nobleCrypto } from '../../hal/nobleCrypto';

function provisioned(network: Record<string, string>): MemoryPreferences {
  const preferences = new MemoryPreferences();
  preferences.set('meter', 'id', 41);
  preferences.set('meter', 'bays', '1');
  preferences.set('meter', 'broker', 'mqtt.city.example:1883');
  for (const [key, value] of Object.entries(network)) preferences.set('network', key, value);
  return preferences;
}

describe('ESP32 board profiles', () => {
  it('the DevKitC and T-A7670E pin maps use no pin twice, no reserved pin, no input-only pin for an output', () => {
    assert.deepEqual(pinMapClashes(DEVKITC_PROFILE), []);
    assert.deepEqual(pinMapClashes(T_A7670_PROFILE), []);
    // The modem's own lines are in the cellular map, as LilyGO's utilities.h wires them.
    const modem = profilePins(T_A7670_PROFILE).filter((p) => p.use.startsWith('modem'));
    assert.deepEqual(
      modem.map((p) => p.pin),
      [26, 27, 4, 25, 33, 12],
    );
  });

  it('finds a clash: the DevKitC map with the modem fitted collides with the modem lines', () => {
    const clashes = pinMapClashes({ ...DEVKITC_PROFILE, modem: T_A7670_PROFILE.modem });
    assert.ok(
      clashes.some((c) => c.startsWith('GPIO 4:')),
      clashes.join('; '),
    ); // reader reset vs PWRKEY
    assert.ok(clashes.some((c) => c.startsWith('GPIO 26:'))); // ok button vs modem TX
    const onReserved = pinMapClashes({ ...T_A7670_PROFILE, pins: DEVKITC_PROFILE.pins });
    assert.ok(
      onReserved.some((c) => /GPIO 5 .*reserved/.test(c)),
      'GPIO 5 resets the modem',
    );
    assert.ok(
      onReserved.some((c) => /GPIO 16 .*reserved/.test(c)),
      'GPIO 16 is the WROVER PSRAM',
    );
  });

  it('says when the provisioned bays need more lights than the board has', () => {
    assert.equal(bayMismatch(DEVKITC_PROFILE, 2), undefined);
    assert.match(
      bayMismatch(DEVKITC_PROFILE, 3) ?? '',
      /3 bays; the ESP32-DevKitC \(Wi-Fi\) board has lights for 2/,
    );
    assert.equal(bayMismatch(T_A7670_PROFILE, 1), undefined);
    assert.match(bayMismatch(T_A7670_PROFILE, 2) ?? '', /has lights for 1/);
  });

  it('picks the profile from the link', () => {
    assert.equal(boardProfile('wifi'), DEVKITC_PROFILE);
    assert.equal(boardProfile('cellular'), T_A7670_PROFILE);
    assert.equal(boardProfile('cellular').modem?.pwrkeyInverted, true);
  });
});

describe('provisioning the link', () => {
  it('reads network.link; an APN without an SSID means cellular; nothing means Wi-Fi', () => {
    assert.equal(readProvisioning(provisioned({ link: 'cellular', apn: 'iot.example' })).link, 'cellular');
    assert.equal(readProvisioning(provisioned({ apn: 'iot.example' })).link, 'cellular');
    assert.equal(readProvisioning(provisioned({ ssid: 'Street' })).link, 'wifi');
    assert.equal(readProvisioning(provisioned({})).link, 'wifi');
    const p = readProvisioning(provisioned({ link: 'cellular', apn: 'iot.example' }));
    assert.deepEqual(p.cellular, { apn: 'iot.example' });
  });

  it('refuses cellular without an APN and a link it does not know, with a typed error', () => {
    assert.throws(
      () => readProvisioning(provisioned({ link: 'cellular' })),
      (e: Error) => e instanceof ProvisioningError && /network\.apn/.test(e.message),
    );
    assert.throws(
      () => readProvisioning(provisioned({ link: 'lora', apn: 'x' })),
      (e: Error) => e instanceof ProvisioningError && /network\.link "lora"/.test(e.message),
    );
  });

  it('gives the modem the broker CA as PEM: base64 of the DER in 64-character lines', () => {
    for (const n of [1, 2, 3, 47, 48, 49, 1000]) {
      const der = Uint8Array.from({ length: n }, (_, i) => (i * 37 + 250) & 0xff);
      const pem = new TextDecoder().decode(pemCertificate(der));
      assert.match(
        pem,
        /^-----BEGIN CERTIFICATE-----\n([A-Za-z0-9+/=]{64}\n)*[A-Za-z0-9+/=]{1,64}\n-----END CERTIFICATE-----\n$/,
      );
      const body = pem.split('\n').slice(1, -2).join('');
      assert.equal(body, Buffer.from(der).toString('base64'), `${n} bytes`);
    }
    assert.throws(() => pemCertificate(new Uint8Array(0)), ProvisioningError);
  });
});

describe('the factory station for a cellular meter', () => {
  const keys = deriveMeterKeys(nobleCrypto, new Uint8Array(32).fill(9), 41, 1);
  const base = {
    meterId: 41,
    bays: [1],
    broker: { host: 'mqtt.city.example', port: 8883 },
    keys,
    releaseKey: new Uint8Array(32).fill(1),
  };

  it('writes network.link and network.apn, which the meter reads back as cellular', () => {
    const entries = preferenceEntries({ ...base, cellular: { apn: 'iot.example' } });
    const network = entries.filter((e) => e.domain === 'network');
    assert.deepEqual(
      network.map((e) => [e.key, e.value]),
      [
        ['link', 'cellular'],
        ['apn', 'iot.example'],
      ],
    );
    const preferences = new MemoryPreferences();
    for (const e of entries)
      preferences.set(e.domain, e.key, e.value instanceof Uint8Array ? e.value.slice().buffer : e.value);
    assert.equal(readProvisioning(preferences).link, 'cellular');
  });

  it('refuses Wi-Fi and cellular together, at the station and on the command line', () => {
    assert.throws(
      () => preferenceEntries({ ...base, cellular: { apn: 'a' }, network: { ssid: 's' } }),
      ProvisioningInputError,
    );
    assert.throws(
      () => parseArguments(['--meter', '41', '--broker', 'h:1883', '--apn', 'a', '--ssid', 's']),
      FlashUsageError,
    );
    const options = parseArguments(['--meter', '41', '--broker', 'h:1883', '--apn', 'iot.example']);
    assert.deepEqual(options.provision?.cellular, { apn: 'iot.example' });
  });
});
