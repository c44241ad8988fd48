// RFID reading & writing (49): the card applications the meter accepts, over the MFRC522 reader.
// Debit cards may not overdraw; credit cards spend within their limit; prepaid cards may overdraw
// within their overdraft limit (the purse's floor, drivers/rfid/purse.ts).
import type { Clock } from '../../hal/clock';
import type { MeterHardware } from '../../hal/hardware';
import { Iso14443A, isIsoDep } from '../../drivers/rfid/iso14443a';
import { IsoDep } from '../../drivers/rfid/isodep';
import { ChipError, MFRC522 } from '../../drivers/rfid/mfrc522';
import { toHex } from '../../protocol/bytes';
import type { ReaderSettings } from '../../protocol/readerFiles';
import {
  authenticatePurse,
  CardNotGenuine,
  type DebitResult,
  debitPurse,
  floorOf,
  type PurseAuthenticator,
  type PurseData,
  PurseError,
  readPurse,
  selectPurse,
} from '../../drivers/rfid/purse';

export { CardNotGenuine };

export type CardData = PurseData;

/** One card held in the field and selected, ready for its application's commands. */
export interface CardSession {
  readonly card: CardData;
  /**
   * Debits the card; returns the new balance and counter. Throws DebitUncertain when the card left
   * before its answer (the card's anti-tearing made the debit whole or nothing: read it again to
   * know), any other error when the value is unchanged.
   */
  debit(amount: number): DebitResult;
  end(): void;
}

export interface CardReaderPort {
  /** A card session when a supported card is in the field, undefined when none is. */
  detect(): CardSession | undefined;
  antenna(on: boolean): void;
  /** Checks that the reader chip answers; the error when it does not (the monitor's health check). */
  selfTest?(): Error | undefined;
  /** Re-creates the reader's driver (after a power cycle too); true when the chip answers again. */
  reinitialise?(): boolean;
  /** Why the reader cannot read cards now (its chip has not answered since boot), or undefined. */
  outOfService?(): Error | undefined;
  /**
   * Takes a reader settings file (414d, protocol/readerFiles.ts), kept and applied again after a
   * re-initialisation. Throws when the chip does not answer; the settings are kept all the same.
   */
  configure?(settings: ReaderSettings): void;
}

/** HLTA (ISO 14443-3 §6.4.3) and its CRC_A: the reader's coprocessor must compute it. */
const SELF_TEST = Uint8Array.of(0x50, 0x00);
const SELF_TEST_CRC = 0xcd57;

export class UnsupportedCardError extends Error {
  override readonly name: string = 'UnsupportedCardError';
  constructor(message: string) {
    super(message);
  }
}

/**
 * The debit's answer was lost (the card left the field, the link broke): the card either debited
 * whole or not at all. Present it again: a counter of `counter + 1` and a balance of
 * `balance - amount` mean it was debited.
 */
export class DebitUncertain extends Error {
  override readonly name: string = 'DebitUncertain';
  constructor(
    readonly cardNumber: string,
    readonly counter: number,
    readonly balance: number,
    readonly amount: number,
    cause: string,
  ) {
    super(`debit of ${amount} not confirmed: ${cause}`);
  }

  /** Whether `card` (read again) shows this debit done. */
  completedOn(card: CardData): boolean {
    return (
      card.cardNumber === this.cardNumber &&
      card.counter === this.counter + 1 &&
      card.balance === this.balance - this.amount
    );
  }

  /** Whether `card` shows the value unchanged. */
  unchangedOn(card: CardData): boolean {
    return (
      card.cardNumber === this.cardNumber && card.counter === this.counter && card.balance === this.balance
    );
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

/**
 * The purse application on ISO 14443-4 cards, through the MFRC522 driver; the SAM authenticates
 * each card with its AN10922 key (a clone throws CardNotGenuine from detect()) and MACs the debit.
 */
export class Mfrc522CardReader implements CardReaderPort {
  /** The driver; undefined while the chip does not answer (out of service until reinitialise()). */
  #chip: MFRC522 | undefined;
  #picc: Iso14443A | undefined;
  /** Why the chip could not be opened, while it cannot. */
  #fault: Error | undefined;
  readonly #authenticator: PurseAuthenticator;
  readonly #open: (() => MFRC522) | undefined;
  /** What the antenna should be: restored after a re-initialisation. */
  #antenna = false;
  /** A debit whose answer was lost, resolved when that card is presented again. */
  #torn: DebitUncertain | undefined;
  /** The reader settings file in force, applied again to a re-created driver. */
  #settings: ReaderSettings = {};

  /**
   * `open` makes a new driver (hard reset, VersionReg check, soft reset): the re-initialise hook.
   * Without a chip (`chip` is the error its opening threw) the reader starts out of service.
   */
  constructor(chip: MFRC522 | Error, authenticator: PurseAuthenticator, open?: () => MFRC522) {
    this.#authenticator = authenticator;
    this.#open = open;
    if (chip instanceof Error) {
      this.#fault = chip;
      return;
    }
    this.#chip = chip;
    this.#picc = new Iso14443A(chip);
    chip.antennaOff();
  }

  /** Opens the driver with `open`; a chip that does not answer leaves the reader out of service. */
  static open(open: () => MFRC522, authenticator: PurseAuthenticator): Mfrc522CardReader {
    let chip: MFRC522 | undefined;
    try {
      chip = open();
      return new Mfrc522CardReader(chip, authenticator, open);
    } catch (error) {
      // No chip, or one that stopped answering before its antenna was switched off.
      try {
        chip?.close();
      } catch {
        // a chip that does not answer cannot be shut down politely
      }
      const fault = error instanceof Error ? error : new ChipError(String(error));
      return new Mfrc522CardReader(fault, authenticator, open);
    }
  }

  outOfService(): Error | undefined {
    return this.#fault;
  }

  configure(settings: ReaderSettings): void {
    this.#settings = { ...settings };
    if (!this.#chip) throw this.#fault ?? new ChipError('the reader is out of service');
    this.#chip.configure({ antennaGain: settings.antennaGain });
  }

  antenna(on: boolean): void {
    this.#antenna = on;
    if (on) this.#chip?.antennaOn();
    else this.#chip?.antennaOff();
  }

  /** CalcCRC over HLTA by the chip (§10.3.1.4): a hung or unpowered chip never finishes it. */
  selfTest(): Error | undefined {
    if (!this.#chip) return this.#fault;
    try {
      const crc = this.#chip.calculateCRC(SELF_TEST);
      if (crc !== SELF_TEST_CRC)
        return new ChipError(`self-test CRC 0x${crc.toString(16)}, expected 0x${SELF_TEST_CRC.toString(16)}`);
      return undefined;
    } catch (error) {
      return error instanceof Error ? error : new ChipError(String(error));
    }
  }

  /**
   * Closes the driver and opens a new one: NRSTPD hard reset, VersionReg check, soft reset and the
   * ISO 14443 A settings, then the antenna as it was. A torn debit is kept (it is the card's state).
   */
  reinitialise(): boolean {
    if (!this.#open) return false;
    try {
      this.#chip?.close();
    } catch {
      // a chip that does not answer cannot be shut down politely
    }
    let chip: MFRC522;
    try {
      chip = this.#open();
    } catch (error) {
      this.#chip = undefined;
      this.#picc = undefined;
      this.#fault = error instanceof Error ? error : new ChipError(String(error));
      return false;
    }
    this.#chip = chip;
    this.#picc = new Iso14443A(chip);
    this.#fault = undefined;
    try {
      if (this.#settings.antennaGain !== undefined)
        chip.configure({ antennaGain: this.#settings.antennaGain });
      if (this.#antenna) chip.antennaOn();
      else chip.antennaOff();
    } catch {
      return false;
    }
    return this.selfTest() === undefined;
  }

  detect(): CardSession | undefined {
    const chip = this.#chip;
    const picc = this.#picc;
    if (!chip || !picc) throw this.#fault ?? new ChipError('the reader is out of service');
    // REQA, not WUPA: a card that has paid is left in HALT and cannot pay twice by lying still.
    const selected = picc.activate();
    if (!selected) return undefined;
    if (!isIsoDep(selected.sak)) {
      picc.halt();
      throw new UnsupportedCardError('not a payment card (no ISO 14443-4)');
    }
    const isoDep = new IsoDep(chip);
    isoDep.activate(selected);
    const transceive = (apdu: Uint8Array) => isoDep.transceive(apdu);
    selectPurse(transceive);
    let session: ReturnType<typeof authenticatePurse>;
    try {
      session = authenticatePurse(transceive, selected.uid, this.#authenticator);
    } catch (error) {
      if (error instanceof CardNotGenuine) {
        try {
          isoDep.deselect();
        } catch {
          // gone already
        }
        throw new CardNotGenuine(`cloned card? UID ${toHex(selected.uid)}: ${error.message}`);
      }
      throw error;
    }
    let card = readPurse(transceive, session);
    // Anti-tearing: the last debit's answer was lost on this card. Done whole: this session shows
    // the card as it was and its debit of the same amount returns that result without debiting
    // again; not done: the value is unchanged and the debit runs normally.
    let recovered: { amount: number; result: DebitResult } | undefined;
    const torn = this.#torn;
    if (torn && torn.cardNumber === card.cardNumber) {
      this.#torn = undefined;
      if (torn.completedOn(card)) {
        recovered = { amount: torn.amount, result: { balance: card.balance, counter: card.counter } };
        card = { ...card, balance: torn.balance, counter: torn.counter };
      }
    }
    const before = card;
    return {
      card,
      debit: (amount) => {
        if (recovered && recovered.amount === amount) {
          const result = recovered.result;
          recovered = undefined;
          return result;
        }
        if (recovered) throw new PurseError('the card holds an earlier debit of another amount');
        try {
          return debitPurse(transceive, session, amount, before.counter);
        } catch (error) {
          if (error instanceof PurseError) throw error; // the card answered: the value is unchanged
          this.#torn = new DebitUncertain(
            before.cardNumber,
            before.counter,
            before.balance,
            amount,
            (error as Error).message,
          );
          throw this.#torn;
        }
      },
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

export function createCardReader(
  hardware: MeterHardware,
  authenticator: PurseAuthenticator,
  clock: Clock = hardware.clock,
): CardReaderPort {
  const { io, pins } = hardware;
  const open = () =>
    new MFRC522({
      reader: { io: io.SPI, ...pins.reader },
      reset: pins.reader.reset === undefined ? undefined : { io: io.Digital, pin: pins.reader.reset },
      clock,
    });
  return Mfrc522CardReader.open(open, authenticator);
}
