// SIMCom A7670E (LTE Cat-1 with 2G fallback, embedded MQTT and TLS) on its main UART, after the
// "A76XX Series AT Command Manual V1.09" (sections cited per command) and 3GPP TS 27.007 / 27.005
// for the standard commands. PWRKEY and STATUS per the A7670 hardware design's power-on/off timing.
// Everything is callback driven on the board's timers: a command is written, its lines collected
// until the final result, while unsolicited result codes (URCs) arriving in between are told apart
// and handed to `onUrc`. Binary payloads go after the module's `>` prompt; received MQTT topics and
// payloads are read by byte count (they may hold CR, LF or any byte).
import type { TimerHandle, Timers } from '../../hal/clock';
import type { Digital, DigitalOptions, IOClass, Serial, SerialOptions } from '../../hal/io';

/** A +CME ERROR result (TS 27.007 §9.2): the code and its name from the manual's table. */
export class CmeError extends Error {
  override readonly name = 'CmeError';
  readonly code: number;
  constructor(command: string, code: number) {
    super(`${command}: +CME ERROR ${code} (${CME_NAMES[code] ?? 'unknown'})`);
    this.code = code;
  }
}

/** A +CMS ERROR result (TS 27.005 §3.2.5). */
export class CmsError extends Error {
  override readonly name = 'CmsError';
  readonly code: number;
  constructor(command: string, code: number) {
    super(`${command}: +CMS ERROR ${code}`);
    this.code = code;
  }
}

/** A plain ERROR, a timeout, or a response line the driver could not parse. */
export class ModemError extends Error {
  override readonly name = 'ModemError';
  readonly kind: 'error' | 'timeout' | 'protocol' | 'closed' | 'power';
  constructor(kind: ModemError['kind'], message: string) {
    super(message);
    this.kind = kind;
  }
}

/** An MQTT command's result code other than 0 (manual §18.3, "Command result codes"). */
export class MqttResultError extends Error {
  override readonly name = 'MqttResultError';
  readonly code: number;
  constructor(command: string, code: number) {
    super(`${command}: MQTT result ${code} (${MQTT_RESULT_NAMES[code] ?? 'unknown'})`);
    this.code = code;
  }
}

// TS 27.007 §9.2.1 general errors, and the SIM and network entries the meter meets.
export const CME_NAMES: Readonly<Record<number, string>> = Object.freeze({
  3: 'operation not allowed',
  4: 'operation not supported',
  10: 'SIM not inserted',
  11: 'SIM PIN required',
  13: 'SIM failure',
  14: 'SIM busy',
  15: 'SIM wrong',
  30: 'no network service',
  31: 'network timeout',
  50: 'incorrect parameters',
  100: 'unknown',
});

// A76XX manual §18.3 MQTT result codes (as the +CMQTTxxx: <client>,<err> lines carry them).
export const MQTT_RESULT_NAMES: Readonly<Record<number, string>> = Object.freeze({
  1: 'failed',
  3: 'socket connect fail',
  9: 'network not opened',
  11: 'no connection',
  12: 'invalid parameter',
  17: 'timeout',
  19: 'client is used',
  23: 'network is opened',
  26: 'socket closed by server',
  30: 'bad user name or password',
  31: 'not authorized',
  32: 'handshake fail',
  33: 'certificate not set',
});

/** +CEREG <stat> (TS 27.007 §10.1.22). */
export const RegistrationStatus = Object.freeze({
  NOT_SEARCHING: 0,
  HOME: 1,
  SEARCHING: 2,
  DENIED: 3,
  UNKNOWN: 4,
  ROAMING: 5,
});

export type Urc =
  | { kind: 'mqtt-message'; client: number; topic: string; payload: Uint8Array }
  /** +CMQTTCONNLOST: <client>,<cause> (§18.2.x): the broker connection dropped. */
  | { kind: 'mqtt-lost'; client: number; cause: number }
  /** +CMQTTNONET: the PDP context went away under the MQTT service. */
  | { kind: 'mqtt-no-net' }
  | { kind: 'registration'; stat: number }
  | { kind: 'ring' }
  /** +CLIP: "<number>",<type> (TS 27.007 §7.18) after RING. */
  | { kind: 'caller'; number: string }
  /** +CMT: "<oa>",,"<scts>" then the text (TS 27.005 §3.4.1, text mode, +CNMI mt=2). */
  | { kind: 'sms'; sender: string; text: string }
  | { kind: 'sim'; state: string }
  /**
   * +CTZV: <tz> (TS 27.007 §8.41, AT+CTZR=1): the network sent its time zone (NITZ), in quarters of
   * an hour east of UTC; with AT+CTZU=1 the module has set its clock from the network's time too.
   */
  | { kind: 'time-zone'; quarters: number }
  /** *ATREADY / RDY / SMS DONE / PB DONE: start-up progress. */
  | { kind: 'ready'; line: string }
  /** A line that is neither a response nor a known URC (line noise, a truncated line). */
  | { kind: 'garbled'; line: string };

export interface CommandOptions {
  /** Bytes to send after the `>` prompt (topic, payload, certificate). */
  data?: Uint8Array;
  /** A result line expected after OK, e.g. '+CMQTTCONNECT: ' (<client>,<err>; err 0 is success). */
  final?: string;
  /** Information-response prefix (lines kept for the caller), e.g. '+CSQ: '. */
  info?: string;
  /** Tells the response from a URC of the same prefix (+CEREG: <n>,<stat> against +CEREG: <stat>). */
  isInfo?: (line: string) => boolean;
  timeoutMs?: number;
}

export type Done<T> = (error: Error | undefined, result?: T) => void;

export interface A7670Options {
  serial: { io: IOClass<Serial, SerialOptions> } & Partial<SerialOptions>;
  /**
   * PWRKEY: the module's input is pressed when low. `inverted` where the board drives it through a
   * transistor (the MCU writes 1 to press), as LilyGO's T-A7670 does.
   */
  pwrkey: { io: IOClass<Digital, DigitalOptions>; pin: number; inverted?: boolean };
  /** STATUS output of the module (1 = on); boards without it are told on by an answer to AT. */
  status?: { io: IOClass<Digital, DigitalOptions>; pin: number };
  /** A load switch on the module's supply (1 = on), where the board has one. */
  supply?: { io: IOClass<Digital, DigitalOptions>; pin: number };
  /** DTR: high lets the module sleep once AT+CSCLK=1 (manual §3.2.x, sleep mode); low wakes it. */
  dtr?: { io: IOClass<Digital, DigitalOptions>; pin: number };
  /** RI: pulses low for a call, an SMS or a URC while the UART sleeps. */
  ri?: { io: IOClass<Digital, DigitalOptions>; pin: number };
  timers: Timers;
  onUrc?: (urc: Urc) => void;
  /** PWRKEY timing, ms (A7670 hardware design: Ton ≥ 50 ms, Toff ≥ 2.5 s; STATUS within ~10 s). */
  timing?: Partial<typeof TIMING>;
}

export const TIMING = Object.freeze({
  powerOnPulseMs: 500,
  powerOffPulseMs: 3000,
  statusWaitMs: 12_000,
  syncIntervalMs: 500,
  syncAttempts: 20,
  commandTimeoutMs: 9_000,
});

const CR = 13;
const LF = 10;
const PROMPT = 0x3e; // '>'
const MAX_LINE = 1024;
/** How long a result line that came before OK/ERROR waits for it. */
const SETTLE_MS = 300;

interface Pending {
  command: string;
  options: CommandOptions;
  lines: string[];
  okSeen: boolean;
  prompted: boolean;
  done: Done<string[]>;
  timer: TimerHandle | undefined;
  /** The final result line came before OK/ERROR: its outcome, awaiting the closing line. */
  settled?: boolean;
  result?: Error;
}

/** Splits the byte stream into lines, `>` prompts and counted binary blocks. */
export class AtTokenizer {
  #buffer = new Uint8Array(256);
  #length = 0;
  #binary = 0;
  #binaryParts: Uint8Array[] = [];
  #onBinary: ((bytes: Uint8Array) => void) | undefined;
  /** Whether a `>` at the start of a line is a prompt (a command with data is waiting). */
  promptWanted = false;

  constructor(
    readonly onLine: (line: string) => void,
    readonly onPrompt: () => void,
  ) {}

  /** Reads the next `count` bytes as one block, whatever they hold. */
  expectBinary(count: number, onBinary: (bytes: Uint8Array) => void): void {
    this.#binary = count;
    this.#binaryParts = [];
    this.#onBinary = onBinary;
    if (count === 0) this.#finishBinary();
  }

  reset(): void {
    this.#length = 0;
    this.#binary = 0;
    this.#onBinary = undefined;
  }

  feed(bytes: Uint8Array): void {
    let i = 0;
    while (i < bytes.length) {
      if (this.#binary > 0) {
        const n = Math.min(this.#binary, bytes.length - i);
        this.#binaryParts.push(bytes.slice(i, i + n));
        this.#binary -= n;
        i += n;
        if (this.#binary === 0) this.#finishBinary();
        continue;
      }
      const b = bytes[i++];
      if (b === LF) {
        this.#emitLine();
        continue;
      }
      if (b === CR) continue;
      if (b === PROMPT && this.#length === 0 && this.promptWanted) {
        this.promptWanted = false;
        if (bytes[i] === 0x20) i++; // "> "
        this.onPrompt();
        continue;
      }
      if (this.#length === MAX_LINE) {
        this.#emitLine(); // an endless line: hand over what came, start again
      }
      if (this.#length === this.#buffer.length) {
        const grown = new Uint8Array(Math.min(MAX_LINE, this.#buffer.length * 2));
        grown.set(this.#buffer);
        this.#buffer = grown;
      }
      this.#buffer[this.#length++] = b;
    }
  }

  #finishBinary(): void {
    let total = 0;
    for (const p of this.#binaryParts) total += p.length;
    const out = new Uint8Array(total);
    let at = 0;
    for (const p of this.#binaryParts) {
      out.set(p, at);
      at += p.length;
    }
    this.#binaryParts = [];
    const callback = this.#onBinary;
    this.#onBinary = undefined;
    callback?.(out);
  }

  #emitLine(): void {
    if (this.#length === 0) return;
    let line = '';
    for (let j = 0; j < this.#length; j++) line += String.fromCharCode(this.#buffer[j]);
    this.#length = 0;
    this.onLine(line);
  }
}

/** Printable ASCII only: anything else in a line is line noise. */
function printable(line: string): boolean {
  for (let i = 0; i < line.length; i++) {
    const c = line.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

/** "<a>,<b>,..." after a prefix, as integers; undefined when any is not one. */
export function integers(line: string, prefix: string): number[] | undefined {
  if (!line.startsWith(prefix)) return undefined;
  const parts = line.slice(prefix.length).split(',');
  const out: number[] = [];
  for (const p of parts) {
    const t = p.trim();
    if (!/^-?\d+$/.test(t)) return undefined;
    out.push(Number(t));
  }
  return out;
}

/** The quoted strings of a line, in order ('+CLIP: "+4477",145' → ['+4477']). */
export function quoted(line: string): string[] {
  const out: string[] = [];
  let at = line.indexOf('"');
  while (at >= 0) {
    const end = line.indexOf('"', at + 1);
    if (end < 0) break;
    out.push(line.slice(at + 1, end));
    at = line.indexOf('"', end + 1);
  }
  return out;
}

export function asciiBytes(text: string): Uint8Array {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c > 0x7e || c < 0x20) throw new RangeError(`not printable ASCII at ${i} of "${text}"`);
    out[i] = c;
  }
  return out;
}

export function asciiText(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return s;
}

/** `+CCLK: "yy/MM/dd,hh:mm:ss±zz"` (TS 27.007 §8.15) as UTC epoch ms and the zone; undefined if malformed. */
export function parseCclk(line: string): { utcMs: number; zoneQuarters: number } | undefined {
  const m = /^\+CCLK: "(\d{2})\/(\d{2})\/(\d{2}),(\d{2}):(\d{2}):(\d{2})([+-]\d{1,2})"$/.exec(line.trim());
  if (!m) return undefined;
  const [year, month, day, hour, minute, second, zone] = m.slice(1).map(Number);
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 59)
    return undefined;
  if (zone < -96 || zone > 96) return undefined;
  const local = Date.UTC(2000 + year, month - 1, day, hour, minute, second);
  return { utcMs: local - zone * 15 * 60_000, zoneQuarters: zone };
}

// URC prefixes (manual §18.2 MQTT URCs, TS 27.007 for the network and call ones).
const URC_PREFIXES = Object.freeze([
  '+CMQTTRXSTART: ',
  '+CMQTTRXTOPIC: ',
  '+CMQTTRXPAYLOAD: ',
  '+CMQTTRXEND: ',
  '+CMQTTCONNLOST: ',
  '+CMQTTNONET',
  '+CEREG: ',
  '+CLIP: ',
  '+CMT: ',
  '+CPIN: ',
  '+CTZV: ',
  '*ATREADY',
]);
const READY_LINES = Object.freeze(['RDY', 'SMS DONE', 'PB DONE', 'SMS Ready', 'PB Done']);

export class A7670 {
  readonly #serial: Serial;
  readonly #pwrkey: Digital;
  readonly #pressed: 0 | 1;
  readonly #status: Digital | undefined;
  readonly #supply: Digital | undefined;
  /** Without STATUS: whether the module last answered (true) or was switched off (false). */
  #answered = false;
  readonly #dtr: Digital | undefined;
  readonly #ri: Digital | undefined;
  readonly #timers: Timers;
  readonly #timing: typeof TIMING;
  readonly #tokenizer: AtTokenizer;
  readonly #queue: Pending[] = [];
  #pending: Pending | undefined;
  #rx: { client: number; topic: string; parts: Uint8Array[] } | undefined;
  #smsHeader: string | undefined;
  #closed = false;
  onUrc: ((urc: Urc) => void) | undefined;
  /** The time zone of the last +CTZV since the module was switched on: the network's time arrived. */
  networkZone: number | undefined;
  /** Lines dropped as noise (garbled, truncated, unexpected), for the monitor and tests. */
  garbled = 0;

  constructor(options: A7670Options) {
    this.#timers = options.timers;
    this.#timing = { ...TIMING, ...options.timing };
    this.onUrc = options.onUrc;
    this.#tokenizer = new AtTokenizer(
      (line) => this.#onLine(line),
      () => this.#onPrompt(),
    );
    this.#pressed = options.pwrkey.inverted ? 1 : 0;
    this.#pwrkey = new options.pwrkey.io({ pin: options.pwrkey.pin, mode: 'output' });
    this.#pwrkey.write(this.#pressed ? 0 : 1);
    this.#status = options.status && new options.status.io({ pin: options.status.pin, mode: 'input' });
    if (options.supply) {
      this.#supply = new options.supply.io({ pin: options.supply.pin, mode: 'output' });
      this.#supply.write(1);
    }
    if (options.dtr) {
      this.#dtr = new options.dtr.io({ pin: options.dtr.pin, mode: 'output' });
      this.#dtr.write(0);
    }
    const self = this;
    const { io, ...serialOptions } = options.serial;
    this.#serial = new io({
      baud: 115_200,
      ...serialOptions,
      onReadable() {
        self.#drain();
      },
    });
    if (options.ri) {
      this.#ri = new options.ri.io({
        pin: options.ri.pin,
        mode: 'inputPullUp',
        edge: 2,
        onReadable() {
          self.wake(); // a call, an SMS or a URC is waiting behind the sleeping UART
        },
      });
    }
  }

  /** Nothing to configure beyond construction; kept for the ECMA-419 shape. */
  configure(options: { onUrc?: (urc: Urc) => void }): void {
    if (options.onUrc) this.onUrc = options.onUrc;
  }

  /** Whether the module is powered on: the STATUS pin, or its last answer where there is none. */
  get on(): boolean {
    return this.#status ? this.#status.read() === 1 : this.#answered;
  }

  /** Whether a command is on the line or queued. */
  get busy(): boolean {
    return this.#pending !== undefined || this.#queue.length > 0;
  }

  /** Presses PWRKEY for Ton and waits for STATUS high; then syncs with AT and turns echo off. */
  powerOn(done: Done<void>): void {
    if (!this.on) this.networkZone = undefined; // a module switched on has not heard the network yet
    if (this.on) {
      this.sync(done);
      return;
    }
    if (!this.#status) {
      // No STATUS line: a module already on answers AT within a few tries; only then press.
      this.#sync(3, (error) => {
        if (!error) {
          done(undefined);
          return;
        }
        this.#press(this.#timing.powerOnPulseMs, () => this.sync(done));
      });
      return;
    }
    this.#press(this.#timing.powerOnPulseMs, () =>
      this.#waitStatus(1, (error) => (error ? done(error) : this.sync(done))),
    );
  }

  /** Presses PWRKEY for Toff (power down) and waits for STATUS low. */
  powerOff(done: Done<void>): void {
    this.#failAll(new ModemError('power', 'modem powered off'));
    if (!this.on) {
      done(undefined);
      return;
    }
    this.#press(this.#timing.powerOffPulseMs, () => this.#waitStatus(0, done));
  }

  /** Power off then on (a hung module): the hardware reset path through PWRKEY. */
  reset(done: Done<void>): void {
    this.powerOff((error) => (error ? done(error) : this.powerOn(done)));
  }

  /** `AT` until OK (autobaud and boot), then `ATE0` (V.25ter echo off) and `AT+CMEE=1` (numeric errors). */
  sync(done: Done<void>): void {
    this.#sync(this.#timing.syncAttempts, done);
  }

  #sync(tries: number, done: Done<void>): void {
    let attempts = 0;
    const attempt = () => {
      attempts++;
      this.command('AT', { timeoutMs: this.#timing.syncIntervalMs }, (error) => {
        if (!error) {
          this.#answered = true;
          this.command('ATE0', {}, (e) => (e ? done(e) : this.command('AT+CMEE=1', {}, (e2) => done(e2))));
          return;
        }
        if (attempts >= tries || this.#closed) {
          done(new ModemError('timeout', `no answer to AT after ${attempts} tries`));
          return;
        }
        this.#timers.setTimeout(attempt, this.#timing.syncIntervalMs);
      });
    };
    attempt();
  }

  /**
   * AT+CTZU=1 (A76XX manual, "Automatic time and time zone update"): the module sets its clock from
   * the network's time (NITZ) when the network sends it; AT+CTZR=1 (TS 27.007 §8.41) reports the
   * time zone as +CTZV, which tells the driver the time arrived.
   */
  enableNetworkTime(done: Done<void>): void {
    this.command('AT+CTZU=1', {}, (error) =>
      error ? done(error) : this.command('AT+CTZR=1', {}, (e) => done(e)),
    );
  }

  /**
   * AT+CCLK? (TS 27.007 §8.15): the module's clock, `+CCLK: "yy/MM/dd,hh:mm:ss±zz"`, local time and
   * its zone in quarters of an hour; returned as UTC epoch ms and the zone.
   */
  clock(done: Done<{ utcMs: number; zoneQuarters: number }>): void {
    this.command('AT+CCLK?', { info: '+CCLK: ' }, (error, lines) => {
      if (error) {
        done(error);
        return;
      }
      const parsed = lines?.[0] === undefined ? undefined : parseCclk(lines[0]);
      if (!parsed) done(new ModemError('protocol', `AT+CCLK? gave "${lines?.[0]}"`));
      else done(undefined, parsed);
    });
  }

  /** AT+CPIN? (TS 27.007 §8.3): 'READY', 'SIM PIN'…; no SIM is +CME ERROR 10. */
  simState(done: Done<string>): void {
    this.command('AT+CPIN?', { info: '+CPIN: ' }, (error, lines) => {
      if (error) done(error);
      else if (!lines?.[0]) done(new ModemError('protocol', 'AT+CPIN? without +CPIN line'));
      else done(undefined, lines[0].slice(7).trim());
    });
  }

  /** AT+CEREG? (TS 27.007 §10.1.22): the EPS registration status. */
  registration(done: Done<number>): void {
    // The read response is "+CEREG: <n>,<stat>[,…]"; a URC arriving meanwhile is "+CEREG: <stat>[,"tac",…]".
    const isInfo = (line: string) => /^\+CEREG: \d+,\d+/.test(line);
    this.command('AT+CEREG?', { info: '+CEREG: ', isInfo }, (error, lines) => {
      const values = lines?.[0] ? integers(lines[0], '+CEREG: ') : undefined;
      if (error) done(error);
      else if (!values || values.length < 2)
        done(new ModemError('protocol', `AT+CEREG? gave "${lines?.[0]}"`));
      else done(undefined, values[1]);
    });
  }

  /** AT+CSQ (TS 27.007 §8.5): rssi 0..31 (99 unknown) and ber. */
  signalQuality(done: Done<{ rssi: number; ber: number }>): void {
    this.command('AT+CSQ', { info: '+CSQ: ' }, (error, lines) => {
      const values = lines?.[0] ? integers(lines[0], '+CSQ: ') : undefined;
      if (error) done(error);
      else if (values?.length !== 2) done(new ModemError('protocol', `AT+CSQ gave "${lines?.[0]}"`));
      else done(undefined, { rssi: values[0], ber: values[1] });
    });
  }

  /**
   * Sends one command line (without CR) and collects its lines until OK, ERROR, +CME/+CMS ERROR
   * and, with `final`, the result line after OK. Commands queue: one is on the line at a time.
   */
  command(command: string, options: CommandOptions, done: Done<string[]>): void {
    if (this.#closed) {
      done(new ModemError('closed', 'modem driver closed'));
      return;
    }
    this.#queue.push({ command, options, lines: [], okSeen: false, prompted: false, done, timer: undefined });
    if (!this.#pending) this.#next();
  }

  /** DTR high after AT+CSCLK=1: the module sleeps between pagings (manual §3.2.x sleep mode). */
  sleep(done: Done<void>): void {
    this.command('AT+CSCLK=1', {}, (error) => {
      if (!error) this.#dtr?.write(1);
      done(error);
    });
  }

  /** DTR low: the UART wakes (the module keeps its registration while asleep). */
  wake(): void {
    this.#dtr?.write(0);
  }

  close(): void {
    if (this.#closed) return;
    this.#failAll(new ModemError('closed', 'modem driver closed'));
    this.#closed = true;
    this.#serial.close();
    this.#pwrkey.close();
    this.#status?.close();
    this.#supply?.close();
    this.#dtr?.close();
    this.#ri?.close();
  }

  // ---- internals ----

  #press(ms: number, then: () => void): void {
    this.#pwrkey.write(this.#pressed);
    this.#timers.setTimeout(() => {
      this.#pwrkey.write(this.#pressed ? 0 : 1);
      then();
    }, ms);
  }

  #waitStatus(level: 0 | 1, done: Done<void>): void {
    if (!this.#status) {
      // Without STATUS, power-down is taken as done once the hardware design's Toff has passed.
      if (level === 0) this.#answered = false;
      done(undefined);
      return;
    }
    const status = this.#status;
    const step = 100;
    let waited = 0;
    const check = () => {
      if (status.read() === level) {
        done(undefined);
        return;
      }
      waited += step;
      if (waited > this.#timing.statusWaitMs)
        done(new ModemError('power', `STATUS did not go ${level ? 'high' : 'low'}`));
      else this.#timers.setTimeout(check, step);
    };
    check();
  }

  #failAll(error: Error): void {
    const all = this.#pending ? [this.#pending, ...this.#queue] : [...this.#queue];
    this.#queue.length = 0;
    if (this.#pending) this.#timers.clear(this.#pending.timer);
    this.#pending = undefined;
    this.#tokenizer.reset();
    this.#rx = undefined;
    for (const p of all) p.done(error);
  }

  #next(): void {
    const p = this.#queue.shift();
    this.#pending = p;
    if (!p) return;
    p.timer = this.#timers.setTimeout(() => {
      if (this.#pending !== p) return;
      this.#pending = undefined;
      this.#tokenizer.promptWanted = false;
      p.done(new ModemError('timeout', `${p.command}: no final result`));
      this.#next();
    }, p.options.timeoutMs ?? this.#timing.commandTimeoutMs);
    this.#tokenizer.promptWanted = p.options.data !== undefined;
    const line = asciiBytes(p.command);
    const out = new Uint8Array(line.length + 1);
    out.set(line);
    out[line.length] = CR;
    this.#serial.write(out);
  }

  #finish(error: Error | undefined): void {
    const p = this.#pending;
    if (!p) return;
    this.#timers.clear(p.timer);
    this.#pending = undefined;
    this.#tokenizer.promptWanted = false;
    p.done(error, p.lines);
    if (!this.#pending) this.#next();
  }

  #settle(p: Pending, result: Error | undefined): void {
    p.settled = true;
    p.result = result;
    this.#timers.clear(p.timer);
    p.timer = this.#timers.setTimeout(() => {
      if (this.#pending === p) this.#finish(result);
    }, SETTLE_MS);
  }

  #drain(): void {
    for (;;) {
      const chunk = this.#serial.read();
      if (!chunk || chunk.byteLength === 0) return;
      this.#tokenizer.feed(new Uint8Array(chunk));
    }
  }

  #onPrompt(): void {
    const p = this.#pending;
    if (!p?.options.data || p.prompted) return;
    p.prompted = true;
    this.#serial.write(p.options.data);
  }

  #onLine(line: string): void {
    if (!printable(line)) {
      this.#noise(line);
      return;
    }
    if (this.#smsHeader !== undefined) {
      const sender = quoted(this.#smsHeader)[0] ?? '';
      this.#smsHeader = undefined;
      this.#urc({ kind: 'sms', sender, text: line });
      return;
    }
    const p = this.#pending;
    if (p) {
      if (line === p.command) return; // echo before ATE0 took effect
      if (p.options.info && line.startsWith(p.options.info) && (p.options.isInfo?.(line) ?? true)) {
        p.lines.push(line);
        return;
      }
      if (line === 'OK') {
        p.okSeen = true;
        if (p.settled) this.#finish(p.result);
        else if (!p.options.final) this.#finish(undefined);
        return;
      }
      if (line === 'ERROR') {
        this.#finish(p.settled ? p.result : new ModemError('error', `${p.command}: ERROR`));
        return;
      }
      const cme = integers(line, '+CME ERROR: ');
      if (cme) {
        this.#finish(new CmeError(p.command, cme[0]));
        return;
      }
      const cms = integers(line, '+CMS ERROR: ');
      if (cms) {
        this.#finish(new CmsError(p.command, cms[0]));
        return;
      }
      if (p.options.final && line.startsWith(p.options.final)) {
        const values = integers(line, p.options.final);
        if (!values || values.length < 1) {
          this.#finish(new ModemError('protocol', `${p.command}: unparsable "${line}"`));
          return;
        }
        p.lines.push(line);
        // "+CMQTTxxx: <client>,<err>" (or "<err>" alone for START/STOP); err 0 is success.
        const code = values[values.length - 1];
        const result = code === 0 ? undefined : new MqttResultError(p.command, code);
        if (p.okSeen) this.#finish(result);
        else this.#settle(p, result); // an error result is followed by ERROR (§18.3): wait for it
        return;
      }
    }
    if (this.#urcLine(line)) return;
    if (p && !p.options.info) {
      p.lines.push(line); // an information line of a command that names none (AT+CCERTLIST)
      return;
    }
    this.#noise(line);
  }

  #noise(line: string): void {
    this.garbled++;
    this.#urc({ kind: 'garbled', line });
  }

  #urc(urc: Urc): void {
    this.onUrc?.(urc);
  }

  /** Handles a URC line; false when the line is not one. */
  #urcLine(line: string): boolean {
    if (line === 'RING') {
      this.#urc({ kind: 'ring' });
      return true;
    }
    if (READY_LINES.includes(line)) {
      this.#urc({ kind: 'ready', line });
      return true;
    }
    if (!URC_PREFIXES.some((prefix) => line.startsWith(prefix))) return false;
    if (line.startsWith('+CMQTTRXSTART: ')) {
      const v = integers(line, '+CMQTTRXSTART: ');
      if (!v) return this.#garbledUrc(line);
      this.#rx = { client: v[0], topic: '', parts: [] };
      return true;
    }
    if (line.startsWith('+CMQTTRXTOPIC: ')) {
      const v = integers(line, '+CMQTTRXTOPIC: ');
      const rx = this.#rx;
      if (v?.length !== 2 || !rx) return this.#garbledUrc(line);
      this.#tokenizer.expectBinary(v[1], (bytes) => {
        rx.topic += asciiText(bytes);
      });
      return true;
    }
    if (line.startsWith('+CMQTTRXPAYLOAD: ')) {
      const v = integers(line, '+CMQTTRXPAYLOAD: ');
      const rx = this.#rx;
      if (v?.length !== 2 || !rx) return this.#garbledUrc(line);
      this.#tokenizer.expectBinary(v[1], (bytes) => rx.parts.push(bytes));
      return true;
    }
    if (line.startsWith('+CMQTTRXEND: ')) {
      const rx = this.#rx;
      this.#rx = undefined;
      if (!rx) return this.#garbledUrc(line);
      let total = 0;
      for (const part of rx.parts) total += part.length;
      const payload = new Uint8Array(total);
      let at = 0;
      for (const part of rx.parts) {
        payload.set(part, at);
        at += part.length;
      }
      this.#urc({ kind: 'mqtt-message', client: rx.client, topic: rx.topic, payload });
      return true;
    }
    if (line.startsWith('+CMQTTCONNLOST: ')) {
      const v = integers(line, '+CMQTTCONNLOST: ');
      if (v?.length !== 2) return this.#garbledUrc(line);
      this.#urc({ kind: 'mqtt-lost', client: v[0], cause: v[1] });
      return true;
    }
    if (line.startsWith('+CMQTTNONET')) {
      this.#urc({ kind: 'mqtt-no-net' });
      return true;
    }
    if (line.startsWith('+CEREG: ')) {
      // Unsolicited form (n=1): "+CEREG: <stat>"; n=2 adds quoted tac and ci after it.
      const v = integers(line.split(',')[0], '+CEREG: ');
      if (!v) return this.#garbledUrc(line);
      this.#urc({ kind: 'registration', stat: v[0] });
      return true;
    }
    if (line.startsWith('+CLIP: ')) {
      const number = quoted(line)[0];
      if (number === undefined) return this.#garbledUrc(line);
      this.#urc({ kind: 'caller', number });
      return true;
    }
    if (line.startsWith('+CMT: ')) {
      const sender = quoted(line)[0];
      if (sender === undefined) return this.#garbledUrc(line);
      // With AT+CSDH=1 the header ends in the text's length: read exactly that many bytes (an
      // empty or multi-line text stays one SMS); without it the next line is the text.
      const fields = line.split(',');
      const length = fields.length >= 10 ? integers(fields[fields.length - 1], '') : undefined;
      if (length && length.length === 1) {
        this.#tokenizer.expectBinary(length[0], (bytes) =>
          this.#urc({ kind: 'sms', sender, text: asciiText(bytes) }),
        );
      } else this.#smsHeader = line;
      return true;
    }
    if (line.startsWith('+CTZV: ')) {
      // "+CTZV: <tz>" with <tz> as "±zz", quoted or not; some firmware adds the time after a comma.
      const m = /^\+CTZV: "?([+-]?\d{1,2})"?/.exec(line);
      if (!m) return this.#garbledUrc(line);
      this.networkZone = Number(m[1]);
      this.#urc({ kind: 'time-zone', quarters: this.networkZone });
      return true;
    }
    if (line.startsWith('+CPIN: ')) {
      this.#urc({ kind: 'sim', state: line.slice(7).trim() });
      return true;
    }
    this.#urc({ kind: 'ready', line });
    return true;
  }

  #garbledUrc(line: string): true {
    this.#noise(line);
    return true;
  }
}
