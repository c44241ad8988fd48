// A virtual MAX17048 fuel gauge on the virtual I2C bus, on one battery pack: VCELL and SOC from the
// pack's state, CRATE, CONFIG with the empty alert (HD), STATUS with RI after a power-up (a pack
// connected) and VR when the cell dropped out, writable MODE/HIBRT/VALRT. Registers, bits and
// reset values are written from the datasheet, not taken from drivers/power/max17048.ts;
// host-tests/twins/sensors.test.ts compares the two.
import { VirtualRegisterChip } from './chip';

/** MAX17048/MAX17049 datasheet (19-6171 Rev 7) Table 2: registers, 16-bit big-endian. */
export const MaxReg = Object.freeze({
  VCELL: 0x02, // 78.125 µV per LSB
  SOC: 0x04, // 1/256 % per LSB
  MODE: 0x06,
  VERSION: 0x08,
  HIBRT: 0x0a,
  CONFIG: 0x0c,
  VALRT: 0x14,
  CRATE: 0x16, // 0.208 %/h per LSB, signed
  VRESET_ID: 0x18,
  STATUS: 0x1a,
  CMD: 0xfe,
});

/** Table 2 reset values of the registers the model keeps. */
export const MaxReset = Object.freeze({
  VERSION: 0x0012, // 0x001_: the low nibble is the silicon version
  HIBRT: 0x8030,
  CONFIG: 0x971c,
  VALRT: 0x00ff,
  VRESET_ID: 0x9600,
});

/** MODE, CONFIG and STATUS bits (register descriptions; Table 3 for STATUS). */
export const MaxBit = Object.freeze({
  QUICK_START: 1 << 14, // MODE
  ALRT: 1 << 5, // CONFIG; ATHD [4:0]: empty alert at 32 - ATHD %
  ATHD: 0b1_1111,
  RI: 1 << 8, // STATUS: reset indicator
  VR: 1 << 11, // voltage reset
  HD: 1 << 12, // SOC low
});

/** CMD: writing 0x5400 resets the IC as at power-on. */
export const MAX_POWER_ON_RESET = 0x5400;

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
    const status = this.getUint16(MaxReg.STATUS, false);
    this.setUint16(MaxReg.STATUS, status | MaxBit.VR, false);
  }

  protected override read(register: number): number {
    if ((register === MaxReg.VERSION || register === MaxReg.VERSION + 1) && this.fault === 'wrong-id')
      return 0x00;
    return super.read(register);
  }

  protected override write(register: number, value: number): void {
    super.write(register, value);
    if (register === MaxReg.MODE + 1 && this.getUint16(MaxReg.MODE, false) & MaxBit.QUICK_START) {
      this.quickStarts++;
      this.setUint16(MaxReg.MODE, 0, false);
    }
    if (register === MaxReg.CMD + 1 && this.getUint16(MaxReg.CMD, false) === MAX_POWER_ON_RESET) this.reset();
  }

  protected update(): void {
    this.setUint16(MaxReg.VCELL, Math.round((this.voltage * 1_000_000) / 78.125), false);
    this.setUint16(MaxReg.SOC, Math.round(Math.max(0, Math.min(100, this.percent)) * 256), false);
    this.setUint16(MaxReg.CRATE, Math.round(this.rate / 0.208) & 0xffff, false);
    const config = this.getUint16(MaxReg.CONFIG, false);
    const threshold = 32 - (config & MaxBit.ATHD);
    let status = this.getUint16(MaxReg.STATUS, false);
    if (this.percent < threshold) {
      status |= MaxBit.HD;
      this.setUint16(MaxReg.CONFIG, config | MaxBit.ALRT, false);
    }
    this.setUint16(MaxReg.STATUS, status, false);
  }

  protected reset(): void {
    this.registers.fill(0);
    this.setUint16(MaxReg.VERSION, MaxReset.VERSION, false);
    this.setUint16(MaxReg.HIBRT, MaxReset.HIBRT, false);
    this.setUint16(MaxReg.CONFIG, MaxReset.CONFIG, false);
    this.setUint16(MaxReg.VALRT, MaxReset.VALRT, false);
    this.setUint16(MaxReg.VRESET_ID, MaxReset.VRESET_ID, false);
    this.setUint16(MaxReg.STATUS, MaxBit.RI, false);
  }
}
