// The remote audit unit (16): records checked per second. Meters' records are ingested into an
// embedded platform (PGlite) as meters send them, in sets of 50; then the export from the database,
// the sealed bundle's hash check, and the audit of every chain link and every set's MAC are timed.
import { randomBytes } from 'node:crypto';
import { toHex } from '../../protocol/bytes';
import { uplinkTopic } from '../../protocol/topics';
import {
  auditBundle,
  BUNDLE_FORMAT,
  type Bundle,
  exportBundle,
  openDocument,
  sealDocument,
} from '../../platform-server/audit/audit';
import { nodeCrypto } from '../../platform-server/core/nodeCrypto';
import { keystoreFromHex } from '../../platform-server/keys/keystore';
import { createPlatform } from '../../platform-server/platform';
import { quietLogger, TestMeter } from '../../sim/fleet/platform';
import { PaymentSimulator } from '../../platform-server/payments/simulator';

export const description =
  'audit of stored records: export, bundle hash, chain links and set MACs, records per second';

function option(args: string[], name: string, fallback: number): number {
  const found = args.find((a) => a.startsWith(`--${name}=`));
  const value = found ? Number(found.slice(name.length + 3)) : fallback;
  if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} takes a whole number`);
  return value;
}

export async function run(args: string[]): Promise<void> {
  const meterCount = option(args, 'meters', 10);
  const perMeter = option(args, 'records', 500);
  const master = toHex(randomBytes(32));
  const platform = await createPlatform({
    httpLogger: false,
    logger: quietLogger,
    masterKey: master,
    phone: { gatewaySecret: 'bench gateway secret, never deployed', paymentProvider: new PaymentSimulator() },
  });
  try {
    for (let m = 0; m < meterCount; m++) {
      const id = 2_000_000 + m;
      const meter = new TestMeter(id, await platform.provisionMeter(id, `bench meter ${m}`));
      meter.transactions(perMeter);
      for (let from = 1; from <= perMeter; from += 50) {
        const outcome = await platform.ingest.handleUplink(
          uplinkTopic(id),
          meter.frame(from, Math.min(from + 49, perMeter)),
        );
        if (!outcome.ok) throw new Error(`set refused: ${JSON.stringify(outcome)}`);
      }
    }
    const total = meterCount * perMeter;
    const t0 = performance.now();
    const bundle = await exportBundle(platform.db, nodeCrypto, {});
    const t1 = performance.now();
    const { text, sha256 } = sealDocument(nodeCrypto, bundle);
    const opened = openDocument<Bundle>(nodeCrypto, text, BUNDLE_FORMAT).document;
    const t2 = performance.now();
    const keystore = keystoreFromHex(master);
    const report = auditBundle(opened, { keystore, crypto: nodeCrypto, source: { kind: 'bundle', sha256 } });
    const t3 = performance.now();
    keystore.close();
    if (report.totals.records !== total || report.findings.length > 0)
      throw new Error(
        `the clean bench data gave ${report.findings.length} findings over ${report.totals.records}`,
      );
    const rate = (ms: number) => Math.round(total / (ms / 1000)).toLocaleString('en');
    console.log(
      `${meterCount} meters × ${perMeter} records = ${total.toLocaleString('en')} records, ${report.totals.setsChecked} sets (MACs); bundle ${(text.length / 1e6).toFixed(1)} MB`,
    );
    console.log(`export from the database (PGlite): ${(t1 - t0).toFixed(0)} ms, ${rate(t1 - t0)} records/s`);
    console.log(`bundle seal + hash check + parse: ${(t2 - t1).toFixed(0)} ms`);
    console.log(
      `audit (every chain link, every set MAC, software keystore): ${(t3 - t2).toFixed(0)} ms, ${rate(t3 - t2)} records checked/s (report says ${report.recordsPerSecond.toLocaleString('en')})`,
    );
    console.log(`end to end from the database: ${rate(t3 - t0)} records checked/s`);
  } finally {
    await platform.close();
  }
}
