// The tariffs room: tariff documents, their push to meters (0x85) and acknowledgement (0x05), quotes.
import type { FastifyInstance } from 'fastify';
import { TARIFF_ACK_UPLINK } from '../../protocol/tariff';
import type { UplinkHandler } from '../ingest/gate';
import type { OperatorGuard } from '../operators/service';
import { tariffRoutes } from './routes';
import { type TariffDeps, TariffService } from './service';

export { tariffRoutes } from './routes';
export { TariffRefused, TariffService } from './service';

/** Builds the service, routes 0x05 uplinks to it and registers its HTTP API. */
export async function startTariffs(
  app: FastifyInstance,
  deps: TariffDeps & {
    ingest?: { route(type: number, handler: UplinkHandler): void };
    guard: OperatorGuard;
  },
): Promise<TariffService> {
  const service = new TariffService(deps);
  await service.load();
  deps.ingest?.route(TARIFF_ACK_UPLINK, service.onAck);
  await app.register(tariffRoutes, { service, guard: deps.guard });
  return service;
}
