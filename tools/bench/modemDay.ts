// A virtual day of a cellular meter: the A7670 twin behind the driver, RadioDuty sleeping it between
// uploads, a record every `--every` minutes (default 30) acknowledged by the virtual platform.
// Prints the modem's time per state as the twin counted it, and the charge per day those times
// give at the datasheet currents (CURRENT_FIGURES). `npm run bench -- modemDay [--every=30]`.
import { Meter } from '../../firmware/meter';
import { CURRENT_FIGURES } from '../../firmware/units/power';
import { provisionBoard } from '../../firmware/units/security';
import { VirtualBoard } from '../../hal/mock/board';
import { VirtualClock } from '../../hal/mock/clock';
import { VirtualBroker } from '../../hal/mock/mqtt';
import { nobleCrypto } from '../../hal/nobleCrypto';
import { deriveMeterKeys } from '../../protocol/keys';
import { VirtualPlatform } from '../../sim/fleet/virtualPlatform';

export const description =
  "a virtual day of the A7670 twin under RadioDuty: the modem's duty cycle and charge";

export function run(args: string[]): void {
  const every = Number(args.find((a) => a.startsWith('--every='))?.split('=')[1] ?? 30);
  if (!(every > 0)) throw new RangeError('--every must be minutes > 0');
  const clock = new VirtualClock('2026-03-02T00:00:00Z');
  const broker = new VirtualBroker(clock);
  const keys = deriveMeterKeys(nobleCrypto, new Uint8Array(32).fill(7), 77, 1);
  const platform = new VirtualPlatform(broker, nobleCrypto);
  platform.register(77, keys);
  const board = new VirtualBoard({ modem: { broker }, clock, sensors: true });
  provisionBoard(board.hardware, keys, 77);
  const meter = new Meter(board.hardware, {
    meterId: 77,
    bays: [1, 2],
    rate: { currency: 826, perHour: 240, minMinutes: 15, maxMinutes: 240, stepMinutes: 15 },
    callIn: { numbers: ['+447700900100'] },
  });
  meter.start();
  const day = 86_400_000;
  for (let t = 0; t < day; t += 100) {
    if (t > 0 && t % (every * 60_000) === 0) meter.records.recordBoot('planned', 'a record to upload');
    clock.advance(100);
  }
  const duty = board.modem!.duty();
  const duty2 = meter.power!.radioDuty!;
  const f = CURRENT_FIGURES;
  const mah = (ma: number, ms: number) => (ma * ms) / 3_600_000;
  const awake = mah(f.modemIdle.milliamps, duty.awake);
  const asleep = mah(f.modemSleep.milliamps, duty.asleep);
  const wakes = duty2.wakes + 1;
  console.log(
    `one record every ${every} min, ${platform.records(77).length} records acknowledged; modem woke ${duty2.wakes} times, slept ${duty2.sleeps}`,
  );
  console.log(
    `twin's time: awake ${(duty.awake / 1000).toFixed(0)} s (${(duty.awake / 1000 / wakes).toFixed(1)} s per wake), ` +
      `asleep ${(duty.asleep / 3_600_000).toFixed(2)} h, off ${(duty.off / 1000).toFixed(0)} s`,
  );
  console.log(
    `charge at the datasheet currents: awake ${awake.toFixed(2)} mAh (at idle current; data bursts not modelled by the twin), ` +
      `asleep ${asleep.toFixed(2)} mAh, total ${(awake + asleep).toFixed(2)} mAh/day`,
  );
  meter.stop();
}
