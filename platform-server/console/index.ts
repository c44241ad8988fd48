// The operator console's room: the built web console at /console/, the fleet's live state (a
// summary and server-sent events), the meter registry and area outlines, status history and the
// records of a meter with filters (routes.ts). Alarms have their own room; the console counts open
// alarms from the status tables until it can read that inbox.
import type { FastifyInstance } from 'fastify';
import type { Database } from '../core/db';
import type { MeterDirectory } from '../ingest/meters';
import type { OperatorGuard } from '../operators/service';
import { FleetFeed, FleetView } from './fleet';
import { consoleRoutes } from './routes';

export { CONSOLE_DIR } from './routes';

export interface ConsoleDeps {
  db: Database;
  meters: Pick<MeterDirectory, 'exists' | 'register'>;
  guard: OperatorGuard;
  onRegistered(id: number): void;
  /** Ingest's outcome of each uplink: an accepted one makes the live feed look at once. */
  ingest?: { on(event: 'outcome', listener: (outcome: { ok: boolean }) => void): unknown };
  /** How often the live feed looks for changed meters (ms), default 1000. */
  pollMs?: number;
  consoleDir?: string;
  /** The city's IANA time zone: where "today" starts for the fleet's revenue column. Default UTC. */
  timeZone?: string;
}

export async function startConsole(app: FastifyInstance, deps: ConsoleDeps): Promise<{ feed: FleetFeed }> {
  const feed = new FleetFeed(new FleetView(deps.db, undefined, deps.timeZone), {
    pollMs: deps.pollMs ?? 1000,
  });
  deps.ingest?.on('outcome', (outcome) => {
    if (outcome.ok) feed.nudge();
  });
  app.addHook('onClose', async () => feed.stop());
  await app.register(consoleRoutes, { ...deps, feed });
  return { feed };
}
