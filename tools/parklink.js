#!/usr/bin/env node
// `npx parklink …`: registers ts-node (tools/ts-register.js), then runs tools/parklink.ts.
process.removeAllListeners('warning');
process.on('warning', (warning) => {
  if (warning.name !== 'ExperimentalWarning') console.warn(warning);
});
await import('./ts-register.js');
const { main } = await import('./parklink.ts');
process.exitCode = await main(process.argv.slice(2));
