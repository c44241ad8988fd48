// The A7670 driver parses a recorded AT session under the real XS engine (frozen primordials, no
// TextDecoder) and makes of it exactly what it makes under Node. Prints the XS compute meter for the
// whole session (a figure, never an assertion on its size).
import assert from 'node:assert/strict';
import { bundleForXs, type MeterUsage, startXs, type XsWorker, xsnapAvailable } from '../../sim/xs/xsnap';
import { DOWNLINK_PAYLOAD, replaySession, SESSION, type SessionResult } from './session';

describe('A7670 driver on a recorded AT session under XS', function () {
  this.timeout(120_000);
  let xs: XsWorker | undefined;
  let usage: MeterUsage;
  let xsResult: SessionResult;
  let nodeResult: SessionResult;

  before(async () => {
    const availability = xsnapAvailable();
    if (!availability.available) assert.fail(availability.reason);
    const script = await bundleForXs('host-tests/radio/modemXs.entry.ts');
    xs = await startXs({ name: 'modem-session' });
    const load = await xs.evaluate(script);
    usage = await xs.evaluate('modemSession.replay()');
    const message = (xs.messages as { session?: SessionResult }[]).find((m) => m.session);
    assert.ok(message?.session, 'XS sent the session result');
    xsResult = message.session;
    nodeResult = replaySession();
    const bytes = SESSION.reduce((n, s) => n + s.reply.length, 0);
    console.log(
      `      XS: ${SESSION.length} exchanges, ${bytes} bytes from the module parsed in ${usage.compute} compute units ` +
        `(${(usage.compute / bytes).toFixed(0)} per byte, the driver's set-up and the virtual UART included; ` +
        `loading the bundle ${load.compute}), heap ${usage.currentHeapCount} slots`,
    );
  });

  after(async () => {
    await xs?.close();
  });

  it('sends every command of the session and gets every result', () => {
    assert.equal(xsResult.commands.length, SESSION.filter((s) => typeof s.expect === 'string').length);
    assert.deepEqual(xsResult.results, [
      'power: "ok"',
      'sim: "READY"',
      'cereg: 2',
      'cereg: 1',
      'csq: {"rssi":18,"ber":99}',
      'pdp: "ok"',
      'start: "ok"',
      'accq: "ok"',
      'connect: "ok"',
      'sub: "ok"',
      'topic: "ok"',
      'payload: "ok"',
      'pub: "ok"',
      'csq: {"rssi":17,"ber":99}',
      'sim: CmeError AT+CPIN?: +CME ERROR 10 (SIM not inserted)',
      'disc: MqttResultError AT+CMQTTDISC=0,60: MQTT result 11 (no connection)',
    ]);
  });

  it('tells the URCs from the responses, in order, the binary downlink byte for byte', () => {
    assert.deepEqual(xsResult.urcs, [
      'registration 1',
      `mqtt-message parklink/meters/7/down ${DOWNLINK_PAYLOAD.length}`,
      'registration 1',
      'ring',
      'caller +447700900100',
      'sms +447700900100 CALL IN',
      'mqtt-lost 1',
    ]);
    assert.deepEqual(xsResult.downlink, [...DOWNLINK_PAYLOAD]);
    assert.equal(xsResult.garbled, 0);
  });

  it('makes the same of it under XS as under Node', () => {
    assert.deepEqual(xsResult, nodeResult);
  });
});
