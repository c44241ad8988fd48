// A whole meter with its guard sensors and battery packs on virtual time: board with sensors, packs and watchdog,
// provisioned keys, the bus events it emitted, its records, and the 0x04 frames it sent.
import { Meter, type MeterConfig } from '../../firmware/meter';
import type { MeterEvents } from '../../firmware/events';
import { provisionBoard } from '../../firmware/units/security';
import { type BoardState, VirtualBoard } from '../../hal/mock/board';
import { VirtualClock } from '../../hal/mock/clock';
import { VirtualBroker, type VirtualMqttLink } from '../../hal/mock/mqtt';
import { nobleCrypto } from '../../hal/nobleCrypto';
import type { ResetReason } from '../../hal/watchdog';
import { FRAME_VERSION, openFrame, sealFrame } from '../../protocol/frame';
import { deriveMeterKeys, type MeterKeys } from '../../protocol/keys';
import { decodeRecord, type MeterRecord, RecordKind } from '../../protocol/records';
import {
  decodeStatusMessage,
  STATUS_FRAME,
  type StatusEvent,
  type StatusReport,
} from '../../protocol/status';
import { downlinkTopic, uplinkTopic } from '../../protocol/topics';
import { deriveCardTokenKey } from '../../protocol/cardToken';

export const RIG_METER = 7007;
const MASTER = Uint8Array.from({ length: 32 }, (_, i) => 255 - i);

export interface RigOptions {
  clock?: VirtualClock;
  broker?: VirtualBroker;
  state?: BoardState;
  lastReset?: ResetReason;
  config?: Partial<MeterConfig>;
  /** Provision keys (false on a reboot: the state keeps them). */
  provision?: boolean;
  /** Whether to start the meter at once. */
  start?: boolean;
  /** Fit a second radio path: a Zigbee relay, another link on the same broker. */
  relay?: boolean;
  /** Called with the board after provisioning, before the meter is built (parts made to fail). */
  prepare?: (board: VirtualBoard) => void;
}

export class Rig {
  readonly clock: VirtualClock;
  readonly broker: VirtualBroker;
  readonly keys: MeterKeys;
  readonly board: VirtualBoard;
  readonly meter: Meter;
  readonly events: { name: keyof MeterEvents; payload: unknown }[] = [];
  /** The board's cellular link, and the relay link when fitted. */
  readonly cellular: VirtualMqttLink;
  readonly relay: VirtualMqttLink | undefined;
  #downSeq = 0;

  constructor(options: RigOptions = {}) {
    this.clock = options.clock ?? new VirtualClock('2026-03-02T07:30:00Z');
    this.broker = options.broker ?? new VirtualBroker(this.clock);
    this.keys = deriveMeterKeys(nobleCrypto, MASTER, RIG_METER, 1);
    this.cellular = this.broker.link();
    this.relay = options.relay ? this.broker.link() : undefined;
    this.board = new VirtualBoard({
      mqtt: this.cellular,
      fallbackMqtt: this.relay && { name: 'zigbee-relay', link: this.relay },
      clock: this.clock,
      state: options.state,
      sensors: true,
      lastReset: options.lastReset,
    });
    if (options.provision ?? !options.state)
      provisionBoard(
        this.board.hardware,
        { ...this.keys, cardTokenKey: deriveCardTokenKey(nobleCrypto, MASTER) },
        RIG_METER,
      );
    options.prepare?.(this.board);
    this.meter = new Meter(this.board.hardware, {
      meterId: RIG_METER,
      bays: [1, 2, 3, 4],
      rate: { currency: 826, perHour: 240, minMinutes: 15, maxMinutes: 240, stepMinutes: 15 },
      ...options.config,
    });
    const names: (keyof MeterEvents)[] = [
      'guard-alarm',
      'tamper',
      'cover-opened',
      'cover-closed',
      'bay-occupancy',
      'bay-unpaid',
      'bay-session-ended',
      'fan',
      'battery',
      'power-status',
      'power-source',
      'module-state',
      'fault',
      'wake',
      'sleep',
    ];
    for (const name of names) this.meter.bus.on(name, (payload) => this.events.push({ name, payload }));
    if (options.start ?? true) {
      this.meter.start();
      this.clock.advance(10);
    }
  }

  named<K extends keyof MeterEvents>(name: K): MeterEvents[K][] {
    return this.events.filter((e) => e.name === name).map((e) => e.payload as MeterEvents[K]);
  }

  records(): MeterRecord[] {
    return this.meter.log.read(this.meter.log.firstSeq).map((r) => decodeRecord(r.bytes));
  }

  operations(code?: string) {
    return this.records().flatMap((r) =>
      r.kind === RecordKind.Operation && (code === undefined || r.data.code === code) ? [r.data] : [],
    );
  }

  maintenance(code?: string) {
    return this.records().flatMap((r) =>
      r.kind === RecordKind.Maintenance && (code === undefined || r.data.code === code) ? [r.data] : [],
    );
  }

  /** Every 0x04 message the meter published. */
  uplinks(): (StatusEvent | StatusReport)[] {
    return this.broker.published
      .filter((m) => m.topic === uplinkTopic(RIG_METER) && m.payload[1] === STATUS_FRAME)
      .map((m) => decodeStatusMessage(openFrame(nobleCrypto, this.keys.uplink, m.payload).body));
  }

  uplinkEvents(event?: string): StatusEvent[] {
    return this.uplinks().filter(
      (m): m is StatusEvent => m.kind === 'event' && (event === undefined || m.event === event),
    );
  }

  /** A downlink sealed as the platform would. */
  downlink(type: number, body: Uint8Array): void {
    const frame = sealFrame(
      nobleCrypto,
      this.keys.downlink,
      { version: FRAME_VERSION, type, meterId: RIG_METER, epoch: 1, seq: 1000 + ++this.#downSeq },
      body,
    );
    const link = this.broker.link();
    link.open({ onConnect() {}, onDisconnect() {}, onMessage() {} });
    link.publish(downlinkTopic(RIG_METER), frame);
    this.clock.advance(10);
  }

  get sensors() {
    const s = this.board.sensors;
    if (!s) throw new Error('no sensors');
    return s;
  }

  get rail() {
    const p = this.board.power;
    if (!p) throw new Error('no power rail');
    return p;
  }
}
