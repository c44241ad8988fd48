// The history room: the monthly partitions of records and sales made ahead at start and every day,
// and, where an archive folder is configured, each month past the retention period archived and
// dropped (partitions.ts). Without an archive folder nothing is ever dropped. See docs/history.md.
import type { Database } from '../core/db';
import type { Logger } from '../ingest/gate';
import { archiveExpired, DEFAULT_RETENTION_MONTHS, preparePartitions } from './partitions';

export { archiveExpired, monthPartitions, preparePartitions } from './partitions';

export interface HistoryConfig {
  /** Months a record is kept (PARKLINK_RECORD_RETENTION_MONTHS, default 96, at least 84). */
  retentionMonths?: number;
  /** Where expired months are archived before they are dropped (PARKLINK_ARCHIVE_DIR). */
  archiveDir?: string;
  /** How often the upkeep runs, default a day. */
  everyMs?: number;
  now?: () => number;
}

const DAY_MS = 24 * 60 * 60 * 1000;

export async function startHistory(
  deps: { db: Database; logger?: Logger },
  config: HistoryConfig = {},
): Promise<{ upkeep(): Promise<void>; close(): void }> {
  const now = config.now ?? Date.now;
  const retentionMonths = config.retentionMonths ?? DEFAULT_RETENTION_MONTHS;
  let running: Promise<void> | undefined;
  const upkeep = () => {
    running ??= (async () => {
      const made = await preparePartitions(deps.db, now(), retentionMonths);
      if (made.length > 0) deps.logger?.info({ made }, 'record partitions made');
      if (config.archiveDir) {
        const archived = await archiveExpired(deps.db, {
          now: now(),
          retentionMonths,
          archiveDir: config.archiveDir,
        });
        for (const month of archived)
          deps.logger?.info({ month: month.month, files: month.files }, 'month archived and dropped');
      }
    })().finally(() => {
      running = undefined;
    });
    return running;
  };
  await upkeep();
  const timer = setInterval(() => {
    upkeep().catch((error) => deps.logger?.error({ err: error }, 'record partition upkeep failed'));
  }, config.everyMs ?? DAY_MS);
  timer.unref();
  return {
    upkeep,
    close: () => clearInterval(timer),
  };
}
