// The keys room: the keystore (software or HSM) is opened by the platform before anything else; this
// wires key rotation (downlink 0x83, uplink 0x03 acknowledgements and security events) and
// maintenance tokens, and registers their routes.
import type { FastifyInstance } from 'fastify';
import type { Database } from '../core/db';
import type { UplinkHandler } from '../ingest/gate';
import type { MeterDirectory } from '../ingest/meters';
import type { OperatorGuard } from '../operators/service';
import { KeyFrame } from '../../protocol/keys';
import type { Keystore } from './keystore';
import { MaintenanceTokens } from './maintenance';
import { KeyRotation, type KeyRotationOptions } from './rotation';
import { keyRoutes } from './routes';

export interface KeysDeps {
  db: Database;
  meters: MeterDirectory;
  keystore: Keystore;
  ingest: {
    route(type: number, handler: UplinkHandler): void;
    sendDownlink(meterId: number, type: number, body: Uint8Array): Promise<number>;
  };
  guard: OperatorGuard;
  /** Sees each security event as it is stored (the alarm inbox). */
  securityObserver?: KeyRotationOptions['observer'];
}

export async function startKeys(
  app: FastifyInstance,
  { db, meters, keystore, ingest, guard, securityObserver }: KeysDeps,
): Promise<{ rotation: KeyRotation; maintenance: MaintenanceTokens }> {
  const rotation = new KeyRotation({
    db,
    meters,
    keystore,
    sendDownlink: (m, t, b) => ingest.sendDownlink(m, t, b),
    observer: securityObserver,
  });
  ingest.route(KeyFrame.SECURITY, rotation.onUplink);
  const maintenance = new MaintenanceTokens(db, meters, keystore);
  await app.register(keyRoutes, { rotation, maintenance, guard });
  return { rotation, maintenance };
}
