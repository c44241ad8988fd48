// The platform's side of the wire for runs with no database or broker (unit tests, the XS run):
// opens uplink frames, checks the hash chain and acknowledges, using protocol/ exactly as the real
// platform (platform-server/ingest/gate.ts) does. XS-safe: no Node module.
import type { Crypto } from '../../hal/crypto';
import type { VirtualBroker, VirtualMqttLink } from '../../hal/mock/mqtt';
import { bytesEqual } from '../../protocol/bytes';
import { genesisHash, verifyChain } from '../../protocol/chain';
import { FRAME_VERSION, FrameType, openFrame, sealFrame } from '../../protocol/frame';
import type { MeterKeys } from '../../protocol/keys';
import { decodeRecordsMessage, encodeAckMessage } from '../../protocol/messages';
import { decodeRecord, type MeterRecord } from '../../protocol/records';
import {
  decodeTimeRequest,
  encodeTimeAnswer,
  TIME_ANSWER_DOWNLINK,
  TIME_REQUEST_UPLINK,
} from '../../protocol/time';
import { downlinkTopic, meterIdOfTopic, UPLINK_WILDCARD } from '../../protocol/topics';

export interface HeldRecord {
  record: MeterRecord;
  bytes: Uint8Array;
  link: Uint8Array;
}

interface MeterState {
  keys: MeterKeys;
  lastFrameSeq: number;
  downlinkSeq: number;
  records: HeldRecord[];
}

export class VirtualPlatform {
  readonly #crypto: Crypto;
  readonly #link: VirtualMqttLink;
  readonly #meters = new Map<number, MeterState>();
  readonly refused: string[] = [];
  /** Authentic uplinks of the types it does not process, kept for tests to inspect. */
  readonly otherUplinks: { meterId: number; type: number; body: Uint8Array }[] = [];
  /** Whether acks are sent (a test turns them off to lose acks). */
  acking = true;
  /**
   * The platform's clock (epoch ms) for answering time requests (0x08 with 0x88), as the time room
   * does; undefined: time requests are only kept in otherUplinks, like any type it does not process.
   */
  timeNow: (() => number) | undefined;
  /** Every 0x88 answer sealed, in order (tests replay or alter them). */
  readonly timeAnswers: Uint8Array[] = [];

  constructor(broker: VirtualBroker, crypto: Crypto) {
    this.#crypto = crypto;
    this.#link = broker.link();
    this.#link.open({
      onConnect: () => this.#link.subscribe(UPLINK_WILDCARD),
      onDisconnect: () => {},
      onMessage: (topic, payload) => this.#onUplink(topic, payload),
    });
  }

  register(meterId: number, keys: MeterKeys): void {
    this.#meters.set(meterId, { keys, lastFrameSeq: 0, downlinkSeq: 0, records: [] });
  }

  records(meterId: number): HeldRecord[] {
    return this.#meters.get(meterId)?.records ?? [];
  }

  #onUplink(topic: string, payload: Uint8Array): void {
    const meterId = meterIdOfTopic(topic);
    const meter = meterId === undefined ? undefined : this.#meters.get(meterId);
    if (meterId === undefined || !meter) {
      this.refused.push(`unknown meter on ${topic}`);
      return;
    }
    try {
      const { header, body } = openFrame(this.#crypto, meter.keys.uplink, payload);
      if (header.meterId === meterId && header.type === TIME_REQUEST_UPLINK && this.timeNow) {
        this.#answerTime(meterId, meter, body);
        return;
      }
      if (header.meterId !== meterId) throw new Error(`wrong meter: frame of meter ${header.meterId}`);
      if (header.type !== FrameType.Records) {
        // Authentic, of a type this stand-in does not process (status, acks, version reports).
        this.otherUplinks.push({ meterId, type: header.type, body });
        return;
      }
      if (header.seq <= meter.lastFrameSeq) throw new Error(`replayed frame ${header.seq}`);
      const message = decodeRecordsMessage(body);
      const decoded = message.records.map((bytes) => decodeRecord(bytes));
      const first = decoded[0].seq;
      const held = meter.records;
      const expectedPrevious = first === 1 ? genesisHash(this.#crypto, meterId) : held[first - 2]?.link;
      if (!expectedPrevious || !bytesEqual(expectedPrevious, message.previous))
        throw new Error('chain broken');
      const links = verifyChain(this.#crypto, message.previous, message.records);
      meter.lastFrameSeq = header.seq;
      decoded.forEach((record, i) => {
        if (record.seq !== first + i) throw new Error('records not contiguous');
        if (record.seq === held.length + 1) held.push({ record, bytes: message.records[i], link: links[i] });
      });
      if (!this.acking) return;
      const last = decoded[decoded.length - 1].seq;
      meter.downlinkSeq++;
      const ack = sealFrame(
        this.#crypto,
        meter.keys.downlink,
        {
          version: FRAME_VERSION,
          type: FrameType.Ack,
          meterId,
          epoch: meter.keys.epoch,
          seq: meter.downlinkSeq,
        },
        encodeAckMessage({ seq: last, hash: links[links.length - 1] }),
      );
      this.#link.publish(downlinkTopic(meterId), ack);
    } catch (error) {
      this.refused.push((error as Error).message);
    }
  }

  #answerTime(meterId: number, meter: MeterState, body: Uint8Array): void {
    const now = this.timeNow as () => number;
    const t2 = now();
    const request = decodeTimeRequest(body);
    meter.downlinkSeq++;
    const header = {
      version: FRAME_VERSION,
      type: TIME_ANSWER_DOWNLINK,
      meterId,
      epoch: meter.keys.epoch,
      seq: meter.downlinkSeq,
    };
    const answer = encodeTimeAnswer({ id: request.id, t1: request.t1, t2, t3: now() });
    const frame = sealFrame(this.#crypto, meter.keys.downlink, header, answer);
    this.timeAnswers.push(frame);
    this.#link.publish(downlinkTopic(meterId), frame);
  }
}
