// The MQTT broker the platform and the meters meet at. Embedded default: an in-process aedes broker
// on a free port of 127.0.0.1 (mqtts with a certificate and key). With MQTT_URL set, an external
// broker (Mosquitto, EMQX) instead. The embedded broker checks every client's credentials and what
// it publishes and subscribes to (brokerAuth.ts); an external one does it by its own configuration
// (deploy/mosquitto/).
//
// aedes 1.x has no shared subscriptions: it grants a `$share/…` filter but never delivers to it
// (checked against aedes 1.2.0). Ingest therefore subscribes with the plain wildcard on the
// embedded broker (one ingest instance per embedded broker, so nothing is lost), and with
// `$share/<group>/…` on an external broker, where several instances share the load.
import { createServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { Aedes, type AuthenticateError, type Client } from 'aedes';
import type { MqttClient } from 'mqtt';
import { type BrokerCredentials, type BrokerIdentity, mayPublish, maySubscribe } from './brokerAuth';

export interface Broker {
  /** mqtt://host:port (mqtts:// with TLS) for clients (ingest, virtual meters); no credentials in it. */
  readonly url: string;
  /**
   * Where the platform's own clients connect: `url`, but with TLS on the embedded broker a plain
   * listener on 127.0.0.1 (in-process clients need no certificate; they still log in).
   */
  readonly platformUrl: string;
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
  /** The embedded broker's check of credentials, topics and client ids. */
  credentials?: BrokerCredentials;
  /** The embedded broker serves mqtts with this certificate chain and key (PEM). */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /** The slaves a master meter relays for over Zigbee: the embedded broker lets it use their topics. */
  relaySlaves?: (masterId: number) => readonly number[];
}

export class BrokerConfigError extends Error {
  override readonly name = 'BrokerConfigError';
}

/** aedes answers CONNACK with the error's return code: 4 is "bad user name or password". */
function refusal(message: string): AuthenticateError {
  return Object.assign(new Error(message), { returnCode: 4 as AuthenticateError['returnCode'] });
}

export async function startBroker(options: BrokerOptions = {}): Promise<Broker> {
  if (options.url) {
    return {
      url: options.url,
      platformUrl: options.url,
      embedded: false,
      sharedSubscriptions: options.sharedSubscriptions ?? true,
      close: async () => {},
    };
  }
  if (!options.credentials)
    throw new BrokerConfigError('the embedded broker needs the credentials to check clients with');
  return startEmbeddedBroker(options.credentials, options.tls, options.relaySlaves ?? (() => []));
}

async function startEmbeddedBroker(
  credentials: BrokerCredentials,
  tls: BrokerOptions['tls'],
  relaySlaves: (masterId: number) => readonly number[],
): Promise<Broker> {
  const slavesOf = (identity: BrokerIdentity) =>
    identity.kind === 'meter' ? relaySlaves(identity.meterId) : [];
  const identities = new WeakMap<Client, BrokerIdentity>();
  const aedes = await Aedes.createBroker({
    authenticate(client, username, password, done) {
      const identity = credentials.verify(username, password ?? undefined, client.id);
      if (!identity) return done(refusal('bad user name, password or client id'), false);
      identities.set(client, identity);
      done(null, true);
    },
    // A publish outside the client's topics ends its connection (MQTT 3.1.1 has no refusal code for it).
    authorizePublish(client, packet, done) {
      if (!client) return done(null); // the broker's own messages
      const identity = identities.get(client);
      if (!identity || !mayPublish(identity, packet.topic, slavesOf(identity)))
        return done(new Error(`publish to ${packet.topic} refused`));
      done(null);
    },
    // A subscription outside the client's topics is answered with the failure code (0x80).
    authorizeSubscribe(client, subscription, done) {
      const identity = identities.get(client);
      if (!identity || !maySubscribe(identity, subscription.topic, slavesOf(identity)))
        return done(null, null);
      done(null, subscription);
    },
  });
  const sockets = new Set<Socket>();
  const onSocket = (socket: Socket) => {
    socket.setNoDelay(true);
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    aedes.handle(socket);
  };
  const listen = async (server: Server): Promise<number> => {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('broker has no TCP address');
    return address.port;
  };
  const servers: Server[] = [];
  const url = tls
    ? `mqtts://127.0.0.1:${await listen(rememberServer(createTlsServer({ cert: tls.cert, key: tls.key }, onSocket)))}`
    : `mqtt://127.0.0.1:${await listen(rememberServer(createServer(onSocket)))}`;
  const platformUrl = tls ? `mqtt://127.0.0.1:${await listen(rememberServer(createServer(onSocket)))}` : url;
  function rememberServer(server: Server): Server {
    servers.push(server);
    return server;
  }
  let closed: Promise<void> | undefined;
  return {
    url,
    platformUrl,
    embedded: true,
    sharedSubscriptions: false,
    close() {
      closed ??= (async () => {
        await new Promise<void>((resolve) => aedes.close(() => resolve()));
        for (const socket of sockets) socket.destroy();
        for (const server of servers) await new Promise<void>((resolve) => server.close(() => resolve()));
      })();
      return closed;
    },
  };
}

/**
 * Has `client` send every MQTT packet as soon as it is written, on each connection it makes: with
 * Nagle's algorithm on, a small packet (a PUBACK, an ack frame) written while the peer has not yet
 * acknowledged the last one waits for that acknowledgement, which the peer delays by up to 40 ms.
 * A set's ack then took about 45 ms longer than its storing. Brokers need the same on their side
 * (Mosquitto's set_tcp_nodelay; the embedded broker's sockets above).
 */
export function sendPacketsAtOnce(client: MqttClient): void {
  const noDelay = () => (client.stream as Partial<Socket> | undefined)?.setNoDelay?.(true);
  // The connection open now (mqtt.connect makes it at once; connectAsync has finished it), then
  // every one made again.
  noDelay();
  client.on('connect', noDelay);
}
