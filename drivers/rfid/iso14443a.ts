// ISO/IEC 14443-3 type A: request, anticollision and selection of one card, and HLTA.
// Over any reader with the MFRC522 driver's transceive (bit-oriented frames, chip-side CRC_A).
import { type MFRC522, type ReceivedFrame, RfidError, RfidTimeout, type TransceiveOptions } from './mfrc522';

export const PiccCommand = Object.freeze({
  REQA: 0x26, // §6.3.1, a 7-bit short frame
  WUPA: 0x52,
  SEL_CL1: 0x93, // §6.5.3.1 cascade levels 1..3
  SEL_CL2: 0x95,
  SEL_CL3: 0x97,
  HLTA: 0x50, // §6.4.3: 50 00 + CRC_A
  CASCADE_TAG: 0x88, // §6.5.4
});

/** §6.5.3.4 SAK bits. */
export const Sak = Object.freeze({
  UID_NOT_COMPLETE: 0b0000_0100,
  ISO14443_4: 0b0010_0000,
});

export interface SelectedCard {
  /** 4, 7 or 10 bytes. */
  uid: Uint8Array;
  /** As received: first byte in bits 7..0, second in bits 15..8. */
  atqa: number;
  sak: number;
}

/** The card's answer breaks ISO 14443-3 (bad BCC, wrong length, cascade beyond level 3, ...). */
export class CardProtocolError extends RfidError {
  override readonly name: string = 'CardProtocolError';
  constructor(message: string) {
    super(message);
  }
}

/** Enough for REQA/SELECT: the frame delay time is about 90 µs (§6.2.1). */
const ACTIVATION_TIMEOUT_MS = 5;
/** §6.4.3: any answer within 1 ms of HLTA is a NAK. */
const HLTA_TIMEOUT_MS = 1;
const SEL = [PiccCommand.SEL_CL1, PiccCommand.SEL_CL2, PiccCommand.SEL_CL3];

export function isIsoDep(sak: number): boolean {
  return (sak & (Sak.ISO14443_4 | Sak.UID_NOT_COMPLETE)) === Sak.ISO14443_4;
}

export class Iso14443A {
  readonly #reader: MFRC522;
  readonly #short = new Uint8Array(1);
  readonly #frame = new Uint8Array(7); // SEL NVB UID0..3 BCC
  readonly #halt = Uint8Array.of(PiccCommand.HLTA, 0x00);

  constructor(reader: MFRC522) {
    this.#reader = reader;
  }

  /** REQA (IDLE cards) or WUPA (IDLE and HALT cards). The ATQA, or undefined when no card answers. */
  request(wakeup = false): number | undefined {
    this.#short[0] = wakeup ? PiccCommand.WUPA : PiccCommand.REQA;
    let answer: ReceivedFrame;
    try {
      answer = this.#transceive(this.#short, { txLastBits: 7, collisions: true });
    } catch (error) {
      if (error instanceof RfidTimeout) return undefined;
      throw error;
    }
    // Cards with different ATQAs collide here: that is still "cards present" (§6.3.2).
    if (answer.bytes.length !== 2 || (answer.collision === 0 && answer.lastBits !== 0)) {
      throw new CardProtocolError(`ATQA of ${answer.bytes.length} bytes`);
    }
    return answer.bytes[0] | (answer.bytes[1] << 8);
  }

  /** Request, then anticollision and SELECT; one card ends ACTIVE, the others stay READY or IDLE. */
  activate(options: { wakeup?: boolean } = {}): SelectedCard | undefined {
    const atqa = this.request(options.wakeup ?? false);
    if (atqa === undefined) return undefined;
    return this.select(atqa);
  }

  /** Anticollision and SELECT over cascade levels 1 to 3 (§6.5). Cards must be READY. */
  select(atqa: number): SelectedCard {
    const uid: number[] = [];
    for (let level = 0; level < 3; level++) {
      const sak = this.#selectLevel(level);
      const frame = this.#frame;
      if (sak & Sak.UID_NOT_COMPLETE) {
        if (frame[2] !== PiccCommand.CASCADE_TAG)
          throw new CardProtocolError('UID incomplete without cascade tag');
        uid.push(frame[3], frame[4], frame[5]);
        continue;
      }
      uid.push(frame[2], frame[3], frame[4], frame[5]);
      return { uid: Uint8Array.from(uid), atqa, sak };
    }
    throw new CardProtocolError('UID not complete after cascade level 3');
  }

  /** HLTA: the ACTIVE card goes to HALT. Silence is the only good answer (§6.4.3). */
  halt(): void {
    try {
      this.#transceive(this.#halt, { crc: true, timeoutMs: HLTA_TIMEOUT_MS });
    } catch (error) {
      if (error instanceof RfidTimeout) return;
      throw error;
    }
    throw new CardProtocolError('card answered HLTA');
  }

  /** One cascade level: anticollision loop, BCC check, SELECT. Leaves UID CLn in #frame[2..5]. */
  #selectLevel(level: number): number {
    const frame = this.#frame;
    frame.fill(0);
    frame[0] = SEL[level];
    let known = 0; // UID CLn bits already known (sent in the NVB)
    for (;;) {
      const whole = known >> 3;
      const partial = known & 7;
      frame[1] = ((2 + whole) << 4) | partial; // NVB: bytes (SEL and NVB included), then bits
      const answer = this.#transceive(frame.subarray(0, 2 + whole + (partial ? 1 : 0)), {
        txLastBits: partial,
        rxAlign: partial,
        collisions: true,
      });
      const bytes = answer.bytes;
      if (2 + whole + bytes.length > frame.length)
        throw new CardProtocolError('anticollision answer too long');
      const keep = (1 << partial) - 1; // the known bits of the split byte stay ours
      frame[2 + whole] = (frame[2 + whole] & keep) | (bytes[0] & ~keep);
      for (let i = 1; i < bytes.length; i++) frame[2 + whole + i] = bytes[i];
      if (answer.collision === 0) {
        const received = bytes.length * 8 - partial - (answer.lastBits ? 8 - answer.lastBits : 0);
        if (known + received !== 40) throw new CardProtocolError(`UID CLn of ${known + received} bits`);
        break;
      }
      if (answer.collision < 0) throw new CardProtocolError('collision position out of range');
      // CollPos counts FIFO bits from 1, the RxAlign'd bits included, so it maps onto the UID bits.
      const bit = whole * 8 + answer.collision - 1;
      if (bit < known || bit >= 32) throw new CardProtocolError(`collision at UID bit ${bit}`);
      const index = 2 + (bit >> 3);
      // Take the branch with a 1 at the colliding bit; the bits after it are unknown.
      frame[index] = (frame[index] | (1 << (bit & 7))) & ((2 << (bit & 7)) - 1);
      known = bit + 1;
    }
    if ((frame[2] ^ frame[3] ^ frame[4] ^ frame[5]) !== frame[6]) throw new CardProtocolError('BCC mismatch');
    frame[1] = 0x70; // NVB: all 40 bits, this is SELECT
    const answer = this.#transceive(frame, { crc: true });
    if (answer.bytes.length !== 1 || answer.lastBits !== 0) {
      throw new CardProtocolError(`SAK of ${answer.bytes.length} bytes`);
    }
    return answer.bytes[0];
  }

  #transceive(data: Uint8Array, options: TransceiveOptions): ReceivedFrame {
    return this.#reader.transceive(data, { timeoutMs: ACTIVATION_TIMEOUT_MS, crc: false, ...options });
  }
}
