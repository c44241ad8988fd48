// Test support: meters on virtual boards with XBee twins on one virtual Zigbee mesh, on virtual time.
// A slave (its cellular link without signal) reaches the platform only through a master's relay.
import { Meter, type MeterConfig } from '../../firmware/meter';
import { provisionBoard } from '../../firmware/units/security';
import { type BoardState, VirtualBoard } from '../../hal/mock/board';
import { purseCard } from '../../hal/mock/cards';
import type { VirtualClock } from '../../hal/mock/clock';
import type { ZigbeeMesh } from '../../hal/mock/zigbeeMesh';
import type { MqttLink } from '../../hal/mqtt';
import { nobleCrypto } from '../../hal/nobleCrypto';
import { deriveCardTokenKey } from '../../protocol/cardToken';
import { deriveMeterKeys, type MeterKeys } from '../../protocol/keys';

const MASTER_KEY = Uint8Array.from({ length: 32 }, (_, i) => 3 * i + 1);

export const MASTER_ADDRESS = '0013a20041a70001';
export const SLAVE_ADDRESS = '0013a20041a70002';

/** The meter's keys, with the fleet's card-token key (without it a meter sells to no card). */
export function keysOf(meterId: number): MeterKeys & { cardTokenKey: Uint8Array } {
  return {
    ...deriveMeterKeys(nobleCrypto, MASTER_KEY, meterId, 1),
    cardTokenKey: deriveCardTokenKey(nobleCrypto, MASTER_KEY),
  };
}

export interface RelayMeter {
  board: VirtualBoard;
  meter: Meter;
}

/** Boots one meter with an XBee at `address64`/`x` on the mesh; `keys` provision a fresh board. */
export function bootRelayMeter(options: {
  meterId: number;
  clock: VirtualClock;
  mesh: ZigbeeMesh;
  mqtt: MqttLink;
  address64: string;
  x: number;
  role: 'master' | 'slave';
  keys?: MeterKeys & { cardTokenKey?: Uint8Array };
  state?: BoardState;
  seed?: number;
  /** The slave's XBee duty cycle (MeterConfig.relaySleep). */
  relaySleep?: MeterConfig['relaySleep'];
  /** The master's SP as a parent, ms. */
  childSleepPeriodMs?: number;
}): RelayMeter {
  const board = new VirtualBoard({
    mqtt: options.mqtt,
    clock: options.clock,
    state: options.state,
    seed: options.seed ?? options.meterId,
    zigbee: { mesh: options.mesh, address64: options.address64, position: { x: options.x, y: 0 } },
  });
  if (options.keys) provisionBoard(board.hardware, options.keys, options.meterId);
  const meter = new Meter(board.hardware, {
    meterId: options.meterId,
    bays: [1, 2],
    rate: { currency: 978, perHour: 300, minMinutes: 15, maxMinutes: 120, stepMinutes: 15 },
    relay:
      options.role === 'master'
        ? { role: 'master', childSleepPeriodMs: options.childSleepPeriodMs }
        : { role: 'slave', master: MASTER_ADDRESS },
    relaySleep: options.relaySleep,
  });
  meter.start();
  return { board, meter };
}

/** A paid tap on bay 1 or 2 (the purse card of the demo scheme). */
const { card } = purseCard([0x04, 9, 8, 7], {
  cardNumber: '6280123400000019',
  expiry: { year: 2029, month: 1 },
  cardType: 1,
  balance: 1_000_000,
  limit: 0,
  counter: 0,
  currency: 978,
});

export function tap(board: VirtualBoard, clock: VirtualClock, bay: 0 | 1): void {
  board.press('ok');
  if (bay) board.press('bay');
  board.press('up');
  board.press('ok');
  board.field.add(card);
  clock.advance(300);
  board.field.remove(card);
}

/** Lets virtual time pass in `step` ms steps, running promise callbacks (and `between`) in between. */
export async function pass(
  clock: VirtualClock,
  ms: number,
  step = 50,
  between: () => Promise<void> = () => new Promise((resolve) => setImmediate(resolve)),
): Promise<void> {
  for (let t = 0; t < ms; t += step) {
    clock.advance(step);
    await between();
  }
}

/** Lets virtual time pass until `condition` holds, at most `ms`; returns whether it held. */
export async function passUntil(
  clock: VirtualClock,
  condition: () => boolean,
  ms: number,
  step = 50,
): Promise<boolean> {
  for (let t = 0; t < ms && !condition(); t += step) {
    clock.advance(step);
    await new Promise((resolve) => setImmediate(resolve));
  }
  return condition();
}
