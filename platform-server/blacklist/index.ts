// The blacklist room: the fleet list, its 0x8A pushes and 0x0A acknowledgements, the catch-up of
// meters heard from while behind, and the review queue fed by the meters' cloned-card refusals.
import type { FastifyInstance } from 'fastify';
import { BLACKLIST_ACK_UPLINK } from '../../protocol/blacklist';
import type { IngestOutcome, StoredRecord, UplinkHandler } from '../ingest/gate';
import type { Keystore } from '../keys/keystore';
import type { OperatorGuard } from '../operators/service';
import { ContactBox } from './contacts';
import { blacklistRoutes } from './routes';
import { type BlacklistDeps, BlacklistService, isClonedCardRecord } from './service';

export { blacklistRoutes } from './routes';
export { ContactBox } from './contacts';
export { BlacklistRefused, BlacklistService } from './service';

/** What the room needs of ingest: the 0x0A route, and its stored-record and outcome events. */
export interface BlacklistIngest {
  route(type: number, handler: UplinkHandler): void;
  on(event: 'stored', listener: (stored: StoredRecord) => void): unknown;
  on(event: 'outcome', listener: (outcome: IngestOutcome) => void): unknown;
}

/** Builds the service, routes 0x0A to it, listens to ingest and registers the HTTP API. */
export async function startBlacklist(
  app: FastifyInstance,
  deps: Omit<BlacklistDeps, 'contacts'> & {
    keystore: Keystore;
    ingest?: BlacklistIngest;
    guard: OperatorGuard;
    contacts?: ContactBox;
  },
): Promise<BlacklistService> {
  const service = new BlacklistService({
    ...deps,
    contacts: deps.contacts ?? ContactBox.fromKeystore(deps.keystore),
  });
  await service.load();
  const warn = (error: unknown, what: string) => deps.logger?.warn({ err: error }, what);
  const { ingest } = deps;
  if (ingest) {
    ingest.route(BLACKLIST_ACK_UPLINK, service.onAck);
    ingest.on('stored', (stored) => {
      // Called for every record stored: only a cloned-card refusal is worth a call and its promise.
      if (!isClonedCardRecord(stored.record)) return;
      service
        .onStoredRecord(stored.meterId, stored.record)
        .catch((e) => warn(e, 'cloned-card report not kept'));
    });
    ingest.on('outcome', (outcome) => {
      if (!outcome.ok || ('type' in outcome && outcome.type === BLACKLIST_ACK_UPLINK)) return;
      service.onContact(outcome.meterId).catch((e) => warn(e, 'blacklist catch-up failed'));
    });
  }
  await app.register(blacklistRoutes, { service, guard: deps.guard });
  return service;
}
