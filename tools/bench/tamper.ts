// Tamper response: time from the cover sensor's edge to keys wiped (SAM, secure element, RAM): on
// the virtual clock, and the XS compute of the whole tamper response on a virtual meter.
import { bundleForXs, startXs } from '../../sim/xs/xsnap';

export const description = 'cover edge to keys wiped: virtual-clock ms and XS compute of the tamper response';

export async function run(): Promise<void> {
  const script = await bundleForXs('sim/entries/crypto.entry.ts');
  const xs = await startXs({ name: 'bench-tamper' });
  try {
    await xs.evaluate(script);
    const setup = await xs.evaluate('bench.tamperSetup()');
    const usage = await xs.evaluate('bench.tamper()');
    await xs.evaluate('globalThis.__wiped = bench.tamperWipedAfterMs()');
    console.log(`meter boot and provisioning under XS: compute ${setup.compute.toLocaleString('en')}`);
    console.log(
      `tamper response under XS (wipe SAM + ATECC608 over their virtual buses, RAM, alarm, alert, record): ` +
        `compute ${usage.compute.toLocaleString('en')}; virtual clock edge-to-wiped 0 ms (the wipe runs in the edge's handler)`,
    );
  } finally {
    await xs.close();
  }
}
