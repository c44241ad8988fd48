// A whole meter with no radio coverage (its broker link has no signal), for the tests of the
// handheld link: the real firmware on a virtual board, a mode key to switch the link on, and sales
// made with a debit card at the keys and the reader.
import { Meter } from '../../firmware/meter';
import { provisionBoard } from '../../firmware/units/security';
import { RecordStore } from '../../firmware/units/storage';
import { VirtualBoard } from '../../hal/mock/board';
import { purseCard } from '../../hal/mock/cards';
import { VirtualClock } from '../../hal/mock/clock';
import { VirtualBroker } from '../../hal/mock/mqtt';
import { nobleCrypto as crypto } from '../../hal/nobleCrypto';
import type { MeterKeys } from '../../protocol/keys';
import { deriveReleaseKey } from '../../protocol/release';

export const OFFLINE_RATE = { currency: 826, perHour: 240, minMinutes: 15, maxMinutes: 240, stepMinutes: 15 };

export function offlineMeter(options: {
  meterId: number;
  keys: MeterKeys;
  cardTokenKey: Uint8Array;
  clock?: VirtualClock;
  wifi?: boolean;
}) {
  const { meterId, keys } = options;
  const clock = options.clock ?? new VirtualClock('2026-05-01T08:00:00Z');
  const broker = new VirtualBroker(clock);
  const link = broker.link();
  link.setSignal(false); // no radio: the handheld is the meter's only way to the platform
  const board = new VirtualBoard({ mqtt: link, clock, wifiPort: options.wifi });
  provisionBoard(board.hardware, { ...keys, cardTokenKey: options.cardTokenKey }, meterId);
  RecordStore.provisionReleaseKey(board.preferences, deriveReleaseKey(crypto, keys.downlink, meterId));
  const meter = new Meter(board.hardware, {
    meterId,
    bays: [1, 2],
    rate: OFFLINE_RATE,
    maintenance: { sequence: ['up', 'up', 'down', 'bay'] },
  });
  meter.start();
  clock.advance(10);
  /** The mode key's entry signal: the handheld link advertises. */
  const modeKey = () => {
    for (let i = 0; i < 3; i++) board.press('cancel');
  };
  const { card } = purseCard([0x04, 9, 9, 1], {
    cardNumber: '6280000000000991',
    expiry: { year: 2031, month: 1 },
    cardType: 1,
    balance: 100_000,
    limit: 0,
    counter: 0,
    currency: 826,
  });
  /** `n` sales of 30 minutes, `gapMs` apart; `alternate` puts every other one on bay 2. */
  const sell = (n: number, { alternate = false, gapMs = 30_000 } = {}) => {
    for (let i = 0; i < n; i++) {
      board.press('ok');
      if (alternate && i % 2) board.press('bay');
      board.press('up');
      board.press('ok');
      board.field.add(card);
      clock.advance(300);
      board.field.remove(card);
      clock.advance(gapMs);
    }
  };
  return { clock, board, meter, keys, modeKey, sell, meterId, broker, link };
}
