// The guard's and the power unit's parts as a board wires them: each sensor's I2C bus (its class
// and options, so the driver builds its own instance as ECMA-419 drivers do), interrupt and fan
// pins, the battery packs' fuel gauges and load switches, and the modules' power switches.
import type { Digital, DigitalOptions, I2C, I2COptions, IOClass } from './io';

export interface I2cPart {
  io: IOClass<I2C, I2COptions>;
  address?: number;
  hz?: number;
  port?: number;
  data?: number;
  clock?: number;
}

export interface PinPart {
  io: IOClass<Digital, DigitalOptions>;
  pin: number;
}

export interface SensorParts {
  /** VEML7700 behind the cover's window: dark while shut. */
  cover?: I2cPart;
  /** LIS3DH and its INT1 line (wakes the meter). */
  motion?: { sensor: I2cPart; alert?: PinPart };
  /** SHT31 inside the housing. */
  climate?: I2cPart;
  /** The fan's MOSFET gate (digital on/off). */
  fan?: PinPart;
  /** ENS160. */
  air?: I2cPart;
  /** One QMC5883L per bay, in the order of the meter's bays. */
  bays?: readonly I2cPart[];
}

export type PackName = 'disposable' | 'rechargeable' | 'backup';
export type ModuleName = 'reader' | 'radio' | 'sensors';

export interface PowerParts {
  /** Per pack: its MAX17048 and the enable of its load switch (ideal-diode OR-ing, high = on). */
  packs: Partial<Record<PackName, { gauge?: I2cPart; enable: PinPart }>>;
  /** Load switches that power-cycle a module (high = powered). */
  modules?: Partial<Record<ModuleName, PinPart>>;
}
