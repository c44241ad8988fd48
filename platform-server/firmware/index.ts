// The firmware room (414a): the registry of signed images, staged rollouts, the 0x07 progress
// route and the HTTP API. service.ts holds the logic, routes.ts the API.
import type { FastifyInstance } from 'fastify';
import { FIRMWARE_UPLINK } from '../../protocol/firmware';
import type { UplinkHandler } from '../ingest/gate';
import type { OperatorGuard } from '../operators/service';
import { firmwareRoutes } from './routes';
import { type FirmwareDeps, FirmwareService } from './service';

export { firmwareRoutes } from './routes';
export { FirmwareError, FirmwareService } from './service';

/** Builds the service, routes 0x07 uplinks to it and registers its HTTP API. */
export async function startFirmware(
  app: FastifyInstance,
  deps: FirmwareDeps & {
    ingest?: { route(type: number, handler: UplinkHandler): void };
    guard: OperatorGuard;
  },
): Promise<FirmwareService> {
  const service = new FirmwareService(deps);
  deps.ingest?.route(FIRMWARE_UPLINK, service.onUplink);
  await app.register(firmwareRoutes, { service, guard: deps.guard });
  return service;
}
