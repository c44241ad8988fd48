// A virtual Sensirion SHT31 on the virtual I2C bus: 16-bit commands (soft reset, single shot,
// status, clear status, heater), answers with CRC-8 on every word. Faults beyond the common ones:
// `corruptCrc` flips a CRC bit in the next measurement. Commands, status bits and the CRC are
// written from the datasheet, not taken from drivers/sensors/sht3x.ts;
// host-tests/twins/sensors.test.ts compares the two.
import type { VirtualI2cChip } from '../bus';
import type { ChipFault } from './chip';

/** SHT3x-DIS datasheet (Sensirion, Version 7) §4 commands. */
export const ShtCommand = Object.freeze({
  SINGLE_SHOT_STRETCH_HIGH: 0x2c06, // §4.3 Table 9
  SINGLE_SHOT_STRETCH_MEDIUM: 0x2c0d,
  SINGLE_SHOT_STRETCH_LOW: 0x2c10,
  SOFT_RESET: 0x30a2, // §4.9
  HEATER_ENABLE: 0x306d, // §4.10
  HEATER_DISABLE: 0x3066,
  READ_STATUS: 0xf32d, // §4.11
  CLEAR_STATUS: 0x3041,
});

/** §4.11 Table 17: status register bits. */
export const ShtStatus = Object.freeze({
  ALERT_PENDING: 1 << 15,
  HEATER: 1 << 13,
  RESET_DETECTED: 1 << 4,
  COMMAND_STATUS: 1 << 1,
  WRITE_CHECKSUM: 1 << 0,
});

/** §4.12 Table 19: CRC-8, polynomial x^8 + x^5 + x^4 + 1 (0x31), initial 0xFF; CRC(BE EF) = 92. */
export function shtCrc(bytes: Uint8Array, from = 0): number {
  let crc = 0xff;
  for (const byte of bytes.subarray(from, from + 2)) {
    crc ^= byte;
    for (let bit = 0; bit < 8; bit++) crc = ((crc << 1) ^ (crc & 0x80 ? 0x31 : 0)) & 0xff;
  }
  return crc;
}

export class VirtualSht3x implements VirtualI2cChip {
  temperature = 20;
  humidity = 50;
  fault: ChipFault = 'none';
  powered = true;
  /** A latched-up chip: its fault goes away when its supply is cycled. */
  latched = false;
  /** Corrupts the CRC of the next `corruptCrc` measurements. */
  corruptCrc = 0;
  heater = false;
  commands: number[] = [];
  #status = ShtStatus.ALERT_PENDING | ShtStatus.RESET_DETECTED;
  #pending: Uint8Array = new Uint8Array(0);
  #last = new Uint8Array(6);
  #tick = 0;

  acknowledge(): boolean {
    return this.powered && this.fault !== 'no-ack';
  }

  receive(bytes: Uint8Array): void {
    if (bytes.length < 2) return;
    const command = (bytes[0] << 8) | bytes[1];
    this.commands.push(command);
    switch (command) {
      case ShtCommand.SOFT_RESET:
        this.#status = ShtStatus.ALERT_PENDING | ShtStatus.RESET_DETECTED;
        this.heater = false;
        this.#pending = new Uint8Array(0);
        break;
      case ShtCommand.READ_STATUS: {
        const word = this.fault === 'wrong-id' ? 0 : this.#status;
        const out = Uint8Array.of(word >> 8, word & 0xff, 0);
        out[2] = shtCrc(out, 0) ^ (this.fault === 'wrong-id' ? 0xff : 0);
        this.#pending = out;
        break;
      }
      case ShtCommand.CLEAR_STATUS:
        this.#status &= ~(ShtStatus.ALERT_PENDING | ShtStatus.RESET_DETECTED);
        break;
      case ShtCommand.HEATER_ENABLE:
      case ShtCommand.HEATER_DISABLE:
        this.heater = command === ShtCommand.HEATER_ENABLE;
        break;
      case ShtCommand.SINGLE_SHOT_STRETCH_HIGH:
      case ShtCommand.SINGLE_SHOT_STRETCH_MEDIUM:
      case ShtCommand.SINGLE_SHOT_STRETCH_LOW:
        this.#pending = this.#measure();
        break;
      default:
        this.#status |= ShtStatus.COMMAND_STATUS;
    }
  }

  transmit(byteLength: number): Uint8Array {
    const out = new Uint8Array(byteLength);
    out.set(this.#pending.subarray(0, byteLength));
    this.#pending = new Uint8Array(0);
    return out;
  }

  powerCycle(): void {
    if (this.latched) {
      this.fault = 'none';
      this.latched = false;
    }
    this.#status = ShtStatus.ALERT_PENDING | ShtStatus.RESET_DETECTED;
    this.heater = false;
    this.#pending = new Uint8Array(0);
  }

  #measure(): Uint8Array {
    if (this.fault === 'stuck' && this.#tick > 0) return this.#last.slice();
    this.#tick++;
    const dither = this.#tick % 2;
    // §4.13: T = -45 + 175·S/65535 °C, RH = 100·S/65535 %
    const t = Math.max(0, Math.min(0xffff, Math.round(((this.temperature + 45) * 65535) / 175) + dither));
    const rh = Math.max(0, Math.min(0xffff, Math.round((this.humidity * 65535) / 100) + dither));
    const out = Uint8Array.of(t >> 8, t & 0xff, 0, rh >> 8, rh & 0xff, 0);
    out[2] = shtCrc(out, 0);
    out[5] = shtCrc(out, 3);
    this.#last = out.slice();
    if (this.corruptCrc > 0) {
      this.corruptCrc--;
      out[2] ^= 0x01;
    }
    return out;
  }
}
