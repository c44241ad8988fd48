// A virtual ST LIS3DH on the virtual I2C bus: the acceleration it feels (in g) turned into 12-bit
// left-justified outputs at the configured range, and the INT1 movement interrupt (latched, active
// low) that a shake above INT1_THS raises on a virtual pin until INT1_SRC is read. Registers and
// bits are written from the datasheet, not taken from drivers/sensors/lis3dh.ts;
// host-tests/twins/sensors.test.ts compares the two.
import type { VirtualPins } from '../bus';
import { Dither, VirtualRegisterChip } from './chip';

/** LIS3DH datasheet (ST DocID17530 Rev 2) §7 Table 17: register address map. */
export const LisReg = Object.freeze({
  WHO_AM_I: 0x0f,
  CTRL_REG1: 0x20, // ODR[7:4] LPen[3] Zen Yen Xen
  CTRL_REG2: 0x21,
  CTRL_REG3: 0x22,
  CTRL_REG4: 0x23, // BDU[7] BLE FS[5:4] HR[3]
  CTRL_REG5: 0x24,
  CTRL_REG6: 0x25,
  REFERENCE: 0x26,
  STATUS_REG: 0x27,
  OUT_X_L: 0x28, // X, Y, Z as little-endian, left-justified, in 28..2D
  INT1_CFG: 0x30,
  INT1_SRC: 0x31,
  INT1_THS: 0x32,
  INT1_DURATION: 0x33,
});

/** §8 register bits by their datasheet names. */
export const LisBit = Object.freeze({
  I1_IA1: 1 << 6, // §8.10 CTRL_REG3
  LIR_INT1: 1 << 3, // §8.12 CTRL_REG5
  INT_POLARITY: 1 << 1, // §8.13 CTRL_REG6: 1 = active low
  ZHIE: 1 << 5, // §8.19 INT1_CFG (AOI = 0: OR of the enabled events)
  YHIE: 1 << 3,
  XHIE: 1 << 1,
  IA: 1 << 6, // §8.20 INT1_SRC
});

/** §8.8: WHO_AM_I reads 0x33. */
export const LIS_WHO_AM_I = 0x33;
/** §6.1.1: the sub-address MSB set makes a multi-byte access auto-increment. */
export const LIS_AUTO_INCREMENT = 0x80;

/** §2.1 Table 4: high-resolution sensitivity, mg per digit at ±2, 4, 8, 16 g. */
const MG_PER_DIGIT = [1, 2, 4, 12];
/** §8.21: INT1_THS LSB, mg at ±2, 4, 8, 16 g. */
const THS_MG = [16, 32, 62, 186];
const HIGH_EVENTS = LisBit.ZHIE | LisBit.YHIE | LisBit.XHIE;

export interface VirtualLis3dhOptions {
  pins?: VirtualPins;
  /** The pin INT1 is wired to. */
  int1?: number;
}

export class VirtualLis3dh extends VirtualRegisterChip {
  /** Static acceleration on the meter, g (gravity: z = 1 when upright). */
  acceleration = { x: 0, y: 0, z: 1 };
  readonly #options: VirtualLis3dhOptions;
  readonly #dither = new Dither();
  #autoIncrement = false;

  constructor(options: VirtualLis3dhOptions = {}) {
    super();
    this.#options = options;
    this.#release();
  }

  /** A knock or a shake: a dynamic acceleration of `g` on every axis, through the high-pass filter. */
  shake(g: number): boolean {
    const r = this.registers;
    const running = r[LisReg.CTRL_REG1] >> 4 !== 0;
    const enabled = (r[LisReg.INT1_CFG] & HIGH_EVENTS) !== 0 && (r[LisReg.CTRL_REG3] & LisBit.I1_IA1) !== 0;
    if (!this.powered || !running || !enabled || this.fault === 'stuck') return false;
    const range = (r[LisReg.CTRL_REG4] >> 4) & 0b11;
    if (g * 1000 <= r[LisReg.INT1_THS] * THS_MG[range]) return false;
    r[LisReg.INT1_SRC] = LisBit.IA | (r[LisReg.INT1_CFG] & HIGH_EVENTS);
    this.#assert();
    return true;
  }

  protected override pointerOf(first: number): number {
    this.#autoIncrement = (first & LIS_AUTO_INCREMENT) !== 0;
    return first & 0x7f;
  }

  protected override advance(pointer: number): number {
    return this.#autoIncrement ? (pointer + 1) & 0x7f : pointer;
  }

  protected override write(register: number, value: number): void {
    super.write(register, value);
    if (register !== LisReg.CTRL_REG6) return;
    // The pin follows a polarity change at once.
    if (this.registers[LisReg.INT1_SRC] & LisBit.IA) this.#assert();
    else this.#release();
  }

  protected override read(register: number): number {
    const value = register === LisReg.WHO_AM_I && this.fault === 'wrong-id' ? 0x32 : super.read(register);
    if (register === LisReg.INT1_SRC && this.registers[LisReg.CTRL_REG5] & LisBit.LIR_INT1) {
      this.registers[LisReg.INT1_SRC] = 0;
      this.#release();
    }
    return value;
  }

  protected update(): void {
    const r = this.registers;
    if (r[LisReg.CTRL_REG1] >> 4 === 0) return; // power-down: outputs hold
    const mg = MG_PER_DIGIT[(r[LisReg.CTRL_REG4] >> 4) & 0b11];
    const axes = [this.acceleration.x, this.acceleration.y, this.acceleration.z];
    axes.forEach((g, i) => {
      const digits = Math.max(-2048, Math.min(2047, Math.round((g * 1000) / mg) + this.#dither.next()));
      this.setUint16(LisReg.OUT_X_L + 2 * i, (digits << 4) & 0xffff, true);
    });
    r[LisReg.STATUS_REG] = 0b0000_1111;
  }

  protected reset(): void {
    this.registers.fill(0);
    this.registers[LisReg.WHO_AM_I] = LIS_WHO_AM_I;
    this.registers[LisReg.CTRL_REG1] = 0b0000_0111;
  }

  override powerCycle(): void {
    super.powerCycle();
    this.#release();
  }

  #level(active: boolean): 0 | 1 {
    const activeLow = (this.registers[LisReg.CTRL_REG6] & LisBit.INT_POLARITY) !== 0;
    return active === activeLow ? 0 : 1;
  }

  #assert(): void {
    const { pins, int1 } = this.#options;
    if (pins && int1 !== undefined) pins.drive(int1, this.#level(true));
  }

  #release(): void {
    const { pins, int1 } = this.#options;
    if (pins && int1 !== undefined) pins.drive(int1, this.#level(false));
  }
}
