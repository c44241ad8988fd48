// ISO/IEC 14443-4 (ISO-DEP) half-duplex block transmission over a selected type A card:
// RATS/ATS, I-blocks with chaining both ways, R(ACK)/R(NAK) error recovery, S(WTX), S(DESELECT).
// No CID and no NAD are used: the meter talks to one card at a time.
import { concatBytes } from '../../protocol/bytes';
import type { SelectedCard } from './iso14443a';
import { isIsoDep } from './iso14443a';
import {
  FIFO_SIZE,
  type MFRC522,
  RfidCrcError,
  RfidError,
  RfidParityError,
  RfidProtocolError,
  RfidTimeout,
} from './mfrc522';

/** §7.5.2 PCB coding. */
export const Pcb = Object.freeze({
  I_BLOCK: 0b0000_0010, // 000x xx1x
  R_BLOCK: 0b1010_0010, // 101x x01x
  S_BLOCK: 0b1100_0010, // 11xx x010
  BLOCK_NUMBER: 0b0000_0001,
  CHAINING: 0b0001_0000,
  CID: 0b0000_1000,
  NAD: 0b0000_0100,
  NAK: 0b0001_0000,
  S_DESELECT: 0b1100_0010,
  S_WTX: 0b1111_0010,
});

export const RATS = 0xe0; // §5.6.1

/** §5.2.3 FSDI/FSCI → frame size in bytes (codes above 8 are RFU and read as 256). */
export const FRAME_SIZES: readonly number[] = Object.freeze([16, 24, 32, 40, 48, 64, 96, 128, 256]);

export interface Ats {
  /** The ATS as received (TL first, CRC removed). */
  bytes: Uint8Array;
  /** Largest frame the card accepts, in bytes (FSCI). */
  fsc: number;
  fwi: number;
  sfgi: number;
  /** Frame waiting time, ms (§7.2: 256·16/fc · 2^FWI). */
  fwtMs: number;
  /** Start-up frame guard time, ms: wait this long after the ATS. */
  sfgtMs: number;
  nadSupported: boolean;
  cidSupported: boolean;
  historical: Uint8Array;
}

export interface IsoDepOptions {
  /** FSDI sent in RATS; the default 5 (64 bytes) is what the MFRC522 FIFO holds. */
  fsdi?: number;
  /** Retransmissions (R(NAK) or R(ACK)) per block before an error is thrown (default 2). */
  retries?: number;
  /** Waits a few milliseconds (SFGT); without it the SFGT is not observed. */
  delay?: (ms: number) => void;
}

/** The card is not ISO 14443-4 compliant (SAK bit 6 clear), e.g. a MIFARE Classic. */
export class UnsupportedCard extends RfidError {
  override readonly name: string = 'UnsupportedCard';
  readonly sak: number;
  constructor(sak: number) {
    super(`card is not ISO 14443-4 (SAK 0x${sak.toString(16).padStart(2, '0')})`);
    this.sak = sak;
  }
}

/** The card broke ISO 14443-4: a malformed ATS or block, or a block that fits no rule. */
export class IsoDepProtocolError extends RfidError {
  override readonly name: string = 'IsoDepProtocolError';
  constructor(message: string) {
    super(message);
  }
}

const ETU_FWT_MS = (256 * 16) / 13_560; // 302 µs
const FWT_ACTIVATION_MS = 5; // §5.7: 65536/fc ≈ 4.8 ms for the ATS
const FWT_MAX_MS = 4_950; // FWI 14
const DELTA_FWT_MS = 4; // §7.2 ΔFWT = 49152/fc ≈ 3.6 ms
const MAX_WTX = 64; // S(WTX) in a row before the card is deemed stuck

function transmissionError(error: unknown): boolean {
  return (
    error instanceof RfidTimeout ||
    error instanceof RfidCrcError ||
    error instanceof RfidParityError ||
    error instanceof RfidProtocolError
  );
}

export function parseAts(bytes: Uint8Array): Ats {
  const tl = bytes[0];
  if (bytes.length < 1 || tl !== bytes.length)
    throw new IsoDepProtocolError(`ATS length byte ${tl} for ${bytes.length}`);
  let fsci = 2;
  let fwi = 4;
  let sfgi = 0;
  let tc = 0b10; // §5.2.6 default: CID supported, NAD not
  let next = 1;
  if (tl > 1) {
    const t0 = bytes[next++];
    fsci = t0 & 0x0f;
    if (t0 & 0b1000_0000) throw new IsoDepProtocolError('ATS T0 bit 8 set');
    if (t0 & 0x10) next++; // TA: bit rates; we stay at 106 kBd
    if (t0 & 0x20) {
      if (next >= tl) throw new IsoDepProtocolError('ATS ends before TB');
      fwi = bytes[next] >> 4;
      sfgi = bytes[next] & 0x0f;
      next++;
    }
    if (t0 & 0x40) {
      if (next >= tl) throw new IsoDepProtocolError('ATS ends before TC');
      tc = bytes[next++];
    }
    if (next > tl) throw new IsoDepProtocolError('ATS ends before its interface bytes');
  }
  if (fwi === 15) fwi = 4; // §5.2.5: RFU, read as 4
  if (sfgi === 15) sfgi = 0;
  return {
    bytes: bytes.slice(),
    fsc: FRAME_SIZES[Math.min(fsci, 8)],
    fwi,
    sfgi,
    fwtMs: ETU_FWT_MS * 2 ** fwi,
    sfgtMs: sfgi ? ETU_FWT_MS * 2 ** sfgi : 0,
    nadSupported: (tc & 0b01) !== 0,
    cidSupported: (tc & 0b10) !== 0,
    historical: bytes.slice(Math.min(next, tl)),
  };
}

export class IsoDep {
  readonly #reader: MFRC522;
  readonly #retries: number;
  readonly #fsdi: number;
  readonly #delay: ((ms: number) => void) | undefined;
  #ats: Ats | undefined;
  #blockNumber = 0;
  #timeoutMs = FWT_ACTIVATION_MS;
  #maxInf = 0;
  readonly #control = new Uint8Array(2); // R-blocks, S-blocks, RATS

  constructor(reader: MFRC522, options: IsoDepOptions = {}) {
    const { fsdi = 5, retries = 2, delay } = options;
    if (!(Number.isInteger(fsdi) && fsdi >= 0 && fsdi <= 8)) throw new RangeError(`fsdi ${fsdi}`);
    if (!(Number.isInteger(retries) && retries >= 0 && retries <= 8))
      throw new RangeError(`retries ${retries}`);
    this.#reader = reader;
    this.#fsdi = fsdi;
    this.#retries = retries;
    this.#delay = delay;
  }

  get ats(): Ats | undefined {
    return this.#ats;
  }

  /** RATS → ATS for a selected card. Throws UnsupportedCard when its SAK does not announce ISO 14443-4. */
  activate(card: Pick<SelectedCard, 'sak'>): Ats {
    if (!isIsoDep(card.sak)) throw new UnsupportedCard(card.sak);
    this.#ats = undefined;
    const rats = this.#control;
    rats[0] = RATS;
    rats[1] = this.#fsdi << 4; // CID 0
    const answer = this.#reader.transceive(rats, { crc: true, timeoutMs: FWT_ACTIVATION_MS });
    const ats = parseAts(answer.bytes);
    if (ats.sfgtMs) this.#delay?.(Math.ceil(ats.sfgtMs));
    this.#ats = ats;
    this.#blockNumber = 0; // §7.5.3.1 rule A
    this.#timeoutMs = Math.min(FWT_MAX_MS, ats.fwtMs) + DELTA_FWT_MS;
    // PCB and CRC_A take 3 bytes of a frame; the FIFO bounds what we can send at once
    this.#maxInf = Math.min(ats.fsc, FIFO_SIZE + 2) - 3;
    return ats;
  }

  /** True between a successful activate() and DESELECT or a failed exchange. */
  get active(): boolean {
    return this.#ats !== undefined;
  }

  /**
   * Sends a command APDU and returns the response APDU (data, SW1, SW2). A failure the retries
   * could not mend ends the session: the block numbers may disagree now, so the card must be
   * activated again (antenna off and on, then request, select and RATS).
   */
  transceive(apdu: Uint8Array): Uint8Array {
    if (!this.#ats) throw new IsoDepProtocolError('card not activated');
    if (apdu.length === 0) throw new RangeError('empty APDU');
    try {
      return this.#exchange(apdu, this.#ats);
    } catch (error) {
      this.#ats = undefined;
      throw error;
    }
  }

  #exchange(apdu: Uint8Array, ats: Ats): Uint8Array {
    const reader = this.#reader;
    const parts: Uint8Array[] = [];
    let offset = 0;
    let last = this.#iBlock(apdu, offset); // the I-block we may have to send again
    let toSend = last;
    let receiving = false; // the card is chaining its response
    let errors = 0;
    let wtx = 0;
    let timeoutMs = this.#timeoutMs;
    for (;;) {
      let block: Uint8Array;
      try {
        block = reader.transceive(toSend, { crc: true, timeoutMs }).bytes;
      } catch (error) {
        // §7.5.4.2 rule 4: an invalid block or a timeout → R(NAK); while the card chains → R(ACK)
        if (!transmissionError(error) || ++errors > this.#retries) throw error;
        toSend = this.#rBlock(!receiving);
        timeoutMs = this.#timeoutMs;
        continue;
      }
      timeoutMs = this.#timeoutMs;
      const pcb = block[0];
      if ((pcb & 0b1100_0111) === Pcb.S_BLOCK) {
        if ((pcb & 0b1111_0111) !== Pcb.S_WTX)
          throw new IsoDepProtocolError(`unexpected S-block 0x${hex(pcb)}`);
        const hasCid = (pcb & Pcb.CID) !== 0;
        if (block.length !== (hasCid ? 3 : 2)) throw new IsoDepProtocolError('S(WTX) length');
        const wtxm = block[hasCid ? 2 : 1] & 0x3f;
        if (wtxm < 1 || wtxm > 59) throw new IsoDepProtocolError(`WTXM ${wtxm}`);
        if (++wtx > MAX_WTX) throw new IsoDepProtocolError('too many S(WTX)');
        const reply = this.#control;
        reply[0] = Pcb.S_WTX;
        reply[1] = wtxm;
        toSend = reply; // §7.3: the card's extra time applies to this one answer
        timeoutMs = Math.min(FWT_MAX_MS, ats.fwtMs * wtxm) + DELTA_FWT_MS;
        continue;
      }
      if ((pcb & 0b1110_0110) === Pcb.R_BLOCK) {
        if (pcb & Pcb.NAK || receiving) throw new IsoDepProtocolError(`unexpected R-block 0x${hex(pcb)}`);
        if ((pcb & Pcb.BLOCK_NUMBER) === this.#blockNumber) {
          // rule 6: the card acknowledged our chained block; send the next one
          if (!(last[0] & Pcb.CHAINING)) throw new IsoDepProtocolError('R(ACK) to an unchained I-block');
          this.#blockNumber ^= 1;
          offset += last.length - 1;
          errors = 0;
          last = this.#iBlock(apdu, offset);
          toSend = last;
          continue;
        }
        // rule 5: the card did not get our last I-block
        if (++errors > this.#retries) throw new RfidTimeout('card keeps missing the I-block');
        toSend = last;
        continue;
      }
      if ((pcb & 0b1110_0010) === Pcb.I_BLOCK && block.length >= 1) {
        if (last[0] & Pcb.CHAINING && !receiving) throw new IsoDepProtocolError('I-block while we chain');
        if ((pcb & Pcb.BLOCK_NUMBER) !== this.#blockNumber) throw new IsoDepProtocolError('I-block number');
        const header = 1 + (pcb & Pcb.CID ? 1 : 0) + (pcb & Pcb.NAD ? 1 : 0);
        if (block.length < header) throw new IsoDepProtocolError('I-block too short');
        this.#blockNumber ^= 1; // rule 2
        errors = 0;
        parts.push(block.subarray(header));
        if (pcb & Pcb.CHAINING) {
          receiving = true;
          toSend = this.#rBlock(false);
          continue;
        }
        return concatBytes(...parts);
      }
      throw new IsoDepProtocolError(`unknown PCB 0x${hex(pcb)}`);
    }
  }

  /** S(DESELECT): the card goes to HALT. */
  deselect(): void {
    if (!this.#ats) return;
    const block = this.#control.subarray(0, 1);
    block[0] = Pcb.S_DESELECT;
    let errors = 0;
    for (;;) {
      try {
        const answer = this.#reader.transceive(block, { crc: true, timeoutMs: this.#timeoutMs });
        if (answer.bytes.length !== 1 || answer.bytes[0] !== Pcb.S_DESELECT) {
          throw new IsoDepProtocolError('bad S(DESELECT) answer');
        }
        this.#ats = undefined;
        return;
      } catch (error) {
        if (!transmissionError(error) || ++errors > this.#retries) throw error;
      }
    }
  }

  #iBlock(apdu: Uint8Array, offset: number): Uint8Array {
    const length = Math.min(this.#maxInf, apdu.length - offset);
    const block = new Uint8Array(1 + length);
    const chaining = offset + length < apdu.length;
    block[0] = Pcb.I_BLOCK | this.#blockNumber | (chaining ? Pcb.CHAINING : 0);
    block.set(apdu.subarray(offset, offset + length), 1);
    return block;
  }

  #rBlock(nak: boolean): Uint8Array {
    const block = this.#control.subarray(0, 1);
    block[0] = Pcb.R_BLOCK | (nak ? Pcb.NAK : 0) | this.#blockNumber;
    return block;
  }
}

function hex(byte: number): string {
  return byte.toString(16).padStart(2, '0');
}
