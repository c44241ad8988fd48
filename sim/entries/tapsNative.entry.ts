// Bundled and run under XS by the taps benchmark: the tap scenario with the Crypto HAL bound to the
// host's native code (sim/xs/hostCrypto.ts), as Moddable's `crypt` is on the device.
import '../../firmware/setup/text'; // first, as on the device: cborg needs the text globals at load
import { TapScenario } from '../fleet/tapScenario';
import { hostCrypto } from '../xs/hostCrypto';
import { run, send } from '../xs/guest';

let scenario: TapScenario | undefined;

(globalThis as unknown as { scenario: unknown }).scenario = {
  start: () => run(() => (scenario = new TapScenario(hostCrypto))),
  tap: (i: number) => run(() => send({ tap: scenario!.tap(i) })),
  finish: () => run(() => send({ summary: scenario!.summary() })),
};
