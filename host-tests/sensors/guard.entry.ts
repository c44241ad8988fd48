// Bundled and run under XS by xs.test.ts: the guard and power scenario, one minute per evaluate so
// the Node side reads the XS meter per sample round.
import '../../firmware/setup/text'; // first, as on the device: cborg needs the text globals at load
import { run, send } from '../../sim/xs/guest';
import { GuardScenario } from './scenario';

let scenario: GuardScenario | undefined;

(globalThis as unknown as { scenario: unknown }).scenario = {
  start: () => run(() => (scenario = new GuardScenario())),
  step: (i: number) => run(() => send({ step: scenario!.step(i) })),
  finish: () => run(() => send({ summary: scenario!.summary() })),
};
