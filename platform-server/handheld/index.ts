// The handheld room: record sets and other uplinks a handheld collected from meters over BLE or
// Wi-Fi (store and forward), handed to ingest as if the broker had brought them, the acks going back
// with the handheld; and the downlinks ingest keeps for each meter (ingest/outbox.ts), which a
// handheld fetches to carry in.
import type { FastifyInstance } from 'fastify';
import { type HandheldRoutesOptions, handheldRoutes } from './routes';

export async function startHandheld(app: FastifyInstance, options: HandheldRoutesOptions): Promise<void> {
  await app.register(handheldRoutes, options);
}
