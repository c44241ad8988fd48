// The handheld link: the GATT service (and its Wi-Fi port) through which an authorised handheld
// collects the meter's unacknowledged upload sets as the same sealed 0x01 frames the radio would
// send, and carries the platform's downlinks (acks, release tokens, any other) back; and through
// which any phone nearby reads the service information (meter id, bays, their state, the tariff
// applied; nothing personal). docs/handheld.md documents the service and the messages.
//
// Store and forward: a set collected is not a set delivered. The meter lets a set go only when the
// platform's ack reaches it, by the radio or by a handheld, exactly as CommsUnit does; the platform
// stores each record once whichever path brought it.
//
// The link is off by default: the mode key's entry signal (three CANCEL presses) makes the meter
// advertise for `advertiseMs`; a handheld connected then keeps its connection until it leaves.
// Authentication is security management's (maintenance token, challenge, proof); this unit hands it
// the hello and proof messages and asks it whether the handheld is proven.
//
// The meter's other uplinks (status events, security events and key-rotation acks, tariff acks)
// travel too: while a proven handheld is connected and the radio is down, the comms unit seals them
// into its outbox, and the handheld collects them ('uplink') and says when it holds them ('held').
import type { BleHandlers, BlePeripheral } from '../../hal/ble';
import type { TimerHandle, Timers } from '../../hal/clock';
import { decodeCbor, encodeCbor } from '../../protocol/cbor';
import {
  ATT_OVERHEAD,
  BEACON_COMPANY_ID,
  ChunkAssembler,
  chunkMessage,
  encodeServiceBeacon,
  HandheldChunkError,
} from '../../protocol/handheld';
import type { EventBus } from '../bus';
import type { MeterEvents } from '../events';
import type { DownlinkOutcome, KeptUplink, UploadSetView } from './comms';
import type { HandheldChannel } from './security';

const DEFAULT_MTU = 23; // ATT default (Bluetooth Core Vol 3 Part F §3.2.8)
/** How long the mode key's entry signal makes the meter advertise, by default. */
export const ADVERTISE_MS = 5 * 60_000;
/**
 * The service beacon's advertising interval while the link is off, ms: slow advertising, so a phone
 * scanning nearby hears it within seconds while it costs the radio one short event every 2 s.
 */
export const BEACON_INTERVAL_MS = 2_000;
/** How often the beacon's bay states and minutes left are brought up to date, ms. */
export const BEACON_REFRESH_MS = 30_000;

/** One way a handheld reaches the service: the BLE peripheral, or the Wi-Fi port. */
export interface HandheldTransport {
  /** 'ble' or 'ble:wifi': the monitor's module 'ble' (prefix) repairs both. */
  name: string;
  port: BlePeripheral;
}

/** What the service information says, read without authentication. */
export interface ServiceInfo {
  meterId: number;
  bays: { bay: number; state: string; until?: number }[];
  tariff: { id: string; version: number; currency: number };
}

export interface HandheldLinkOptions {
  transports: readonly HandheldTransport[];
  bus: EventBus<MeterEvents>;
  timers: Timers;
  /** The upload set beginning at `first` (CommsUnit.uploadSet). */
  uploadSet(first?: number): UploadSetView | undefined;
  /** Seals a set as an uplink frame (CommsUnit.sealSet). */
  sealSet(set: UploadSetView): Uint8Array;
  /** Handles a sealed downlink as if the radio brought it (CommsUnit.receiveDownlink). */
  receiveDownlink(frame: Uint8Array): DownlinkOutcome;
  /** The first sealed uplink kept for a handheld after id `after` (CommsUnit.keptAfter). */
  keptUplink(after: number): KeptUplink | undefined;
  /** The handheld holds the kept uplinks up to `upTo`: they leave the meter; returns how many remain. */
  releaseKept(upTo: number): number;
  /** Moves what units keep for the link (StatusChannel's events) into the outbox, now that a handheld takes them. */
  collectPending(): void;
  /** Applies a release token (MainRecord.applyRelease); throws when it is refused. */
  applyRelease(token: Uint8Array): void;
  /** The highest record the platform acknowledged (UploadLedger.acknowledgedSeq). */
  acknowledgedSeq(): number;
  /** Whether a handheld token is proven (SecurityManagement.handheldStaff). */
  authorised(): boolean;
  /** A proven handheld is at work (SecurityManagement.keepHandheld). */
  keepAlive(): void;
  serviceInfo(): ServiceInfo;
  /**
   * The operating parameters (ParametersUnit): read, and changed in the maintenance session; `set`
   * answers the values in force or throws why the change was refused (nothing changed).
   */
  parameters?: {
    read(): { version: number; local: boolean; values: Record<string, unknown> };
    set(changes: Record<string, unknown>): {
      version: number;
      local: boolean;
      values: Record<string, unknown>;
    };
  };
  advertiseMs?: number;
  /** Wall-clock time, epoch seconds (the beacon's minutes left). */
  nowSeconds?: () => number;
  /**
   * The service beacon (docs/handheld.md): on by default where the transport can broadcast and
   * nowSeconds is given; false switches it off.
   */
  beacon?: false | { intervalMs?: number; refreshMs?: number; companyId?: number };
}

interface Port {
  transport: HandheldTransport;
  open: boolean;
}

export class HandheldLink {
  readonly #o: HandheldLinkOptions;
  readonly #ports: Port[];
  /** The port a handheld is connected on (one at a time). */
  #active: Port | undefined;
  #mtu = DEFAULT_MTU;
  readonly #assembler = new ChunkAssembler();
  #window: TimerHandle | undefined;
  #authHandlers: BleHandlers | undefined;
  #beaconTimer: TimerHandle | undefined;
  /** Security management's side of the link: whole messages, the same session. */
  readonly channel: HandheldChannel;

  constructor(options: HandheldLinkOptions) {
    this.#o = options;
    this.#ports = options.transports.map((transport) => ({ transport, open: false }));
    const link = this;
    this.channel = {
      open(handlers) {
        link.#authHandlers = handlers;
      },
      notify: (data) => this.#send(data),
      disconnect: () => this.#active?.transport.port.disconnect(),
      close() {
        link.#authHandlers = undefined;
      },
    };
    for (const port of this.#ports) this.#open(port, true);
    options.bus.on('maintenance-entry', () => this.switchOn());
    if (options.beacon !== false && options.nowSeconds) {
      this.#updateBeacon();
      this.#beaconTimer = options.timers.setInterval(
        () => this.#updateBeacon(),
        options.beacon?.refreshMs ?? BEACON_REFRESH_MS,
      );
    }
  }

  /** Whether the meter is advertising (the mode key's window is open). */
  get on(): boolean {
    return this.#window !== undefined;
  }

  /** The transport a handheld is connected on, if any. */
  get connectedOn(): string | undefined {
    return this.#active?.transport.name;
  }

  /** Advertises on every open transport for advertiseMs (the mode key's entry signal). */
  switchOn(): void {
    const { timers } = this.#o;
    timers.clear(this.#window);
    this.#window = timers.setTimeout(() => this.switchOff(), this.#o.advertiseMs ?? ADVERTISE_MS);
    this.#refreshInfo();
    // While a handheld is connected nobody else is served: advertising waits for it to leave.
    if (!this.#active) for (const port of this.#ports) if (port.open) this.#advertise(port, true);
  }

  /** Stops advertising; a handheld connected stays until it leaves. */
  switchOff(): void {
    this.#o.timers.clear(this.#window);
    this.#window = undefined;
    for (const port of this.#ports) if (port.open) this.#advertise(port, false);
  }

  /** The monitor's repair of module 'ble': closes and opens every transport; true when all opened. */
  reopen(): boolean {
    let ok = true;
    for (const port of this.#ports) {
      try {
        port.transport.port.close();
      } catch {
        // a transport that never started has nothing to close
      }
      port.open = false;
      if (port === this.#active) this.#ended();
      if (!this.#open(port, false)) ok = false;
      else if (this.on) this.#advertise(port, true);
    }
    this.#updateBeacon();
    return ok;
  }

  close(): void {
    this.#o.timers.clear(this.#beaconTimer);
    this.#beaconTimer = undefined;
    this.switchOff();
    for (const port of this.#ports) {
      if (port.open) port.transport.port.close();
      port.open = false;
    }
    this.#active = undefined;
  }

  #open(port: Port, report: boolean): boolean {
    try {
      port.transport.port.open(this.#handlersFor(port));
      port.open = true;
      return true;
    } catch (error) {
      // The handheld's link is out of service; the monitor (module 'ble') calls reopen().
      if (report) this.#o.bus.emit('fault', { unit: port.transport.name, error });
      return false;
    }
  }

  #advertise(port: Port, on: boolean): void {
    try {
      port.transport.port.advertise(on);
    } catch (error) {
      this.#o.bus.emit('fault', { unit: port.transport.name, error });
    }
  }

  #handlersFor(port: Port): BleHandlers {
    return {
      onConnect: () => {
        if (this.#active && this.#active !== port) {
          port.transport.port.disconnect(); // one handheld at a time
          return;
        }
        this.#active = port;
        this.#mtu = DEFAULT_MTU;
        this.#assembler.reset();
        this.#refreshInfo();
        for (const other of this.#ports) if (other !== port && other.open) this.#advertise(other, false);
        this.#authHandlers?.onConnect();
      },
      onDisconnect: () => {
        if (this.#active !== port) return;
        this.#ended();
        if (this.on) for (const p of this.#ports) if (p.open) this.#advertise(p, true);
      },
      onMtu: (mtu) => {
        if (this.#active === port && Number.isInteger(mtu) && mtu >= DEFAULT_MTU) this.#mtu = mtu;
      },
      onWrite: (chunk) => {
        if (this.#active !== port) return;
        let message: Uint8Array | undefined;
        try {
          message = this.#assembler.push(chunk);
        } catch (error) {
          if (error instanceof HandheldChunkError) this.#reply({ t: 'refused', why: 'bad-chunk' });
          else throw error;
          return;
        }
        if (message) this.#onMessage(message);
      },
    };
  }

  #ended(): void {
    this.#active = undefined;
    this.#assembler.reset();
    this.#authHandlers?.onDisconnect();
  }

  /**
   * Brings the non-connectable service beacon up to date on every transport that can broadcast; the
   * peripheral sends it only while it does not advertise the connectable service and nobody is
   * connected, so a passer-by's phone reads the service information with the link off.
   */
  #updateBeacon(): void {
    const o = this.#o;
    if (o.beacon === false || !o.nowSeconds) return;
    let data: Uint8Array | undefined;
    try {
      data = encodeServiceBeacon(o.serviceInfo(), o.nowSeconds());
    } catch (error) {
      o.bus.emit('fault', { unit: 'ble', error });
    }
    const beacon = data && {
      companyId: o.beacon?.companyId ?? BEACON_COMPANY_ID,
      data,
      intervalMs: o.beacon?.intervalMs ?? BEACON_INTERVAL_MS,
    };
    for (const port of this.#ports) {
      const peripheral = port.transport.port;
      if (!port.open || !peripheral.broadcast) continue;
      try {
        peripheral.broadcast(beacon);
      } catch (error) {
        o.bus.emit('fault', { unit: port.transport.name, error });
      }
    }
  }

  #refreshInfo(): void {
    this.#updateBeacon();
    const info = encodeCbor(this.#infoMessage());
    for (const port of this.#ports) {
      if (!port.open) continue;
      try {
        port.transport.port.setInfo(info);
      } catch (error) {
        this.#o.bus.emit('fault', { unit: port.transport.name, error });
      }
    }
  }

  #infoMessage(): Record<string, unknown> {
    const info = this.#o.serviceInfo();
    return {
      t: 'info',
      meter: info.meterId,
      bays: info.bays.map((b) => (b.until === undefined ? { bay: b.bay, state: b.state } : { ...b })),
      tariff: { ...info.tariff },
    };
  }

  #onMessage(bytes: Uint8Array): void {
    let message: Record<string, unknown>;
    try {
      const decoded = decodeCbor(bytes);
      if (!decoded || typeof decoded !== 'object' || Array.isArray(decoded) || decoded instanceof Uint8Array)
        throw new TypeError('not a map');
      message = decoded as Record<string, unknown>;
    } catch {
      this.#reply({ t: 'refused', why: 'malformed' });
      return;
    }
    switch (message.t) {
      case 'hello':
      case 'proof':
        if (this.#authHandlers) this.#authHandlers.onWrite(bytes);
        else this.#reply({ t: 'refused', why: 'no authentication on this meter' });
        return;
      case 'info':
        this.#reply(this.#infoMessage());
        return;
      case 'next':
      case 'down':
      case 'release':
      case 'uplink':
      case 'held':
      case 'params':
        break;
      default:
        this.#reply({ t: 'refused', why: 'unexpected' });
        return;
    }
    if (!this.#o.authorised()) {
      this.#reply({ t: 'refused', why: 'not authorised' });
      return;
    }
    this.#o.keepAlive();
    if (message.t === 'next') this.#next(message.after);
    else if (message.t === 'down') this.#down(message.frame);
    else if (message.t === 'uplink') this.#uplink(message.after);
    else if (message.t === 'held') this.#held(message.upTo);
    else if (message.t === 'params') this.#params(message.set);
    else this.#release(message.token);
  }

  /** The next sealed uplink outside the record chain after id `after`, as the radio would have sent it. */
  #uplink(after: unknown): void {
    if (after !== undefined && !(typeof after === 'number' && Number.isInteger(after) && after >= 0)) {
      this.#reply({ t: 'refused', why: 'bad after' });
      return;
    }
    this.#o.collectPending();
    const kept = this.#o.keptUplink(after ?? 0);
    this.#reply(kept ? { t: 'uplink', id: kept.id, type: kept.type, frame: kept.frame } : { t: 'no-uplink' });
  }

  /** The handheld holds every kept uplink up to `upTo`: the meter lets them go. */
  #held(upTo: unknown): void {
    if (!(typeof upTo === 'number' && Number.isInteger(upTo) && upTo >= 0)) {
      this.#reply({ t: 'refused', why: 'bad upTo' });
      return;
    }
    this.#reply({ t: 'held', kept: this.#o.releaseKept(upTo) });
  }

  /** The parameters in force; with `set`, a local change first (refused whole, with why). */
  #params(changes: unknown): void {
    const parameters = this.#o.parameters;
    if (!parameters) {
      this.#reply({ t: 'refused', why: 'no parameters on this meter' });
      return;
    }
    if (
      changes !== undefined &&
      (typeof changes !== 'object' || changes === null || Array.isArray(changes))
    ) {
      this.#reply({ t: 'params', ok: false, why: 'set is not a map' });
      return;
    }
    try {
      const held =
        changes === undefined ? parameters.read() : parameters.set(changes as Record<string, unknown>);
      this.#reply({ t: 'params', ok: true, v: held.version, local: held.local, p: held.values });
    } catch (error) {
      this.#reply({ t: 'params', ok: false, why: (error as Error).message });
    }
  }

  /** The next set after `after` (the last record the handheld holds), sealed afresh. */
  #next(after: unknown): void {
    if (after !== undefined && !(typeof after === 'number' && Number.isInteger(after) && after >= 0)) {
      this.#reply({ t: 'refused', why: 'bad after' });
      return;
    }
    const o = this.#o;
    const set = o.uploadSet(after === undefined ? undefined : after + 1);
    if (!set) {
      this.#reply({ t: 'none', acked: o.acknowledgedSeq() });
      return;
    }
    this.#reply({ t: 'set', first: set.firstSeq, last: set.lastSeq, frame: o.sealSet(set) });
  }

  #down(frame: unknown): void {
    if (!(frame instanceof Uint8Array)) {
      this.#reply({ t: 'refused', why: 'bad frame' });
      return;
    }
    const outcome = this.#o.receiveDownlink(frame);
    const acked = this.#o.acknowledgedSeq();
    this.#reply(
      outcome.ok
        ? { t: 'down', ok: true, type: outcome.type, acked }
        : { t: 'down', ok: false, why: outcome.reason, acked },
    );
  }

  #release(token: unknown): void {
    if (!(token instanceof Uint8Array)) {
      this.#reply({ t: 'refused', why: 'bad token' });
      return;
    }
    try {
      this.#o.applyRelease(token);
      this.#reply({ t: 'release', ok: true, acked: this.#o.acknowledgedSeq() });
    } catch (error) {
      this.#reply({
        t: 'release',
        ok: false,
        why: (error as Error).message,
        acked: this.#o.acknowledgedSeq(),
      });
    }
  }

  #reply(message: Record<string, unknown>): void {
    this.#send(encodeCbor(message));
  }

  /** Sends one message in chunks that fit the MTU; false when no handheld is connected. */
  #send(message: Uint8Array): boolean {
    const port = this.#active;
    if (!port) return false;
    for (const chunk of chunkMessage(message, this.#mtu - ATT_OVERHEAD)) {
      if (!port.transport.port.notify(chunk)) return false;
    }
    return true;
  }
}
