// The factory station for virtual meters: the platform registers the meter (key epoch 1) and hands
// over what goes into it: its keys into the secure parts, the fleet's card-token key (without it the
// meter sells to no card), its broker user name and password, its release key beside them (without
// it the meter can never accept an operator's release of an unacknowledged upload set). `npm start`
// and the tests provision meters through here, so both load the same things.
import type { MeterHardware } from '../hal/hardware';
import { METER_DOMAIN } from '../firmware/boot';
import { RecordStore } from '../firmware/units/storage';
import { provisionBoard } from '../firmware/units/security';
import type { Platform } from '../platform-server/platform';

export async function provisionVirtualMeter(
  platform: Pick<Platform, 'provisionMeter' | 'releaseKeyFor' | 'meterMqttCredentials'>,
  hardware: MeterHardware,
  meterId: number,
  name: string,
): Promise<void> {
  const keys = await platform.provisionMeter(meterId, name);
  try {
    provisionBoard(hardware, keys, meterId);
  } finally {
    keys.cardTokenKey.fill(0); // the meter keeps its own copy
  }
  // The meter's own broker credentials, where firmware/boot.ts reads them.
  const mqtt = platform.meterMqttCredentials(meterId);
  hardware.preferences.set(METER_DOMAIN, 'mqttUser', mqtt.username);
  hardware.preferences.set(METER_DOMAIN, 'mqttPass', mqtt.password);
  const releaseKey = platform.releaseKeyFor(meterId);
  try {
    RecordStore.provisionReleaseKey(hardware.preferences, releaseKey);
  } finally {
    releaseKey.fill(0); // the store keeps its own copy
  }
}
