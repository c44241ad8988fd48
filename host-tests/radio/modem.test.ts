// The A7670 driver and its MqttLink against the virtual module, at the AT-command level: the
// bring-up the manual describes, binary publishes and downlinks, and every fault the twin injects.
import assert from 'node:assert/strict';
import {
  A7670,
  AtTokenizer,
  CmeError,
  ModemError,
  MqttResultError,
  type Urc,
} from '../../drivers/radio/a7670';
import { RegistrationError } from '../../drivers/radio/modemLink';
import { VirtualSerialPort } from '../../hal/mock/serial';
import { VirtualPins } from '../../hal/mock/bus';
import { VirtualClock } from '../../hal/mock/clock';
import { VirtualA7670 } from '../../hal/mock/modem/a7670';
import { VirtualBroker } from '../../hal/mock/mqtt';
import { PINS, PLATFORM_CA, rig, runUntil, UART } from './support';

const UPLINK = 'parklink/meters/7/up';
const DOWNLINK = 'parklink/meters/7/down';

function binary(length: number): Uint8Array {
  // Every byte value, CR and LF and '>' included, so nothing may be read as a line.
  return Uint8Array.from({ length }, (_, i) => (i * 37 + 13) & 0xff);
}

describe('A7670 driver and ModemLink against the virtual module', () => {
  it('powers on through PWRKEY, syncs, registers, loads the CA and connects over TLS', () => {
    const r = rig();
    r.link.open(r.mqttEvents);
    assert.ok(
      runUntil(r.clock, () => r.link.connected),
      `not connected: ${r.link.lastError}`,
    );
    assert.equal(r.events.connects, 1);
    assert.equal(r.twin.power, 'on');
    assert.equal(r.modem.on, true, 'STATUS high');
    const c = r.twin.commands;
    const order = [
      'AT',
      'ATE0',
      'AT+CMEE=1',
      'AT+CLIP=1',
      'AT+CPIN?',
      'AT+CEREG?',
      'AT+CSQ',
      'AT+CGDCONT=1,"IP","iot.example"',
      'AT+CCERTLIST',
      `AT+CCERTDOWN="parklink-ca.pem",${PLATFORM_CA.length}`,
      'AT+CSSLCFG="authmode",0,1',
      'AT+CSSLCFG="cacert",0,"parklink-ca.pem"',
      'AT+CMQTTSTART',
      'AT+CMQTTACCQ=0,"meter-7",1',
      'AT+CMQTTSSLCFG=0,0',
      'AT+CMQTTCONNECT=0,"tcp://mqtt.parklink.example:8883",120,1,"meter-7","secret"',
    ];
    let at = -1;
    for (const command of order) {
      const next = c.indexOf(command, at + 1);
      assert.ok(next > at, `${command} after the one before (${c.join(' | ')})`);
      at = next;
    }
    assert.equal(r.link.rssi, 21);
  });

  it('publishes a binary payload after the > prompt and delivers a binary downlink', () => {
    const r = rig();
    r.link.open(r.mqttEvents);
    assert.ok(runUntil(r.clock, () => r.link.connected));
    r.link.subscribe(DOWNLINK);
    const payload = binary(300);
    assert.equal(r.link.publish(UPLINK, payload), true);
    assert.ok(runUntil(r.clock, () => r.link.published === 1, 5_000));
    const sent = r.broker.published.find((m) => m.topic === UPLINK);
    assert.deepEqual(sent?.payload, payload);
    const down = binary(200).reverse();
    r.platform.publish(DOWNLINK, down);
    assert.ok(runUntil(r.clock, () => r.events.messages.length === 1, 5_000));
    assert.equal(r.events.messages[0].topic, DOWNLINK);
    assert.deepEqual(r.events.messages[0].payload, down);
  });

  it('keeps publishes in order, one topic/payload/PUB at a time', () => {
    const r = rig();
    r.link.open(r.mqttEvents);
    assert.ok(runUntil(r.clock, () => r.link.connected));
    for (let i = 0; i < 5; i++) assert.ok(r.link.publish(UPLINK, Uint8Array.of(i, 13, 10, 62)));
    assert.ok(runUntil(r.clock, () => r.link.published === 5, 10_000));
    assert.deepEqual(
      r.broker.published.filter((m) => m.topic === UPLINK).map((m) => m.payload[0]),
      [0, 1, 2, 3, 4],
    );
  });

  it('moves to another broker endpoint: disconnects, starts the MQTT service again and connects there', () => {
    const r = rig();
    r.link.open(r.mqttEvents);
    assert.ok(runUntil(r.clock, () => r.link.connected));
    assert.deepEqual(r.twin.connectedTo, { host: 'mqtt.parklink.example', port: 8883 });
    r.link.setEndpoint({ host: 'mqtt2.parklink.example', port: 8884 });
    assert.equal(r.link.connected, false);
    assert.equal(r.events.disconnects, 1);
    assert.ok(
      runUntil(r.clock, () => r.link.connected),
      `not connected: ${r.link.lastError}`,
    );
    assert.deepEqual(r.link.endpoint, { host: 'mqtt2.parklink.example', port: 8884 });
    assert.deepEqual(r.twin.connectedTo, { host: 'mqtt2.parklink.example', port: 8884 });
    assert.ok(
      r.twin.commands.includes(
        'AT+CMQTTCONNECT=0,"tcp://mqtt2.parklink.example:8884",120,1,"meter-7","secret"',
      ),
    );
    assert.equal(r.events.connects, 2);
  });

  it('an endpoint nobody answers on: the link stays down and retries, and connects once set back', () => {
    const r = rig();
    r.broker.refuse({ host: 'nowhere.parklink.example', port: 8885 });
    r.link.open(r.mqttEvents);
    assert.ok(runUntil(r.clock, () => r.link.connected));
    r.link.setEndpoint({ host: 'nowhere.parklink.example', port: 8885 });
    assert.equal(
      runUntil(r.clock, () => r.link.connected, 60_000),
      false,
    );
    r.link.setEndpoint({ host: 'mqtt.parklink.example', port: 8883 });
    assert.ok(
      runUntil(r.clock, () => r.link.connected, 600_000),
      `not connected: ${r.link.lastError}`,
    );
    assert.deepEqual(r.twin.connectedTo, { host: 'mqtt.parklink.example', port: 8883 });
  });

  it('refuses to publish while down: false, nothing sent', () => {
    const r = rig();
    assert.equal(r.link.publish(UPLINK, Uint8Array.of(1)), false);
    assert.equal(r.broker.published.length, 0);
  });

  describe('faults', () => {
    it('no SIM: +CME ERROR 10 as a CmeError, retried, connects once the SIM is in', () => {
      const r = rig();
      r.twin.faults.noSim = true;
      r.link.open(r.mqttEvents);
      assert.ok(runUntil(r.clock, () => r.errors.length > 0, 30_000));
      const e = r.errors[0];
      assert.ok(e instanceof CmeError, String(e));
      assert.equal(e.code, 10);
      assert.equal(e.name, 'CmeError');
      assert.equal(r.link.connected, false);
      r.twin.faults.noSim = false;
      assert.ok(runUntil(r.clock, () => r.link.connected, 120_000));
    });

    it('no coverage: RegistrationError after the registration timeout, connects when a cell appears', () => {
      const r = rig({ registrationTimeoutMs: 20_000 });
      r.twin.faults.noCoverage = true;
      r.link.open(r.mqttEvents);
      assert.ok(runUntil(r.clock, () => r.errors.length > 0, 60_000));
      assert.ok(r.errors[0] instanceof RegistrationError);
      assert.equal((r.errors[0] as RegistrationError).stat, 2);
      r.twin.faults.noCoverage = false;
      assert.ok(runUntil(r.clock, () => r.link.connected, 120_000));
    });

    it('registration denied: a RegistrationError with stat 3, no MQTT attempted', () => {
      const r = rig();
      r.twin.faults.registrationDenied = true;
      r.link.open(r.mqttEvents);
      assert.ok(runUntil(r.clock, () => r.errors.length > 0, 30_000));
      assert.ok(r.errors[0] instanceof RegistrationError);
      assert.equal((r.errors[0] as RegistrationError).stat, 3);
      assert.ok(!r.twin.commands.includes('AT+CMQTTSTART'));
    });

    it('connection lost mid-publish: onDisconnect, then reconnects and publishes again', () => {
      const r = rig();
      r.link.open(r.mqttEvents);
      assert.ok(runUntil(r.clock, () => r.link.connected));
      r.twin.faults.dropOnPublish = true;
      assert.ok(r.link.publish(UPLINK, Uint8Array.of(9, 9)));
      assert.ok(runUntil(r.clock, () => r.events.disconnects === 1, 5_000));
      assert.equal(
        r.broker.published.filter((m) => m.topic === UPLINK).length,
        0,
        'lost with the connection',
      );
      assert.ok(
        r.errors.some((e) => e instanceof MqttResultError && e.code === 1),
        'CONNLOST cause',
      );
      assert.ok(runUntil(r.clock, () => r.link.connected, 60_000));
      assert.equal(r.events.connects, 2);
      assert.ok(r.link.publish(UPLINK, Uint8Array.of(9, 9)));
      assert.ok(runUntil(r.clock, () => r.link.published === 1, 5_000));
    });

    it('a connection dropped by the broker (+CMQTTCONNLOST) is reconnected', () => {
      const r = rig();
      r.link.open(r.mqttEvents);
      assert.ok(runUntil(r.clock, () => r.link.connected));
      r.twin.dropConnection(2);
      assert.ok(runUntil(r.clock, () => r.events.disconnects === 1, 5_000));
      assert.ok(runUntil(r.clock, () => r.events.connects === 2, 60_000));
    });

    it('a garbled response line is counted as noise; the command is retried and the link comes up', () => {
      const r = rig();
      r.twin.faults.garbleLines = 3;
      r.link.open(r.mqttEvents);
      assert.ok(
        runUntil(r.clock, () => r.link.connected, 180_000),
        String(r.link.lastError),
      );
      assert.ok(r.modem.garbled >= 1);
    });

    it('a truncated response times out as a ModemError; the module is cycled and the link comes up', () => {
      const r = rig();
      r.link.open(r.mqttEvents);
      assert.ok(runUntil(r.clock, () => r.twin.commands.includes('AT+CPIN?'), 30_000));
      r.twin.faults.truncateLines = 1;
      assert.ok(
        runUntil(r.clock, () => r.link.connected, 180_000),
        String(r.link.lastError),
      );
      assert.ok(r.errors.some((e) => e instanceof ModemError && e.kind === 'timeout'));
    });

    it('a burst of URCs in front of a response: every URC handled, the response still matched', () => {
      const r = rig();
      r.link.open(r.mqttEvents);
      assert.ok(runUntil(r.clock, () => r.link.connected));
      r.link.subscribe(DOWNLINK);
      runUntil(r.clock, () => false, 1_000);
      r.twin.faults.urcBurst = 25;
      r.platform.publish(DOWNLINK, Uint8Array.of(1, 2, 3));
      assert.ok(r.link.publish(UPLINK, Uint8Array.of(4, 5, 6)));
      assert.ok(runUntil(r.clock, () => r.link.published === 1 && r.events.messages.length === 1, 5_000));
      assert.deepEqual(r.events.messages[0].payload, Uint8Array.of(1, 2, 3));
      assert.equal(r.errors.length, 0);
    });

    it('a wrong CA: handshake fail (result 32) as an MqttResultError, never connected', () => {
      const r = rig({ ca: new TextEncoder().encode('-----BEGIN CERTIFICATE-----\nsomeone else\n') });
      r.link.open(r.mqttEvents);
      assert.ok(runUntil(r.clock, () => r.errors.length > 0, 60_000));
      assert.ok(r.errors[0] instanceof MqttResultError);
      assert.equal((r.errors[0] as MqttResultError).code, 32);
      assert.equal(r.events.connects, 0);
    });
  });

  describe('power saving', () => {
    it('power(false) disconnects and sleeps the module (CSCLK, DTR high); power(true) reconnects', () => {
      const r = rig();
      r.link.open(r.mqttEvents);
      assert.ok(runUntil(r.clock, () => r.link.connected));
      r.link.power(false);
      assert.ok(runUntil(r.clock, () => r.twin.asleep, 5_000));
      assert.equal(r.link.connected, false);
      assert.equal(r.twin.mqttConnected, false);
      assert.equal(r.events.disconnects, 1);
      r.link.power(true);
      assert.ok(runUntil(r.clock, () => r.link.connected, 60_000));
      assert.equal(r.twin.asleep, false);
    });

    it('a text while asleep pulses RI, the driver wakes the UART and hands over the SMS', () => {
      const r = rig();
      const calls: unknown[] = [];
      r.link.onCallIn = (e) => calls.push(e);
      r.link.open(r.mqttEvents);
      assert.ok(runUntil(r.clock, () => r.link.connected));
      r.link.power(false);
      assert.ok(runUntil(r.clock, () => r.twin.asleep, 5_000));
      r.twin.sms('+447700900123', 'CALL IN');
      assert.ok(runUntil(r.clock, () => calls.length === 1, 2_000));
      assert.deepEqual(calls[0], { kind: 'sms', number: '+447700900123', text: 'CALL IN' });
    });
  });

  it('a call: caller id once, hung up with ATH, never answered (no ATA)', () => {
    const r = rig();
    const calls: unknown[] = [];
    r.link.onCallIn = (e) => calls.push(e);
    r.link.open(r.mqttEvents);
    assert.ok(runUntil(r.clock, () => r.link.connected));
    r.twin.call('+447700900123');
    runUntil(r.clock, () => false, 10_000);
    assert.deepEqual(calls, [{ kind: 'call', number: '+447700900123' }]);
    assert.ok(r.twin.commands.includes('ATH'));
    assert.ok(!r.twin.commands.includes('ATA'));
  });

  it('a board without STATUS: AT tried first, PWRKEY pressed only when the module does not answer', () => {
    const clock = new VirtualClock();
    const pins = new VirtualPins();
    const serial = new VirtualSerialPort();
    const twin = new VirtualA7670({
      clock,
      timers: clock,
      pins,
      pinMap: PINS,
      broker: new VirtualBroker(clock),
    });
    serial.attach(UART, twin);
    const modem = new A7670({
      serial: { io: serial.io, port: UART },
      pwrkey: { io: pins.io, pin: PINS.pwrkey },
      timers: clock,
    });
    let first: Error | undefined | null = null;
    modem.powerOn((e) => {
      first = e;
    });
    assert.ok(runUntil(clock, () => first !== null, 30_000));
    assert.equal(first, undefined);
    assert.equal(twin.power, 'on');
    assert.equal(modem.on, true);
    const pressesBefore = twin.commands.length;
    let second: Error | undefined | null = null;
    modem.powerOn((e) => {
      second = e;
    });
    assert.ok(runUntil(clock, () => second !== null, 30_000));
    assert.equal(second, undefined);
    assert.ok(
      twin.commands.slice(pressesBefore).every((c) => c === 'AT' || c === 'ATE0' || c === 'AT+CMEE=1'),
    );
  });

  it('power-off through PWRKEY (Toff) takes STATUS low', () => {
    const r = rig();
    let done = false;
    r.modem.powerOn(() => {
      r.modem.powerOff((e) => {
        assert.equal(e, undefined);
        done = true;
      });
    });
    assert.ok(runUntil(r.clock, () => done, 30_000));
    assert.equal(r.modem.on, false);
    assert.equal(r.twin.power, 'off');
  });
});

describe('AT tokenizer', () => {
  it('splits lines across arbitrary chunks, reads counted binary, recognises > only when asked', () => {
    const lines: string[] = [];
    let prompts = 0;
    const t = new AtTokenizer(
      (l) => lines.push(l),
      () => prompts++,
    );
    const blocks: Uint8Array[] = [];
    const text = '\r\n+CSQ: 21,99\r\n\r\nOK\r\n> not a prompt\r\n';
    for (const ch of text) t.feed(Uint8Array.of(ch.charCodeAt(0)));
    assert.deepEqual(lines, ['+CSQ: 21,99', 'OK', '> not a prompt']);
    t.promptWanted = true;
    t.feed(Uint8Array.of(13, 10, 0x3e, 0x20));
    assert.equal(prompts, 1);
    t.expectBinary(4, (b) => blocks.push(b));
    t.feed(Uint8Array.of(13, 10));
    t.feed(Uint8Array.of(0x3e, 0, 13, 10, 0x4f, 0x4b, 13, 10));
    assert.deepEqual(blocks, [Uint8Array.of(13, 10, 0x3e, 0)]);
    assert.deepEqual(lines.slice(3), ['OK']);
  });

  it('types +CME ERROR and +CMS ERROR and a plain ERROR', () => {
    const clock = new VirtualClock();
    const pins = new VirtualPins();
    const serial = new VirtualSerialPort();
    const answers: Record<string, string> = {
      'AT+CPIN?': '\r\n+CME ERROR: 10\r\n',
      'AT+CMGS="1"': '\r\n+CMS ERROR: 500\r\n',
      'AT+BOGUS': '\r\nERROR\r\n',
    };
    serial.attach(UART, {
      receive(bytes, line) {
        const command = String.fromCharCode(...bytes).trim();
        clock.setTimeout(() => line.send(new TextEncoder().encode(answers[command] ?? '\r\nOK\r\n')), 1);
      },
    });
    pins.drive(PINS.status, 1);
    const modem = new A7670({
      serial: { io: serial.io, port: UART },
      pwrkey: { io: pins.io, pin: PINS.pwrkey },
      status: { io: pins.io, pin: PINS.status },
      timers: clock,
    });
    const errors: (Error | undefined)[] = [];
    for (const command of Object.keys(answers)) modem.command(command, {}, (e) => errors.push(e));
    clock.advance(100);
    assert.ok(
      errors[0] instanceof CmeError && errors[0].code === 10 && /SIM not inserted/.test(errors[0].message),
    );
    assert.ok(errors[1] instanceof Error && errors[1].name === 'CmsError');
    assert.ok(errors[2] instanceof ModemError && errors[2].kind === 'error');
  });

  it('reports an unknown line outside a command as garbled, not as a response', () => {
    const clock = new VirtualClock();
    const pins = new VirtualPins();
    const serial = new VirtualSerialPort();
    let send: ((b: Uint8Array) => void) | undefined;
    serial.attach(UART, {
      receive(_bytes, line) {
        send = (b) => line.send(b);
      },
    });
    const urcs: Urc[] = [];
    const modem = new A7670({
      serial: { io: serial.io, port: UART },
      pwrkey: { io: pins.io, pin: PINS.pwrkey },
      status: { io: pins.io, pin: PINS.status },
      timers: clock,
      onUrc: (u) => urcs.push(u),
    });
    modem.command('AT', { timeoutMs: 10 }, () => {});
    clock.advance(20);
    send?.(new TextEncoder().encode('\r\nOK\r\n+CMQTTCONNLOST: 0,x\r\n'));
    assert.equal(modem.garbled, 2);
    assert.deepEqual(
      urcs.map((u) => u.kind),
      ['garbled', 'garbled'],
    );
  });
});
