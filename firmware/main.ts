// Device entry on the ESP32 (Moddable): reads what the factory provisioned, picks the board profile
// for the meter's link (hal/moddable/profiles.ts), builds the board's hardware, moves the factory's
// key material into the secure parts on the first start, and starts the meter.
//   wifi:     ESP32-DevKitC map; joins the provisioned Wi-Fi; the ESP32's own MQTT client.
//   cellular: LilyGO T-A7670E map; no Wi-Fi station; MQTT (and TLS with the broker's CA) inside
//             the A7670E modem, on UART1.
// What the factory writes is read by firmware/boot.ts; a board without it says so and waits.
import './setup/text';
import { createBoardHardware } from '../hal/moddable/board';
import { WifiStation } from '../hal/moddable/network';
import { ModdablePreferences } from '../hal/moddable/preferences';
import { bayMismatch, boardProfile } from '../hal/moddable/profiles';
import { pemCertificate, personalise, ProvisioningError, readProvisioning } from './boot';
import { Meter } from './meter';
import { FIRMWARE_VERSION } from './version';
import { meterClientId } from '../protocol/topics';

function start(): void {
  const provisioning = readProvisioning(new ModdablePreferences());
  const { meterId, broker, network, link } = provisioning;
  const profile = boardProfile(link);
  const mismatch = bayMismatch(profile, provisioning.bays.length);
  if (mismatch) throw new ProvisioningError(mismatch);
  const { tls, ca, ...login } = broker;
  const mqtt = { ...login, id: meterClientId(meterId) };
  let hardware: ReturnType<typeof createBoardHardware>;
  if (link === 'cellular') {
    // The modem does TLS itself: it gets the broker's CA (PEM) and checks the broker against it.
    hardware = createBoardHardware({
      mqtt,
      pins: profile.pins,
      buses: profile.buses,
      firmwareVersion: FIRMWARE_VERSION,
      modem: {
        wiring: profile.modem!,
        apn: provisioning.cellular!.apn,
        ...(tls && ca ? { ca: pemCertificate(ca) } : {}),
        onError: (error) => trace(`ParkLink: modem ${error.name}: ${error.message}\n`),
      },
    });
  } else {
    if (network) {
      new WifiStation(network, (up, detail) => trace(`ParkLink: Wi-Fi ${up ? 'up' : 'down'} (${detail})\n`));
    }
    // mqtts needs the SDK's SecureSocket in the build (ModdableMqttOptions.tls); this build has
    // none, so a Wi-Fi meter provisioned for mqtts stops here rather than talk to the broker in
    // the clear. (A cellular meter's TLS is the modem's.)
    if (tls) throw new ProvisioningError(`meter.broker is mqtts, and the Wi-Fi build has no TLS socket`);
    hardware = createBoardHardware({
      mqtt,
      pins: profile.pins,
      buses: profile.buses,
      firmwareVersion: FIRMWARE_VERSION,
    });
  }
  if (personalise(hardware, meterId)) trace(`ParkLink: meter ${meterId} personalised\n`);
  const meter = new Meter(hardware, provisioning.config);
  meter.start();
  trace(
    `ParkLink: meter ${meterId} started on ${profile.name}, firmware ${FIRMWARE_VERSION} (update ${meter.update?.state}), ${meter.boot.records} records, chain verified\n`,
  );
}

try {
  start();
} catch (error) {
  // Not provisioned, or provisioned wrongly: say what is missing and wait for the factory station.
  trace(`ParkLink: ${(error as Error).message}\n`);
}
