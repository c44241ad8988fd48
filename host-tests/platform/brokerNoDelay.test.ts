// MQTT packets go out at once (TCP_NODELAY) on the platform's own connections, on every connection
// mqtt.js makes again after a drop, and on the embedded broker's side: with Nagle's algorithm a
// set's ack waited for the peer's delayed TCP acknowledgement. The sockets that had
// setNoDelay(true) called on them are recorded and the connections' own sockets looked up there.
import assert from 'node:assert/strict';
import { Socket } from 'node:net';
import mqtt, { type MqttClient } from 'mqtt';
import { type Broker, sendPacketsAtOnce, startBroker } from '../../platform-server/core/broker';
import { BrokerCredentials, PLATFORM_MQTT_USER } from '../../platform-server/core/brokerAuth';
import { keystoreFromHex } from '../../platform-server/keys/keystore';

const credentials = new BrokerCredentials(keystoreFromHex('6b'.repeat(32)));

describe('MQTT connections send each packet at once', () => {
  let broker: Broker;
  const noDelay = new Set<Socket>();
  const original = Socket.prototype.setNoDelay;
  const clients: MqttClient[] = [];

  before(async () => {
    Socket.prototype.setNoDelay = function (this: Socket, on?: boolean) {
      if (on !== false) noDelay.add(this);
      return original.call(this, on);
    };
    broker = await startBroker({ credentials });
  });

  after(async () => {
    Socket.prototype.setNoDelay = original;
    await Promise.all(clients.map((c) => c.endAsync(true)));
    await broker.close();
  });

  /** A client under the platform's credentials, closed after the tests. */
  function platformClient(name: string, reconnectPeriod: number): MqttClient {
    const client = mqtt.connect(broker.platformUrl, {
      clientId: `${name}-${process.pid}`,
      username: PLATFORM_MQTT_USER,
      password: credentials.platformPassword(),
      reconnectPeriod,
    });
    clients.push(client);
    return client;
  }

  async function connected(client: MqttClient): Promise<Socket> {
    if (!client.connected) await new Promise((resolve) => client.once('connect', resolve));
    return client.stream as Socket;
  }

  it('a platform client, on its first connection and after the broker drops it', async () => {
    const client = platformClient('nodelay', 50);
    sendPacketsAtOnce(client);
    const first = await connected(client);
    assert.ok(noDelay.has(first), 'the first connection has TCP_NODELAY');
    // The broker's side of the same connection.
    const server = [...noDelay].find((s) => s !== first && s.remotePort === first.localPort);
    assert.ok(server, "the embedded broker's socket for it has TCP_NODELAY");

    const reconnected = new Promise((resolve) => client.once('connect', resolve));
    server.destroy();
    await reconnected;
    const second = client.stream as Socket;
    assert.notEqual(second, first);
    assert.ok(noDelay.has(second), 'the connection made again has TCP_NODELAY');
  });

  it('a client without it keeps the default, so the check above can fail', async () => {
    const client = platformClient('default', 0);
    const socket = await connected(client);
    assert.equal(noDelay.has(socket), false);
  });
});
