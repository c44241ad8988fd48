// A virtual MAX17048 fuel gauge on the virtual I2C bus, on one battery pack: VCELL and SOC from the
// pack's state, CRATE, CONFIG with the empty alert (HD), STATUS with RI after a power-up (a pack
// connected) and VR when the cell dropped out, writable MODE/HIBRT/VALRT.
import { Bits, HIBRT_DEFAULT, POWER_ON_RESET, Register } from '../../../drivers/power/max17048';
import { VirtualRegisterChip } from './chip';

export class VirtualMax17048 extends VirtualRegisterChip {
  /** Pack state: state of charge (%), cell voltage (V), rate (%/h, negative discharging). */
  percent = 100;
  voltage = 4.1;
  rate = -0.4;
  quickStarts = 0;

  /** A fresh pack is connected: the gauge powers up with RI set. */
  insertPack(percent: number, voltage: number): void {
    this.percent = percent;
    this.voltage = voltage;
    this.reset();
  }

  /** The pack's voltage dipped below VRESET and came back (a swap under the backup): VR set. */
  dropOut(): void {
    const status = this.getUint16(Register.STATUS, false);
    this.setUint16(Register.STATUS, status | Bits.VR, false);
  }

  protected override read(register: number): number {
    if ((register === Register.VERSION || register === Register.VERSION + 1) && this.fault === 'wrong-id')
      return 0x00;
    return super.read(register);
  }

  protected override write(register: number, value: number): void {
    super.write(register, value);
    if (register === Register.MODE + 1 && this.getUint16(Register.MODE, false) & Bits.QUICK_START) {
      this.quickStarts++;
      this.setUint16(Register.MODE, 0, false);
    }
    if (register === Register.CMD + 1 && this.getUint16(Register.CMD, false) === POWER_ON_RESET) this.reset();
  }

  protected update(): void {
    this.setUint16(Register.VCELL, Math.round((this.voltage * 1_000_000) / 78.125), false);
    this.setUint16(Register.SOC, Math.round(Math.max(0, Math.min(100, this.percent)) * 256), false);
    this.setUint16(Register.CRATE, Math.round(this.rate / 0.208) & 0xffff, false);
    const config = this.getUint16(Register.CONFIG, false);
    const threshold = 32 - (config & Bits.ATHD);
    let status = this.getUint16(Register.STATUS, false);
    if (this.percent < threshold) {
      status |= Bits.HD;
      this.setUint16(Register.CONFIG, config | Bits.ALRT, false);
    }
    this.setUint16(Register.STATUS, status, false);
  }

  protected reset(): void {
    this.registers.fill(0);
    this.setUint16(Register.VERSION, 0x0012, false);
    this.setUint16(Register.HIBRT, HIBRT_DEFAULT, false);
    this.setUint16(Register.CONFIG, 0x971c, false);
    this.setUint16(Register.VALRT, 0x00ff, false);
    this.setUint16(Register.VRESET_ID, 0x9600, false);
    this.setUint16(Register.STATUS, Bits.RI, false);
  }
}
