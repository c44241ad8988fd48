// The guard's and the power unit's virtual parts for a virtual board: the cover, motion, climate
// and air chips on one I2C bus, a magnetometer per bay on its own bus (the QMC5883L has one fixed
// address), three packs each with a MAX17048 on its own bus and a load switch, module power
// switches, the fan pin and the accelerometer's INT1 line. The rail counts supply gaps.
import type { Digital, DigitalOptions } from '../../io';
import type { ModuleName, PackName, PowerParts, SensorParts } from '../../sensors';
import { type VirtualPins, VirtualI2cBus } from '../bus';
import { VirtualEns160 } from './ens160';
import { VirtualLis3dh } from './lis3dh';
import { VirtualMax17048 } from './max17048';
import { VirtualQmc5883l } from './qmc5883l';
import { VirtualSht3x } from './sht3x';
import { VirtualVeml7700 } from './veml7700';

export const VIRTUAL_SENSOR_PINS = Object.freeze({
  motionInt: 40,
  fan: 41,
  packs: Object.freeze({ rechargeable: 42, disposable: 43, backup: 44 }) as Readonly<
    Record<PackName, number>
  >,
  modules: Object.freeze({ reader: 45, radio: 46, sensors: 47 }) as Readonly<Record<ModuleName, number>>,
});

export class VirtualSensorKit {
  readonly bus = new VirtualI2cBus();
  readonly cover = new VirtualVeml7700();
  readonly motion: VirtualLis3dh;
  readonly climate = new VirtualSht3x();
  readonly air = new VirtualEns160();
  readonly bayBuses: VirtualI2cBus[];
  readonly bays: VirtualQmc5883l[];
  readonly parts: SensorParts;
  readonly #pins: VirtualPins;

  constructor(pins: VirtualPins, bayCount: number) {
    this.#pins = pins;
    this.motion = new VirtualLis3dh({ pins, int1: VIRTUAL_SENSOR_PINS.motionInt });
    this.bus.attach(0x10, this.cover);
    this.bus.attach(0x18, this.motion);
    this.bus.attach(0x44, this.climate);
    this.bus.attach(0x52, this.air);
    this.bayBuses = Array.from({ length: bayCount }, () => new VirtualI2cBus());
    this.bays = this.bayBuses.map((bus) => {
      const chip = new VirtualQmc5883l();
      bus.attach(0x0d, chip);
      return chip;
    });
    this.parts = {
      cover: { io: this.bus.io },
      motion: { sensor: { io: this.bus.io }, alert: { io: pins.io, pin: VIRTUAL_SENSOR_PINS.motionInt } },
      climate: { io: this.bus.io },
      air: { io: this.bus.io },
      fan: { io: pins.io, pin: VIRTUAL_SENSOR_PINS.fan },
      bays: this.bayBuses.map((bus) => ({ io: bus.io })),
    };
  }

  get fanOn(): boolean {
    return this.#pins.level(VIRTUAL_SENSOR_PINS.fan) === 1;
  }

  /** The sensor module's supply switched off (chips stop answering) or on (reset values). */
  power(on: boolean): void {
    for (const chip of [this.cover, this.motion, this.climate, this.air, ...this.bays]) {
      chip.powered = on;
      if (on) chip.powerCycle();
    }
  }
}

/** The packs and their switches; `gaps` counts moments with no pack switched in. */
export class VirtualPowerRail {
  readonly gauges: Record<PackName, VirtualMax17048>;
  readonly buses: Record<PackName, VirtualI2cBus>;
  readonly parts: PowerParts;
  /** Moments (pin writes) after the first switch-on when no pack was feeding the meter. */
  gaps = 0;
  /** Module power changes, in order. */
  readonly moduleLog: [ModuleName, boolean][] = [];
  onModule: ((module: ModuleName, on: boolean) => void) | undefined;
  readonly #pins: VirtualPins;
  #live = false;

  constructor(pins: VirtualPins) {
    this.#pins = pins;
    const make = () => {
      const bus = new VirtualI2cBus();
      const gauge = new VirtualMax17048();
      bus.attach(0x36, gauge);
      return { bus, gauge };
    };
    const r = make();
    const d = make();
    const b = make();
    this.gauges = { rechargeable: r.gauge, disposable: d.gauge, backup: b.gauge };
    this.buses = { rechargeable: r.bus, disposable: d.bus, backup: b.bus };
    this.gauges.rechargeable.insertPack(80, 3.95);
    this.gauges.disposable.insertPack(100, 3.6);
    this.gauges.backup.insertPack(100, 3.6);
    const watched = (after: (level: 0 | 1) => void) =>
      class RailDigital implements Digital {
        readonly #inner: Digital;
        constructor(options: DigitalOptions) {
          this.#inner = new pins.io(options);
        }
        read(): 0 | 1 {
          return this.#inner.read();
        }
        write(value: 0 | 1): void {
          this.#inner.write(value);
          after(value);
        }
        close(): void {
          this.#inner.close();
        }
      };
    const packPart = (name: PackName) => ({
      gauge: { io: this.buses[name].io },
      enable: {
        io: watched((level) => {
          if (level) this.#live = true;
          this.#check();
        }),
        pin: VIRTUAL_SENSOR_PINS.packs[name],
      },
    });
    const modulePart = (name: ModuleName) => ({
      io: watched((level) => {
        this.moduleLog.push([name, level === 1]);
        this.onModule?.(name, level === 1);
      }),
      pin: VIRTUAL_SENSOR_PINS.modules[name],
    });
    this.parts = {
      packs: {
        rechargeable: packPart('rechargeable'),
        disposable: packPart('disposable'),
        backup: packPart('backup'),
      },
      modules: { reader: modulePart('reader'), radio: modulePart('radio'), sensors: modulePart('sensors') },
    };
  }

  /** Packs switched in now. */
  get feeding(): PackName[] {
    return (Object.keys(VIRTUAL_SENSOR_PINS.packs) as PackName[]).filter(
      (p) => this.#pins.level(VIRTUAL_SENSOR_PINS.packs[p]) === 1,
    );
  }

  #check(): void {
    if (this.#live && this.feeding.length === 0) this.gaps++;
  }
}
