// Device entry on the ESP32 (Moddable): joins the provisioned Wi-Fi, builds the board's hardware,
// moves the factory's key material into the secure parts on the first start, and starts the meter.
// What the factory writes is read by firmware/boot.ts; a board without it says so and waits.
import './setup/text';
import { createBoardHardware } from '../hal/moddable/board';
import { WifiStation } from '../hal/moddable/network';
import { ModdablePreferences } from '../hal/moddable/preferences';
import { personalise, readProvisioning } from './boot';
import { Meter } from './meter';
import { meterClientId } from '../protocol/topics';

function start(): void {
  const provisioning = readProvisioning(new ModdablePreferences());
  const { meterId, broker, network } = provisioning;
  if (network) {
    new WifiStation(network, (up, detail) => trace(`ParkLink: Wi-Fi ${up ? 'up' : 'down'} (${detail})\n`));
  }
  // mqtts needs the SDK's SecureSocket in the build (ModdableMqttOptions.tls); this build has none,
  // so a meter provisioned for mqtts stops here rather than talk to the broker in the clear.
  const { tls, ca: _ca, ...login } = broker;
  if (tls) throw new Error(`meter.broker is mqtts, and this build has no TLS socket`);
  const hardware = createBoardHardware({ mqtt: { ...login, id: meterClientId(meterId) } });
  if (personalise(hardware, meterId)) trace(`ParkLink: meter ${meterId} personalised\n`);
  const meter = new Meter(hardware, provisioning.config);
  meter.start();
  trace(`ParkLink: meter ${meterId} started, ${meter.boot.records} records, chain verified\n`);
}

try {
  start();
} catch (error) {
  // Not provisioned, or provisioned wrongly: say what is missing and wait for the factory station.
  trace(`ParkLink: ${(error as Error).message}\n`);
}
