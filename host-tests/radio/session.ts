// A recorded AT session with an A7670E (the module's side as it came off the UART: echo still on
// at first, boot URCs, URCs in the middle of responses, a binary MQTT downlink, a call and a text,
// a lost connection), replayed to the driver step by step. Runs under Node and XS, so the same
// session can be parsed on both and compared. XS-safe: no Node module.
import { A7670, type Urc } from '../../drivers/radio/a7670';
import { VirtualPins } from '../../hal/mock/bus';
import { VirtualClock } from '../../hal/mock/clock';
import { VirtualSerialPort } from '../../hal/mock/serial';

interface Step {
  /** What the host sends: a command line (CR added) or a count of data bytes after a prompt. */
  expect: string | number;
  /** The module's answer, as recorded. */
  reply: string;
}

const DOWN = 'parklink/meters/7/down';
/** The downlink's bytes: a sealed frame's head, CR LF and '>' among them. */
export const DOWNLINK_PAYLOAD: readonly number[] = Object.freeze([
  0x01, 0x82, 0x00, 0x00, 0x00, 0x07, 0x0d, 0x0a, 0x3e, 0x00, 0xff, 0x4f, 0x4b, 0x0d, 0x0a, 0x7e,
]);

function chars(bytes: readonly number[]): string {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return s;
}

export const SESSION: readonly Step[] = Object.freeze([
  { expect: 'AT', reply: 'AT\r\r\nOK\r\n' },
  { expect: 'ATE0', reply: 'ATE0\r\r\nOK\r\n' },
  { expect: 'AT+CMEE=1', reply: '\r\nOK\r\n' },
  { expect: 'AT+CPIN?', reply: '\r\n+CPIN: READY\r\n\r\nOK\r\n' },
  { expect: 'AT+CEREG?', reply: '\r\n+CEREG: 0,2\r\n\r\nOK\r\n' },
  { expect: 'AT+CEREG?', reply: '\r\n+CEREG: 1\r\n\r\n+CEREG: 0,1\r\n\r\nOK\r\n' },
  { expect: 'AT+CSQ', reply: '\r\n+CSQ: 18,99\r\n\r\nOK\r\n' },
  { expect: 'AT+CGDCONT=1,"IP","iot.example"', reply: '\r\nOK\r\n' },
  { expect: 'AT+CMQTTSTART', reply: '\r\nOK\r\n\r\n+CMQTTSTART: 0\r\n' },
  { expect: 'AT+CMQTTACCQ=0,"meter-7",1', reply: '\r\nOK\r\n' },
  {
    expect: 'AT+CMQTTCONNECT=0,"tcp://mqtt.example:8883",120,1',
    reply: '\r\nOK\r\n\r\n+CMQTTCONNECT: 0,0\r\n',
  },
  { expect: `AT+CMQTTSUB=0,${DOWN.length},1`, reply: '\r\n>' },
  { expect: DOWN.length, reply: '\r\nOK\r\n\r\n+CMQTTSUB: 0,0\r\n' },
  { expect: 'AT+CMQTTTOPIC=0,20', reply: '\r\n>' },
  { expect: 20, reply: '\r\nOK\r\n' },
  { expect: 'AT+CMQTTPAYLOAD=0,8', reply: '\r\n>' },
  // The downlink arrives while the payload is being confirmed: its URCs come before the OK.
  {
    expect: 8,
    reply:
      `\r\n+CMQTTRXSTART: 0,${DOWN.length},${DOWNLINK_PAYLOAD.length}\r\n` +
      `+CMQTTRXTOPIC: 0,${DOWN.length}\r\n${DOWN}\r\n` +
      `+CMQTTRXPAYLOAD: 0,${DOWNLINK_PAYLOAD.length}\r\n${chars(DOWNLINK_PAYLOAD)}\r\n` +
      '+CMQTTRXEND: 0\r\n\r\nOK\r\n',
  },
  { expect: 'AT+CMQTTPUB=0,1,60', reply: '\r\nOK\r\n\r\n+CEREG: 1\r\n\r\n+CMQTTPUB: 0,0\r\n' },
  {
    expect: 'AT+CSQ',
    reply:
      '\r\nRING\r\n\r\n+CLIP: "+447700900100",145,,,,0\r\n\r\n+CSQ: 17,99\r\n\r\nOK\r\n' +
      '\r\n+CMT: "+447700900100","","26/03/02,07:31:00+00",145,4,0,0,"+447785016005",145,7\r\nCALL IN\r\n',
  },
  { expect: 'AT+CPIN?', reply: '\r\n+CME ERROR: 10\r\n' },
  { expect: 'AT+CMQTTDISC=0,60', reply: '\r\n+CMQTTCONNLOST: 0,1\r\n\r\n+CMQTTDISC: 0,11\r\n\r\nERROR\r\n' },
]);

export interface SessionResult {
  commands: string[];
  results: string[];
  urcs: string[];
  downlink: number[];
  garbled: number;
}

/** Replays SESSION to a fresh driver and returns what it made of it. */
export function replaySession(): SessionResult {
  const clock = new VirtualClock('2026-03-02T07:30:00Z');
  const pins = new VirtualPins();
  const serial = new VirtualSerialPort();
  const commands: string[] = [];
  let step = 0;
  let pending: number[] = [];
  serial.attach(1, {
    receive(bytes, line) {
      for (const b of bytes) pending.push(b);
      for (;;) {
        const s = SESSION[step];
        if (!s) return;
        let take: number;
        if (typeof s.expect === 'number') {
          if (pending.length < s.expect) return;
          take = s.expect;
        } else {
          const cr = pending.indexOf(13);
          if (cr < 0) return;
          take = cr + 1;
          commands.push(chars(pending.slice(0, cr)));
        }
        pending = pending.slice(take);
        step++;
        const reply = s.reply;
        clock.setTimeout(() => {
          const out = new Uint8Array(reply.length);
          for (let i = 0; i < reply.length; i++) out[i] = reply.charCodeAt(i);
          line.send(out);
        }, 5);
      }
    },
  });
  pins.drive(3, 1); // STATUS high: the module is on
  const urcs: string[] = [];
  let downlink: number[] = [];
  const modem = new A7670({
    serial: { io: serial.io, port: 1 },
    pwrkey: { io: pins.io, pin: 2 },
    status: { io: pins.io, pin: 3 },
    timers: clock,
    onUrc(u: Urc) {
      if (u.kind === 'mqtt-message') {
        downlink = [...u.payload];
        urcs.push(`mqtt-message ${u.topic} ${u.payload.length}`);
      } else if (u.kind === 'caller') urcs.push(`caller ${u.number}`);
      else if (u.kind === 'sms') urcs.push(`sms ${u.sender} ${u.text}`);
      else if (u.kind === 'registration') urcs.push(`registration ${u.stat}`);
      else if (u.kind === 'mqtt-lost') urcs.push(`mqtt-lost ${u.cause}`);
      else urcs.push(u.kind);
    },
  });
  const results: string[] = [];
  const topic = Uint8Array.from('parklink/meters/7/up', (c) => c.charCodeAt(0));
  const payload = Uint8Array.of(1, 4, 0, 0, 13, 10, 62, 255);
  const down = Uint8Array.from(DOWN, (c) => c.charCodeAt(0));
  type Verb = (done: (error: Error | undefined, value?: unknown) => void) => void;
  const at =
    (command: string, options = {}): Verb =>
    (done) =>
      modem.command(command, options, (e) => done(e));
  const script: [string, Verb][] = [
    ['power', (d) => modem.powerOn(d)],
    ['sim', (d) => modem.simState(d)],
    ['cereg', (d) => modem.registration(d)],
    ['cereg', (d) => modem.registration(d)],
    ['csq', (d) => modem.signalQuality(d)],
    ['pdp', at('AT+CGDCONT=1,"IP","iot.example"')],
    ['start', at('AT+CMQTTSTART', { final: '+CMQTTSTART: ' })],
    ['accq', at('AT+CMQTTACCQ=0,"meter-7",1')],
    ['connect', at('AT+CMQTTCONNECT=0,"tcp://mqtt.example:8883",120,1', { final: '+CMQTTCONNECT: ' })],
    ['sub', at(`AT+CMQTTSUB=0,${DOWN.length},1`, { data: down, final: '+CMQTTSUB: ' })],
    ['topic', at('AT+CMQTTTOPIC=0,20', { data: topic })],
    ['payload', at('AT+CMQTTPAYLOAD=0,8', { data: payload })],
    ['pub', at('AT+CMQTTPUB=0,1,60', { final: '+CMQTTPUB: ' })],
    ['csq', (d) => modem.signalQuality(d)],
    ['sim', (d) => modem.simState(d)],
    ['disc', at('AT+CMQTTDISC=0,60', { final: '+CMQTTDISC: ' })],
  ];
  const run = (i: number): void => {
    const entry = script[i];
    if (!entry) return;
    entry[1]((error, value) => {
      results.push(
        error
          ? `${entry[0]}: ${error.name} ${error.message}`
          : `${entry[0]}: ${JSON.stringify(value ?? 'ok')}`,
      );
      run(i + 1);
    });
  };
  run(0);
  for (let i = 0; i < 200 && results.length < 16; i++) clock.advance(50);
  return { commands, results, urcs, downlink, garbled: modem.garbled };
}
