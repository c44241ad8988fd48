// The tariffs room: tariff documents, their push to meters (0x85) and acknowledgement (0x05), quotes;
// and notices (display messages and bay modes with a window, 0x85 'message' and 'bays').
import type { FastifyInstance } from 'fastify';
import { decodeTariffAck, TARIFF_ACK_UPLINK } from '../../protocol/tariff';
import type { UplinkHandler } from '../ingest/gate';
import type { OperatorGuard } from '../operators/service';
import { NoticeService } from './notices';
import { noticeRoutes } from './noticeRoutes';
import { tariffRoutes } from './routes';
import { type TariffDeps, TariffService } from './service';

export { tariffRoutes } from './routes';
export { TariffRefused, TariffService } from './service';
export { NoticeRefused, NoticeService } from './notices';

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
  const notices = new NoticeService(deps.db, deps.sendDownlink);
  // One 0x05 route: tariff acknowledgements to the tariffs, message and bays ones to the notices.
  deps.ingest?.route(TARIFF_ACK_UPLINK, async (uplink, tx) => {
    const ack = decodeTariffAck(uplink.body);
    if (ack.kind === 'tariff') return service.onAck(uplink, tx);
    await notices.onAck(uplink.meterId, ack, tx);
  });
  await app.register(tariffRoutes, { service, guard: deps.guard });
  await app.register(noticeRoutes, { notices, guard: deps.guard });
  return service;
}
