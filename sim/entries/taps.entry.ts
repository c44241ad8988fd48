// Bundled and run under XS by taps.test.ts: the tap scenario, driven one tap per evaluate so the
// Node side can read the XS meter per tap.
import '../../firmware/setup/text'; // first, as on the device: cborg needs the text globals at load
import { TapScenario } from '../fleet/tapScenario';
import { run, send } from '../xs/guest';

let scenario: TapScenario | undefined;

(globalThis as unknown as { scenario: unknown }).scenario = {
  start: () => run(() => (scenario = new TapScenario())),
  tap: (i: number) => run(() => send({ tap: scenario!.tap(i) })),
  finish: () => run(() => send({ summary: scenario!.summary() })),
};
