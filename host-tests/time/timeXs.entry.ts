// Bundled by timeXs.test.ts and run under XS: the time scenario, its results sent to Node.
import '../../firmware/setup/text'; // first, as on the device: cborg needs the text globals at load
import { run, send } from '../../sim/xs/guest';
import { timeScenario } from './timeScenario';

run(() => {
  send({ test: 'time', ...timeScenario() });
});
