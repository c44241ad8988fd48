// The platform's database for the command-line tools: named by DATABASE_URL or PARKLINK_DATA_DIR
// (a usage error without either), migrated; undefined after saying why it could not be opened.
import { type Database, openDatabase } from '../platform-server/core/db';
import { migrate } from '../platform-server/core/migrations';
import type { Io } from './parklink';
import { UsageError } from './usageError';

export async function openPlatformDatabase(env: NodeJS.ProcessEnv, io: Io): Promise<Database | undefined> {
  if (!env.DATABASE_URL && !env.PARKLINK_DATA_DIR)
    throw new UsageError('set DATABASE_URL (or PARKLINK_DATA_DIR) to the platform database');
  try {
    const db = await openDatabase({ url: env.DATABASE_URL, dataDir: env.PARKLINK_DATA_DIR });
    await migrate(db);
    return db;
  } catch (error) {
    io.err(`parklink: cannot open the database: ${(error as Error).message}`);
    return undefined;
  }
}
