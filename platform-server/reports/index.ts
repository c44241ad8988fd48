// The reports room (414b): requests sent to meters (0x8C), their answers (0x0C) and the records
// that arrive for them.
import type { FastifyInstance } from 'fastify';
import { REPORT_ANSWER_UPLINK } from '../../protocol/reports';
import type { Accepted, Logger, UplinkHandler } from '../ingest/gate';
import type { OperatorGuard } from '../operators/service';
import { reportRoutes } from './routes';
import { type ReportDeps, ReportService } from './service';

export { reportRoutes } from './routes';
export { ReportRefused, ReportService } from './service';

/** Builds the service, routes 0x0C uplinks and stored record sets to it and registers its HTTP API. */
export async function startReports(
  app: FastifyInstance,
  deps: ReportDeps & {
    ingest?: {
      route(type: number, handler: UplinkHandler): void;
      on(event: 'committed', listener: (accepted: Accepted[]) => void): unknown;
    };
    guard: OperatorGuard;
    logger?: Logger;
  },
): Promise<ReportService> {
  const service = new ReportService(deps);
  if (deps.ingest) {
    deps.ingest.route(REPORT_ANSWER_UPLINK, service.onAnswer);
    deps.ingest.on('committed', (accepted) => {
      service
        .onCommitted(accepted)
        .catch((error) => deps.logger?.warn({ err: error }, 'records of a report request not noted'));
    });
  }
  await app.register(reportRoutes, { service, guard: deps.guard });
  return service;
}
