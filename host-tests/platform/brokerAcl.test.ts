// Broker access control, on the embedded aedes broker and on a real Mosquitto running the shipped
// deploy/mosquitto/ configuration (its ACL verbatim, the password file `parklink broker passwd`
// writes): a meter logs in with its own password only, publishes only to its own uplink and
// subscribes only to its own downlink; the platform reads the uplinks and writes the downlinks.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { freePort, portOpen } from '../../sim/fleet/processes';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { type Broker, startBroker } from '../../platform-server/core/broker';
import {
  BrokerCredentials,
  mayPublish,
  maySubscribe,
  mosquittoPasswordFile,
  PLATFORM_MQTT_USER,
} from '../../platform-server/core/brokerAuth';
import { keystoreFromHex } from '../../platform-server/keys/keystore';
import { openDatabase } from '../../platform-server/core/db';
import { migrate } from '../../platform-server/core/migrations';
import type * as Cli from '../../tools/parklink';
import { pbkdf2Sync } from 'node:crypto';
import { downlinkTopic, meterClientId, uplinkTopic, UPLINK_WILDCARD } from '../../protocol/topics';
import { randomMeterId } from '../../sim/fleet/platform';
import { makeTestCa, requireTools, type TestCa } from '../support/tlsCa';
import { until } from '../support/until';

// By URL with its extension: '../../tools/parklink' would load the bin shim tools/parklink.js.
const { main: parklink }: typeof Cli = await import(new URL('../../tools/parklink.ts', import.meta.url).href);

const credentials = new BrokerCredentials(keystoreFromHex('5a'.repeat(32)));
const DEPLOY = new URL('../../deploy/mosquitto/', import.meta.url);

interface Target {
  url: () => string;
  /** Extra client options (the CA for mqtts). */
  options?: () => IClientOptions;
}

function connect(target: Target, options: IClientOptions): Promise<MqttClient> {
  return mqtt.connectAsync(target.url(), {
    protocolVersion: 4,
    reconnectPeriod: 0,
    connectTimeout: 10_000,
    ...target.options?.(),
    ...options,
  });
}

const asMeter = (id: number, clientId = meterClientId(id)): IClientOptions => ({
  clientId,
  username: BrokerCredentials.meterUser(id),
  password: credentials.meterPassword(id),
  clean: true,
});
const asPlatform = (): IClientOptions => ({
  clientId: `platform-${randomMeterId()}`,
  username: PLATFORM_MQTT_USER,
  password: credentials.platformPassword(),
  clean: true,
});

/** The QoS the broker granted `filter`, 128 for a refusal (mqtt.js rejects on one). */
async function subscribe(client: MqttClient, filter: string): Promise<number> {
  try {
    return (await client.subscribeAsync(filter, { qos: 1 }))[0].qos;
  } catch (error) {
    const granted = (error as { packet?: { granted?: number[] } }).packet?.granted;
    if (!granted) throw error;
    return granted[0];
  }
}

/** Messages a client receives, by topic. */
function inbox(client: MqttClient): { topic: string; payload: string }[] {
  const got: { topic: string; payload: string }[] = [];
  client.on('message', (topic, payload) => got.push({ topic, payload: payload.toString() }));
  return got;
}

/** The attacks, the same on every broker. */
function attacks(target: Target, brokerName: string, a = randomMeterId()) {
  let platform: MqttClient;
  let uplinks: { topic: string; payload: string }[];
  const b = a + 1;
  const clients: MqttClient[] = [];
  const track = (client: MqttClient) => {
    clients.push(client);
    return client;
  };

  before(async () => {
    platform = await connect(target, asPlatform());
    uplinks = inbox(platform);
    assert.equal(
      await subscribe(platform, UPLINK_WILDCARD),
      1,
      `${brokerName} grants the platform every uplink`,
    );
  });
  after(async () => {
    for (const client of clients) await client.endAsync(true).catch(() => {});
    await platform?.endAsync(true);
  });

  it('a meter with its own password publishes its uplink and receives its downlink', async () => {
    const meter = track(await connect(target, asMeter(a)));
    const down = inbox(meter);
    assert.equal(await subscribe(meter, downlinkTopic(a)), 1);
    await meter.publishAsync(uplinkTopic(a), 'hello from a', { qos: 1 });
    await until(() => uplinks.some((m) => m.payload === 'hello from a'), 'the uplink at the platform');
    await platform.publishAsync(downlinkTopic(a), 'to a', { qos: 1 });
    await until(() => down.some((m) => m.payload === 'to a'), 'the downlink at the meter');
    await meter.endAsync();
  });

  it('refuses a client without credentials, with a wrong password, or with another meter’s password', async () => {
    await assert.rejects(
      connect(target, { clientId: meterClientId(a) }),
      /Not authorized|Bad username or password/i,
    );
    await assert.rejects(
      connect(target, { ...asMeter(a), password: 'guessed password' }),
      /Not authorized|Bad username or password/i,
    );
    // b's password under a's user name: passwords are per meter, never shared.
    await assert.rejects(
      connect(target, { ...asMeter(a), password: credentials.meterPassword(b) }),
      /Not authorized|Bad username or password/i,
    );
    // A meter cannot log in as the platform with its own password.
    await assert.rejects(
      connect(target, { ...asPlatform(), password: credentials.meterPassword(a) }),
      /Not authorized|Bad username or password/i,
    );
  });

  it('a meter publishing to another meter’s uplink reaches nobody', async () => {
    const mark = `sentinel ${randomMeterId()}`;
    const attacker = track(await connect(target, asMeter(b)));
    // MQTT 3.1.1 has no refusal for a publish: aedes closes the connection, Mosquitto drops the message.
    const acked = attacker.publishAsync(uplinkTopic(a), 'forged by b', { qos: 1 }).then(
      () => 'acked',
      () => 'failed',
    );
    const closed = new Promise<string>((resolve) => attacker.once('close', () => resolve('closed')));
    const outcome = await Promise.race([acked, closed]);
    assert.equal(outcome, brokerName === 'aedes' ? 'closed' : 'acked');
    await attacker.endAsync(true);
    // The meter's own uplink afterwards: once it is in, the forged one had its chance and is not.
    const honest = track(await connect(target, asMeter(b)));
    await honest.publishAsync(uplinkTopic(b), mark, { qos: 1 });
    await until(() => uplinks.some((m) => m.payload === mark), 'the honest uplink');
    assert.equal(
      uplinks.some((m) => m.payload === 'forged by b'),
      false,
    );
    await honest.endAsync();
  });

  // aedes answers the subscription with the failure code; Mosquitto's acl_file grants any filter and
  // checks read access on each message it would deliver, so there the proof is what arrives.
  const refusesSubscriptions = brokerName === 'aedes';

  it('a meter subscribing to another meter’s downlink or to a wildcard receives none of them', async () => {
    const attacker = track(await connect(target, asMeter(b)));
    const got = inbox(attacker);
    for (const filter of [downlinkTopic(a), 'parklink/v1/meters/+/down', '#', UPLINK_WILDCARD]) {
      const granted = await subscribe(attacker, filter);
      if (refusesSubscriptions) assert.equal(granted, 128, `${filter} is refused (SUBACK 0x80)`);
    }
    assert.equal(await subscribe(attacker, downlinkTopic(b)), 1);
    await platform.publishAsync(downlinkTopic(a), 'secret for a', { qos: 1 });
    await platform.publishAsync(downlinkTopic(b), 'for b', { qos: 1 });
    await until(() => got.some((m) => m.payload === 'for b'), 'b’s own downlink');
    assert.deepEqual(
      got.map((m) => m.topic),
      [downlinkTopic(b)],
    );
  });

  it('a meter under another meter’s client id receives none of its downlinks', async () => {
    // aedes refuses the login outright (a meter's client id is bound to its user name); Mosquitto
    // with a password file cannot bind them, but the ACL still keeps a's downlinks from b.
    const attempt = connect(target, asMeter(b, meterClientId(a)));
    const intruder = await attempt.catch((error: Error) => error);
    if (intruder instanceof Error) {
      assert.match(intruder.message, /Not authorized|Bad username or password/i);
      return;
    }
    assert.notEqual(brokerName, 'aedes', 'aedes binds the client id');
    track(intruder);
    const got = inbox(intruder);
    await subscribe(intruder, downlinkTopic(a));
    assert.equal(await subscribe(intruder, downlinkTopic(b)), 1);
    await platform.publishAsync(downlinkTopic(a), 'again for a', { qos: 1 });
    await platform.publishAsync(downlinkTopic(b), 'b again', { qos: 1 });
    await until(() => got.some((m) => m.payload === 'b again'), 'b’s own downlink');
    assert.deepEqual(
      got.map((m) => m.payload),
      ['b again'],
    );
  });

  it('the platform may take the uplinks by a shared subscription', async () => {
    assert.equal(await subscribe(platform, `$share/acl-test/${UPLINK_WILDCARD}`), 1);
    await platform.unsubscribeAsync(`$share/acl-test/${UPLINK_WILDCARD}`);
  });
}

describe('broker access control — embedded aedes', () => {
  let broker: Broker;
  before(async () => {
    broker = await startBroker({ credentials });
  });
  after(async () => {
    await broker?.close();
  });
  attacks({ url: () => broker.url }, 'aedes');

  it('refuses to start the embedded broker without credentials to check', async () => {
    await assert.rejects(startBroker(), { name: 'BrokerConfigError' });
  });
});

describe('broker access control — a Zigbee relay master', () => {
  const master = { kind: 'meter', meterId: 501 } as const;
  it('uses an assigned slave’s uplink and downlink, never an unassigned meter’s nor a wildcard', () => {
    assert.ok(mayPublish(master, uplinkTopic(501)));
    assert.ok(!mayPublish(master, uplinkTopic(502)), 'not assigned yet');
    assert.ok(mayPublish(master, uplinkTopic(502), [502]));
    assert.ok(!mayPublish(master, uplinkTopic(503), [502]));
    assert.ok(!mayPublish(master, downlinkTopic(502), [502]), 'never a downlink');
    assert.ok(maySubscribe(master, downlinkTopic(502), [502]));
    assert.ok(!maySubscribe(master, downlinkTopic(503), [502]));
    assert.ok(!maySubscribe(master, 'parklink/v1/meters/+/down', [502]));
    assert.ok(!maySubscribe(master, uplinkTopic(502), [502]), 'never a slave’s uplink');
  });

  it('the embedded broker asks for the master’s slaves on every publish', async () => {
    let slaves: number[] = [];
    const broker = await startBroker({ credentials, relaySlaves: () => slaves });
    const id = randomMeterId();
    const slave = id + 1;
    const login = (meterId: number) =>
      mqtt.connectAsync(broker.url, {
        clientId: meterClientId(meterId),
        username: BrokerCredentials.meterUser(meterId),
        password: credentials.meterPassword(meterId),
        reconnectPeriod: 0,
      });
    const got: string[] = [];
    try {
      const relay = await login(id);
      const closed = new Promise<void>((resolve) => relay.once('close', () => resolve()));
      slaves = [slave];
      const granted = await relay.subscribeAsync(downlinkTopic(slave), { qos: 1 });
      got.push(`assigned:${granted[0].qos}`);
      slaves = [];
      await relay.subscribeAsync(downlinkTopic(slave), { qos: 1 }).then(
        () => got.push('unassigned:granted'),
        () => got.push('unassigned:refused'), // SUBACK 0x80
      );
      relay.publish(uplinkTopic(slave), Buffer.of(1), { qos: 1 });
      await closed; // a publish outside its topics ends the connection
      got.push('closed');
      relay.end(true);
    } finally {
      await broker.close();
    }
    assert.deepEqual(got, ['assigned:1', 'unassigned:refused', 'closed']);
  });
});

/** The shipped mosquitto.conf with this test's files and ports. */
function testConfig(dir: string, plainPort: number, tlsPort: number): string {
  let conf = readFileSync(new URL('mosquitto.conf', DEPLOY), 'utf8')
    .replaceAll('/etc/mosquitto/parklink/', `${dir}/`)
    .replaceAll('/var/lib/mosquitto/', `${dir}/`)
    .replace(/^listener 8883$/m, `listener ${tlsPort} 127.0.0.1`)
    .replace(/^listener 1883 127\.0\.0\.1$/m, `listener ${plainPort} 127.0.0.1`);
  assert.ok(conf.includes(`listener ${tlsPort}`) && conf.includes(`listener ${plainPort}`));
  // Started as root, Mosquitto would switch to its own user, who cannot read this test's files.
  if (process.getuid?.() === 0) conf = `user root\n${conf}`;
  return conf;
}

describe('broker access control — Mosquitto with deploy/mosquitto/', () => {
  let dir: string;
  let ca: TestCa;
  let plainPort = 0;
  let tlsPort = 0;
  let mosquitto: ChildProcess | undefined;
  let log = '';
  // The meters of the attacks below (each suite uses an id and the next): in the password file.
  const plainMeter = randomMeterId();
  const tlsMeter = randomMeterId();
  const meters = [plainMeter, plainMeter + 1, tlsMeter, tlsMeter + 1];

  before(async function () {
    requireTools(this, 'mosquitto', 'openssl');
    dir = mkdtempSync(join(tmpdir(), 'parklink-mosquitto-'));
    ca = makeTestCa();
    writeFileSync(join(dir, 'server.crt'), ca.cert);
    writeFileSync(join(dir, 'server.key'), ca.key, { mode: 0o600 });
    writeFileSync(join(dir, 'acl'), readFileSync(new URL('acl', DEPLOY)));
    // What `parklink broker passwd` writes: the platform and the meters the tests use.
    writeFileSync(join(dir, 'passwd'), mosquittoPasswordFile(credentials, meters), { mode: 0o600 });
    plainPort = await freePort();
    tlsPort = await freePort();
    writeFileSync(join(dir, 'mosquitto.conf'), testConfig(dir, plainPort, tlsPort));
    mosquitto = spawn('mosquitto', ['-c', join(dir, 'mosquitto.conf')], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    mosquitto.stdout?.on('data', (d) => (log += d));
    mosquitto.stderr?.on('data', (d) => (log += d));
    await until(async () => {
      if (mosquitto?.exitCode !== null) throw new Error(`mosquitto exited: ${log}`);
      return (await portOpen(plainPort)) && (await portOpen(tlsPort));
    }, 'mosquitto to listen');
  });
  after(async () => {
    if (mosquitto && mosquitto.exitCode === null) {
      const exited = new Promise((resolve) => mosquitto?.once('exit', resolve));
      mosquitto.kill('SIGTERM');
      await exited;
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
    if (ca) rmSync(ca.dir, { recursive: true, force: true });
  });

  describe('over plain MQTT', () => {
    attacks({ url: () => `mqtt://127.0.0.1:${plainPort}` }, 'mosquitto', plainMeter);
  });

  describe('over mqtts (TLS, the server verified against the test CA)', () => {
    attacks(
      { url: () => `mqtts://localhost:${tlsPort}`, options: () => ({ ca: ca.ca, rejectUnauthorized: true }) },
      'mosquitto',
      tlsMeter,
    );

    it('refuses a client that does not trust the server’s CA', async () => {
      await assert.rejects(
        mqtt.connectAsync(`mqtts://localhost:${tlsPort}`, {
          ...asPlatform(),
          reconnectPeriod: 0,
          connectTimeout: 5_000,
          rejectUnauthorized: true,
        }),
        /self[- ]signed|unable to verify|certificate/i,
      );
    });
  });

  it('a meter provisioned later logs in once the password file is written again and Mosquitto reloads it', async () => {
    const late = randomMeterId();
    const plain = { url: () => `mqtt://127.0.0.1:${plainPort}` };
    await assert.rejects(connect(plain, asMeter(late)), /Not authorized|Bad username or password/i);
    writeFileSync(join(dir, 'passwd'), mosquittoPasswordFile(credentials, [...meters, late]), {
      mode: 0o600,
    });
    mosquitto?.kill('SIGHUP');
    await until(async () => {
      const client = await connect(plain, asMeter(late)).catch(() => undefined);
      await client?.endAsync();
      return client !== undefined;
    }, 'the reloaded password file');
  });
});

describe('parklink broker passwd', () => {
  let dataDir: string;
  before(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'parklink-passwd-'));
  });
  after(() => {
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('writes a Mosquitto password line for the platform and each provisioned meter, from the master key', async function () {
    // Two openings of an on-disk PGlite database, each with the whole migration chain.
    this.timeout(60_000);
    const db = await openDatabase({ dataDir });
    try {
      await migrate(db);
      await db.query("INSERT INTO meters (id, name) VALUES (4711, 'a'), (4712, 'b')");
    } finally {
      await db.close();
    }
    const out: string[] = [];
    const io = { out: (text: string) => out.push(text), err: (text: string) => out.push(text) };
    const code = await parklink(['broker', 'passwd'], io, {
      PARKLINK_DATA_DIR: dataDir,
      PARKLINK_MASTER_KEY: '5a'.repeat(32),
    });
    assert.equal(code, 0, out.join('\n'));
    const lines = out.join('\n').split('\n');
    assert.deepEqual(
      lines.map((line) => line.split(':')[0]),
      [PLATFORM_MQTT_USER, '4711', '4712'],
    );
    // Each line is mosquitto_passwd's PBKDF2-SHA-512 of the derived password.
    const expected = [
      credentials.platformPassword(),
      credentials.meterPassword(4711),
      credentials.meterPassword(4712),
    ];
    lines.forEach((line, i) => {
      const [, , iterations, salt, hash] = line.split('$');
      const derived = pbkdf2Sync(expected[i], Buffer.from(salt, 'base64'), Number(iterations), 64, 'sha512');
      assert.equal(derived.toString('base64'), hash, line.split(':')[0]);
    });
  });

  it('refuses to run without a configured master key (a generated one would make useless passwords)', async () => {
    const out: string[] = [];
    const io = { out: (text: string) => out.push(text), err: (text: string) => out.push(text) };
    assert.equal(await parklink(['broker', 'passwd'], io, { PARKLINK_DATA_DIR: dataDir }), 2);
    assert.match(out.join('\n'), /master key/);
  });
});
