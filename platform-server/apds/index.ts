// The APDS room: ParkLink's places, rates, sessions and rights in the Alliance for
// Parking Data Standards model (ISO/TS 5206-1) under /apds/, consumers' API keys, third-party
// quotes, sessions and rights, webhooks and the city snapshot. See docs/apds.md.
import type { FastifyInstance } from 'fastify';
import { RecordKind } from '../../protocol/records';
import type { Accepted } from '../ingest/gate';
import type { OperatorGuard } from '../operators/service';
import { apdsKeyRoutes, apdsRoutes } from './routes';
import { type ApdsDeps, ApdsService } from './service';

export { ApdsService, APDS_SCOPES, APDS_TOPICS } from './service';

/** What the room needs of ingest: each committed batch, for the meters' new payments. */
export interface ApdsIngest {
  on(event: 'committed', listener: (batch: Accepted[]) => void): unknown;
}

export async function startApds(
  app: FastifyInstance,
  deps: ApdsDeps & { guard: OperatorGuard; ingest?: ApdsIngest },
): Promise<ApdsService> {
  const service = new ApdsService(deps);
  // After the batch is committed, so the payment is readable; a webhook failure costs ingest nothing.
  deps.ingest?.on('committed', (batch) => {
    const payments = batch.flatMap((accepted) =>
      accepted.stored
        .filter((stored) => stored.record.kind === RecordKind.Transaction)
        .map((stored) => ({ meterId: stored.meterId, seq: stored.record.seq })),
    );
    service
      .onMeterPayments(payments)
      .catch((e) => deps.logger?.warn({ err: e }, 'APDS payment events not queued'));
  });
  await app.register(apdsRoutes, { service, guard: deps.guard });
  await app.register(apdsKeyRoutes, { service, guard: deps.guard });
  // Deliveries left due by a restart go out now.
  void service.deliver().catch((e) => deps.logger?.warn({ err: e }, 'APDS webhook deliveries not resumed'));
  return service;
}
