// Runs the platform server from the environment (DATABASE_URL, MQTT_URL, PORT, PARKLINK_MASTER_KEY,
// PARKLINK_KEYSTORE_FILE / _PASSPHRASE, PARKLINK_DATA_DIR, LOG_LEVEL); embedded defaults otherwise.
import { RecordKind } from '../protocol/records';
import { createPlatform } from './platform';
import { configFromEnv } from './config';

const config = configFromEnv();
const debugLogged = () => ['debug', 'trace'].includes(platform.app.log.level);
const platform = await createPlatform({
  ...config,
  onStored({ meterId, record }) {
    // At fleet rates a line per sale is too many: debug only (ingest logs each frame at info).
    if (record.kind !== RecordKind.Transaction || !debugLogged()) return;
    const d = record.data;
    platform.app.log.debug(
      { meterId, seq: record.seq, bay: d.bayId, minutes: d.minutes, charge: d.charge, currency: d.currency },
      `meter ${meterId} #${record.seq}: bay ${d.bayId}, ${d.minutes} min, ${d.charge} (currency ${d.currency})`,
    );
  },
});
const address = await platform.listen();
platform.app.log.info(
  {
    http: address,
    broker: platform.brokerUrl,
    database: platform.db.kind,
    keystore: platform.keystore.source,
    subscription: platform.ingest.subscription,
  },
  'ParkLink platform running',
);
// Started by a supervisor over IPC (the ingest benchmark, a test): tell it the platform is up.
process.send?.({ ready: true, http: address, subscription: platform.ingest.subscription });
if (platform.keystore.source === 'generated') {
  platform.app.log.warn(
    'master key generated in memory: meters provisioned now will not work after a restart',
  );
}

let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) process.exit(1);
    stopping = true;
    platform.app.log.info({ signal }, 'stopping');
    // Nothing else keeps the process alive once close() resolves; the timer only guards a hang.
    setTimeout(() => process.exit(1), 10_000).unref();
    platform.close().catch((error) => {
      console.error(error);
      process.exit(1);
    });
  });
}
