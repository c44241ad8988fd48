// The tariffs room: tariff documents, their push to meters (0x85) and acknowledgement (0x05), quotes.
import type { FastifyInstance } from 'fastify';
import { TARIFF_ACK_UPLINK } from '../../protocol/tariff';
import type { OperatorGuard } from '../operators/service';
import { tariffRoutes } from './routes';
import { type TariffDeps, TariffService } from './service';

export { tariffRoutes } from './routes';
export { TariffRefused, TariffService } from './service';

/** Builds the service, routes 0x05 uplinks to it and registers its HTTP API. */
export async function startTariffs(
  app: FastifyInstance,
  deps: TariffDeps & {
    ingest?: { route(type: number, handler: (topic: string, frame: Uint8Array) => Promise<void>): void };
    guard: OperatorGuard;
  },
): Promise<TariffService> {
  const service = new TariffService(deps);
  await service.load();
  deps.ingest?.route(TARIFF_ACK_UPLINK, async (topic, frame) => {
    try {
      await service.onAck(topic, frame);
    } catch (error) {
      app.log.warn({ err: error, topic }, 'tariff acknowledgement refused');
    }
  });
  await app.register(tariffRoutes, { service, guard: deps.guard });
  return service;
}
