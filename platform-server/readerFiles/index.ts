// The reader files room (414d): the card reader's documents, settings and firmware, their push to
// meters (0x8B) and the meters' reports (0x0B).
import type { FastifyInstance } from 'fastify';
import { READER_FILES_UPLINK } from '../../protocol/readerFiles';
import type { UplinkHandler } from '../ingest/gate';
import type { OperatorGuard } from '../operators/service';
import { readerFileRoutes } from './routes';
import { type ReaderFileDeps, ReaderFileService } from './service';

export { readerFileRoutes } from './routes';
export { ReaderFileService, ReaderFilesRefused } from './service';

/** Builds the service, routes 0x0B uplinks to it and registers its HTTP API. */
export async function startReaderFiles(
  app: FastifyInstance,
  deps: ReaderFileDeps & {
    ingest?: { route(type: number, handler: UplinkHandler): void };
    guard: OperatorGuard;
  },
): Promise<ReaderFileService> {
  const service = new ReaderFileService(deps);
  deps.ingest?.route(READER_FILES_UPLINK, service.onReport);
  await app.register(readerFileRoutes, { service, guard: deps.guard });
  return service;
}
