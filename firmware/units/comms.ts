// Communication management (412): uploads records the platform has not acknowledged, one set at a
// time (stop and wait), over whatever MqttLink the board has; retries with backoff until the
// platform acknowledges the set's last sequence number and chain link. With a RecordStore, each set
// is first copied to the whole-set upload backup and always sent from there, so every resend (after
// a timeout, a reconnect or a restart) carries the same bytes until the ack or an operator release.
import type { Clock, TimerHandle, Timers } from '../../hal/clock';
import type { Crypto } from '../../hal/crypto';
import type { MqttLink } from '../../hal/mqtt';
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
  #backoffMs: number;
  #started = false;
  #linkOpen = false;
  #linkFault: unknown;

  constructor(options: CommsOptions) {
    this.#o = { maxSetBytes: 2048, ackTimeoutMs: 10_000, maxBackoffMs: 300_000, ...options };
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
          link.subscribe(downlinkTopic(security.meterId));
          this.#inFlight = undefined; // whatever was in flight is resent on the new session
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

  /** Records waiting for the platform. */
  get pending(): number {
    return this.#o.log.lastSeq - this.#o.ledger.acknowledgedSeq;
  }

  /** Sends the next set if the link is up and nothing is waiting for an ack. */
  flush(): void {
    const { link, log, ledger, security, bus } = this.#o;
    if (this.#inFlight || !link.connected || !security.provisioned || this.pending <= 0) return;
    const store = log instanceof RecordStore ? log : undefined;
    const acked = ledger.acknowledgedSeq;
    const saved = store?.uploads.current;
    let set: {
      firstSeq: number;
      lastSeq: number;
      previous: Uint8Array;
      records: Uint8Array[];
      lastLink: Uint8Array;
    };
    if (saved && !saved.acknowledged && saved.firstSeq === acked + 1) {
      set = saved; // the set in the upload backup goes again, byte for byte
    } else {
      const first = Math.max(acked + 1, log.firstSeq);
      const previous = this.#linkBefore(first);
      if (!previous) {
        bus.emit('fault', { unit: 'comms', error: new Error(`no chain link before record ${first}`) });
        return;
      }
      const limit = Math.min(this.#o.maxSetBytes, store ? store.uploads.capacity : Number.POSITIVE_INFINITY);
      const picked: StoredRecord[] = [];
      let bytes = 0;
      for (const r of log.read(first, log.lastSeq, 64)) {
        if (r.seq !== first + picked.length) break; // a set is a contiguous run
        if (picked.length > 0 && bytes + r.bytes.length + 2 > limit) break;
        picked.push(r);
        bytes += r.bytes.length + 2;
      }
      if (picked.length === 0) return;
      const last = picked[picked.length - 1];
      set = store
        ? store.uploads.save(previous, picked)
        : {
            firstSeq: picked[0].seq,
            lastSeq: last.seq,
            previous,
            records: picked.map((r) => r.bytes),
            lastLink: last.link,
          };
    }
    const body = encodeRecordsMessage({ previous: set.previous, records: set.records });
    const frame = security.sealUplink(FrameType.Records, body);
    if (!link.publish(uplinkTopic(security.meterId), frame)) return;
    this.#inFlight = { firstSeq: set.firstSeq, lastSeq: set.lastSeq, lastLink: set.lastLink };
    bus.emit('upload-sent', {
      firstSeq: set.firstSeq,
      lastSeq: set.lastSeq,
      frameSeq: readUint32(frame, 10),
    });
    this.#arm(this.#backoffMs);
  }

  stop(): void {
    this.#o.timers.clear(this.#timer);
    this.#timer = undefined;
    if (this.#linkOpen) this.#o.link.close();
    this.#linkOpen = false;
    this.#started = false;
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

  /** Sends a message outside the record chain (status, events): false when the link is down. */
  send(type: number, body: Uint8Array): boolean {
    const { link, security } = this.#o;
    if (!link.connected || !security.provisioned) return false;
    return link.publish(uplinkTopic(security.meterId), security.sealUplink(type, body));
  }

  #onDownlink(topic: string, payload: Uint8Array): void {
    const { security, bus } = this.#o;
    if (topic !== downlinkTopic(security.meterId)) return;
    try {
      const { header, body } = security.openDownlink(payload);
      if (header.type === FrameType.Ack) this.#onAck(body);
      else bus.emit('downlink', { type: header.type, seq: header.seq, body });
    } catch (error) {
      const reason = error instanceof ProtocolError ? error.code : (error as Error).name;
      bus.emit('downlink-refused', { reason });
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
