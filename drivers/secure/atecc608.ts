// Microchip ATECC608 (ATECC608A/B) CryptoAuthentication secure element over I2C, the meter's
// crypto memory: keys B and C in data-zone slots, the true random generator, SHA-256 and
// HMAC-SHA-256 computed inside the chip with a slot key, so key B never enters the heap.
// Datasheet: ATECC608A Full Datasheet (DS40001977), §6 I/O (wake, word address, packets, CRC),
// §11 commands (Info, Random, Read, Write, SHA).
import type { I2C, I2COptions, IOClass } from '../../hal/io';

export const WordAddress = Object.freeze({ RESET: 0x00, SLEEP: 0x01, IDLE: 0x02, COMMAND: 0x03 }); // §6.2.1

export const Opcode = Object.freeze({
  READ: 0x02, // §11.11
  WRITE: 0x12, // §11.20
  RANDOM: 0x1b, // §11.10
  INFO: 0x30, // §11.7
  SHA: 0x47, // §11.13
});

export const ShaMode = Object.freeze({
  START: 0x00,
  UPDATE: 0x01,
  END: 0x02,
  HMAC_START: 0x04,
  HMAC_END: 0x02, // the 608 ends an HMAC with End (CryptoAuthLib SHA_MODE_608_HMAC_END); 0x05 is the 508's
});

export const Zone = Object.freeze({ CONFIG: 0x00, OTP: 0x01, DATA: 0x02, BLOCK_32: 0b1000_0000 });

export const Status = Object.freeze({
  SUCCESS: 0x00,
  CHECKMAC_FAIL: 0x01,
  PARSE_ERROR: 0x03,
  ECC_FAULT: 0x05,
  EXECUTION_ERROR: 0x0f,
  AFTER_WAKE: 0x11,
  WATCHDOG: 0xee,
  CRC_ERROR: 0xff,
});

/** The wake answer: count 4, status 0x11, CRC 33 43 (§6.2.5). */
export const WAKE_RESPONSE = Object.freeze([0x04, 0x11, 0x33, 0x43]);

/** Info mode 0 (Revision): 00 00 60 02 (ATECC608A) or 00 00 60 03 (ATECC608B) (§11.7). */
export const REVISIONS = Object.freeze([0x6002, 0x6003]);

/** CRC-16 of the packets: polynomial 0x8005, initial 0, bits taken LSB first, sent little-endian (§6.3). */
export function crc16(data: Uint8Array, length = data.length): number {
  let crc = 0;
  for (let i = 0; i < length; i++) {
    for (let bit = 1; bit < 0x100; bit <<= 1) {
      const dataBit = data[i] & bit ? 1 : 0;
      const crcBit = crc >> 15;
      crc = (crc << 1) & 0xffff;
      if (dataBit !== crcBit) crc ^= 0x8005;
    }
  }
  return crc;
}

export class SecureElementError extends Error {
  override readonly name: string = 'SecureElementError';
  readonly status: number | undefined;
  constructor(message: string, status?: number) {
    super(message);
    this.status = status;
  }
}

export interface Atecc608Options {
  element: { io: IOClass<I2C, I2COptions> } & Partial<I2COptions>;
  /** Answers `read` NACKs while the chip executes: tries before giving up (default 50). */
  polls?: number;
}

const SLOT_COUNT = 16;

export class ATECC608 {
  readonly #i2c: I2C;
  readonly #wakeIo: I2C;
  readonly #polls: number;
  readonly #packet = new Uint8Array(7 + 64 + 1);
  #closed = false;
  /** The chip's revision from Info (0x6002 or 0x6003). */
  readonly revision: number;

  constructor(options: Atecc608Options) {
    const { io, ...bus } = options.element;
    this.#i2c = new io({ hz: 400_000, address: 0x60, ...bus });
    // A wake is SDA held low for tWLO >= 60 µs: a 0x00 written to address 0 at 100 kHz (§6.2.5).
    this.#wakeIo = new io({ ...bus, hz: 100_000, address: 0x00 });
    this.#polls = options.polls ?? 50;
    try {
      const info = this.#command(Opcode.INFO, 0x00, 0x0000, undefined, 4);
      this.revision = (info[2] << 8) | info[3];
      if (!REVISIONS.includes(this.revision)) {
        throw new SecureElementError(`not an ATECC608: revision 0x${this.revision.toString(16)}`);
      }
    } catch (error) {
      this.close();
      throw error;
    }
    this.sleep();
  }

  /** 32 random bytes from the chip's DRBG (Random, mode 0: update the seed). */
  random(): Uint8Array {
    return this.#command(Opcode.RANDOM, 0x00, 0x0000, undefined, 32);
  }

  /** Reads block 0 (32 bytes) of a data slot; the chip refuses secret slots. */
  readSlot(slot: number): Uint8Array {
    return this.#command(Opcode.READ, Zone.DATA | Zone.BLOCK_32, slotAddress(slot), undefined, 32);
  }

  /** Writes 32 bytes to block 0 of a data slot. */
  writeSlot(slot: number, data: Uint8Array): void {
    if (data.length !== 32) throw new RangeError('a slot block is 32 bytes');
    this.#command(Opcode.WRITE, Zone.DATA | Zone.BLOCK_32, slotAddress(slot), data, 1);
  }

  /** SHA-256 computed by the chip (SHA Start, Update per 64 bytes, End). */
  sha256(message: Uint8Array): Uint8Array {
    this.#command(Opcode.SHA, ShaMode.START, 0, undefined, 1);
    return this.#digest(message, ShaMode.END);
  }

  /** HMAC-SHA-256 with the key in `slot`: the key never leaves the chip (SHA HMAC Start/End). */
  hmac(slot: number, message: Uint8Array): Uint8Array {
    checkSlot(slot);
    this.#command(Opcode.SHA, ShaMode.HMAC_START, slot, undefined, 1);
    return this.#digest(message, ShaMode.HMAC_END);
  }

  /** Overwrites the slots with the chip's random bytes, then zeros (zeroisation). */
  wipe(slots: readonly number[]): void {
    for (const slot of slots) {
      this.writeSlot(slot, this.random());
      this.writeSlot(slot, new Uint8Array(32));
    }
  }

  sleep(): void {
    try {
      this.#i2c.write(Uint8Array.of(WordAddress.SLEEP));
    } catch {
      // asleep already
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#i2c.close();
    this.#wakeIo.close();
  }

  #digest(message: Uint8Array, endMode: number): Uint8Array {
    let offset = 0;
    for (; message.length - offset >= 64; offset += 64) {
      this.#command(Opcode.SHA, ShaMode.UPDATE, 64, message.subarray(offset, offset + 64), 1);
    }
    const rest = message.subarray(offset);
    return this.#command(Opcode.SHA, endMode, rest.length, rest, 32);
  }

  #wake(): void {
    try {
      this.#wakeIo.write(Uint8Array.of(0));
    } catch {
      // nobody acknowledges address 0: the low pulse is what wakes the chip
    }
    const answer = new Uint8Array(this.#read(4));
    for (let i = 0; i < 4; i++) {
      if (answer[i] !== WAKE_RESPONSE[i]) throw new SecureElementError('no wake answer (04 11 33 43)');
    }
  }

  #read(length: number): ArrayBuffer {
    for (let i = 0; ; i++) {
      try {
        return this.#i2c.read(length);
      } catch (error) {
        if (i >= this.#polls) throw new SecureElementError(`no answer: ${(error as Error).message}`);
      }
    }
  }

  /** Sends one command packet and returns the answer's data (§6.2.1-6.2.2). */
  #command(
    opcode: number,
    param1: number,
    param2: number,
    data: Uint8Array | undefined,
    expected: number,
  ): Uint8Array {
    if (this.#closed) throw new SecureElementError('closed');
    const length = data?.length ?? 0;
    const packet = this.#packet;
    packet[0] = WordAddress.COMMAND;
    packet[1] = 7 + length; // count: itself, opcode, param1, param2 (2), data, CRC (2)
    packet[2] = opcode;
    packet[3] = param1;
    packet[4] = param2 & 0xff; // little-endian
    packet[5] = param2 >> 8;
    if (data) packet.set(data, 6);
    const crc = crc16(packet.subarray(1), 5 + length);
    packet[6 + length] = crc & 0xff;
    packet[7 + length] = crc >> 8;
    this.#wake();
    try {
      this.#i2c.write(packet.subarray(0, 8 + length));
      const head = new Uint8Array(this.#read(1));
      const count = head[0];
      if (count < 4 || count > 3 + 64) throw new SecureElementError(`answer count ${count}`);
      const answer = new Uint8Array(this.#read(count - 1));
      const whole = new Uint8Array(count);
      whole[0] = count;
      whole.set(answer, 1);
      const got = whole[count - 2] | (whole[count - 1] << 8);
      if (crc16(whole, count - 2) !== got)
        throw new SecureElementError('answer CRC mismatch', Status.CRC_ERROR);
      const body = whole.slice(1, count - 2);
      if (count === 4 && expected !== 1) {
        throw new SecureElementError(
          `command 0x${opcode.toString(16)} failed: status 0x${body[0].toString(16)}`,
          body[0],
        );
      }
      if (count === 4 && body[0] !== Status.SUCCESS) {
        throw new SecureElementError(
          `command 0x${opcode.toString(16)} failed: status 0x${body[0].toString(16)}`,
          body[0],
        );
      }
      if (body.length !== expected)
        throw new SecureElementError(`answer of ${body.length} bytes, expected ${expected}`);
      return body;
    } finally {
      try {
        this.#i2c.write(Uint8Array.of(WordAddress.IDLE));
      } catch {
        // already idle
      }
    }
  }
}

function checkSlot(slot: number): void {
  if (!Number.isInteger(slot) || slot < 0 || slot >= SLOT_COUNT) throw new RangeError(`slot ${slot}`);
}

/** Data-zone address of block 0 of a slot: slot in bits 3..6 (§10.1.1). */
function slotAddress(slot: number): number {
  checkSlot(slot);
  return slot << 3;
}
