// The handheld room: record sets a handheld collected from meters over BLE or Wi-Fi (store and
// forward), handed to ingest as if the broker had brought them; the acks go back with the handheld.
import type { FastifyInstance } from 'fastify';
import { type HandheldRoutesOptions, handheldRoutes } from './routes';

export async function startHandheld(app: FastifyInstance, options: HandheldRoutesOptions): Promise<void> {
  await app.register(handheldRoutes, options);
}
