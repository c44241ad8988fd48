// A deterministic day at a meter: the real firmware on a virtual board, a driver choosing bay and
// time, tapping one of several cards (debit, credit, prepaid, blacklisted, expired), uploads acked
// by a virtual platform. The same module runs under Node and, bundled, under XS; both must agree
// byte for byte on every record and chain link.
import { VirtualBoard } from '../../hal/mock/board';
import { purseCard } from '../../hal/mock/cards';
import { VirtualClock } from '../../hal/mock/clock';
import { VirtualBroker } from '../../hal/mock/mqtt';
import type { Crypto } from '../../hal/crypto';
import { nobleCrypto } from '../../hal/nobleCrypto';
import { Meter } from '../../firmware/meter';
import { provisionBoard } from '../../firmware/units/security';
import { toHex } from '../../protocol/bytes';
import { cardToken, deriveCardTokenKey } from '../../protocol/cardToken';
import { deriveMeterKeys } from '../../protocol/keys';
import { VirtualPlatform } from './virtualPlatform';

export const SCENARIO_METER_ID = 1001;
const MASTER_KEY = Uint8Array.from({ length: 32 }, (_, i) => i * 7 + 1);

function cardNumber(n: number): string {
  return `628000000000${String(n).padStart(4, '0')}`;
}

export interface TapOutcome {
  tap: number;
  display: string;
  lastSeq: number;
}

export interface ScenarioSummary {
  records: { seq: number; bytes: string; link: string }[];
  platformRecords: number;
  acknowledgedSeq: number;
  refusedByPlatform: string[];
}

export class TapScenario {
  readonly clock = new VirtualClock('2026-03-02T07:30:00Z');
  readonly broker = new VirtualBroker(this.clock);
  readonly platform: VirtualPlatform;
  readonly board: VirtualBoard;
  readonly meter: Meter;
  /** The fleet's card-token key the meter is provisioned with. */
  readonly cardTokenKey: Uint8Array;
  readonly #crypto: Crypto;
  readonly #cards;

  /** `crypto` serves the meter and the virtual platform alike (pure JS unless given). */
  constructor(crypto: Crypto = nobleCrypto) {
    this.#crypto = crypto;
    this.platform = new VirtualPlatform(this.broker, crypto);
    const keys = deriveMeterKeys(crypto, MASTER_KEY, SCENARIO_METER_ID, 1);
    this.platform.register(SCENARIO_METER_ID, keys);
    this.board = new VirtualBoard({ mqtt: this.broker.link(), clock: this.clock });
    this.board.hardware.crypto = crypto;
    this.cardTokenKey = deriveCardTokenKey(crypto, MASTER_KEY);
    provisionBoard(this.board.hardware, { ...keys, cardTokenKey: this.cardTokenKey }, SCENARIO_METER_ID);
    const base = { expiry: { year: 2028, month: 12 }, counter: 0, currency: 826 };
    this.#cards = [
      purseCard([0x04, 0x11, 0x22, 0x33], {
        ...base,
        cardNumber: cardNumber(17),
        cardType: 1,
        balance: 20_000,
        limit: 0,
      }),
      purseCard([0x04, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56], {
        ...base,
        cardNumber: cardNumber(25),
        cardType: 2,
        balance: 0,
        limit: 30_000,
      }),
      purseCard([0x08, 0x61, 0x62, 0x63], {
        ...base,
        cardNumber: cardNumber(33),
        cardType: 3,
        balance: 4_000,
        limit: 1_000,
      }),
      purseCard([0x04, 0x71, 0x72, 0x73], {
        ...base,
        cardNumber: cardNumber(41),
        cardType: 1,
        balance: 9_000,
        limit: 0,
      }),
      purseCard([0x04, 0x81, 0x82, 0x83], {
        ...base,
        cardNumber: cardNumber(58),
        cardType: 1,
        balance: 9_000,
        limit: 0,
        expiry: { year: 2025, month: 6 },
      }),
    ];
    this.meter = new Meter(this.board.hardware, {
      meterId: SCENARIO_METER_ID,
      bays: [1, 2, 3],
      rate: { currency: 826, perHour: 240, minMinutes: 15, maxMinutes: 240, stepMinutes: 15 },
    });
    this.meter.blacklist.replace([{ token: this.token(cardNumber(41)), reason: 'stolen' }]);
    this.meter.start();
  }

  /** One driver: bay (i mod 3), 15–60 minutes, card (i mod 5); then five quiet minutes. */
  tap(i: number): TapOutcome {
    const { board, clock } = this;
    board.press('ok');
    for (let b = 0; b < i % 3; b++) board.press('bay');
    for (let s = 0; s < i % 4; s++) board.press('up');
    board.press('ok');
    const { card } = this.#cards[i % this.#cards.length];
    board.field.add(card);
    clock.advance(300);
    board.field.remove(card);
    const display = board.display.text;
    clock.advance(5 * 60_000);
    return { tap: i, display, lastSeq: this.meter.log.lastSeq };
  }

  /** The token of a card number under the scenario's card-token key. */
  token(number: string): Uint8Array {
    return cardToken(this.#crypto, this.cardTokenKey, number);
  }

  /** The card numbers of the scenario's cards, by tap index modulo 5. */
  cardNumber(i: number): string {
    return this.#cards[i % this.#cards.length].applet.data.cardNumber;
  }

  summary(): ScenarioSummary {
    const { meter, platform } = this;
    return {
      records: meter.log.read(1).map((r) => ({ seq: r.seq, bytes: toHex(r.bytes), link: toHex(r.link) })),
      platformRecords: platform.records(SCENARIO_METER_ID).length,
      acknowledgedSeq: meter.ledger.acknowledgedSeq,
      refusedByPlatform: platform.refused,
    };
  }
}
