// The alarms room: the fleet-wide alarm inbox (service.ts), what the meters' reports mean as alarms
// (classify.ts), and its HTTP API (routes.ts). The service is built before the rooms that store
// the meters' security events and status (keys, fleet), which hand it each one in their transaction.
import type { FastifyInstance } from 'fastify';
import type { OperatorGuard } from '../operators/service';
import { alarmRoutes } from './routes';
import type { AlarmService } from './service';

export { AlarmRefused, AlarmService, type AlarmChange, type AlarmOptions, type AlarmView } from './service';
export { SEVERITIES, type AlarmSeverity } from './classify';

/** Registers the inbox's routes and starts the overdue sweep. */
export async function startAlarms(
  app: FastifyInstance,
  { service, guard }: { service: AlarmService; guard: OperatorGuard },
): Promise<AlarmService> {
  await app.register(alarmRoutes, { service, guard });
  service.start();
  return service;
}
