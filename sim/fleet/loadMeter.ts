// A meter at protocol level for fleet load runs (tools/bench/fleet.ts): its own MQTT connection under
// its own credentials and client id, its own keys, hash chain and frame sequence, sending what a meter
// in the street sends (status reports, upload sets of its sales) and answering what the platform
// sends it (set acks 0x81, phone renewals 0x86 with their ack 0x06). It runs no firmware: ten
// thousand of them fit in one Node process, which a fleet of firmware Meters on virtual boards does not.
import mqtt, { type MqttClient } from 'mqtt';
import { FRAME_VERSION, FrameType, openFrame, sealFrame } from '../../protocol/frame';
import { decodeAckMessage } from '../../protocol/messages';
import { decodeRenewal, encodeRenewalAck, RENEWAL_ACK_FRAME, RENEWAL_FRAME } from '../../protocol/renewal';
import { encodeStatusMessage, STATUS_FRAME, type StatusReport } from '../../protocol/status';
import { sendPacketsAtOnce } from '../../platform-server/core/broker';
import { downlinkTopic, meterClientId, uplinkTopic } from '../../protocol/topics';
import { crypto, TestMeter } from './platform';

// The firmware uploader's defaults (firmware/units/comms.ts): the first ack timeout and the longest wait.
const ACK_TIMEOUT_MS = 10_000;
const MAX_BACKOFF_MS = 300_000;

export interface LoadMeterEvents {
  /** A set was acknowledged `ms` after it was published. */
  onAck?(meter: LoadMeter, ms: number, records: number): void;
  /** A renewal 0x86 arrived (and was answered). */
  onRenewal?(meter: LoadMeter, id: string): void;
  /** A downlink that did not open or decode: counted, never thrown. */
  onBadDownlink?(meter: LoadMeter, error: Error): void;
}

export class LoadMeter {
  readonly chain: TestMeter;
  client: MqttClient | undefined;
  /** Records sealed but not yet in a set. */
  #unsent = 0;
  /** Sales per set (the last tap's `setEvery`): the next set goes when this many wait. */
  #setEvery = 1;
  /**
   * The set waiting for its ack, by its frame's sequence number. One at a time, as the firmware's
   * uploader does: the next set goes when this one is acknowledged.
   */
  readonly #inFlight = new Map<number, { at: number; from: number; to: number; wait: number }>();
  /** Paid-until per bay, epoch seconds, as the meter would hold it. */
  readonly #paidUntil = new Map<number, number>();
  readonly #renewalsSeen = new Set<string>();
  acknowledged = 0;
  /** Upload sets published (status reports and renewal acks are frames too, not sets). */
  setsPublished = 0;

  constructor(
    readonly id: number,
    keys: TestMeter['keys'],
    readonly bays: number,
    private readonly events: LoadMeterEvents = {},
  ) {
    this.chain = new TestMeter(id, keys);
  }

  get connected(): boolean {
    return this.client?.connected ?? false;
  }

  /** Connects under the meter's own credentials and subscribes to its own downlink topic. */
  async connect(brokerUrl: string, credentials: { username: string; password: string }): Promise<void> {
    const client = await mqtt.connectAsync(brokerUrl, {
      clientId: meterClientId(this.id),
      ...credentials,
      clean: true,
      keepalive: 600,
      reconnectPeriod: 0,
      connectTimeout: 60_000,
    });
    sendPacketsAtOnce(client);
    this.client = client;
    client.on('message', (_topic, payload) => this.#downlink(new Uint8Array(payload)));
    await client.subscribeAsync(downlinkTopic(this.id), { qos: 1 });
  }

  async end(): Promise<void> {
    await this.client?.endAsync(true).catch(() => {});
  }

  #publish(type: number, body: Uint8Array): number {
    const seq = ++this.chain.frameSeq;
    const frame = sealFrame(
      crypto,
      this.chain.keys.uplink,
      { version: FRAME_VERSION, type, meterId: this.id, epoch: this.chain.keys.epoch, seq },
      body,
    );
    this.client?.publish(uplinkTopic(this.id), Buffer.from(frame), { qos: 1 });
    return seq;
  }

  /** A status report as the firmware's monitor sends it, with the bays' occupancy. */
  status(nowMs: number, occupied: (bay: number) => boolean): void {
    const at = Math.floor(nowMs / 1000);
    const report: StatusReport = {
      kind: 'status',
      at,
      battery: { source: 'A', packs: { A: 80 - (this.id % 40), B: 100 }, millivolts: 3700 },
      sensors: { temperature: 181, humidity: 550, lux: 120, aqi: 1 },
      modules: { modem: 'ok', reader: 'ok', storage: 'ok' },
      faults: [],
      bays: Array.from({ length: this.bays }, (_, i) => ({
        bayId: i + 1,
        occupied: occupied(i + 1),
        since: at - 600,
        paid: (this.#paidUntil.get(i + 1) ?? 0) > at,
      })),
      fan: false,
      settings: 0,
    };
    this.#publish(STATUS_FRAME, encodeStatusMessage(report));
  }

  /** A sale recorded on the chain; `setEvery` sales make an upload set, published at once. */
  tap(nowMs: number, setEvery: number, card?: string, bayId?: number): void {
    const time = Math.floor(nowMs / 1000);
    // Passing cars use every bay but the last, kept for the drivers who renew by phone: a sale on a
    // driver's bay would end their session (another car parked there).
    const bay = bayId ?? 1 + (this.chain.nextSeq % Math.max(1, this.bays - 1));
    const minutes = 30 + (this.chain.nextSeq % 4) * 30;
    this.chain.transaction(
      {
        bayId: bay,
        minutes,
        paidFrom: time,
        paidUntil: time + minutes * 60,
        charge: minutes * 4,
        cardNumber: card,
      },
      time,
    );
    this.#paidUntil.set(bay, time + minutes * 60);
    this.#setEvery = setEvery;
    if (++this.#unsent >= setEvery) this.flush();
  }

  /** Publishes the records not yet in a set as one set, unless a set is already waiting for its ack. */
  flush(): void {
    if (this.#unsent === 0 || this.#inFlight.size > 0) return;
    const to = this.chain.nextSeq - 1;
    const from = to - this.#unsent + 1;
    this.#unsent = 0;
    const frame = this.chain.frame(from, to);
    this.#inFlight.set(this.chain.frameSeq, { at: performance.now(), from, to, wait: ACK_TIMEOUT_MS });
    this.setsPublished++;
    this.client?.publish(uplinkTopic(this.id), Buffer.from(frame), { qos: 1 });
  }

  /**
   * Seals again, under a new frame number, the set whose ack is overdue, as the firmware's uploader
   * does (firmware/units/comms.ts): first after 10 s, then waiting twice as long each time, at most
   * 5 minutes. An instance that died with the set in hand, or a broker that dropped it, never answers.
   */
  resendUnacknowledged(): number {
    const now = performance.now();
    let resent = 0;
    for (const [seq, set] of [...this.#inFlight]) {
      if (now - set.at < set.wait) continue;
      this.#inFlight.delete(seq);
      const frame = this.chain.frame(set.from, set.to);
      this.#inFlight.set(this.chain.frameSeq, {
        ...set,
        at: now,
        wait: Math.min(set.wait * 2, MAX_BACKOFF_MS),
      });
      this.client?.publish(uplinkTopic(this.id), Buffer.from(frame), { qos: 1 });
      resent++;
    }
    return resent;
  }

  /** Sets waiting for their ack, and records waiting for a set. */
  get setsInFlight(): number {
    return this.#inFlight.size;
  }

  get recordsWaiting(): number {
    return this.#unsent;
  }

  #downlink(frame: Uint8Array): void {
    try {
      const { header, body } = openFrame(crypto, this.chain.keys.downlink, frame);
      if (header.type === FrameType.Ack) {
        const ack = decodeAckMessage(body);
        for (const [seq, set] of this.#inFlight) {
          if (set.to > ack.seq) continue;
          this.#inFlight.delete(seq);
          this.acknowledged += set.to - set.from + 1;
          this.events.onAck?.(this, performance.now() - set.at, set.to - set.from + 1);
        }
        if (this.#unsent >= this.#setEvery) this.flush();
      } else if (header.type === RENEWAL_FRAME) {
        const renewal = decodeRenewal(body);
        const now = Math.floor(Date.now() / 1000);
        const duplicate = this.#renewalsSeen.has(renewal.id);
        const refused = !duplicate && now >= renewal.validUntil;
        let until = 0;
        if (!duplicate && !refused) {
          this.#renewalsSeen.add(renewal.id);
          until = Math.max(now, this.#paidUntil.get(renewal.bayId) ?? 0) + renewal.minutes * 60;
          this.#paidUntil.set(renewal.bayId, until);
        } else if (duplicate) until = this.#paidUntil.get(renewal.bayId) ?? 0;
        this.#publish(
          RENEWAL_ACK_FRAME,
          encodeRenewalAck({
            id: renewal.id,
            status: duplicate ? 'duplicate' : refused ? 'refused' : 'applied',
            paidUntil: until,
            reason: refused ? 'expired' : '',
          }),
        );
        this.events.onRenewal?.(this, renewal.id);
      }
    } catch (error) {
      this.events.onBadDownlink?.(this, error as Error);
    }
  }
}
