// Bundled by tariffHistory.test.ts and run under XS: the tariff rules that use the payer's history.
import '../../firmware/setup/text';
import { run, send } from '../../sim/xs/guest';
import { historyScenario } from './tariffHistory.scenario';

run(() => {
  send({ results: historyScenario() });
});
