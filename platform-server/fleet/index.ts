// The fleet room: the meters and their transactions, each meter's status, alarms and settings
// (uplink 0x04 in, downlink 0x84 out), call-in of cellular meters by SMS, and the Zigbee relay
// assignments the broker enforces, and the areas meters are placed in (fleet/targets.ts).
import type { FastifyInstance } from 'fastify';
import type { UplinkHandler } from '../ingest/gate';
import type { MeterDirectory, RecordReader } from '../ingest/meters';
import type { OperatorGuard } from '../operators/service';
import { meterRoutes } from './meters';
import { STATUS_FRAME, type StatusDeps, StatusService } from './status';
import { type StatusRoutesOptions, statusRoutes } from './statusRoutes';
import { callInRoutes, type SmsSender } from './callIn';
import { type RelayAssignments, relayRoutes } from './relay';
import { areaRoutes } from './targets';

export interface FleetDeps extends StatusDeps {
  meters: StatusDeps['meters'] & MeterDirectory;
  records: RecordReader;
  ingest: { route(type: number, handler: UplinkHandler): void };
  guard: OperatorGuard;
  /** Texts a cellular meter for call-in; without one, call-in answers 503. */
  smsSender?: SmsSender;
  /** The Zigbee relay assignments the broker consults. */
  relays: RelayAssignments;
  /** Each meter's clock (the time room), shown in its status. */
  clock?: StatusRoutesOptions['clock'];
}

export async function startFleet(app: FastifyInstance, deps: FleetDeps): Promise<{ status: StatusService }> {
  await app.register(meterRoutes, { meters: deps.meters, records: deps.records, guard: deps.guard });
  const status = new StatusService(deps);
  deps.ingest.route(STATUS_FRAME, status.onUplink);
  await app.register(statusRoutes, {
    db: deps.db,
    meters: deps.meters,
    guard: deps.guard,
    service: status,
    clock: deps.clock,
  });
  await app.register(callInRoutes, {
    db: deps.db,
    meters: deps.meters,
    guard: deps.guard,
    sender: deps.smsSender,
  });
  await app.register(relayRoutes, { relays: deps.relays, meters: deps.meters, guard: deps.guard });
  await app.register(areaRoutes, { db: deps.db, meters: deps.meters, guard: deps.guard });
  return { status };
}
