// The storage room: the records each meter is missing, and operator releases of a meter's upload set
// (downlink 0x82).
import type { FastifyInstance } from 'fastify';
import { type StorageApiOptions, storageRoutes } from './routes';

export { releaseKeyFor } from './routes';

export async function startStorage(app: FastifyInstance, options: StorageApiOptions): Promise<void> {
  await app.register(storageRoutes, options);
}
