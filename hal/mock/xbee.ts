// A virtual Digi XBee 3 Zigbee module on a virtual UART, written from the Digi XBee 3 Zigbee RF
// Module User Guide (90001539), not from the driver: API mode with escaped characters (AP = 2),
// the local AT commands a host uses to find its bearings (AP, SH, SL, MY, NP, AI, ID, FR), Transmit
// Request → Transmit Status, Receive Packet, Modem Status on reset and join. It joins a ZigbeeMesh
// and has fault switches for tests: corrupt checksums, broken escapes, forced delivery failures,
// a silent UART, a reset (the RESET line, ATFR, or a brown-out).
//
// Pin sleep (User Guide 90001539, "Manage End Devices > End Device configuration > Pin sleep"): with
// SM = 1 the module is an end device; SLEEP_RQ (DIO8, D8 = 1) high makes it sleep once it has no
// transmission waiting for its acknowledgement, low wakes it within a few ms; ON/SLEEP (DIO9,
// D9 = 1) is high while awake. Asleep it hears nothing on the UART and nothing on air; on waking it
// polls its parent, which hands over what it buffered ("Parent operation"). A router's SP sets how
// long it buffers for a sleeping child: 1.2 × SP, at most 30 s ("Transmission timeouts").
// Settings written with 0x08 are not saved (no WR): a reset brings back the defaults.
import type { Timers } from '../clock';
import type { Digital, DigitalOptions } from '../io';
import type { VirtualSerialDevice } from './serial';
import type { MeshNode, ZigbeeMesh } from './zigbeeMesh';

/** User Guide "Escaped characters": bytes that cannot travel as themselves after the delimiter. */
const MUST_ESCAPE = new Set([0x7e, 0x7d, 0x11, 0x13]);

export interface VirtualXBeeOptions {
  mesh: ZigbeeMesh;
  /** 16 hex digits, e.g. '0013a20041a7b001' (SH then SL). */
  address64: string;
  position: { x: number; y: number };
  /** Radio range, metres (the XBee 3 reaches ~60 m indoors / urban, 1200 m line of sight). */
  range?: number;
  /** NP: the largest RF payload per Transmit Request (84 bytes without APS encryption or source routing). */
  maxPayload?: number;
  /** Boot time after a reset until the module talks, and from then until it has joined, ms. */
  bootMs?: number;
  joinMs?: number;
  /** AP as set at the factory; the driver needs 2. */
  apiMode?: number;
}

export interface XBeeFaults {
  /** The next N frames the module sends carry a wrong checksum. */
  corruptChecksum: number;
  /** The next N frames the module sends carry an escape byte followed by a byte that is not an escaped one. */
  garbleEscape: number;
  /** The next N transmit requests end with this delivery status instead of going on air. */
  deliveryFailure: { status: number; count: number } | undefined;
  /** The module answers nothing on the UART (a hung module); it still receives nothing from air. */
  silent: boolean;
}

type Line = { send(bytes: Uint8Array): void; readonly open?: boolean };

export class VirtualXBee implements VirtualSerialDevice, MeshNode {
  readonly address64: string;
  position: { x: number; y: number };
  range: number;
  readonly maxPayload: number;
  readonly faults: XBeeFaults = {
    corruptChecksum: 0,
    garbleEscape: 0,
    deliveryFailure: undefined,
    silent: false,
  };
  /** Frames sent and received over the air, frames refused on the UART (bad checksum, bad escape). */
  readonly counters = {
    transmitted: 0,
    received: 0,
    uartRejected: 0,
    resets: 0,
    /** Bytes the host sent while the module slept (its UART is off then). */
    uartWhileAsleep: 0,
    sleeps: 0,
    wakes: 0,
  };
  // Sleep settings, as after a reset ("Sleep commands", "I/O settings" defaults).
  #sm = 0;
  #sp = 0x20;
  #d8 = 1;
  #d9 = 1;
  #sleepRequest: 0 | 1 = 0;
  #asleep = false;
  /** Transmissions waiting for their Transmit Status: pin sleep waits for them. */
  #outstanding = 0;
  readonly #mesh: ZigbeeMesh;
  readonly #timers: Timers;
  readonly #bootMs: number;
  readonly #joinMs: number;
  readonly #apiMode: number;
  #line: Line | undefined;
  #state: 'booting' | 'joining' | 'joined' | 'off' = 'joining';
  #epoch = 0;
  // UART receive state
  #rx: number[] | undefined;
  #escape = false;

  constructor(options: VirtualXBeeOptions) {
    if (!/^[0-9a-f]{16}$/.test(options.address64)) throw new RangeError('address64 is 16 hex digits');
    this.#mesh = options.mesh;
    this.#timers = options.mesh.timers;
    this.address64 = options.address64;
    this.position = { ...options.position };
    this.range = options.range ?? 60;
    this.maxPayload = options.maxPayload ?? 84;
    this.#bootMs = options.bootMs ?? 50;
    this.#joinMs = options.joinMs ?? 200;
    this.#apiMode = options.apiMode ?? 2;
    this.#mesh.add(this);
    this.#boot();
  }

  get joined(): boolean {
    return this.#state === 'joined';
  }

  get state(): 'booting' | 'joining' | 'joined' | 'off' {
    return this.#state;
  }

  /** SM ≠ 0: an end device, which never routes and may sleep. */
  get endDevice(): boolean {
    return this.#sm !== 0;
  }

  /** In pin sleep: nothing on the UART, nothing on air. */
  get asleep(): boolean {
    return this.#asleep;
  }

  /** How long this node, as a parent, buffers a packet for a sleeping child: 1.2 × SP, at most 30 s. */
  get childBufferMs(): number {
    return Math.min(30_000, 12 * this.#sp);
  }

  // ---- the UART side -------------------------------------------------------------------------

  opened(line: Line): void {
    this.#line = line;
  }

  receive(bytes: Uint8Array, line: Line): void {
    this.#line ??= line;
    if (this.#state === 'off' || this.#state === 'booting') return;
    if (this.#asleep) {
      this.counters.uartWhileAsleep += bytes.length;
      return;
    }
    for (const raw of bytes) {
      if (raw === 0x7e) {
        this.#rx = [];
        this.#escape = false;
        continue;
      }
      if (!this.#rx) continue;
      if (raw === 0x7d) {
        this.#escape = true;
        continue;
      }
      this.#rx.push(this.#escape ? raw ^ 0x20 : raw);
      this.#escape = false;
      const rx = this.#rx;
      if (rx.length >= 2) {
        const length = (rx[0] << 8) | rx[1];
        if (rx.length === length + 3) {
          this.#rx = undefined;
          const data = rx.slice(2, 2 + length);
          const sum = data.reduce((a, b) => a + b, 0) + rx[2 + length];
          if ((sum & 0xff) !== 0xff) this.counters.uartRejected++;
          else this.#command(Uint8Array.from(data));
        }
      }
    }
  }

  /** A frame to the host: delimiter, length, data, checksum, escaped as AP = 2 wants (with any fault applied). */
  #emit(data: number[]): void {
    if (this.faults.silent || this.#state === 'off' || this.#state === 'booting' || this.#asleep) return;
    if (this.#line && this.#line.open === false) return;
    let checksum = 0xff - (data.reduce((a, b) => a + b, 0) & 0xff);
    if (this.faults.corruptChecksum > 0) {
      this.faults.corruptChecksum--;
      checksum ^= 0x5a;
    }
    const body = [data.length >> 8, data.length & 0xff, ...data, checksum];
    const wire = [0x7e];
    for (const b of body) {
      if (MUST_ESCAPE.has(b)) wire.push(0x7d, b ^ 0x20);
      else wire.push(b);
    }
    if (this.faults.garbleEscape > 0) {
      this.faults.garbleEscape--;
      wire.splice(4, 0, 0x7d, 0x41); // 0x41 ^ 0x20 = 0x61: not a byte that is ever escaped
    }
    this.#line?.send(Uint8Array.from(wire));
  }

  #command(frame: Uint8Array): void {
    switch (frame[0]) {
      case 0x08:
        this.#at(frame[1], String.fromCharCode(frame[2], frame[3]), frame.slice(4));
        return;
      case 0x10:
        this.#transmit(frame);
        return;
      default:
        // Unknown frame types are ignored by this twin (the user guide lists many it does not model).
        return;
    }
  }

  #at(frameId: number, name: string, parameter: Uint8Array): void {
    const hex = this.address64;
    const word = (v: number) => [(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];
    let status = 0;
    let value: number[] = [];
    switch (name) {
      case 'AP':
        value = [this.#apiMode];
        break;
      case 'SH':
        value = word(Number.parseInt(hex.slice(0, 8), 16));
        break;
      case 'SL':
        value = word(Number.parseInt(hex.slice(8), 16));
        break;
      case 'MY': {
        const my = this.joined ? this.#mesh.network16(hex) : 0xfffe;
        value = [my >> 8, my & 0xff];
        break;
      }
      case 'NP':
        value = [this.maxPayload >> 8, this.maxPayload & 0xff];
        break;
      case 'AI':
        value = [this.joined ? 0x00 : 0xff]; // 0 joined; FF scanning for a network
        break;
      case 'ID':
        value = [0, 0, 0, 0, 0, 0, 0x50, 0x4b];
        break;
      case 'SM':
      case 'SP':
      case 'D8':
      case 'D9':
        this.#sleepSetting(frameId, name, parameter);
        return;
      case 'FR':
        // "FR (Software Reset)": OK first, then the module resets.
        if (frameId) this.#emit([0x88, frameId, 0x46, 0x52, 0]);
        this.#timers.setTimeout(() => this.reset(), 1);
        return;
      default:
        status = 2; // invalid command
    }
    if (parameter.length > 0 && name !== 'FR') {
      status = name === 'AP' || name === 'ID' ? 0 : 3; // read-only parameters refuse a value
      value = [];
    }
    if (frameId) this.#emit([0x88, frameId, name.charCodeAt(0), name.charCodeAt(1), status, ...value]);
  }

  /** SM, SP, D8, D9: read with no parameter, written with one (big-endian). */
  #sleepSetting(frameId: number, name: string, parameter: Uint8Array): void {
    const answer = (status: number, value: number[] = []) => {
      if (frameId) this.#emit([0x88, frameId, name.charCodeAt(0), name.charCodeAt(1), status, ...value]);
    };
    const current = name === 'SM' ? this.#sm : name === 'SP' ? this.#sp : name === 'D8' ? this.#d8 : this.#d9;
    if (parameter.length === 0) {
      answer(0, name === 'SP' ? [current >> 8, current & 0xff] : [current]);
      return;
    }
    let value = 0;
    for (const b of parameter) value = (value << 8) | b;
    // SM 0 (router) and 1 (pin sleep) are modelled; cyclic sleep (4, 5) is not.
    const valid =
      name === 'SM'
        ? value === 0 || value === 1
        : name === 'SP'
          ? value >= 0x20 && value <= 0xaf0
          : [0, 1, 3, 4, 5].includes(value);
    if (!valid) {
      answer(3);
      return;
    }
    answer(0);
    if (name === 'SP') this.#sp = value;
    else if (name === 'D8') this.#d8 = value;
    else if (name === 'D9') this.#d9 = value;
    else if (value !== this.#sm) {
      // A new device type: the module leaves and joins again as a router or an end device.
      this.#sm = value;
      this.#asleep = false;
      this.#rejoin();
      return;
    }
    this.#trySleep();
  }

  #transmit(frame: Uint8Array): void {
    const frameId = frame[1];
    const dest = Array.from(frame.slice(2, 10), (b) => b.toString(16).padStart(2, '0')).join('');
    const data = frame.slice(14);
    this.#outstanding++;
    const transmitEpoch = this.#epoch;
    let reported = false;
    const report = (status: number, retries: number) => {
      if (reported) return;
      reported = true;
      if (transmitEpoch === this.#epoch) this.#outstanding--;
      if (frameId) {
        const my = this.#mesh.network16(dest);
        this.#emit([0x8b, frameId, my >> 8, my & 0xff, retries, status, 0x00]);
      }
      this.#trySleep();
    };
    const failure = this.faults.deliveryFailure;
    if (failure && failure.count > 0) {
      failure.count--;
      const epoch = this.#epoch;
      this.#timers.setTimeout(() => {
        if (epoch === this.#epoch) report(failure.status, 0);
      }, this.#mesh.hopMs);
      return;
    }
    const target = this.#mesh.node(dest);
    if (this.joined && data.length <= this.maxPayload && dest !== this.address64 && target?.endDevice) {
      // To an end device: through its parent, which holds it while the child sleeps.
      this.counters.transmitted++;
      const epoch = this.#epoch;
      this.#mesh.sendToEndDevice(this.address64, dest, data, (status, retries) => {
        if (epoch === this.#epoch) report(status, retries);
      });
      return;
    }
    let result: { status: number; retries: number };
    if (!this.joined) result = { status: 0x22, retries: 0 };
    else if (data.length > this.maxPayload) result = { status: 0x74, retries: 0 };
    else if (dest === this.address64) result = { status: 0x23, retries: 0 };
    else {
      result = this.#mesh.send(this.address64, dest, data);
      this.counters.transmitted++;
    }
    const epoch = this.#epoch;
    // The Transmit Status comes once the module has its answer (the hops there and back).
    const hops = this.#mesh.hops(this.address64, dest) ?? 1;
    this.#timers.setTimeout(
      () => {
        if (epoch === this.#epoch) report(result.status, result.retries);
      },
      2 * hops * this.#mesh.hopMs,
    );
  }

  // ---- the air side --------------------------------------------------------------------------

  deliver(source64: string, source16: number, data: Uint8Array): void {
    if (!this.joined || this.#asleep) return;
    this.counters.received++;
    const src = [];
    for (let i = 0; i < 16; i += 2) src.push(Number.parseInt(source64.slice(i, i + 2), 16));
    this.#emit([0x90, ...src, source16 >> 8, source16 & 0xff, 0x01, ...data]); // 0x01: packet acknowledged
  }

  // ---- power and reset -----------------------------------------------------------------------

  /** A reset (RESET line pulse, ATFR, brown-out): everything queued is gone; it boots and joins again. */
  reset(): void {
    this.counters.resets++;
    this.#boot();
  }

  // ---- pin sleep -----------------------------------------------------------------------------

  /** The SLEEP_RQ input (DIO8) as a Digital class for the host: high asks for sleep (SM = 1, D8 = 1). */
  sleepRequestLine(): new (options: DigitalOptions) => Digital {
    const xbee = this;
    return class XBeeSleepRequestLine implements Digital {
      #level: 0 | 1 = 0;
      read(): 0 | 1 {
        return this.#level;
      }
      write(value: 0 | 1): void {
        this.#level = value;
        xbee.#setSleepRequest(value);
      }
      close(): void {}
    };
  }

  /** The ON/SLEEP output (DIO9, D9 = 1) as a Digital class for the host: high while awake. */
  onSleepLine(): new (options: DigitalOptions) => Digital {
    const xbee = this;
    return class XBeeOnSleepLine implements Digital {
      read(): 0 | 1 {
        const on = xbee.#state !== 'off' && xbee.#state !== 'booting' && !xbee.#asleep;
        return xbee.#d9 === 1 && on ? 1 : 0;
      }
      write(): void {
        throw new Error('ON/SLEEP is an output of the module');
      }
      close(): void {}
    };
  }

  #setSleepRequest(level: 0 | 1): void {
    this.#sleepRequest = level;
    if (level === 1) {
      this.#trySleep();
      return;
    }
    if (!this.#asleep) return;
    // "The time between t3 and t4 is 1-2 ms": awake, then the first poll of its parent.
    const epoch = this.#epoch;
    this.#timers.setTimeout(() => {
      if (epoch !== this.#epoch || this.#sleepRequest === 1 || !this.#asleep) return;
      this.#asleep = false;
      this.counters.wakes++;
      this.#mesh.poll(this.address64);
    }, 2);
  }

  /** Sleeps when pin sleep is asked for, configured, and no transmission waits for its status. */
  #trySleep(): void {
    if (this.#asleep || this.#sleepRequest !== 1 || this.#sm !== 1 || this.#d8 !== 1) return;
    if (this.#outstanding > 0 || this.#state !== 'joined') return;
    const epoch = this.#epoch;
    this.#timers.setTimeout(() => {
      if (epoch !== this.#epoch || this.#sleepRequest !== 1 || this.#outstanding > 0 || this.#asleep) return;
      this.#asleep = true;
      this.counters.sleeps++;
    }, 1);
  }

  #rejoin(): void {
    const epoch = ++this.#epoch;
    this.#outstanding = 0;
    this.#state = 'joining';
    this.#timers.setTimeout(() => {
      if (epoch !== this.#epoch) return;
      this.#state = 'joined';
      this.#emit([0x8a, 0x02]);
      this.#trySleep();
    }, this.#joinMs);
  }

  /** Power off (true) until powered on again (false): nothing on air, nothing on the UART. */
  powerOff(off: boolean): void {
    if (off) {
      this.#epoch++;
      this.#state = 'off';
      this.#asleep = false;
      this.#rx = undefined;
    } else if (this.#state === 'off') this.#boot();
  }

  /** The RESET input as a Digital class for the host's driver: held low, the module is in reset. */
  resetLine(): new (options: DigitalOptions) => Digital {
    const xbee = this;
    return class XBeeResetLine implements Digital {
      #level: 0 | 1 = 1;
      read(): 0 | 1 {
        return this.#level;
      }
      write(value: 0 | 1): void {
        if (value === this.#level) return;
        this.#level = value;
        xbee.powerOff(value === 0);
        if (value === 1) xbee.counters.resets++;
      }
      close(): void {}
    };
  }

  #boot(): void {
    const epoch = ++this.#epoch;
    this.#state = 'booting';
    this.#rx = undefined;
    this.#asleep = false;
    this.#outstanding = 0;
    this.#sm = 0;
    this.#sp = 0x20;
    this.#d8 = 1;
    this.#d9 = 1;
    this.#timers.setTimeout(() => {
      if (epoch !== this.#epoch) return;
      this.#state = 'joining';
      this.#emit([0x8a, 0x00]); // hardware reset
      this.#timers.setTimeout(() => {
        if (epoch !== this.#epoch) return;
        this.#state = 'joined';
        this.#emit([0x8a, 0x02]); // joined network
        this.#trySleep();
      }, this.#joinMs);
    }, this.#bootMs);
  }
}
