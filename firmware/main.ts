// Device entry on the ESP32 (Moddable): builds the board's hardware and starts the meter. The
// meter's identity, bays, tariff and broker come from preferences written at provisioning
// (tools/flash.ts); a board that has none shows so and waits.
import { createBoardHardware } from '../hal/moddable/board';
import { ModdablePreferences } from '../hal/moddable/preferences';
import { Meter, type MeterConfig } from './meter';
import type { KeyName } from './events';

const preferences = new ModdablePreferences();
const meterId = preferences.get('meter', 'id');
const broker = preferences.get('meter', 'broker');
const bays = preferences.get('meter', 'bays');
const perHour = preferences.get('meter', 'perHour');
const currency = preferences.get('meter', 'currency');

if (typeof meterId !== 'number' || typeof broker !== 'string' || typeof bays !== 'string') {
  trace('ParkLink: meter not provisioned (meter.id, meter.broker, meter.bays)\n');
} else {
  const [host, port] = broker.split(':');
  const hardware = createBoardHardware({
    mqtt: { host, port: port ? Number(port) : 1883, id: `meter-${meterId}` },
  });
  // The mode key: a comma-separated button sequence written at provisioning (none: mode key off).
  const modeKey = preferences.get('meter', 'modeKey');
  const config: MeterConfig = {
    meterId,
    // Display and reader antenna off after two idle minutes; a key wakes the meter. The radio stays
    // on so that downlinks (tariffs, renewals) arrive while the meter sleeps.
    sleep: { idleMs: 120_000 },
    ...(typeof modeKey === 'string' && modeKey
      ? { maintenance: { sequence: modeKey.split(',') as KeyName[], maxAttempts: 3, lockoutMs: 15 * 60_000 } }
      : {}),
    bays: bays.split(',').map(Number),
    rate: {
      currency: typeof currency === 'number' ? currency : 826,
      perHour: typeof perHour === 'number' ? perHour : 240,
      minMinutes: 15,
      maxMinutes: 240,
      stepMinutes: 15,
    },
  };
  const meter = new Meter(hardware, config);
  meter.start();
}
