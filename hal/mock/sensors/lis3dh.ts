// A virtual ST LIS3DH on the virtual I2C bus: the acceleration it feels (in g) turned into 12-bit
// left-justified outputs at the configured range, and the INT1 movement interrupt (latched, active
// low) that a shake above INT1_THS raises on a virtual pin until INT1_SRC is read.
import { AUTO_INCREMENT, Bits, Register, WHO_AM_I_VALUE } from '../../../drivers/sensors/lis3dh';
import type { VirtualPins } from '../bus';
import { Dither, VirtualRegisterChip } from './chip';

const MG_PER_DIGIT = [1, 2, 4, 12];
const THS_MG = [16, 32, 62, 186];

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
    const running = r[Register.CTRL_REG1] >> 4 !== 0;
    const enabled =
      (r[Register.INT1_CFG] & Bits.OR_HIGH_EVENTS) !== 0 && (r[Register.CTRL_REG3] & Bits.I1_IA1) !== 0;
    if (!this.powered || !running || !enabled || this.fault === 'stuck') return false;
    const range = (r[Register.CTRL_REG4] >> 4) & 0b11;
    if (g * 1000 <= r[Register.INT1_THS] * THS_MG[range]) return false;
    r[Register.INT1_SRC] = Bits.IA | (r[Register.INT1_CFG] & Bits.OR_HIGH_EVENTS);
    this.#assert();
    return true;
  }

  protected override pointerOf(first: number): number {
    this.#autoIncrement = (first & AUTO_INCREMENT) !== 0;
    return first & 0x7f;
  }

  protected override advance(pointer: number): number {
    return this.#autoIncrement ? (pointer + 1) & 0x7f : pointer;
  }

  protected override write(register: number, value: number): void {
    super.write(register, value);
    if (register !== Register.CTRL_REG6) return;
    // The pin follows a polarity change at once.
    if (this.registers[Register.INT1_SRC] & Bits.IA) this.#assert();
    else this.#release();
  }

  protected override read(register: number): number {
    const value = register === Register.WHO_AM_I && this.fault === 'wrong-id' ? 0x32 : super.read(register);
    if (register === Register.INT1_SRC && this.registers[Register.CTRL_REG5] & Bits.LIR_INT1) {
      this.registers[Register.INT1_SRC] = 0;
      this.#release();
    }
    return value;
  }

  protected update(): void {
    const r = this.registers;
    if (r[Register.CTRL_REG1] >> 4 === 0) return; // power-down: outputs hold
    const mg = MG_PER_DIGIT[(r[Register.CTRL_REG4] >> 4) & 0b11];
    const axes = [this.acceleration.x, this.acceleration.y, this.acceleration.z];
    axes.forEach((g, i) => {
      const digits = Math.max(-2048, Math.min(2047, Math.round((g * 1000) / mg) + this.#dither.next()));
      this.setUint16(Register.OUT_X_L + 2 * i, (digits << 4) & 0xffff, true);
    });
    r[Register.STATUS_REG] = 0b0000_1111;
  }

  protected reset(): void {
    this.registers.fill(0);
    this.registers[Register.WHO_AM_I] = WHO_AM_I_VALUE;
    this.registers[Register.CTRL_REG1] = 0b0000_0111;
  }

  override powerCycle(): void {
    super.powerCycle();
    this.#release();
  }

  #level(active: boolean): 0 | 1 {
    const activeLow = (this.registers[Register.CTRL_REG6] & Bits.INT_POLARITY) !== 0;
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
