// A guard and power scenario, the same under Node and (bundled) under XS: one step is one minute
// of a meter's life — a guard sample round, twelve bay rounds, sixty cover reads and a fuel-gauge
// round — while the weather, a vehicle and the packs change. Steps return what the meter did.
import { toHex } from '../../protocol/bytes';
import { Rig } from './rig';

export interface StepOutcome {
  step: number;
  alarms: number;
  fan: boolean;
  occupied: number[];
  source: string;
  lastSeq: number;
}

export class GuardScenario {
  readonly rig = new Rig();

  step(i: number): StepOutcome {
    const { rig } = this;
    const s = rig.sensors;
    s.climate.temperature = 30 + 20 * Math.sin(i / 6); // 10 °C to 50 °C: the fan cycles
    s.climate.humidity = 60 + 35 * Math.sin(i / 9);
    s.motion.acceleration = i % 20 === 10 ? { x: 0, y: 0.5, z: 0.866 } : { x: 0, y: 0, z: 1 };
    if (i % 15 === 7) s.motion.shake(1.2);
    s.bays[i % 4].field = i % 8 < 4 ? { x: 20, y: 5, z: -42 } : { x: 45, y: 12, z: -20 };
    rig.rail.gauges.rechargeable.percent = Math.max(0, 80 - i * 2.5);
    rig.clock.advance(60_000);
    return {
      step: i,
      alarms: rig.named('guard-alarm').length,
      fan: s.fanOn,
      occupied: rig.meter.guard!.occupied.sort(),
      source: rig.meter.power!.source ?? 'none',
      lastSeq: rig.meter.log.lastSeq,
    };
  }

  summary() {
    const log = this.rig.meter.log;
    return {
      records: log
        .read(log.firstSeq)
        .map((r) => ({ seq: r.seq, bytes: toHex(r.bytes), link: toHex(r.link) })),
      uplinks: this.rig.uplinks().length,
      switches: this.rig.meter.power!.switches,
      gaps: this.rig.rail.gaps,
    };
  }
}
