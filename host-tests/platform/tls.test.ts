// TLS with a CA made in the test (openssl): the platform serves the API over HTTPS and the embedded
// broker serves meters mqtts; clients that verify against the CA get through, the others do not.
// (Mosquitto's TLS listener from deploy/mosquitto/ is exercised in brokerAcl.test.ts.)
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { rmSync } from 'node:fs';
import mqtt from 'mqtt';
import { Meter } from '../../firmware/meter';
import { VirtualBoard } from '../../hal/mock/board';
import { VirtualClock } from '../../hal/mock/clock';
import { meterClientId, NodeMqttLink } from '../../hal/mock/mqtt.node';
import { configFromEnv } from '../../platform-server/config';
import { ConfigError } from '../../platform-server/core/errors';
import { createPlatform, type Platform } from '../../platform-server/platform';
import { quietLogger, randomMeterId, TEST_GATEWAY_SECRET } from '../../sim/fleet/platform';
import { provisionVirtualMeter } from '../../tools/factory';
import { makeTestCa, requireTools, type TestCa } from '../support/tlsCa';
import { until } from '../support/until';
import { PaymentSimulator } from '../../platform-server/payments/simulator';

function get(url: string, options: { ca?: string } = {}): Promise<{ status: number; body: string }> {
  const request = url.startsWith('https:') ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = request(url, { ...options, timeout: 10_000 }, (response) => {
      let body = '';
      response.on('data', (chunk) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

describe('TLS: HTTPS API and mqtts for meters (embedded broker)', () => {
  let ca: TestCa;
  let platform: Platform;
  let address: string;
  const stored: number[] = [];
  const meters: Meter[] = [];

  before(async function () {
    requireTools(this, 'openssl');
    ca = makeTestCa();
    platform = await createPlatform({
      tls: { cert: ca.cert, key: ca.key },
      httpLogger: false,
      logger: quietLogger,
      phone: { gatewaySecret: TEST_GATEWAY_SECRET, paymentProvider: new PaymentSimulator() },
      onStored: ({ meterId }) => stored.push(meterId),
    });
    address = await platform.listen(0);
  });
  after(async () => {
    for (const meter of meters) meter.stop();
    await platform?.close();
    if (ca) rmSync(ca.dir, { recursive: true, force: true });
  });

  it('serves the API over HTTPS to a client that trusts the CA; refuses one that does not, and plain HTTP', async () => {
    assert.match(address, /^https:\/\//);
    const url = `${address.replace('//0.0.0.0', '//127.0.0.1')}/healthz`;
    const ok = await get(url, { ca: ca.ca });
    assert.equal(ok.status, 200);
    await assert.rejects(get(url), /self[- ]signed|unable to verify|certificate/i);
    await assert.rejects(get(url.replace('https:', 'http:')), /socket hang up|ECONNRESET|Parse Error/i);
  });

  it('a virtual meter with the CA connects over mqtts with its own credentials and its records are stored', async () => {
    assert.match(platform.brokerUrl, /^mqtts:\/\/127\.0\.0\.1:\d+$/);
    const meterId = randomMeterId();
    const link = new NodeMqttLink({
      url: platform.brokerUrl,
      clientId: meterClientId(meterId),
      ca: ca.ca,
      ...platform.meterMqttCredentials(meterId),
    });
    const board = new VirtualBoard({ mqtt: link, clock: new VirtualClock('2026-06-01T09:00:00Z') });
    await provisionVirtualMeter(platform, board.hardware, meterId, 'TLS meter');
    const meter = new Meter(board.hardware, {
      meterId,
      bays: [1],
      rate: { currency: 826, perHour: 240, minMinutes: 15, maxMinutes: 60, stepMinutes: 15 },
    });
    meters.push(meter);
    meter.start();
    await until(() => link.connected, 'the meter to connect over mqtts');
    await until(() => stored.includes(meterId), 'the boot record stored');
  });

  it('refuses an mqtts client that does not trust the CA, and plain MQTT on the mqtts port', async () => {
    const meterId = randomMeterId();
    const login = { clientId: meterClientId(meterId), ...platform.meterMqttCredentials(meterId) };
    await assert.rejects(
      mqtt.connectAsync(platform.brokerUrl, { ...login, reconnectPeriod: 0, connectTimeout: 5_000 }),
      /self[- ]signed|unable to verify|certificate/i,
    );
    // Plain MQTT to the TLS port: the connection ends (or its connect times out) without a CONNACK.
    const plain = mqtt.connect(platform.brokerUrl.replace('mqtts:', 'mqtt:'), {
      ...login,
      reconnectPeriod: 0,
      connectTimeout: 5_000,
    });
    const outcome = await new Promise<string>((resolve) => {
      plain.once('connect', () => resolve('connected'));
      plain.once('close', () => resolve('closed'));
      plain.once('error', () => resolve('error'));
    });
    plain.end(true);
    assert.notEqual(outcome, 'connected');
  });

  it('reads the certificate and key files from PARKLINK_TLS_CERT_FILE and PARKLINK_TLS_KEY_FILE, both or neither', () => {
    const config = configFromEnv({ PARKLINK_TLS_CERT_FILE: ca.certFile, PARKLINK_TLS_KEY_FILE: ca.keyFile });
    assert.equal(config.tls?.cert.toString(), ca.cert);
    assert.equal(config.tls?.key.toString(), ca.key);
    assert.throws(() => configFromEnv({ PARKLINK_TLS_CERT_FILE: ca.certFile }), ConfigError);
  });
});
