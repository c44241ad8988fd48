// Entry of the host build (mcconfig -p x-cli-lin): the real firmware on the real Moddable runtime,
// on a Linux host. The runtime's own modules carry time, timers, preferences, files, crypto and
// MQTT over TCP; the reader, cards and secure parts are hal/mock's virtual chips, and a SIMULATED
// driver at the meter chooses a bay and taps virtual cards. tools/device.ts provisions, builds and
// runs it. Environment: PARKLINK_TAPS (taps, then exit once all are acknowledged; default 0 =
// tap until stopped), PARKLINK_TAP_EVERY_MS (default 4000), PARKLINK_RUN_SECONDS (give up).
import '../../../firmware/setup/text';
import Timer from 'timer';
import { CardType, type CardTypeValue } from '../../../drivers/rfid/purse';
import { personalise, readProvisioning } from '../../../firmware/boot';
import type { KeyName } from '../../../firmware/events';
import { Meter } from '../../../firmware/meter';
import { RecordKind } from '../../../protocol/records';
import { meterClientId } from '../../../protocol/topics';
import { VIRTUAL_PINS } from '../../mock/board';
import { purseCard } from '../../mock/cards';
import { ModdableMqttLink } from '../mqtt';
import { ModdablePreferences } from '../preferences';
import { createHostBoard } from './board';
import { exit, getenv, type XsMemory, xsMemory } from './native';

function say(line: string): void {
  trace(`${line}\n`);
}

function setting(name: string, fallback: number): number {
  const value = Number(getenv(name) ?? fallback);
  return Number.isFinite(value) && value >= 0 ? value : fallback;
}

function memoryLine(label: string, memory: XsMemory): string {
  return `memory ${label}: ${memory.slots} slots (peak ${memory.peakSlots}), chunks ${memory.chunks} B (peak ${memory.peakChunks}), stack peak ${memory.peakStack} of ${memory.stackSlots} slots`;
}

say('ParkLink host meter on the Moddable runtime (x-cli-lin): virtual reader, cards and secure parts;');
say('a SIMULATED driver taps virtual cards. Not a meter: a build of the real firmware for the host.');

const taps = setting('PARKLINK_TAPS', 0);
const tapEveryMs = setting('PARKLINK_TAP_EVERY_MS', 4000);
const runSeconds = setting('PARKLINK_RUN_SECONDS', 0);

let provisioning: ReturnType<typeof readProvisioning>;
try {
  provisioning = readProvisioning(new ModdablePreferences());
} catch (error) {
  say(`ParkLink: ${(error as Error).message}`);
  exit(2);
}
const { meterId, broker } = provisioning;
// mqtts needs the SDK's SecureSocket in the build (ModdableMqttOptions.tls); the host build has none.
const { tls, ca: _ca, ...login } = broker;
if (tls) {
  say('ParkLink: meter.broker is mqtts, and this build has no TLS socket');
  exit(2);
}
const board = createHostBoard({
  mqtt: new ModdableMqttLink({ ...login, id: meterClientId(meterId) }),
  directory: './',
});
if (personalise(board.hardware, meterId))
  say(`meter ${meterId}: personalised (keys moved into the secure parts)`);
board.persist();

const meter = new Meter(board.hardware, provisioning.config);
const boot = meter.boot;
say(
  `meter ${meterId}: booted (${boot.restart} start), ${boot.records} records, chain verified over ${boot.chainVerified}, broker ${broker.host}:${broker.port}`,
);
const bootMemory = xsMemory();
say(memoryLine('after boot', bootMemory));

let lastTransactionSeq = 0;
let acknowledged = 0;
let paid = 0;
let refused = 0;
meter.bus.on('record-appended', ({ record }) => {
  if (record.kind === RecordKind.Transaction) lastTransactionSeq = record.seq;
  say(`record #${record.seq} ${record.kind === RecordKind.Transaction ? 'transaction' : 'event'} written`);
});
meter.bus.on('payment-accepted', (payment) => {
  paid++;
  say(`payment accepted: bay ${payment.bayId}, ${payment.minutes} min, ${payment.charge} minor units`);
});
meter.bus.on('payment-refused', ({ reason }) => {
  refused++;
  say(`payment refused: ${reason}`);
});
meter.bus.on('upload-acknowledged', ({ seq }) => {
  acknowledged = seq;
  say(`platform acknowledged records up to #${seq}`);
  finishIfDone();
});
meter.bus.on('module-state', ({ module, state, detail }) => say(`module ${module}: ${state} (${detail})`));
meter.start();
Timer.repeat(() => board.persist(), 1000);

const base = { expiry: { year: 2030, month: 12 }, counter: 0, currency: 826 };
const types: CardTypeValue[] = [CardType.DEBIT, CardType.CREDIT, CardType.PREPAID];
const cards = types.map((cardType, c) =>
  purseCard([0x04, 0x48, c, meterId & 0xff], {
    ...base,
    cardNumber: `6280${String(meterId).padStart(6, '0')}${String(c).padStart(6, '0')}`,
    cardType,
    balance: 50_000,
    limit: cardType === CardType.DEBIT ? 0 : 20_000,
  }),
);

let tapped = 0;

/** Presses the keys one after another, each held for 80 ms as a finger would. */
function press(keys: KeyName[], then: () => void): void {
  const key = keys.shift();
  if (key === undefined) {
    then();
    return;
  }
  const pin = VIRTUAL_PINS.buttons[key];
  board.virtual.pins.drive(pin, 0);
  Timer.set(() => {
    board.virtual.pins.drive(pin, 1);
    Timer.set(() => press(keys, then), 60);
  }, 80);
}

/** The simulated driver: wake the meter, choose bay and time, hold a card to the reader. */
function tap(): void {
  const i = tapped++;
  const keys: KeyName[] = ['ok', ...Array<KeyName>(i % provisioning.bays.length).fill('bay'), 'up', 'ok'];
  press(keys, () => {
    const { card } = cards[i % cards.length];
    board.virtual.field.add(card);
    Timer.set(() => {
      board.virtual.field.remove(card);
      if (taps === 0 || tapped < taps) Timer.set(tap, tapEveryMs);
      else finishIfDone();
    }, 900); // the reader polls every 250 ms
  });
}

function finishIfDone(): void {
  if (taps === 0 || tapped < taps || paid + refused < taps) return;
  if (lastTransactionSeq === 0 || acknowledged < lastTransactionSeq) return;
  say(`done: ${tapped} taps, ${paid} paid, ${refused} refused, acknowledged up to #${acknowledged}`);
  const endMemory = xsMemory();
  say(memoryLine('at the end', endMemory));
  // One line for tools (npm run bench -- device) to read.
  say(`budget ${JSON.stringify({ taps: tapped, paid, boot: bootMemory, end: endMemory })}`);
  meter.stop();
  board.persist();
  exit(0);
}

Timer.set(tap, 1500);
if (runSeconds > 0) {
  Timer.set(() => {
    say(`gave up after ${runSeconds} s: ${tapped} taps, ${paid} paid, acknowledged up to #${acknowledged}`);
    exit(3);
  }, runSeconds * 1000);
}
