// Digi XBee 3 Zigbee module in API mode with escaped characters (AP = 2) on a UART, the meter's
// Zigbee radio for the master/slave relay. Everything below follows the Digi XBee 3 Zigbee RF
// Module User Guide (document 90001539), chapter "Operate in API mode" and "API frames":
//
//   API frame:  7E | length MSB LSB (frame data bytes, unescaped) | frame data | checksum
//   checksum:   0xFF − (sum of the frame data bytes & 0xFF)   ("Calculate and verify checksums")
//   AP = 2:     after the delimiter, 7E 7D 11 13 are sent as 7D, byte XOR 20 ("Escaped characters")
//
//   0x08 Local AT Command Request   type | frame id | command (2 ASCII) | parameter
//   0x88 Local AT Command Response  type | frame id | command | status | data
//   0x10 Transmit Request           type | frame id | dest 64 | dest 16 (FFFE) | radius | options | data
//   0x8B Transmit Status            type | frame id | dest 16 | retries | delivery | discovery
//   0x90 Receive Packet             type | source 64 | source 16 | options | data
//   0x8A Modem Status               type | status
import type { TimerHandle, Timers } from '../../hal/clock';
import type { Digital, DigitalOptions, IOClass, Serial, SerialOptions } from '../../hal/io';
import { bytesOf } from '../../hal/io';

/** Frame types (User Guide 90001539, "API frames"). */
export const XBeeFrame = Object.freeze({
  AT_COMMAND: 0x08,
  TRANSMIT_REQUEST: 0x10,
  AT_RESPONSE: 0x88,
  MODEM_STATUS: 0x8a,
  TRANSMIT_STATUS: 0x8b,
  RECEIVE_PACKET: 0x90,
});

/** Delivery status of a Transmit Status frame (User Guide 90001539, "Transmit Status - 0x8B"). */
export const DeliveryStatus = Object.freeze({
  SUCCESS: 0x00,
  MAC_ACK_FAILURE: 0x01,
  CCA_FAILURE: 0x02,
  INVALID_DESTINATION_ENDPOINT: 0x15,
  NETWORK_ACK_FAILURE: 0x21,
  NOT_JOINED: 0x22,
  SELF_ADDRESSED: 0x23,
  ADDRESS_NOT_FOUND: 0x24,
  ROUTE_NOT_FOUND: 0x25,
  RESOURCE_ERROR: 0x32,
  PAYLOAD_TOO_LARGE: 0x74,
});

/** Modem Status values (User Guide 90001539, "Modem Status - 0x8A"). */
export const ModemStatus = Object.freeze({
  HARDWARE_RESET: 0x00,
  WATCHDOG_RESET: 0x01,
  JOINED: 0x02,
  DISASSOCIATED: 0x03,
  COORDINATOR_STARTED: 0x06,
});

/** AT command response status (User Guide 90001539, "Local AT Command Response - 0x88"). */
export const AtStatus = Object.freeze({ OK: 0, ERROR: 1, INVALID_COMMAND: 2, INVALID_PARAMETER: 3 });

const DELIMITER = 0x7e;
const ESCAPE = 0x7d;
const XON = 0x11;
const XOFF = 0x13;
/** Largest frame data this driver accepts off the line (a Receive Packet of 255 bytes fits). */
const MAX_FRAME = 300;

export type XBeeErrorCode =
  | 'checksum'
  | 'escape'
  | 'truncated'
  | 'length'
  | 'timeout'
  | 'reset'
  | 'closed'
  | 'at-status'
  | 'not-api-mode'
  | 'payload-too-large'
  | 'address'
  | 'asleep'
  | 'not-wired';

export class XBeeError extends Error {
  override readonly name: string = 'XBeeError';
  readonly code: XBeeErrorCode;
  constructor(code: XBeeErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

/** One Transmit Status as the module reported it. */
export interface TransmitResult {
  delivery: number;
  retries: number;
  discovery: number;
  ok: boolean;
}

/** What configure() read from the module. */
export interface XBeeInfo {
  /** SH + SL: the module's 64-bit address. */
  address64: Uint8Array;
  /** NP: the largest RF payload of one Transmit Request, bytes. */
  maxPayload: number;
  /** AI: 0 when joined to a network. */
  association: number;
}

export interface XBeeOptions {
  serial: SerialOptions & { io: IOClass<Serial, SerialOptions> };
  /** The module's RESET line (active low), when wired; otherwise reset() sends ATFR. */
  reset?: Omit<DigitalOptions, 'mode'> & { io: IOClass<Digital, DigitalOptions> };
  timers: Timers;
  /** How long to wait for a response frame (AT response, Transmit Status), ms. */
  timeoutMs?: number;
  /**
   * How long to wait for a Transmit Status, ms (default timeoutMs). A parent whose children sleep
   * needs the guide's extended timeout, 3 × (50 × NH + 1.2 × SP) ms: see zigbeeRelay.
   */
  transmitTimeoutMs?: number;
  /**
   * Pin sleep wiring (SM = 1, an end device): SLEEP_RQ (DIO8, the host's output: high asks the
   * module to sleep) and ON/SLEEP (DIO9, the module's output: high while awake). Without ON/SLEEP
   * the driver waits `wakeMs` after releasing SLEEP_RQ.
   */
  sleep?: {
    request: Omit<DigitalOptions, 'mode'> & { io: IOClass<Digital, DigitalOptions> };
    status?: Omit<DigitalOptions, 'mode'> & { io: IOClass<Digital, DigitalOptions> };
    /** Longest wait for ON/SLEEP after SLEEP_RQ is released, ms (default 1000). */
    wakeTimeoutMs?: number;
  };
}

/**
 * Sleep settings (User Guide 90001539, "AT commands > Sleep commands" and "I/O settings"): SM 1 pin
 * sleep (SM 0 a router, never asleep), D8 1 DTR/SLEEP_RQ, D9 1 ON/SLEEP, SP the sleep period and, on
 * a parent, how long it buffers a packet for a sleeping child (1.2 × SP, 10 ms units, 0x20–0xAF0).
 */
export const SleepSetting = Object.freeze({
  NO_SLEEP: 0,
  PIN_SLEEP: 1,
  D8_SLEEP_REQUEST: 1,
  D9_ON_SLEEP: 1,
  SP_MIN: 0x20,
  SP_MAX: 0xaf0,
});

/** ON/SLEEP is polled this often while the module wakes, ms (the guide: 1–2 ms from wake to poll). */
const WAKE_POLL_MS = 2;

interface Pending {
  type: number;
  timer: TimerHandle;
  resolve(data: Uint8Array): void;
  reject(error: Error): void;
}

/** Escapes frame data for AP = 2 and wraps it: 7E, length, data, checksum. */
export function encodeApiFrame(data: Uint8Array): Uint8Array {
  let sum = 0;
  for (const b of data) sum += b;
  const raw = [data.length >> 8, data.length & 0xff, ...data, 0xff - (sum & 0xff)];
  const out = [DELIMITER];
  for (const b of raw) {
    if (b === DELIMITER || b === ESCAPE || b === XON || b === XOFF) out.push(ESCAPE, b ^ 0x20);
    else out.push(b);
  }
  return Uint8Array.from(out);
}

/**
 * Reads escaped API frames off a byte stream. A bad checksum, a broken escape, a delimiter inside
 * a frame or an impossible length drops that frame (reported through onError) and the parser
 * resynchronises on the next delimiter.
 */
export class ApiFrameParser {
  #state: 'idle' | 'lengthHigh' | 'lengthLow' | 'data' | 'checksum' = 'idle';
  #escaped = false;
  #length = 0;
  #data: number[] = [];
  #sum = 0;
  readonly #onFrame: (data: Uint8Array) => void;
  readonly #onError: (error: XBeeError) => void;

  constructor(onFrame: (data: Uint8Array) => void, onError: (error: XBeeError) => void) {
    this.#onFrame = onFrame;
    this.#onError = onError;
  }

  push(bytes: Uint8Array): void {
    for (const raw of bytes) {
      if (raw === DELIMITER) {
        if (this.#state !== 'idle')
          this.#onError(new XBeeError('truncated', 'a frame was cut short by a new delimiter'));
        this.#state = 'lengthHigh';
        this.#escaped = false;
        continue;
      }
      if (this.#state === 'idle') continue;
      if (raw === ESCAPE && !this.#escaped) {
        this.#escaped = true;
        continue;
      }
      let b = raw;
      if (this.#escaped) {
        this.#escaped = false;
        b = raw ^ 0x20;
        if (b !== DELIMITER && b !== ESCAPE && b !== XON && b !== XOFF) {
          this.#state = 'idle';
          this.#onError(new XBeeError('escape', `0x7D followed by 0x${raw.toString(16)}`));
          continue;
        }
      }
      this.#byte(b);
    }
  }

  #byte(b: number): void {
    switch (this.#state) {
      case 'lengthHigh':
        this.#length = b << 8;
        this.#state = 'lengthLow';
        return;
      case 'lengthLow':
        this.#length |= b;
        if (this.#length === 0 || this.#length > MAX_FRAME) {
          this.#state = 'idle';
          this.#onError(new XBeeError('length', `frame length ${this.#length}`));
          return;
        }
        this.#data = [];
        this.#sum = 0;
        this.#state = 'data';
        return;
      case 'data':
        this.#data.push(b);
        this.#sum += b;
        if (this.#data.length === this.#length) this.#state = 'checksum';
        return;
      case 'checksum':
        this.#state = 'idle';
        if (((this.#sum + b) & 0xff) !== 0xff) {
          this.#onError(new XBeeError('checksum', 'API frame checksum does not add up to 0xFF'));
          return;
        }
        this.#onFrame(Uint8Array.from(this.#data));
        return;
    }
  }
}

function ascii(command: string): [number, number] {
  if (!/^[A-Z0-9%]{2}$/.test(command)) throw new RangeError(`AT command ${command} is not two characters`);
  return [command.charCodeAt(0), command.charCodeAt(1)];
}

export class XBee {
  readonly #serial: Serial;
  readonly #reset: Digital | undefined;
  readonly #sleepRequest: Digital | undefined;
  readonly #onSleep: Digital | undefined;
  readonly #wakeTimeoutMs: number;
  #sleepRequested = false;
  #waking: Promise<void> | undefined;
  readonly #timers: Timers;
  readonly #timeoutMs: number;
  readonly #transmitTimeoutMs: number;
  readonly #parser: ApiFrameParser;
  readonly #pending = new Map<number, Pending>();
  #frameId = 0;
  #closed = false;
  #info: XBeeInfo | undefined;
  /** Line errors seen (frames dropped), by kind. */
  readonly lineErrors: Record<string, number> = {};
  /** A packet from another node: its 64-bit address, the receive options, the RF data. */
  onReceive: ((source64: Uint8Array, payload: Uint8Array, options: number) => void) | undefined;
  /** A Modem Status frame (reset, joined, disassociated). */
  onModemStatus: ((status: number) => void) | undefined;

  constructor(options: XBeeOptions) {
    this.#timers = options.timers;
    this.#timeoutMs = options.timeoutMs ?? 2_000;
    this.#transmitTimeoutMs = options.transmitTimeoutMs ?? this.#timeoutMs;
    this.#wakeTimeoutMs = options.sleep?.wakeTimeoutMs ?? 1_000;
    this.#parser = new ApiFrameParser(
      (data) => this.#frame(data),
      (error) => {
        this.lineErrors[error.code] = (this.lineErrors[error.code] ?? 0) + 1;
      },
    );
    const { io: SerialIO, ...serialOptions } = options.serial;
    const parser = this.#parser;
    this.#serial = new SerialIO({
      ...serialOptions,
      onReadable(this: Serial) {
        for (;;) {
          const chunk = this.read();
          if (!chunk || chunk.byteLength === 0) break;
          parser.push(new Uint8Array(chunk));
        }
      },
    });
    if (options.reset) {
      const { io: DigitalIO, ...resetOptions } = options.reset;
      this.#reset = new DigitalIO({ ...resetOptions, mode: 'output' });
      this.#reset.write(1);
    }
    if (options.sleep) {
      const { io: RequestIO, ...request } = options.sleep.request;
      this.#sleepRequest = new RequestIO({ ...request, mode: 'output' });
      this.#sleepRequest.write(0); // awake until the host asks otherwise
      if (options.sleep.status) {
        const { io: StatusIO, ...status } = options.sleep.status;
        this.#onSleep = new StatusIO({ ...status, mode: 'input' });
      }
    }
  }

  /** Whether SLEEP_RQ is wired: the module can be put to pin sleep. */
  get canSleep(): boolean {
    return this.#sleepRequest !== undefined;
  }

  /** Whether the host holds SLEEP_RQ asserted. */
  get sleepRequested(): boolean {
    return this.#sleepRequested;
  }

  /** ON/SLEEP high (the module is awake); without the pin, SLEEP_RQ released and no wake under way. */
  get awake(): boolean {
    if (this.#onSleep) return this.#onSleep.read() === 1;
    return !this.#sleepRequested && this.#waking === undefined;
  }

  /**
   * Makes the module a pin-sleep end device: SM = 1 (written only when it differs: a change makes
   * the module leave and join again as an end device), D8 = 1 (SLEEP_RQ), D9 = 1 (ON/SLEEP).
   * Settings written by 0x08 apply at once and are lost at a reset, so call it after each reset.
   */
  async configurePinSleep(): Promise<void> {
    if (!this.#sleepRequest) throw new XBeeError('not-wired', 'no SLEEP_RQ line is wired for pin sleep');
    await this.command('D8', Uint8Array.of(SleepSetting.D8_SLEEP_REQUEST));
    await this.command('D9', Uint8Array.of(SleepSetting.D9_ON_SLEEP));
    const sm = await this.command('SM');
    if (sm[0] !== SleepSetting.PIN_SLEEP) await this.command('SM', Uint8Array.of(SleepSetting.PIN_SLEEP));
  }

  /**
   * Makes the module a router that never sleeps (SM = 0) and sets how long it buffers a packet for
   * a sleeping end device child: 1.2 × SP (User Guide 90001539, "Transmission timeouts > Extended
   * timeout"). `sleepPeriodMs` is SP in ms, rounded to 10 ms, 320–28 000.
   */
  async configureParent(sleepPeriodMs: number): Promise<void> {
    const sp = Math.round(sleepPeriodMs / 10);
    if (!(sp >= SleepSetting.SP_MIN && sp <= SleepSetting.SP_MAX))
      throw new RangeError(`a sleep period of ${sleepPeriodMs} ms is outside SP 0x20–0xAF0 (× 10 ms)`);
    const sm = await this.command('SM');
    if (sm[0] !== SleepSetting.NO_SLEEP) await this.command('SM', Uint8Array.of(SleepSetting.NO_SLEEP));
    await this.command('SP', Uint8Array.of(sp >> 8, sp & 0xff));
  }

  /**
   * Asserts SLEEP_RQ: the module finishes what it is doing and sleeps (User Guide 90001539,
   * "Manage End Devices > Pin sleep"). Requests made while it is held asleep are refused with
   * XBeeError('asleep'); those already waiting keep their answers.
   */
  sleep(): void {
    if (!this.#sleepRequest) throw new XBeeError('not-wired', 'no SLEEP_RQ line is wired for pin sleep');
    this.#sleepRequested = true;
    this.#sleepRequest.write(1);
  }

  /**
   * Releases SLEEP_RQ and resolves once ON/SLEEP says the module is awake (it then polls its parent
   * for buffered packets); XBeeError('timeout') when ON/SLEEP stays low.
   */
  wake(): Promise<void> {
    if (!this.#sleepRequest) return Promise.resolve();
    if (this.#sleepRequested) {
      this.#sleepRequested = false;
      this.#sleepRequest.write(0);
    }
    if (this.#waking) return this.#waking;
    if (!this.#onSleep) {
      // No ON/SLEEP: the guide's worst case from SLEEP_RQ released to awake is a few ms.
      this.#waking = new Promise((resolve) => {
        this.#timers.setTimeout(() => {
          this.#waking = undefined;
          resolve();
        }, 5 * WAKE_POLL_MS);
      });
      return this.#waking;
    }
    if (this.#onSleep.read() === 1) return Promise.resolve();
    const status = this.#onSleep;
    this.#waking = new Promise((resolve, reject) => {
      let waited = 0;
      const check = () => {
        if (this.#closed) {
          this.#waking = undefined;
          reject(new XBeeError('closed', 'the driver was closed'));
        } else if (status.read() === 1) {
          this.#waking = undefined;
          resolve();
        } else if (this.#sleepRequested) {
          this.#waking = undefined;
          reject(new XBeeError('asleep', 'put back to sleep before it woke'));
        } else if (waited >= this.#wakeTimeoutMs) {
          this.#waking = undefined;
          reject(
            new XBeeError(
              'timeout',
              `ON/SLEEP still low ${this.#wakeTimeoutMs} ms after SLEEP_RQ was released`,
            ),
          );
        } else {
          waited += WAKE_POLL_MS;
          this.#timers.setTimeout(check, WAKE_POLL_MS);
        }
      };
      this.#timers.setTimeout(check, WAKE_POLL_MS);
    });
    return this.#waking;
  }

  /** What configure() read; undefined before. */
  get info(): XBeeInfo | undefined {
    return this.#info;
  }

  /**
   * Reads the module's settings: AP must be 2 (API mode with escapes), SH/SL its address, NP the
   * payload limit, AI whether it has joined. Throws XBeeError('not-api-mode') otherwise.
   */
  async configure(): Promise<XBeeInfo> {
    const ap = await this.command('AP');
    if (ap.length !== 1 || ap[0] !== 2)
      throw new XBeeError('not-api-mode', `AP is ${ap[0]}, the driver needs 2 (API mode with escapes)`);
    const sh = await this.command('SH');
    const sl = await this.command('SL');
    const np = await this.command('NP');
    const ai = await this.command('AI');
    const address64 = new Uint8Array(8);
    address64.set(sh.slice(-4), 4 - Math.min(4, sh.length));
    address64.set(sl.slice(-4), 8 - Math.min(4, sl.length));
    let maxPayload = 0;
    for (const b of np) maxPayload = (maxPayload << 8) | b;
    this.#info = { address64, maxPayload, association: ai[0] ?? 0xff };
    return this.#info;
  }

  /** Sends a local AT command; resolves with its data, rejects with XBeeError('at-status') on a non-zero status. */
  command(command: string, parameter?: Uint8Array): Promise<Uint8Array> {
    const [a, b] = ascii(command);
    const id = this.#nextId();
    const data = new Uint8Array(4 + (parameter?.length ?? 0));
    data.set([XBeeFrame.AT_COMMAND, id, a, b]);
    if (parameter) data.set(parameter, 4);
    return this.#request(id, XBeeFrame.AT_RESPONSE, data).then((frame) => {
      const status = frame[4];
      if (status !== AtStatus.OK) throw new XBeeError('at-status', `AT${command} answered status ${status}`);
      return frame.slice(5);
    });
  }

  /**
   * Sends `payload` to the node with 64-bit address `dest64` (16-bit address unknown, FFFE) and
   * resolves with the module's Transmit Status. A payload beyond NP is refused before it is sent.
   */
  transmit(dest64: Uint8Array, payload: Uint8Array): Promise<TransmitResult> {
    if (dest64.length !== 8) return Promise.reject(new XBeeError('address', 'a 64-bit address is 8 bytes'));
    const limit = this.#info?.maxPayload;
    if (limit !== undefined && payload.length > limit)
      return Promise.reject(
        new XBeeError('payload-too-large', `${payload.length} bytes exceed NP = ${limit}`),
      );
    const id = this.#nextId();
    const data = new Uint8Array(14 + payload.length);
    data.set([XBeeFrame.TRANSMIT_REQUEST, id]);
    data.set(dest64, 2);
    data.set([0xff, 0xfe, 0x00, 0x00], 10); // 16-bit address unknown, maximum hops, default options
    data.set(payload, 14);
    return this.#request(id, XBeeFrame.TRANSMIT_STATUS, data, this.#transmitTimeoutMs).then((frame) => ({
      retries: frame[4],
      delivery: frame[5],
      discovery: frame[6],
      ok: frame[5] === DeliveryStatus.SUCCESS,
    }));
  }

  /**
   * Resets the module: the RESET line held low for 1 ms when wired, else ATFR. Requests waiting
   * for an answer are refused; the module announces itself with a Modem Status.
   */
  reset(): void {
    if (this.#reset) {
      this.#reset.write(0);
      this.#timers.setTimeout(() => {
        if (!this.#closed) this.#reset?.write(1);
      }, 1);
    } else {
      this.#write(Uint8Array.of(XBeeFrame.AT_COMMAND, 0, 0x46, 0x52)); // FR, frame id 0: no response
    }
    this.#info = undefined;
    this.#refuseAll(new XBeeError('reset', 'the module was reset'));
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#refuseAll(new XBeeError('closed', 'the driver was closed'));
    this.#serial.close();
    this.#reset?.close();
    this.#sleepRequest?.close();
    this.#onSleep?.close();
  }

  #nextId(): number {
    this.#frameId = (this.#frameId % 255) + 1; // 0 would ask for no response
    return this.#frameId;
  }

  #request(id: number, type: number, data: Uint8Array, timeoutMs = this.#timeoutMs): Promise<Uint8Array> {
    if (this.#closed) return Promise.reject(new XBeeError('closed', 'the driver was closed'));
    if (this.#sleepRequested)
      return Promise.reject(new XBeeError('asleep', 'the module is held asleep (SLEEP_RQ asserted)'));
    // Waking: the UART is heard only once ON/SLEEP is high.
    if (this.#sleepRequest && !this.awake)
      return this.wake().then(() => this.#request(id, type, data, timeoutMs));
    return new Promise((resolve, reject) => {
      const previous = this.#pending.get(id);
      if (previous) {
        this.#timers.clear(previous.timer);
        previous.reject(new XBeeError('timeout', 'frame id reused before an answer came'));
      }
      const timer = this.#timers.setTimeout(() => {
        this.#pending.delete(id);
        reject(
          new XBeeError('timeout', `no answer to frame type 0x${data[0].toString(16)} in ${timeoutMs} ms`),
        );
      }, timeoutMs);
      this.#pending.set(id, { type, timer, resolve, reject });
      this.#write(data);
    });
  }

  #write(data: Uint8Array): void {
    this.#serial.write(encodeApiFrame(data));
  }

  #refuseAll(error: XBeeError): void {
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of pending) {
      this.#timers.clear(p.timer);
      p.reject(error);
    }
  }

  #frame(frame: Uint8Array): void {
    const type = frame[0];
    if (type === XBeeFrame.AT_RESPONSE || type === XBeeFrame.TRANSMIT_STATUS) {
      const minimum = type === XBeeFrame.AT_RESPONSE ? 5 : 7;
      const pending = this.#pending.get(frame[1]);
      if (!pending || pending.type !== type || frame.length < minimum) {
        this.lineErrors.unexpected = (this.lineErrors.unexpected ?? 0) + 1;
        return;
      }
      this.#pending.delete(frame[1]);
      this.#timers.clear(pending.timer);
      pending.resolve(frame);
      return;
    }
    if (type === XBeeFrame.RECEIVE_PACKET) {
      if (frame.length < 12) {
        this.lineErrors.unexpected = (this.lineErrors.unexpected ?? 0) + 1;
        return;
      }
      this.onReceive?.(frame.slice(1, 9), frame.slice(12), frame[11]);
      return;
    }
    if (type === XBeeFrame.MODEM_STATUS && frame.length >= 2) {
      const status = frame[1];
      if (status === ModemStatus.HARDWARE_RESET || status === ModemStatus.WATCHDOG_RESET) {
        this.#info = undefined;
        this.#refuseAll(new XBeeError('reset', `the module restarted (modem status ${status})`));
      }
      this.onModemStatus?.(status);
      return;
    }
    this.lineErrors.unexpected = (this.lineErrors.unexpected ?? 0) + 1;
  }
}

/** 64-bit address as 16 hex digits (logs, keys). */
export function address64Hex(address: Uint8Array): string {
  let s = '';
  for (const b of bytesOf(address)) s += (b < 16 ? '0' : '') + b.toString(16);
  return s;
}

/**
 * Supply currents of the XBee 3 (non-PRO) at 3.3 V, from the Digi XBee 3 Zigbee RF Module User
 * Guide 90001539, "Specifications > Power requirements"; the battery bench uses them.
 */
export const XBEE3_CURRENTS = Object.freeze({
  transmit: {
    milliamps: 40,
    source: 'XBee 3 User Guide 90001539, Power requirements: transmit current 40 mA at +8 dBm',
  },
  receive: {
    milliamps: 17,
    source: 'XBee 3 User Guide 90001539, Power requirements: receive current 17 mA',
  },
  sleep: {
    milliamps: 0.002,
    source: 'XBee 3 User Guide 90001539, Power requirements: power-down current 2 µA at 25 °C',
  },
});
