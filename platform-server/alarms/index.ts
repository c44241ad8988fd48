// The alarms room: the fleet-wide alarm inbox (service.ts), what the meters' reports mean as alarms
// (classify.ts), forwarding by e-mail, webhook and SMS (forwarding.ts), and their HTTP API. The
// service is built before the rooms that store the meters' security events and status (keys,
// fleet), which hand it each one in their transaction.
import type { FastifyInstance } from 'fastify';
import type { Database } from '../core/db';
import type { SmsSender } from '../fleet/callIn';
import type { Logger } from '../ingest/gate';
import type { OperatorGuard } from '../operators/service';
import { AlarmForwarding, type ForwardingOptions } from './forwarding';
import { forwardingRoutes } from './forwardingRoutes';
import { alarmRoutes } from './routes';
import type { AlarmService } from './service';

export { AlarmRefused, AlarmService, type AlarmChange, type AlarmOptions, type AlarmView } from './service';
export { SEVERITIES, type AlarmSeverity } from './classify';
export { AlarmForwarding, type MailSender, SmtpMailSender } from './forwarding';

/** Forwarding's settings in the platform's configuration. */
export type ForwardingConfig = Omit<ForwardingOptions, 'db' | 'alarms' | 'logger' | 'sms'>;

/** Registers the inbox's and forwarding's routes, starts the overdue sweep and the delivery worker. */
export async function startAlarms(
  app: FastifyInstance,
  deps: {
    db: Database;
    logger: Logger;
    service: AlarmService;
    guard: OperatorGuard;
    sms?: SmsSender;
    forwarding?: ForwardingConfig;
  },
): Promise<{ service: AlarmService; forwarding: AlarmForwarding }> {
  const { service, guard } = deps;
  const forwarding = new AlarmForwarding({
    db: deps.db,
    alarms: service,
    logger: deps.logger,
    sms: deps.sms,
    ...deps.forwarding,
  });
  await app.register(alarmRoutes, { service, guard });
  await app.register(forwardingRoutes, { forwarding, guard });
  service.start();
  forwarding.start();
  return { service, forwarding };
}
