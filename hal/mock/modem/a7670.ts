// A virtual SIMCom A7670E on a virtual UART, written from the A76XX Series AT Command Manual V1.09
// (§18 MQTT, §19 SSL) and 3GPP TS 27.007 / 27.005, not from the driver: it answers the command set a
// host uses to reach an MQTT broker over TLS, bridged to the VirtualBroker, and raises RING/+CLIP
// and +CMT for calls and texts to its number. PWRKEY, STATUS, DTR and RI are virtual pins. Fault
// switches make it fail the ways a real module in the field does. Runs under Node and XS.
import type { Clock, Timers } from '../../clock';
import type { MqttLink } from '../../mqtt';
import type { VirtualPins } from '../bus';
import type { VirtualBroker, VirtualMqttLink } from '../mqtt';
import type { VirtualSerialDevice } from '../serial';

export interface VirtualA7670Options {
  clock: Clock;
  timers: Timers;
  pins: VirtualPins;
  pinMap: { pwrkey: number; status: number; dtr?: number; ri?: number };
  broker: VirtualBroker;
  /** The CA (PEM bytes) the broker's certificate chains to: a connect verified against another fails. */
  brokerCa?: Uint8Array;
  /** From PWRKEY release to STATUS high, and from then to the UART answering, ms. */
  statusMs?: number;
  bootMs?: number;
  /** From power-on to registration on the network, ms. */
  registerMs?: number;
  /**
   * The network's time (NITZ, TS 24.008 §9.2.15a) sent on registration: the true UTC (default the
   * test's clock) and the cell's time zone in quarters of an hour east of UTC.
   */
  network?: { now?: () => number; zoneQuarters?: number };
}

export interface ModemFaults {
  /** No SIM in the holder: +CPIN? answers +CME ERROR: 10. */
  noSim: boolean;
  /** No cell in reach: +CEREG stays 2 (searching), +CSQ 99. */
  noCoverage: boolean;
  /** The network refuses the SIM: +CEREG 3. */
  registrationDenied: boolean;
  /** The next AT+CMQTTPUB loses the connection before the broker has the message. */
  dropOnPublish: boolean;
  /** Lines of the next responses sent with bytes of line noise in them. */
  garbleLines: number;
  /** Next responses cut off halfway, their line end lost. */
  truncateLines: number;
  /** URCs sent in front of the next response (registration changes and a downlink). */
  urcBurst: number;
  /** The network never sends its time (many networks do not): the module's clock stays its own count. */
  noNitz: boolean;
}

type Power = 'off' | 'booting' | 'on';

const CRLF = '\r\n';

function bytesOf(text: string): number[] {
  const out: number[] = [];
  for (let i = 0; i < text.length; i++) out.push(text.charCodeAt(i) & 0xff);
  return out;
}

function textOf(bytes: readonly number[]): string {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return s;
}

function quotedArgs(args: string): string[] {
  const out: string[] = [];
  const re = /"([^"]*)"/g;
  for (let m = re.exec(args); m; m = re.exec(args)) out.push(m[1]);
  return out;
}

export class VirtualA7670 implements VirtualSerialDevice {
  readonly faults: ModemFaults = {
    noSim: false,
    noCoverage: false,
    registrationDenied: false,
    dropOnPublish: false,
    garbleLines: 0,
    truncateLines: 0,
    urcBurst: 0,
    noNitz: false,
  };
  /** Every command line the host sent, in order (tests; the recorded AT session). */
  readonly commands: string[] = [];
  /** Everything said on the line, both ways, as text (`>` host, `<` module). */
  readonly transcript: string[] = [];
  /** Milliseconds spent per state, for the duty cycle: off, awake (idle/active), asleep. */
  readonly stateMs: Record<'off' | 'awake' | 'asleep', number> = { off: 0, awake: 0, asleep: 0 };
  readonly #o: Required<Omit<VirtualA7670Options, 'brokerCa' | 'network'>> &
    Pick<VirtualA7670Options, 'brokerCa' | 'network'>;
  #line: { send(bytes: Uint8Array): void } | undefined;
  #power: Power = 'off';
  #pressedAt: number | undefined;
  #poweredAt = 0;
  #echo = true;
  #input: number[] = [];
  #data: { length: number; bytes: number[]; then: (bytes: number[]) => void } | undefined;
  #outbox: number[] = [];
  #sleepEnabled = false;
  #csdh = false;
  #dtrHigh = false;
  #stateSince = 0;
  // Network and services.
  #apn = '';
  readonly #files = new Map<string, Uint8Array>();
  readonly #ssl = { version: -1, authmode: 0, cacert: '' };
  #mqttStarted = false;
  #client: { id: string; tls: boolean; ssl: boolean } | undefined;
  #link: MqttLink | undefined;
  #topic = '';
  #payload: number[] = [];
  #ringing: { number: string; rings: number } | undefined;
  // The module's clock: UTC at monotonic #rtcAt, and its zone. At power-on it counts from
  // 70/01/01,00:00:00+00 (the twin's choice: without a backup supply the RTC keeps nothing).
  #rtcUtc = 0;
  #rtcAt = 0;
  #zone = 0;
  #ctzu = false;
  #ctzr = false;

  constructor(options: VirtualA7670Options) {
    this.#o = { statusMs: 500, bootMs: 3_000, registerMs: 4_000, ...options };
    const { pins, pinMap } = options;
    pins.drive(pinMap.status, 0);
    if (pinMap.ri !== undefined) pins.drive(pinMap.ri, 1);
    pins.observe(pinMap.pwrkey, (level) => this.#pwrkey(level));
    if (pinMap.dtr !== undefined) {
      const dtr = pinMap.dtr;
      pins.observe(dtr, (level) => this.#dtr(level));
    }
  }

  get #clock(): number {
    return this.#o.clock.monotonic();
  }

  get power(): Power {
    return this.#power;
  }

  /** Whether the module sleeps (AT+CSCLK=1 and DTR high). */
  get asleep(): boolean {
    return this.#power === 'on' && this.#sleepEnabled && this.#dtrHigh;
  }

  get mqttConnected(): boolean {
    return this.#link?.connected ?? false;
  }

  // ---- the UART ----

  receive(bytes: Uint8Array, line: { send(bytes: Uint8Array): void }): void {
    this.#line = line;
    if (this.#power !== 'on') return; // a module that is off or booting hears nothing
    for (const b of bytes) {
      if (this.#data) {
        this.#data.bytes.push(b);
        if (this.#data.bytes.length === this.#data.length) {
          const data = this.#data;
          this.#data = undefined;
          this.transcript.push(`> [${data.length} bytes]`);
          data.then(data.bytes);
        }
        continue;
      }
      if (b === 13) {
        const command = textOf(this.#input);
        this.#input = [];
        if (this.#echo) this.#send(`${command}\r`);
        if (command.length > 0) this.#command(command);
        continue;
      }
      if (b !== 10) this.#input.push(b);
    }
  }

  // ---- what the test does to the world ----

  /** A call from `number`: RING and +CLIP every 3 s until the host hangs up (ATH), five rings at most. */
  call(number: string): void {
    if (this.#power !== 'on') return;
    this.#ringing = { number, rings: 0 };
    const ring = () => {
      const r = this.#ringing;
      if (!r || r.number !== number || r.rings >= 5 || this.#power !== 'on') {
        if (r?.number === number) this.#ringing = undefined;
        return;
      }
      r.rings++;
      this.#urc(`${CRLF}RING${CRLF}${CRLF}+CLIP: "${number}",145,,,,0${CRLF}`);
      this.#o.timers.setTimeout(ring, 3_000);
    };
    ring();
  }

  /** A text from `number` (text mode, +CNMI=2,2: straight to the UART as +CMT). */
  sms(number: string, text: string): void {
    if (this.#power !== 'on') return;
    // With AT+CSDH=1 the header carries <tooa>,<fo>,<pid>,<dcs>,<sca>,<tosca>,<length> (TS 27.005 §3.4.1).
    const details = this.#csdh ? `,145,4,0,0,"+447785016005",145,${text.length}` : '';
    this.#urc(`${CRLF}+CMT: "${number}","","26/01/05,08:00:00+00"${details}${CRLF}${text}${CRLF}`);
  }

  /** The broker or the network drops the MQTT connection. */
  dropConnection(cause = 1): void {
    if (!this.#link) return;
    this.#closeLink();
    this.#urc(`${CRLF}+CMQTTCONNLOST: 0,${cause}${CRLF}`);
  }

  // ---- pins ----

  #pwrkey(level: 0 | 1): void {
    if (level === 0) {
      this.#pressedAt = this.#clock;
      return;
    }
    if (this.#pressedAt === undefined) return;
    const held = this.#clock - this.#pressedAt;
    this.#pressedAt = undefined;
    // Hardware design: Ton ≥ 50 ms switches on; Toff ≥ 2.5 s switches off.
    if (this.#power === 'off' && held >= 50) this.#powerOn();
    else if (this.#power === 'on' && held >= 2_500) this.#powerOff();
  }

  #dtr(level: 0 | 1): void {
    this.#account();
    this.#dtrHigh = level === 1;
    if (!this.#dtrHigh) this.#flush();
  }

  #powerOn(): void {
    this.#account();
    this.#power = 'booting';
    const { timers, pins, pinMap } = this.#o;
    timers.setTimeout(() => {
      pins.drive(pinMap.status, 1);
      timers.setTimeout(() => {
        this.#power = 'on';
        this.#poweredAt = this.#clock;
        this.#rtcUtc = 0;
        this.#rtcAt = this.#clock;
        this.#zone = 0;
        this.#ctzu = false;
        this.#ctzr = false;
        timers.setTimeout(() => this.#nitz(), this.#o.registerMs);
        this.#echo = true;
        this.#sleepEnabled = false;
        this.#urc(`${CRLF}*ATREADY: 1${CRLF}`);
        this.#urc(`${CRLF}+CPIN: ${this.faults.noSim ? 'SIM REMOVED' : 'READY'}${CRLF}`);
        this.#urc(`${CRLF}SMS DONE${CRLF}${CRLF}PB DONE${CRLF}`);
      }, this.#o.bootMs);
    }, this.#o.statusMs);
  }

  #powerOff(): void {
    this.#account();
    this.#closeLink();
    this.#power = 'off';
    this.#mqttStarted = false;
    this.#client = undefined;
    this.#outbox = [];
    this.#data = undefined;
    this.#input = [];
    this.#ringing = undefined;
    this.#o.timers.setTimeout(() => this.#o.pins.drive(this.#o.pinMap.status, 0), 1_000);
  }

  #account(): void {
    const now = this.#clock;
    const state = this.#power === 'off' ? 'off' : this.asleep ? 'asleep' : 'awake';
    this.stateMs[state] += now - this.#stateSince;
    this.#stateSince = now;
  }

  /** Closes the books up to now and returns the time per state. */
  duty(): Record<'off' | 'awake' | 'asleep', number> {
    this.#account();
    return { ...this.stateMs };
  }

  // ---- output ----

  #send(text: string): void {
    this.transcript.push(`< ${JSON.stringify(text)}`);
    for (const b of bytesOf(text)) this.#outbox.push(b);
    this.#o.timers.setTimeout(() => this.#flush(), 0);
  }

  /** A URC: while the UART sleeps it waits, and RI pulses low for 120 ms to wake the host. */
  #urc(text: string): void {
    this.#send(text);
    const ri = this.#o.pinMap.ri;
    if (this.asleep && ri !== undefined) {
      this.#o.pins.drive(ri, 0);
      this.#o.timers.setTimeout(() => this.#o.pins.drive(ri, 1), 120);
    }
  }

  #flush(): void {
    if (this.asleep || !this.#line || this.#outbox.length === 0) return;
    const bytes = Uint8Array.from(this.#outbox);
    this.#outbox = [];
    this.#line.send(bytes);
  }

  /** A response: information lines, then the result; faults may bend it on the way out. */
  #respond(lines: string[], result: string): void {
    const f = this.faults;
    let burst = '';
    while (f.urcBurst > 0) {
      f.urcBurst--;
      burst += `${CRLF}+CEREG: 1${CRLF}`;
    }
    if (burst) this.#urc(burst);
    let text = '';
    for (const l of lines) text += `${CRLF}${l}${CRLF}`;
    text += `${CRLF}${result}${CRLF}`;
    if (f.garbleLines > 0) {
      f.garbleLines--;
      const middle = Math.floor(text.length / 2);
      text = `${text.slice(0, middle)}\u00ff\u0007\u00fe${text.slice(middle)}`;
    } else if (f.truncateLines > 0) {
      f.truncateLines--;
      text = text.slice(0, Math.max(3, Math.floor(text.length / 2)));
    }
    this.#send(text);
  }

  #ok(...lines: string[]): void {
    this.#respond(lines, 'OK');
  }

  #error(): void {
    this.#respond([], 'ERROR');
  }

  #cme(code: number): void {
    this.#respond([], `+CME ERROR: ${code}`);
  }

  /** `>` then exactly `length` bytes; the handler answers once they are in. */
  #prompt(length: number, then: (bytes: number[]) => void): void {
    this.#send(`${CRLF}>`);
    this.#data = { length, bytes: [], then };
  }

  // ---- the network ----

  /** On registration the network may send its time: the clock is set (+CTZU=1) and the zone reported (+CTZR=1). */
  #nitz(): void {
    if (this.#power !== 'on' || this.faults.noNitz || this.#registration() !== 1) return;
    const network = this.#o.network;
    const zone = network?.zoneQuarters ?? 0;
    if (this.#ctzu) {
      this.#rtcUtc = network?.now?.() ?? this.#o.clock.now();
      this.#rtcAt = this.#clock;
      this.#zone = zone;
    }
    if (this.#ctzr)
      this.#urc(`${CRLF}+CTZV: ${zone < 0 ? '-' : '+'}${String(Math.abs(zone)).padStart(2, '0')}${CRLF}`);
  }

  /** +CCLK's "yy/MM/dd,hh:mm:ss±zz": the module's clock in local time (TS 27.007 §8.15). */
  #cclk(): string {
    const local = new Date(this.#rtcUtc + (this.#clock - this.#rtcAt) + this.#zone * 15 * 60_000);
    const two = (n: number) => String(n).padStart(2, '0');
    const zone = `${this.#zone < 0 ? '-' : '+'}${two(Math.abs(this.#zone))}`;
    return `+CCLK: "${two(local.getUTCFullYear() % 100)}/${two(local.getUTCMonth() + 1)}/${two(local.getUTCDate())},${two(local.getUTCHours())}:${two(local.getUTCMinutes())}:${two(local.getUTCSeconds())}${zone}"`;
  }

  #registration(): number {
    const f = this.faults;
    if (f.noSim) return 0;
    if (f.registrationDenied) return 3;
    if (f.noCoverage) return 2;
    return this.#clock - this.#poweredAt >= this.#o.registerMs ? 1 : 2;
  }

  // ---- commands ----

  #command(command: string): void {
    this.commands.push(command);
    this.transcript.push(`> ${command}`);
    const upper = command.toUpperCase();
    if (!upper.startsWith('AT')) {
      this.#error();
      return;
    }
    const body = command.slice(2);
    const eq = body.indexOf('=');
    const name = (eq < 0 ? body : body.slice(0, eq)).toUpperCase();
    const args = eq < 0 ? '' : body.slice(eq + 1);
    const numbers = args.split(',').map((a) => Number(a));
    switch (name) {
      case '':
        this.#ok();
        return;
      case 'E0':
        this.#echo = false;
        this.#ok();
        return;
      case 'E1':
        this.#echo = true;
        this.#ok();
        return;
      case 'H':
        this.#ringing = undefined;
        this.#ok();
        return;
      case '+CSDH':
        this.#csdh = numbers[0] === 1;
        this.#ok();
        return;
      case '+CMEE':
      case '+CLIP':
      case '+CMGF':
      case '+CNMI':
      case '+CEREG':
        this.#ok();
        return;
      case '+CTZU':
        this.#ctzu = numbers[0] === 1;
        this.#ok();
        return;
      case '+CTZR':
        this.#ctzr = numbers[0] === 1;
        this.#ok();
        return;
      case '+CCLK?':
        this.#ok(this.#cclk());
        return;
      case '+CPIN?':
        if (this.faults.noSim) this.#cme(10);
        else this.#ok('+CPIN: READY');
        return;
      case '+CEREG?':
        this.#ok(`+CEREG: 1,${this.#registration()}`);
        return;
      case '+CSQ':
        this.#ok(this.faults.noCoverage || this.faults.noSim ? '+CSQ: 99,99' : '+CSQ: 21,99');
        return;
      case '+CGDCONT':
        this.#apn = quotedArgs(args)[1] ?? '';
        this.#ok();
        return;
      case '+CSCLK':
        this.#account();
        this.#sleepEnabled = numbers[0] === 1;
        this.#ok();
        return;
      case '+CCERTLIST':
        this.#ok(...[...this.#files.keys()].map((file) => `+CCERTLIST: "${file}"`));
        return;
      case '+CCERTDOWN': {
        const file = quotedArgs(args)[0];
        const length = numbers[numbers.length - 1];
        if (!file || !(length > 0 && length <= 10_240)) {
          this.#error();
          return;
        }
        this.#prompt(length, (bytes) => {
          this.#files.set(file, Uint8Array.from(bytes));
          this.#ok();
        });
        return;
      }
      case '+CSSLCFG': {
        const [option, file] = quotedArgs(args);
        const value = numbers[2];
        if (option === 'sslversion') this.#ssl.version = value;
        else if (option === 'authmode') this.#ssl.authmode = value;
        else if (option === 'cacert' && file) this.#ssl.cacert = file;
        else {
          this.#error();
          return;
        }
        this.#ok();
        return;
      }
      default:
        this.#mqtt(name, args, numbers);
    }
  }

  #mqtt(name: string, args: string, numbers: number[]): void {
    switch (name) {
      case '+CMQTTSTART':
        if (this.#mqttStarted) {
          this.#error();
          return;
        }
        this.#ok();
        // The PDP context needs the operator's APN (AT+CGDCONT) before the service can open it.
        if (this.#registration() === 1 && this.#apn.length > 0) {
          this.#mqttStarted = true;
          this.#send(`${CRLF}+CMQTTSTART: 0${CRLF}`);
        } else this.#send(`${CRLF}+CMQTTSTART: 7${CRLF}`); // network open fail
        return;
      case '+CMQTTSTOP':
        this.#closeLink();
        this.#mqttStarted = false;
        this.#ok();
        this.#send(`${CRLF}+CMQTTSTOP: 0${CRLF}`);
        return;
      case '+CMQTTACCQ': {
        if (this.#client) {
          this.#respond(['+CMQTTACCQ: 0,19'], 'ERROR'); // client is used
          return;
        }
        this.#client = { id: quotedArgs(args)[0] ?? '', tls: numbers[numbers.length - 1] === 1, ssl: false };
        this.#ok();
        return;
      }
      case '+CMQTTREL':
        this.#client = undefined;
        this.#ok();
        return;
      case '+CMQTTSSLCFG':
        if (this.#client) this.#client.ssl = true;
        this.#ok();
        return;
      case '+CMQTTCONNECT':
        this.#connect(args);
        return;
      case '+CMQTTDISC':
        this.#closeLink();
        this.#ok();
        this.#send(`${CRLF}+CMQTTDISC: 0,0${CRLF}`);
        return;
      case '+CMQTTSUB': {
        const length = numbers[1];
        if (!this.#link?.connected) {
          this.#respond(['+CMQTTSUB: 0,11'], 'ERROR');
          return;
        }
        this.#prompt(length, (bytes) => {
          this.#link?.subscribe(textOf(bytes));
          this.#ok();
          this.#send(`${CRLF}+CMQTTSUB: 0,0${CRLF}`);
        });
        return;
      }
      case '+CMQTTTOPIC':
        this.#prompt(numbers[1], (bytes) => {
          this.#topic = textOf(bytes);
          this.#ok();
        });
        return;
      case '+CMQTTPAYLOAD':
        if (!(numbers[1] >= 0 && numbers[1] <= 10_240)) {
          this.#error();
          return;
        }
        this.#prompt(numbers[1], (bytes) => {
          this.#payload = bytes;
          this.#ok();
        });
        return;
      case '+CMQTTPUB':
        this.#publish();
        return;
      default:
        this.#error();
    }
  }

  /** The broker endpoint of the last AT+CMQTTCONNECT ("tcp://host:port"), for tests. */
  connectedTo: { host: string; port: number } | undefined;

  #connect(args = ''): void {
    const client = this.#client;
    if (!this.#mqttStarted || !client) {
      this.#respond(['+CMQTTCONNECT: 0,9'], 'ERROR'); // network not opened
      return;
    }
    this.#ok();
    if (this.#registration() !== 1) {
      this.#send(`${CRLF}+CMQTTCONNECT: 0,3${CRLF}`); // socket connect fail
      return;
    }
    const ca = this.#o.brokerCa;
    if (ca) {
      // The broker speaks TLS only: the client must be a TLS client verifying against its CA.
      const file = this.#files.get(this.#ssl.cacert);
      const same = file !== undefined && file.length === ca.length && file.every((b, i) => b === ca[i]);
      if (!client.tls || !client.ssl) {
        this.#send(`${CRLF}+CMQTTCONNECT: 0,26${CRLF}`); // socket closed by server
        return;
      }
      if (this.#ssl.authmode !== 1 || !same) {
        this.#send(`${CRLF}+CMQTTCONNECT: 0,${file ? 32 : 33}${CRLF}`); // handshake fail / no certificate
        return;
      }
    }
    const link = this.#o.broker.link();
    // The endpoint the command names: a broker not answering there is a socket that does not connect.
    const url = /"tcp:\/\/([^":]+):(\d+)"/.exec(args);
    if (url) {
      const endpoint = { host: url[1], port: Number(url[2]) };
      this.connectedTo = endpoint;
      // A stand-in network bridged to a real broker (integration tests) has no endpoints to choose.
      const broker = this.#o.broker as Partial<VirtualBroker>;
      (link as Partial<VirtualMqttLink>).setEndpoint?.(endpoint);
      if (broker.answers && !broker.answers(endpoint)) {
        this.#send(`${CRLF}+CMQTTCONNECT: 0,3${CRLF}`); // socket connect fail
        return;
      }
    }
    this.#link = link;
    link.open({
      onConnect: () => this.#send(`${CRLF}+CMQTTCONNECT: 0,0${CRLF}`),
      onDisconnect: () => {},
      onMessage: (topic, payload) => this.#deliver(topic, payload),
    });
  }

  #publish(): void {
    const link = this.#link;
    if (!link?.connected) {
      this.#respond(['+CMQTTPUB: 0,11'], 'ERROR'); // no connection
      return;
    }
    if (this.faults.dropOnPublish) {
      this.faults.dropOnPublish = false;
      this.#ok();
      this.#closeLink();
      this.#urc(`${CRLF}+CMQTTCONNLOST: 0,1${CRLF}`);
      this.#send(`${CRLF}+CMQTTPUB: 0,11${CRLF}`);
      return;
    }
    link.publish(this.#topic, Uint8Array.from(this.#payload));
    this.#ok();
    this.#send(`${CRLF}+CMQTTPUB: 0,0${CRLF}`);
  }

  /** A message from the broker: §18.2 RX URCs, topic and payload counted in bytes. */
  #deliver(topic: string, payload: Uint8Array): void {
    let header = `${CRLF}+CMQTTRXSTART: 0,${topic.length},${payload.length}${CRLF}`;
    header += `+CMQTTRXTOPIC: 0,${topic.length}${CRLF}${topic}${CRLF}`;
    header += `+CMQTTRXPAYLOAD: 0,${payload.length}${CRLF}`;
    this.#urc(header);
    for (const b of payload) this.#outbox.push(b);
    this.transcript.push(`< [${payload.length} payload bytes]`);
    this.#send(`${CRLF}+CMQTTRXEND: 0${CRLF}`);
  }

  #closeLink(): void {
    const link = this.#link;
    this.#link = undefined;
    link?.close();
  }
}
