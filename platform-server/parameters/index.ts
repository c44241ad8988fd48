// The parameters room: operating parameter sets, their push to meters (0x89) and acknowledgement (0x09).
import type { FastifyInstance } from 'fastify';
import { PARAMETERS_ACK_UPLINK } from '../../protocol/parameters';
import type { UplinkHandler } from '../ingest/gate';
import type { OperatorGuard } from '../operators/service';
import { parameterRoutes } from './routes';
import { type ParameterDeps, ParameterService } from './service';

export { parameterRoutes } from './routes';
export { ParameterService, ParametersRefused } from './service';

/** Builds the service, routes 0x09 uplinks to it and registers its HTTP API. */
export async function startParameters(
  app: FastifyInstance,
  deps: ParameterDeps & {
    ingest?: { route(type: number, handler: UplinkHandler): void };
    guard: OperatorGuard;
  },
): Promise<ParameterService> {
  const service = new ParameterService(deps);
  deps.ingest?.route(PARAMETERS_ACK_UPLINK, service.onAck);
  await app.register(parameterRoutes, { service, guard: deps.guard });
  return service;
}
