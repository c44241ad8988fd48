// The history room: the monthly partitions of records and sales made ahead at start and every day,
// and, where an archive folder is configured, each month past the retention period archived and
// dropped (partitions.ts). Without an archive folder nothing is ever dropped. Closed days' sales are
// rolled up into daily totals after that and every hour (rollup.ts); today's are kept as they arrive
// (liveSales.ts). See docs/history.md.
import type { Database } from '../core/db';
import type { Logger } from '../ingest/gate';
import { prepareLiveSales } from './liveSales';
import { archiveExpired, DEFAULT_RETENTION_MONTHS, preparePartitions } from './partitions';
import { rollUpDays } from './rollup';

export { archiveExpired, monthPartitions, preparePartitions } from './partitions';
export { liveSalesState, prepareLiveSales, pruneLiveSales } from './liveSales';
export { rollUpDays } from './rollup';

export interface HistoryConfig {
  /** Months a record is kept (PARKLINK_RECORD_RETENTION_MONTHS, default 96, at least 84). */
  retentionMonths?: number;
  /** Where expired months are archived before they are dropped (PARKLINK_ARCHIVE_DIR). */
  archiveDir?: string;
  /** How often the upkeep runs, default a day. */
  everyMs?: number;
  /** The city's IANA time zone, the reports' (PARKLINK_APDS_TIME_ZONE): its days are rolled up. */
  timeZone?: string;
  /** How often closed days are rolled up besides after each upkeep, default an hour. */
  rollUpEveryMs?: number;
  now?: () => number;
}

const HOUR_MS = 60 * 60 * 1000;
const DAY_MS = 24 * HOUR_MS;

export async function startHistory(
  deps: { db: Database; logger?: Logger },
  config: HistoryConfig = {},
): Promise<{ upkeep(): Promise<void>; rollUp(): Promise<void>; close(): Promise<void> }> {
  const now = config.now ?? Date.now;
  const retentionMonths = config.retentionMonths ?? DEFAULT_RETENTION_MONTHS;
  const timeZone = config.timeZone ?? 'UTC';
  // Stops a roll-up between days when the platform closes: the first one on a large database does
  // months of days.
  const stopping = new AbortController();
  let rolling: Promise<void> | undefined;
  const rollUp = () => {
    rolling ??= (async () => {
      const days = await rollUpDays(deps.db, timeZone, now(), { signal: stopping.signal });
      if (days.length > 0)
        deps.logger?.info(
          { days: days.length, from: days[0], to: days[days.length - 1] },
          'daily sales rolled up',
        );
    })().finally(() => {
      rolling = undefined;
    });
    return rolling;
  };
  const partitions = async () => {
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
  };
  let running: Promise<void> | undefined;
  const upkeep = () => {
    running ??= (async () => {
      await partitions();
      await rollUp();
    })().finally(() => {
      running = undefined;
    });
    return running;
  };
  const rollUpLogged = () => {
    rollUp().catch((error) => deps.logger?.error({ err: error }, 'daily sales roll-up failed'));
  };
  // The partitions before anything is stored; the roll-up in the background, so a first one over
  // years of sales does not hold the platform's start.
  await partitions();
  // Today's running totals in the city's zone before the console reads them.
  await prepareLiveSales(deps.db, timeZone, now());
  rollUpLogged();
  const timer = setInterval(() => {
    upkeep().catch((error) => deps.logger?.error({ err: error }, 'record partition upkeep failed'));
  }, config.everyMs ?? DAY_MS);
  timer.unref();
  const rollUpTimer = setInterval(rollUpLogged, config.rollUpEveryMs ?? HOUR_MS);
  rollUpTimer.unref();
  return {
    upkeep,
    rollUp,
    async close() {
      clearInterval(timer);
      clearInterval(rollUpTimer);
      stopping.abort();
      await rolling?.catch(() => {});
    },
  };
}
