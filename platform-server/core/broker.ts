// The MQTT broker the platform and the meters meet at. Embedded default: an in-process aedes broker
// on a free port of 127.0.0.1. With MQTT_URL set, an external broker (Mosquitto, EMQX) instead.
//
// aedes 1.x has no shared subscriptions: it grants a `$share/…` filter but never delivers to it
// (checked against aedes 1.2.0). Ingest therefore subscribes with the plain wildcard on the
// embedded broker (one ingest instance per embedded broker, so nothing is lost), and with
// `$share/<group>/…` on an external broker, where several instances share the load.
import { createServer, type Server, type Socket } from 'node:net';
import { Aedes } from 'aedes';

export interface Broker {
  /** mqtt://host:port for clients (ingest, virtual meters). */
  readonly url: string;
  readonly embedded: boolean;
  /** Whether the broker delivers `$share/<group>/<filter>` subscriptions. */
  readonly sharedSubscriptions: boolean;
  close(): Promise<void>;
}

export interface BrokerOptions {
  /** External broker; the embedded aedes broker when absent. */
  url?: string;
  /** Override the shared-subscription support assumed for an external broker (default true). */
  sharedSubscriptions?: boolean;
}

export async function startBroker(options: BrokerOptions = {}): Promise<Broker> {
  if (options.url) {
    return {
      url: options.url,
      embedded: false,
      sharedSubscriptions: options.sharedSubscriptions ?? true,
      close: async () => {},
    };
  }
  return startEmbeddedBroker();
}

async function startEmbeddedBroker(): Promise<Broker> {
  const aedes = await Aedes.createBroker();
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    aedes.handle(socket);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('broker has no TCP address');
  let closed: Promise<void> | undefined;
  return {
    url: `mqtt://127.0.0.1:${address.port}`,
    embedded: true,
    sharedSubscriptions: false,
    close() {
      closed ??= (async () => {
        await new Promise<void>((resolve) => aedes.close(() => resolve()));
        for (const socket of sockets) socket.destroy();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      })();
      return closed;
    },
  };
}
