// A virtual Sensirion SHT31 on the virtual I2C bus: 16-bit commands (soft reset, single shot,
// status, clear status, heater), answers with CRC-8 on every word. Faults beyond the common ones:
// `corruptCrc` flips a CRC bit in the next measurement.
import { Command, sensirionCrc, Status } from '../../../drivers/sensors/sht3x';
import type { VirtualI2cChip } from '../bus';
import type { ChipFault } from './chip';

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
  #status = Status.ALERT_PENDING | Status.RESET_DETECTED;
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
      case Command.SOFT_RESET:
        this.#status = Status.ALERT_PENDING | Status.RESET_DETECTED;
        this.heater = false;
        this.#pending = new Uint8Array(0);
        break;
      case Command.READ_STATUS: {
        const word = this.fault === 'wrong-id' ? 0 : this.#status;
        const out = Uint8Array.of(word >> 8, word & 0xff, 0);
        out[2] = sensirionCrc(out, 0) ^ (this.fault === 'wrong-id' ? 0xff : 0);
        this.#pending = out;
        break;
      }
      case Command.CLEAR_STATUS:
        this.#status &= ~(Status.ALERT_PENDING | Status.RESET_DETECTED);
        break;
      case Command.HEATER_ON:
      case Command.HEATER_OFF:
        this.heater = command === Command.HEATER_ON;
        break;
      case Command.MEASURE_HIGH_STRETCH:
      case Command.MEASURE_MEDIUM_STRETCH:
      case Command.MEASURE_LOW_STRETCH:
        this.#pending = this.#measure();
        break;
      default:
        this.#status |= Status.COMMAND_FAILED;
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
    this.#status = Status.ALERT_PENDING | Status.RESET_DETECTED;
    this.heater = false;
    this.#pending = new Uint8Array(0);
  }

  #measure(): Uint8Array {
    if (this.fault === 'stuck' && this.#tick > 0) return this.#last.slice();
    this.#tick++;
    const dither = this.#tick % 2;
    const t = Math.max(0, Math.min(0xffff, Math.round(((this.temperature + 45) * 65535) / 175) + dither));
    const rh = Math.max(0, Math.min(0xffff, Math.round((this.humidity * 65535) / 100) + dither));
    const out = Uint8Array.of(t >> 8, t & 0xff, 0, rh >> 8, rh & 0xff, 0);
    out[2] = sensirionCrc(out, 0);
    out[5] = sensirionCrc(out, 3);
    this.#last = out.slice();
    if (this.corruptCrc > 0) {
      this.corruptCrc--;
      out[2] ^= 0x01;
    }
    return out;
  }
}
