// The virtual A7670 is written from the A76XX AT command manual and 3GPP TS 27.007/27.005, the driver
// from the same documents: here the twin answers raw command lines (no driver) as the manual's
// examples show, and the driver's code tables agree with the manual's.
import assert from 'node:assert/strict';
import * as driver from '../../drivers/radio/a7670';
import { VirtualPins } from '../../hal/mock/bus';
import { VirtualClock } from '../../hal/mock/clock';
import { VirtualA7670 } from '../../hal/mock/modem/a7670';
import { VirtualBroker } from '../../hal/mock/mqtt';
import { VirtualSerialPort } from '../../hal/mock/serial';

const PIN = { pwrkey: 1, status: 2, dtr: 3, ri: 4 };

function terminal() {
  const clock = new VirtualClock();
  const pins = new VirtualPins();
  const serial = new VirtualSerialPort();
  const broker = new VirtualBroker(clock);
  const twin = new VirtualA7670({ clock, timers: clock, pins, pinMap: PIN, broker });
  serial.attach(1, twin);
  let out = '';
  const port = new serial.io({
    baud: 115_200,
    port: 1,
    onReadable() {
      const bytes = this.read();
      if (bytes) out += String.fromCharCode(...new Uint8Array(bytes));
    },
  });
  const pwrkey = new pins.io({ pin: PIN.pwrkey, mode: 'output' });
  pwrkey.write(1);
  return {
    clock,
    pins,
    twin,
    /** Holds PWRKEY low for `ms`. */
    press(ms: number) {
      pwrkey.write(0);
      clock.advance(ms);
      pwrkey.write(1);
    },
    /** Sends a line (or raw bytes) and returns what came back within `ms`. */
    send(text: string | Uint8Array, ms = 50): string {
      out = '';
      port.write(typeof text === 'string' ? Uint8Array.from(`${text}\r`, (c) => c.charCodeAt(0)) : text);
      clock.advance(ms);
      return out;
    },
  };
}

function bootedTerminal() {
  const t = terminal();
  t.press(100);
  t.clock.advance(10_000); // STATUS, boot, registration
  t.send('ATE0');
  return t;
}

describe('virtual A7670 against the manual', () => {
  it('power-on: PWRKEY low ≥ 50 ms, STATUS high, then the boot URCs; a 20 ms blip does nothing', () => {
    const t = terminal();
    t.press(20);
    t.clock.advance(5_000);
    assert.equal(t.pins.level(PIN.status), 0);
    t.press(100);
    t.clock.advance(600);
    assert.equal(t.pins.level(PIN.status), 1);
    assert.equal(t.twin.power, 'booting');
    t.clock.advance(3_000);
    assert.equal(t.twin.power, 'on');
    const first = t.send('AT');
    assert.match(first, /\*ATREADY: 1\r\n/);
    assert.match(first, /\+CPIN: READY\r\n/);
    assert.match(first, /AT\r\r\nOK\r\n$/, 'echo on after boot (V.25ter E1 default)');
  });

  it('power-off: PWRKEY low ≥ 2.5 s takes STATUS low; the UART falls silent', () => {
    const t = bootedTerminal();
    t.press(3_000);
    t.clock.advance(1_500);
    assert.equal(t.pins.level(PIN.status), 0);
    assert.equal(t.send('AT'), '');
  });

  // Command, what the manual shows the module answer (echo off).
  const TABLE: [string, RegExp][] = [
    ['AT', /^\r\nOK\r\n$/],
    ['AT+CMEE=1', /^\r\nOK\r\n$/],
    ['AT+CPIN?', /^\r\n\+CPIN: READY\r\n\r\nOK\r\n$/], // TS 27.007 §8.3
    ['AT+CEREG?', /^\r\n\+CEREG: \d,[0-5]\r\n\r\nOK\r\n$/], // §10.1.22 read: <n>,<stat>
    ['AT+CSQ', /^\r\n\+CSQ: \d{1,2},\d{1,2}\r\n\r\nOK\r\n$/], // §8.5
    ['AT+CGDCONT=1,"IP","iot.example"', /^\r\nOK\r\n$/], // §10.1.1
    ['AT+CSSLCFG="authmode",0,1', /^\r\nOK\r\n$/], // A76XX §19
    ['AT+CMQTTSTART', /^\r\nOK\r\n\r\n\+CMQTTSTART: 0\r\n$/], // A76XX §18: OK, then the result URC
    ['AT+CMQTTSTART', /^\r\nERROR\r\n$/], // already started
    ['AT+CMQTTACCQ=0,"meter",0', /^\r\nOK\r\n$/],
    ['AT+CMQTTACCQ=0,"meter",0', /^\r\n\+CMQTTACCQ: 0,19\r\n\r\nERROR\r\n$/], // client is used
    ['AT+CMQTTPUB=0,1,60', /^\r\n\+CMQTTPUB: 0,11\r\n\r\nERROR\r\n$/], // no connection
    ['AT+CBOGUS', /^\r\nERROR\r\n$/],
  ];

  for (const [command, answer] of TABLE) {
    const again =
      TABLE.filter(([c]) => c === command).length > 1 &&
      TABLE.findIndex(([c]) => c === command) !== TABLE.findIndex(([c, a]) => c === command && a === answer);
    it(`answers ${command}${again ? ' a second time' : ''} as the manual shows`, () => {
      const t = bootedTerminal();
      // Commands whose answer depends on a previous one run after it in the same session.
      for (const [earlier] of TABLE.slice(
        0,
        TABLE.findIndex(([c, a]) => c === command && a === answer),
      )) {
        if (earlier.startsWith('AT+CMQTT') || earlier.startsWith('AT+CGDCONT')) t.send(earlier);
      }
      assert.match(t.send(command), answer);
    });
  }

  it('data commands prompt with > and take exactly the announced bytes, whatever they are', () => {
    const t = bootedTerminal();
    assert.equal(t.send('AT+CMQTTTOPIC=0,4'), '\r\n>');
    assert.equal(t.send(Uint8Array.of(0x61, 13, 10, 0x62)), '\r\nOK\r\n');
  });

  it('no SIM: +CPIN? is +CME ERROR: 10; denied registration is <stat> 3; no coverage <stat> 2 and +CSQ 99', () => {
    const t = bootedTerminal();
    t.twin.faults.noSim = true;
    assert.equal(t.send('AT+CPIN?'), '\r\n+CME ERROR: 10\r\n');
    t.twin.faults.noSim = false;
    t.twin.faults.registrationDenied = true;
    assert.match(t.send('AT+CEREG?'), /\+CEREG: 1,3/);
    t.twin.faults.registrationDenied = false;
    t.twin.faults.noCoverage = true;
    assert.match(t.send('AT+CEREG?'), /\+CEREG: 1,2/);
    assert.match(t.send('AT+CSQ'), /\+CSQ: 99,99/);
  });

  it('a call is RING then +CLIP: "<number>",145 (TS 27.007 §7.18); a text is +CMT with its length after AT+CSDH=1', () => {
    const t = bootedTerminal();
    let out = '';
    t.twin.call('+447700900100');
    out = t.send('ATH');
    assert.match(out, /RING\r\n\r\n\+CLIP: "\+447700900100",145/);
    t.send('AT+CSDH=1');
    t.twin.sms('+447700900100', 'HELLO');
    assert.match(t.send('AT'), /\+CMT: "\+447700900100","","[^"]+",145,4,0,0,"[^"]+",145,5\r\nHELLO\r\n/);
  });
});

describe('driver tables against the manual', () => {
  it('+CME ERROR codes (TS 27.007 §9.2.1)', () => {
    assert.equal(driver.CME_NAMES[10], 'SIM not inserted');
    assert.equal(driver.CME_NAMES[11], 'SIM PIN required');
    assert.equal(driver.CME_NAMES[30], 'no network service');
  });

  it('MQTT result codes (A76XX manual §18.3)', () => {
    assert.equal(driver.MQTT_RESULT_NAMES[11], 'no connection');
    assert.equal(driver.MQTT_RESULT_NAMES[19], 'client is used');
    assert.equal(driver.MQTT_RESULT_NAMES[32], 'handshake fail');
    assert.equal(driver.MQTT_RESULT_NAMES[33], 'certificate not set');
  });

  it('+CEREG <stat> values (TS 27.007 §10.1.22)', () => {
    assert.deepEqual(driver.RegistrationStatus, {
      NOT_SEARCHING: 0,
      HOME: 1,
      SEARCHING: 2,
      DENIED: 3,
      UNKNOWN: 4,
      ROAMING: 5,
    });
  });
});
