// The APDS room: ParkLink's places, rates, sessions, rights and observations in the Alliance for
// Parking Data Standards model (ISO/TS 5206-1) under /apds/, consumers' API keys, third-party
// quotes, sessions and rights, webhooks and the city snapshot. See docs/apds.md.
import type { FastifyInstance } from 'fastify';
import type { OperatorGuard } from '../operators/service';
import { apdsKeyRoutes, apdsRoutes } from './routes';
import { type ApdsDeps, ApdsService } from './service';

export { ApdsService, APDS_SCOPES, APDS_TOPICS } from './service';

export async function startApds(
  app: FastifyInstance,
  deps: ApdsDeps & { guard: OperatorGuard },
): Promise<ApdsService> {
  const service = new ApdsService(deps);
  await app.register(apdsRoutes, { service, guard: deps.guard });
  await app.register(apdsKeyRoutes, { service, guard: deps.guard });
  // Deliveries left due by a restart go out now.
  void service.deliver().catch((e) => deps.logger?.warn({ err: e }, 'APDS webhook deliveries not resumed'));
  return service;
}
