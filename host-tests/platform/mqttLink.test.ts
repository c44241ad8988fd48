import assert from 'node:assert/strict';
import { NodeMqttLink, meterClientId } from '../../hal/mock/mqtt.node';
import type { MqttEvents } from '../../hal/mqtt';
import { type Broker, startBroker } from '../../platform-server/core/broker';
import { BrokerCredentials, PLATFORM_MQTT_USER } from '../../platform-server/core/brokerAuth';
import { keystoreFromHex } from '../../platform-server/keys/keystore';
import { randomMeterId } from '../../sim/fleet/platform';

/** Events of a link, with promises for the next message and the next (dis)connection. */
function recorder() {
  const messages: { topic: string; payload: Uint8Array }[] = [];
  let onMessage: (() => void) | undefined;
  let connects = 0;
  let disconnects = 0;
  const events: MqttEvents = {
    onConnect: () => connects++,
    onDisconnect: () => disconnects++,
    onMessage(topic, payload) {
      messages.push({ topic, payload });
      onMessage?.();
    },
  };
  return {
    events,
    messages,
    get connects() {
      return connects;
    },
    get disconnects() {
      return disconnects;
    },
    async nextMessage() {
      if (messages.length === 0) await new Promise<void>((resolve) => (onMessage = resolve));
      onMessage = undefined;
      return messages.shift()!;
    },
  };
}

const credentials = new BrokerCredentials(keystoreFromHex('22'.repeat(32)));
/** A meter's own user name and password on the brokers below. */
const asMeter = (id: number) => ({ username: String(id), password: credentials.meterPassword(id) });
const asPlatform = { username: PLATFORM_MQTT_USER, password: credentials.platformPassword() };

describe('hal/mock/mqtt.node: the meter MQTT link over mqtt.js (embedded broker)', () => {
  let broker: Broker;
  before(async () => {
    broker = await startBroker({ credentials });
  });
  after(async () => {
    await broker.close();
  });

  it('refuses to publish while down, then carries QoS 1 messages both ways', async () => {
    const id = randomMeterId();
    const meter = new NodeMqttLink({ url: broker.url, clientId: meterClientId(id), ...asMeter(id) });
    const platform = new NodeMqttLink({
      url: broker.url,
      clientId: 'platform-side',
      cleanSession: true,
      ...asPlatform,
    });
    assert.equal(meter.connected, false);
    assert.equal(meter.publish('x', Uint8Array.of(1)), false);
    const m = recorder();
    const p = recorder();
    meter.subscribe(`parklink/v1/meters/${id}/down`); // before open: renewed on connect
    meter.open(m.events);
    platform.open(p.events);
    try {
      await Promise.all([meter.waitConnected(), platform.waitConnected()]);
      assert.equal(meter.connected, true);
      assert.equal(m.connects, 1);
      await platform.subscribeAsync(`parklink/v1/meters/${id}/up`);
      // The meter's subscription was sent on connect; one round trip through it proves it is active.
      await meter.subscribeAsync(`parklink/v1/meters/${id}/down`);
      assert.equal(meter.publish(`parklink/v1/meters/${id}/up`, Uint8Array.of(1, 2, 3)), true);
      const up = await p.nextMessage();
      assert.equal(up.topic, `parklink/v1/meters/${id}/up`);
      assert.deepEqual(up.payload, Uint8Array.of(1, 2, 3));
      assert.ok(!Buffer.isBuffer(up.payload) || up.payload instanceof Uint8Array);
      await platform.publishAsync(`parklink/v1/meters/${id}/down`, Uint8Array.of(9));
      const down = await m.nextMessage();
      assert.deepEqual(down.payload, Uint8Array.of(9));
    } finally {
      await meter.closeAsync();
      await platform.closeAsync();
    }
    assert.equal(meter.connected, false);
  });

  it('keeps its session (clean session false): a downlink sent while it was away arrives on return', async () => {
    const id = randomMeterId();
    const topic = `parklink/v1/meters/${id}/down`;
    const first = new NodeMqttLink({ url: broker.url, clientId: meterClientId(id), ...asMeter(id) });
    const r1 = recorder();
    first.open(r1.events);
    await first.waitConnected();
    await first.subscribeAsync(topic);
    await first.closeAsync();

    const platform = new NodeMqttLink({
      url: broker.url,
      clientId: 'platform-side-2',
      cleanSession: true,
      ...asPlatform,
    });
    platform.open(recorder().events);
    await platform.waitConnected();
    await platform.publishAsync(topic, Uint8Array.of(7, 7));
    await platform.closeAsync();

    // The same client id, no subscribe call: the broker's stored session delivers the queued message.
    const again = new NodeMqttLink({ url: broker.url, clientId: meterClientId(id), ...asMeter(id) });
    const r2 = recorder();
    again.open(r2.events);
    try {
      const message = await r2.nextMessage();
      assert.equal(message.topic, topic);
      assert.deepEqual(message.payload, Uint8Array.of(7, 7));
    } finally {
      await again.closeAsync();
    }
  });

  it('reconnects by itself after the broker drops it', async () => {
    const own = await startBroker({ credentials });
    const id = randomMeterId();
    const link = new NodeMqttLink({
      url: own.url,
      clientId: meterClientId(id),
      ...asMeter(id),
      reconnectPeriodMs: 50,
    });
    const r = recorder();
    link.open(r.events);
    try {
      await link.waitConnected();
      // Drop the connection from the client side's socket: the link must notice and come back.
      const client = (link as unknown as { client: { stream: { destroy(): void } } }).client;
      const back = new Promise<void>((resolve) => {
        const events = r.events;
        const onConnect = events.onConnect;
        events.onConnect = () => {
          onConnect();
          resolve();
        };
      });
      client.stream.destroy();
      await back;
      assert.equal(r.connects, 2);
      assert.ok(r.disconnects >= 1);
      assert.equal(link.connected, true);
    } finally {
      await link.closeAsync();
      await own.close();
    }
  });
});
