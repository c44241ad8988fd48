// RFID reading & writing (49): the card applications the meter accepts, over the MFRC522 reader.
// Debit cards may not overdraw; credit cards spend within their limit; prepaid cards may overdraw
// within their overdraft limit (the purse's floor, drivers/rfid/purse.ts).
import type { Clock } from '../../hal/clock';
import type { MeterHardware } from '../../hal/hardware';
import { Iso14443A, isIsoDep } from '../../drivers/rfid/iso14443a';
import { IsoDep } from '../../drivers/rfid/isodep';
import { MFRC522 } from '../../drivers/rfid/mfrc522';
import {
  type DebitResult,
  debitPurse,
  floorOf,
  type PurseData,
  readPurse,
  selectPurse,
} from '../../drivers/rfid/purse';

export type CardData = PurseData;

/** One card held in the field and selected, ready for its application's commands. */
export interface CardSession {
  readonly card: CardData;
  /** Debits the card; returns the new balance and counter, or throws (the value is then unchanged). */
  debit(amount: number): DebitResult;
  end(): void;
}

export interface CardReaderPort {
  /** A card session when a supported card is in the field, undefined when none is. */
  detect(): CardSession | undefined;
  antenna(on: boolean): void;
}

export class UnsupportedCardError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnsupportedCardError';
  }
}

export function canPay(card: CardData, amount: number): boolean {
  return card.balance - amount >= floorOf(card);
}

/** True when `now` is past the card's expiry month (a card is valid to the end of that month). */
export function isExpired(card: CardData, nowMs: number): boolean {
  // Date.UTC takes a 0-based month, so passing the 1-based expiry month gives the 1st of the next.
  return nowMs >= Date.UTC(card.expiry.year, card.expiry.month, 1);
}

/** The purse application on ISO 14443-4 cards, through the MFRC522 driver. */
export class Mfrc522CardReader implements CardReaderPort {
  readonly #chip: MFRC522;
  readonly #picc: Iso14443A;

  constructor(chip: MFRC522) {
    this.#chip = chip;
    this.#picc = new Iso14443A(chip);
    chip.antennaOff();
  }

  antenna(on: boolean): void {
    if (on) this.#chip.antennaOn();
    else this.#chip.antennaOff();
  }

  detect(): CardSession | undefined {
    // REQA, not WUPA: a card that has paid is left in HALT and cannot pay twice by lying still.
    const selected = this.#picc.activate();
    if (!selected) return undefined;
    if (!isIsoDep(selected.sak)) {
      this.#picc.halt();
      throw new UnsupportedCardError('not a payment card (no ISO 14443-4)');
    }
    const isoDep = new IsoDep(this.#chip);
    isoDep.activate(selected);
    const transceive = (apdu: Uint8Array) => isoDep.transceive(apdu);
    selectPurse(transceive);
    const card = readPurse(transceive);
    return {
      card,
      debit: (amount) => debitPurse(transceive, amount, card.counter),
      end: () => {
        try {
          isoDep.deselect();
        } catch {
          // the card has already left the field: nothing to end
        }
      },
    };
  }
}

export function createCardReader(hardware: MeterHardware, clock: Clock = hardware.clock): CardReaderPort {
  const { io, pins } = hardware;
  const chip = new MFRC522({
    reader: { io: io.SPI, ...pins.reader },
    reset: pins.reader.reset === undefined ? undefined : { io: io.Digital, pin: pins.reader.reset },
    clock,
  });
  return new Mfrc522CardReader(chip);
}
