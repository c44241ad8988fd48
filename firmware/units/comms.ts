// Communication management (412): uploads records the platform has not acknowledged, one set at a
// time (stop and wait), over whatever MqttLink the board has; retries with backoff until the
// platform acknowledges the set's last sequence number and chain link. With a RecordStore, each set
// is first copied to the whole-set upload backup and always sent from there, so every resend (after
// a timeout, a reconnect or a restart) carries the same bytes until the ack or an operator release.
//
// Uplinks outside the record chain (status 0x04, security events and key-rotation acks 0x03,
// tariff acks 0x05, …) go at once over the link. With no link but a proven handheld connected, the
// sealed frame is kept in the outbox for the handheld to collect (docs/handheld.md): it counts as
// sent, as a publish the broker took does, and leaves the outbox once the handheld says it holds it
// or the link returns and publishes it. With neither, send() says false and the unit keeps its own
// state (StatusChannel its events; a rotation is not switched to; the platform resends its push).
import type { Clock, TimerHandle, Timers } from '../../hal/clock';
import type { Crypto } from '../../hal/crypto';
import type { BrokerEndpoint, MqttLink } from '../../hal/mqtt';
import { bytesEqual, readUint32 } from '../../protocol/bytes';
import { genesisHash } from '../../protocol/chain';
import { ProtocolError } from '../../protocol/errors';
import { FrameType } from '../../protocol/frame';
import { decodeAckMessage, encodeRecordsMessage } from '../../protocol/messages';
import { downlinkTopic, uplinkTopic } from '../../protocol/topics';
import type { EventBus } from '../bus';
import type { MeterEvents } from '../events';
import type { SecurityUnit } from './security';
import { type RecordSource, RecordStore, type StoredRecord, type UploadLedger } from './storage';

export interface CommsOptions {
  link: MqttLink;
  security: SecurityUnit;
  log: RecordSource;
  ledger: UploadLedger;
  crypto: Crypto;
  clock: Clock;
  timers: Timers;
  bus: EventBus<MeterEvents>;
  /** Largest record payload per set, bytes (MQTT packets from cellular modems are small). */
  maxSetBytes?: number;
  ackTimeoutMs?: number;
  maxBackoffMs?: number;
  /** Whether a proven handheld is connected: it takes sealed uplinks when the link cannot. */
  handheldPresent?: () => boolean;
  /** Wait before moving to a new broker endpoint, so the acknowledgement just sent leaves first (ms). */
  brokerSwitchDelayMs?: number;
  /** How long a new broker endpoint has to connect before the link goes back to the last one (ms). */
  brokerTrialMs?: number;
}

/** What became of a broker endpoint switch (operating parameters brokerHost/brokerPort). */
export type BrokerSwitchOutcome =
  | { state: 'connected'; endpoint: BrokerEndpoint }
  | { state: 'rolled-back'; endpoint: BrokerEndpoint; previous: BrokerEndpoint; why: string };

/** Sealed uplinks kept for a handheld (or the link's return): at most this many, the oldest dropped. */
export const OUTBOX_FRAMES = 32;

/** A sealed uplink kept in the outbox; `id` counts up from 1 for the handheld's resume. */
export interface KeptUplink {
  id: number;
  type: number;
  frame: Uint8Array;
}

/** An upload set as it is sealed: the chain link before it and its records' bytes. */
export interface UploadSetView {
  firstSeq: number;
  lastSeq: number;
  previous: Uint8Array;
  records: Uint8Array[];
  lastLink: Uint8Array;
}

export type DownlinkOutcome = { ok: true; type: number; seq: number } | { ok: false; reason: string };

interface BrokerTrial {
  next: BrokerEndpoint;
  previous: BrokerEndpoint;
  timer: TimerHandle | undefined;
  done: (outcome: BrokerSwitchOutcome) => void;
}

interface InFlight {
  firstSeq: number;
  lastSeq: number;
  lastLink: Uint8Array;
}

export class CommsUnit {
  readonly #o: Required<CommsOptions>;
  #inFlight: InFlight | undefined;
  #timer: TimerHandle | undefined;
  #uploadTimer: TimerHandle | undefined;
  #backoffMs: number;
  #started = false;
  #linkOpen = false;
  #linkFault: unknown;
  readonly #outbox: KeptUplink[] = [];
  #outboxId = 0;
  /** Kept uplinks dropped because the outbox was full. */
  outboxDropped = 0;
  /** A broker endpoint switch under way: the endpoint tried and the last one that worked. */
  #brokerTrial: BrokerTrial | undefined;

  constructor(options: CommsOptions) {
    this.#o = {
      maxSetBytes: 2048,
      ackTimeoutMs: 10_000,
      maxBackoffMs: 300_000,
      handheldPresent: () => false,
      brokerSwitchDelayMs: 2_000,
      brokerTrialMs: 120_000,
      ...options,
    };
    this.#backoffMs = this.#o.ackTimeoutMs;
    // An operator release discards the set in flight: move on to the next one.
    options.bus.on('upload-released', () => {
      this.#inFlight = undefined;
      this.#o.timers.clear(this.#timer);
      this.#timer = undefined;
      this.#backoffMs = this.#o.ackTimeoutMs;
      this.flush();
    });
  }

  /**
   * Opens the link. A link that does not open (the modem or network stack did not start) is a
   * fault of the radio's link, not an abort: the records wait, and the monitor calls reopen().
   */
  start(): void {
    if (this.#started) return;
    this.#started = true;
    if (!this.#openLink()) this.#o.bus.emit('fault', { unit: 'radio:link', error: this.#linkFault });
  }

  /** Whether the link is open (it may still be connecting). */
  get linkOpen(): boolean {
    return this.#linkOpen;
  }

  /** The monitor's repair of a link that did not open: tries again; true when it is open. */
  reopen(): boolean {
    if (!this.#started) return false;
    return this.#linkOpen || this.#openLink();
  }

  #openLink(): boolean {
    const { link, security } = this.#o;
    try {
      link.open({
        onConnect: () => {
          this.#brokerReached();
          link.subscribe(downlinkTopic(security.meterId));
          this.#inFlight = undefined; // whatever was in flight is resent on the new session
          this.#publishKept();
          this.flush();
        },
        onDisconnect: () => {},
        onMessage: (topic, payload) => this.#onDownlink(topic, payload),
      });
    } catch (error) {
      this.#linkFault = error;
      return false;
    }
    this.#linkOpen = true;
    this.#linkFault = undefined;
    return true;
  }

  /** The broker endpoint the link uses, on a link that chooses one. */
  get brokerEndpoint(): BrokerEndpoint | undefined {
    return this.#o.link.endpoint;
  }

  /** Whether a broker endpoint switch is waiting for its first connection. */
  get brokerTrialPending(): boolean {
    return this.#brokerTrial !== undefined;
  }

  /**
   * Moves the link to another broker endpoint (operating parameters, 0x89) after
   * brokerSwitchDelayMs, so the acknowledgement just sent leaves on the endpoint that works. The
   * new endpoint has brokerTrialMs to connect; if it does not, the link goes back to the endpoint
   * it left (the last one that worked, even when several switches follow each other), so a wrong
   * endpoint cannot strand the meter. `done` hears the outcome. False (nothing done) on a link that
   * does not choose its broker, or when `next` is the endpoint in use.
   */
  switchBroker(next: BrokerEndpoint, done: (outcome: BrokerSwitchOutcome) => void): boolean {
    const { link, timers } = this.#o;
    const current = link.endpoint;
    if (!current || !link.setEndpoint) return false;
    const trial = this.#brokerTrial;
    const previous = trial ? trial.previous : current;
    if (trial) timers.clear(trial.timer);
    this.#brokerTrial = undefined;
    if (!trial && sameEndpoint(current, next)) return false;
    const pending: BrokerTrial = { next: { ...next }, previous, timer: undefined, done };
    this.#brokerTrial = pending;
    pending.timer = timers.setTimeout(() => {
      if (this.#brokerTrial !== pending) return;
      link.setEndpoint?.(pending.next);
      if (this.#brokerReached()) return;
      pending.timer = timers.setTimeout(() => this.#brokerRollBack(pending), this.#o.brokerTrialMs);
    }, this.#o.brokerSwitchDelayMs);
    return true;
  }

  /** The trial's endpoint answered: it is kept. True when a trial ended so. */
  #brokerReached(): boolean {
    const trial = this.#brokerTrial;
    const { link } = this.#o;
    if (!trial || !link.endpoint || !sameEndpoint(link.endpoint, trial.next)) return false;
    if (!(link.endpointConnected ?? link.connected)) return false;
    this.#o.timers.clear(trial.timer);
    this.#brokerTrial = undefined;
    trial.done({ state: 'connected', endpoint: trial.next });
    return true;
  }

  #brokerRollBack(trial: BrokerTrial): void {
    if (this.#brokerTrial !== trial) return;
    this.#brokerTrial = undefined;
    this.#o.link.setEndpoint?.(trial.previous);
    const seconds = Math.round(this.#o.brokerTrialMs / 1000);
    trial.done({
      state: 'rolled-back',
      endpoint: trial.next,
      previous: trial.previous,
      why: `broker ${trial.next.host}:${trial.next.port} not reached within ${seconds} s; back on ${trial.previous.host}:${trial.previous.port}`,
    });
  }

  /** Records waiting for the platform. */
  get pending(): number {
    return this.#o.log.lastSeq - this.#o.ledger.acknowledgedSeq;
  }

  /** The largest record payload per set. */
  get maxSetBytes(): number {
    return this.#o.maxSetBytes;
  }

  /** The largest record payload per set, from the operating parameters (0x89). */
  setMaxSetBytes(bytes: number): void {
    this.#o.maxSetBytes = bytes;
  }

  /**
   * Records waiting are tried again every `seconds` (operating parameters, 0x89), besides the
   * attempt each new record makes.
   */
  setUploadInterval(seconds: number): void {
    this.#o.timers.clear(this.#uploadTimer);
    this.#uploadTimer = this.#o.timers.setInterval(() => this.flush(), seconds * 1000);
  }

  /** Sends the next set if the link is up and nothing is waiting for an ack. */
  flush(): void {
    const { link, security, bus } = this.#o;
    if (this.#inFlight || !link.connected || !security.provisioned || this.pending <= 0) return;
    const set = this.uploadSet();
    if (!set) return;
    const frame = this.sealSet(set);
    if (!link.publish(uplinkTopic(security.meterId), frame)) return;
    this.#inFlight = { firstSeq: set.firstSeq, lastSeq: set.lastSeq, lastLink: set.lastLink };
    bus.emit('upload-sent', {
      firstSeq: set.firstSeq,
      lastSeq: set.lastSeq,
      frameSeq: readUint32(frame, 10),
    });
    this.#arm(this.#backoffMs);
  }

  /**
   * The upload set that begins at `first` (default: the first unacknowledged record), or undefined
   * when there is none. The set at the first unacknowledged record comes from the upload backup
   * (copied there first), so every path that carries it (MQTT, a handheld) carries the same
   * records; a later set, for a handheld collecting ahead of the acks, is read from the log.
   */
  uploadSet(first?: number): UploadSetView | undefined {
    const { log, ledger, bus } = this.#o;
    const store = log instanceof RecordStore ? log : undefined;
    const acked = ledger.acknowledgedSeq;
    const saved = store?.uploads.current;
    if ((first ?? 0) <= acked + 1 && saved && !saved.acknowledged && saved.firstSeq === acked + 1) {
      return saved; // the set in the upload backup goes again, byte for byte
    }
    const head = Math.max(acked + 1, log.firstSeq);
    const from = Math.max(first ?? 0, head);
    if (from > log.lastSeq) return undefined;
    const previous = this.#linkBefore(from);
    if (!previous) {
      bus.emit('fault', { unit: 'comms', error: new Error(`no chain link before record ${from}`) });
      return undefined;
    }
    const limit = Math.min(this.#o.maxSetBytes, store ? store.uploads.capacity : Number.POSITIVE_INFINITY);
    const picked: StoredRecord[] = [];
    let bytes = 0;
    for (const r of log.read(from, log.lastSeq, 64)) {
      if (r.seq !== from + picked.length) break; // a set is a contiguous run
      if (picked.length > 0 && bytes + r.bytes.length + 2 > limit) break;
      picked.push(r);
      bytes += r.bytes.length + 2;
    }
    if (picked.length === 0) return undefined;
    const last = picked[picked.length - 1];
    // Only the first unacknowledged set goes to the upload backup: it holds one set at a time.
    if (store && from === head) return store.uploads.save(previous, picked);
    return {
      firstSeq: picked[0].seq,
      lastSeq: last.seq,
      previous,
      records: picked.map((r) => r.bytes),
      lastLink: last.link,
    };
  }

  /** Seals a set as a 0x01 uplink frame; each call takes the next uplink frame sequence number. */
  sealSet(set: UploadSetView): Uint8Array {
    const body = encodeRecordsMessage({ previous: set.previous, records: set.records });
    return this.#o.security.sealUplink(FrameType.Records, body);
  }

  stop(): void {
    this.#o.timers.clear(this.#timer);
    this.#timer = undefined;
    const trial = this.#brokerTrial;
    this.#brokerTrial = undefined;
    this.#o.timers.clear(trial?.timer);
    if (this.#linkOpen) this.#o.link.close();
    this.#linkOpen = false;
    this.#started = false;
    // A switch still on trial is undone: the next start connects to the endpoint that worked.
    if (trial) this.#o.link.setEndpoint?.(trial.previous);
  }

  #linkBefore(first: number): Uint8Array | undefined {
    const { log, ledger, crypto, security } = this.#o;
    if (first === 1) return genesisHash(crypto, security.meterId);
    if (ledger.acknowledgedSeq === first - 1 && ledger.acknowledgedLink) return ledger.acknowledgedLink;
    return log.linkOf(first - 1);
  }

  #arm(ms: number): void {
    const { timers } = this.#o;
    timers.clear(this.#timer);
    this.#timer = timers.setTimeout(() => {
      this.#timer = undefined;
      this.#inFlight = undefined; // no ack in time: send again, waiting longer next time
      this.#backoffMs = Math.min(this.#backoffMs * 2, this.#o.maxBackoffMs);
      this.flush();
    }, ms);
  }

  /**
   * Sends a message outside the record chain (status, events, acks): over the link, or, with the
   * link down and a proven handheld connected, sealed into the outbox for it. False when neither
   * took it (nothing is sealed then).
   */
  send(type: number, body: Uint8Array): boolean {
    const { link, security } = this.#o;
    if (!security.provisioned) return false;
    if (link.connected) {
      this.#publishKept();
      if (link.publish(uplinkTopic(security.meterId), security.sealUplink(type, body))) return true;
    }
    if (!this.#o.handheldPresent()) return false;
    this.#keep(type, security.sealUplink(type, body));
    return true;
  }

  /**
   * Sends a set outside the stop-and-wait upload (a report on demand re-sending acknowledged
   * records, 0x8C): sealed as 0x01 like any set, over the link or, as send() does, into the outbox
   * for a handheld. The platform's ack for it names a record already acknowledged, so it changes
   * nothing here. False when neither took it.
   */
  sendSet(set: UploadSetView): boolean {
    const { link, security } = this.#o;
    if (!security.provisioned) return false;
    if (link.connected) {
      this.#publishKept();
      if (link.publish(uplinkTopic(security.meterId), this.sealSet(set))) return true;
    }
    if (!this.#o.handheldPresent()) return false;
    this.#keep(FrameType.Records, this.sealSet(set));
    return true;
  }

  /** Keeps a frame sealed elsewhere (the tamper alert) for a handheld, as send() does. */
  keepSealed(frame: Uint8Array): boolean {
    if (!this.#o.handheldPresent()) return false;
    this.#keep(frame[1] ?? 0, frame);
    return true;
  }

  /** Sealed uplinks kept for a handheld. */
  get kept(): number {
    return this.#outbox.length;
  }

  /** The first kept uplink with an id above `after` (0: from the start). */
  keptAfter(after = 0): KeptUplink | undefined {
    return this.#outbox.find((k) => k.id > after);
  }

  /** The handheld holds every kept uplink up to `id`: they leave the meter. Returns how many are left. */
  release(upTo: number): number {
    while (this.#outbox.length > 0 && this.#outbox[0].id <= upTo) this.#outbox.shift();
    return this.#outbox.length;
  }

  #keep(type: number, frame: Uint8Array): void {
    this.#outboxId++;
    this.#outbox.push({ id: this.#outboxId, type, frame });
    if (this.#outbox.length > OUTBOX_FRAMES) {
      this.#outbox.shift();
      this.outboxDropped++;
    }
  }

  /** The link is back: what a handheld did not take goes now, byte for byte. */
  #publishKept(): void {
    const { link, security } = this.#o;
    while (this.#outbox.length > 0 && link.connected) {
      if (!link.publish(uplinkTopic(security.meterId), this.#outbox[0].frame)) return;
      this.#outbox.shift();
    }
  }

  #onDownlink(topic: string, payload: Uint8Array): void {
    if (topic !== downlinkTopic(this.#o.security.meterId)) return;
    this.receiveDownlink(payload);
  }

  /**
   * Handles one sealed downlink frame, whichever path brought it (MQTT, a handheld): opens it
   * (authentication and the downlink replay window), applies an ack (0x81) here and hands any other
   * type to its unit as a 'downlink' event. A refused frame is a 'downlink-refused' event; either
   * way the outcome is returned.
   */
  receiveDownlink(frame: Uint8Array): DownlinkOutcome {
    const { security, bus } = this.#o;
    try {
      const { header, body } = security.openDownlink(frame);
      if (header.type === FrameType.Ack) this.#onAck(body);
      else bus.emit('downlink', { type: header.type, seq: header.seq, body });
      return { ok: true, type: header.type, seq: header.seq };
    } catch (error) {
      const reason = error instanceof ProtocolError ? error.code : (error as Error).name;
      bus.emit('downlink-refused', { reason });
      return { ok: false, reason };
    }
  }

  #onAck(body: Uint8Array): void {
    const { ledger, log, bus } = this.#o;
    const ack = decodeAckMessage(body);
    const held = ack.seq === this.#inFlight?.lastSeq ? this.#inFlight.lastLink : log.linkOf(ack.seq);
    if (!held || !bytesEqual(held, ack.hash)) {
      throw new ProtocolError('chain-broken', `ack for ${ack.seq} names a link the meter does not hold`);
    }
    if (log instanceof RecordStore) log.acknowledge(ack.seq, ack.hash);
    else ledger.acknowledge(ack.seq, ack.hash);
    bus.emit('upload-acknowledged', { seq: ack.seq });
    if (this.#inFlight && ack.seq >= this.#inFlight.firstSeq) {
      this.#inFlight = undefined;
      this.#o.timers.clear(this.#timer);
      this.#timer = undefined;
      this.#backoffMs = this.#o.ackTimeoutMs;
      this.flush();
    }
  }
}

function sameEndpoint(a: BrokerEndpoint, b: BrokerEndpoint): boolean {
  return a.host === b.host && a.port === b.port;
}
