// Projected battery life from the sleep budget (firmware/units/power.ts): charge per day by part
// and state from datasheet currents, for a daily use (taps, uploads), on the meter's packs.
// `npm run bench battery [-- --taps=50 --uploads=4 --air=24 --bays=4 --radio=cellular --wakes=74]`.
// --radio=cellular puts the A7670E modem and its duty cycle (RadioDuty) in place of Wi-Fi.
import { XBEE3_CURRENTS } from '../../drivers/radio/xbee';
import {
  CURRENT_FIGURES,
  type CurrentFigure,
  type DailyUse,
  projectBatteryLife,
  RELAY_SLEEP_DEFAULTS,
} from '../../firmware/units/power';

/**
 * The XBee 3 figures (drivers/radio/xbee.ts) cite the guide's "Power requirements" table; that
 * table was not readable in the sources searched, so the bench prints them as unverified.
 */
export const XBEE3_CURRENTS_NOT_VERIFIED =
  'NOT VERIFIED: Digi XBee 3 Zigbee RF Module User Guide 90001539 was found (copies of revisions C and L, first pages only) but its "Power requirements" table was not readable in the sources searched; the figures below are as drivers/radio/xbee.ts gives them, unchecked';

export const description =
  'projected battery life for a daily use (sleep budget from datasheet currents; estimates marked as such)';

/** The packs of the reference build: two D-size Li-SOCl2 primaries, a 2S2P 18650 pack, a CR123A backup. */
const PACKS = [
  { name: 'disposable (2 × D Li-SOCl2, 19 Ah)', mah: 19_000 },
  { name: 'rechargeable (18650 ×4 as 2P, 6.8 Ah, no solar)', mah: 6_800 },
  { name: 'backup (CR123A, 1.5 Ah)', mah: 1_500 },
];

function option(args: string[], name: string, fallback: number): number {
  const found = args.find((a) => a.startsWith(`--${name}=`));
  const value = found ? Number(found.split('=')[1]) : fallback;
  if (!Number.isFinite(value) || value < 0) throw new RangeError(`--${name} must be a number ≥ 0`);
  return value;
}

export function run(args: string[]): void {
  const use: DailyUse = {
    taps: option(args, 'taps', 50),
    uploads: option(args, 'uploads', 4),
    airMinutesPerDay: option(args, 'air', 24),
    bays: option(args, 'bays', 4),
    packs: 3,
  };
  const radio = args.find((a) => a.startsWith('--radio='))?.split('=')[1] ?? 'wifi';
  if (radio !== 'wifi' && radio !== 'cellular') throw new RangeError('--radio must be wifi or cellular');
  use.radio = radio;
  if (radio === 'cellular') {
    use.modemWakes = option(args, 'wakes', use.taps + 24);
    use.modemIdleSeconds = option(args, 'idle', 30);
  }
  const p = projectBatteryLife(use);
  console.log(
    `daily use: ${use.taps} taps (20 s awake, 5 s antenna each), ${use.uploads} uploads (15 s radio each), ` +
      `${use.airMinutesPerDay} min of air quality, ${use.bays} bay magnetometers, 3 fuel gauges`,
  );
  if (use.radio === 'cellular')
    console.log(
      `cellular link (A7670E): ${use.modemWakes} modem wakes a day (each record, the hourly wake), ` +
        `${use.secondsPerUpload ?? 15} s of data and ${use.modemIdleSeconds} s connected idle each, asleep (registered, reachable for call-in) otherwise`,
    );
  console.log('charge per day by part (mAh):');
  for (const [part, mah] of Object.entries(p.perDay).sort((a, b) => b[1] - a[1]))
    console.log(
      `  ${part.padEnd(32)} ${mah.toFixed(2).padStart(8)}  ${((100 * mah) / p.totalPerDay).toFixed(1).padStart(5)} %`,
    );
  console.log(
    `  ${'total'.padEnd(32)} ${p.totalPerDay.toFixed(2).padStart(8)}  (average ${(p.averageMilliamps * 1000).toFixed(0)} µA)`,
  );
  console.log('projected life at 80 % usable capacity:');
  for (const pack of PACKS) {
    const days = p.days(pack.mah);
    console.log(
      `  ${pack.name.padEnd(48)} ${days.toFixed(0).padStart(5)} days (${(days / 30.44).toFixed(1)} months)`,
    );
  }
  const asleep = p.perDay['MCU asleep'];
  const deepSleep =
    (CURRENT_FIGURES.mcuDeepSleep.milliamps / CURRENT_FIGURES.mcuLightSleep.milliamps) * asleep;
  const withDeepSleep = p.totalPerDay - asleep + deepSleep;
  console.log(
    `what-if: ESP32 deep sleep between events instead of light sleep: ${withDeepSleep.toFixed(2)} mAh/day, ` +
      `${p.days(PACKS[0].mah).toFixed(0)} → ${((PACKS[0].mah * 0.8) / withDeepSleep).toFixed(0)} days on the disposable pack`,
  );
  if (use.radio === 'cellular') {
    const batched = projectBatteryLife({ ...use, modemWakes: use.uploads + 24 });
    const off = projectBatteryLife({ ...use, modemIdleSeconds: 0 });
    console.log(
      `what-if: records batched into ${use.uploads} uploads a day (${use.uploads + 24} modem wakes): ` +
        `${batched.totalPerDay.toFixed(2)} mAh/day, ${batched.days(PACKS[0].mah).toFixed(0)} days on the disposable pack`,
    );
    console.log(
      `what-if: modem sleeps at once after each upload (no idle window): ${off.totalPerDay.toFixed(2)} mAh/day, ` +
        `${off.days(PACKS[0].mah).toFixed(0)} days on the disposable pack`,
    );
  }
  console.log('figures:');
  const figures: CurrentFigure[] = Object.values(CURRENT_FIGURES);
  for (const f of figures) {
    if (f.fromDatasheet === false) continue;
    console.log(`  ${f.part}, ${f.state}: ${f.milliamps} mA — ${f.source}`);
  }
  for (const f of figures.filter((f) => f.fromDatasheet === false))
    console.log(
      `  ESTIMATE (no datasheet figure found) ${f.part}, ${f.state}: ${f.milliamps} mA — ${f.source}`,
    );
  zigbeeRelay(use, p.totalPerDay);
}

/**
 * The Zigbee relay's cost on top of the meter's day: the XBee 3 receives whenever it is on (a
 * router must, to route and to hear its slaves), transmits for the air time of each payload.
 * Air time: 250 kbit/s (IEEE 802.15.4 at 2.4 GHz), a full payload with its ~30 bytes of MAC/NWK/APS
 * framing, doubled for the acknowledgement and retries.
 */
function zigbeeRelay(use: DailyUse, meterPerDay: number): void {
  const x = XBEE3_CURRENTS;
  const mah = (ma: number, seconds: number) => (ma * seconds) / 3600;
  const day = 86_400;
  const airSeconds = (bytes: number) => (2 * (bytes + 30) * 8) / 250_000;
  const setBytes = 2 * 1024 + 60; // a full record set and its seal
  const fragments = Math.ceil(setBytes / (84 - 9));
  const helloPerDay = day / 5; // the slave's HELLO, the master's READY
  const tx = (uploads: number) =>
    uploads * fragments * airSeconds(84) + helloPerDay * airSeconds(8) + uploads * 4 * airSeconds(84);
  const slaveTx = tx(use.uploads);
  // The sleeping slave (RelaySleepDuty's defaults): awake for each record (until idle after its
  // upload) and for each poll of its parent; no HELLOs while asleep, one per wake.
  const d = RELAY_SLEEP_DEFAULTS;
  const polls = day / (d.pollEveryMs / 1000);
  const recordWakes = use.taps + use.uploads;
  const sleepyTx =
    use.uploads * fragments * airSeconds(84) +
    (polls + recordWakes) * airSeconds(8) +
    use.uploads * 4 * airSeconds(84);
  const sleepyAwake = Math.min(
    day,
    polls * (d.pollAwakeMs / 1000) + recordWakes * (d.idleMs / 1000) + sleepyTx,
  );
  const awakeFraction = sleepyAwake / day;
  const rows: [string, number][] = [
    ['module off (power-down), relay unused', mah(x.sleep.milliamps, day)],
    [
      `slave, relay in use all day (${use.uploads} full sets, HELLO every 5 s)`,
      mah(x.receive.milliamps, day - slaveTx) + mah(x.transmit.milliamps, slaveTx),
    ],
    [
      `slave asleep between uploads (pin sleep), awake ${(100 * awakeFraction).toFixed(1)} % of the day`,
      mah(x.receive.milliamps, sleepyAwake - sleepyTx) +
        mah(x.transmit.milliamps, sleepyTx) +
        mah(x.sleep.milliamps, day - sleepyAwake),
    ],
    [
      `master, relaying for 4 slaves (${4 * use.uploads} full sets a day)`,
      mah(x.receive.milliamps, day - 4 * slaveTx) + mah(x.transmit.milliamps, 4 * slaveTx),
    ],
  ];
  console.log(
    `Zigbee relay (XBee 3, ${fragments} fragments per full set), charge per day on top of the meter's:`,
  );
  for (const [what, extra] of rows)
    console.log(
      `  ${what.padEnd(62)} ${extra.toFixed(2).padStart(8)} mAh  → ${((PACKS[0].mah * 0.8) / (meterPerDay + extra)).toFixed(0).padStart(5)} days on the disposable pack`,
    );
  console.log('  (receive dominates: a relaying module that stays on costs about 400 mAh a day)');
  console.log(
    `  sleeping slave: RelaySleepDuty polls its parent every ${d.pollEveryMs / 1000} s (${d.pollAwakeMs} ms awake), ` +
      `${recordWakes} record wakes of ${d.idleMs / 1000} s; the master, a router, never sleeps`,
  );
  console.log(`  XBee 3 figures, ${XBEE3_CURRENTS_NOT_VERIFIED}:`);
  for (const f of Object.values(x)) console.log(`    UNVERIFIED ${f.milliamps} mA — ${f.source}`);
}
