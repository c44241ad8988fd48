// One time-management run both engines play (Node directly, XS bundled by timeXs.entry.ts): a
// clock booting at 1970, a sealed exchange's answer, a slew, records flagged before and after.
// Pure firmware-side code and virtual parts only, so it bundles for XS.
import { EventBus } from '../../firmware/bus';
import type { MeterEvents } from '../../firmware/events';
import { DisciplinedClock, TimeUnit } from '../../firmware/units/time';
import { VirtualClock } from '../../hal/mock/clock';
import { encodeRecord, RecordKind } from '../../protocol/records';
import { decodeTimeRequest, encodeTimeAnswer } from '../../protocol/time';

export interface TimeScenarioResult {
  request: Uint8Array;
  stateBefore: number;
  stateAfter: number;
  offsetMs: number;
  nowAfterStep: number;
  nowAfterSlew: number;
  recordBefore: Uint8Array;
  recordAfter: Uint8Array;
  refused: string[];
}

export function timeScenario(): TimeScenarioResult {
  const TRUE_START = Date.UTC(2026, 5, 1, 12, 0, 0);
  const base = new VirtualClock('1970-01-01T00:00:05Z');
  const clock = new DisciplinedClock(base);
  const bus = new EventBus<MeterEvents>();
  const sent: Uint8Array[] = [];
  const refused: string[] = [];
  bus.on('time-refused', (e) => refused.push(e.reason));
  const unit = new TimeUnit({ clock, timers: base, bus, send: (_type, body) => sent.push(body) > 0 });
  const record = (seq: number) =>
    encodeRecord({
      kind: RecordKind.Maintenance,
      seq,
      time: Math.floor(clock.now() / 1000),
      meterId: 7,
      timeState: unit.state,
      data: { code: 'diagnosis', detail: 'time' },
    });
  const recordBefore = record(1);
  const stateBefore = unit.state;
  unit.requestPlatformTime();
  const request = decodeTimeRequest(sent[0]);
  base.advance(30);
  unit.receiveAnswer(
    encodeTimeAnswer({ id: request.id + 1, t1: request.t1, t2: TRUE_START, t3: TRUE_START }),
  );
  unit.receiveAnswer(
    encodeTimeAnswer({ id: request.id, t1: request.t1, t2: TRUE_START, t3: TRUE_START + 2 }),
  );
  const nowAfterStep = clock.now();
  const offsetMs = unit.report().lastOffsetMs ?? 0;
  // A second exchange finds the clock 400 ms ahead: slewed away at 500 ppm over 800 s.
  base.advance(60_000);
  unit.requestPlatformTime();
  const second = decodeTimeRequest(sent[1]);
  const truth = nowAfterStep + 60_000 - 400;
  unit.receiveAnswer(encodeTimeAnswer({ id: second.id, t1: second.t1, t2: truth, t3: truth }));
  base.advance(1_000_000);
  return {
    request: sent[0],
    stateBefore,
    stateAfter: unit.state,
    offsetMs,
    nowAfterStep,
    nowAfterSlew: clock.now(),
    recordBefore,
    recordAfter: record(2),
    refused,
  };
}
