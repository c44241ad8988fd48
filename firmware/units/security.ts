// Security management (47): the meter's keys, sealing uplinks and opening downlinks. Uplink frame
// sequence numbers are reserved in blocks in preferences before use, so a nonce is never reused
// across restarts or power cuts (a restart skips the rest of the block). Downlink sequence numbers
// must increase; anything else is a replay and is refused.
import type { Crypto } from '../../hal/crypto';
import type { Preferences } from '../../hal/preferences';
import { ProtocolError } from '../../protocol/errors';
import { FRAME_VERSION, type FrameHeader, isDownlink, openFrame, sealFrame } from '../../protocol/frame';
import type { MeterKeys } from '../../protocol/keys';

const DOMAIN = 'security';
const SEQ_BLOCK = 64;

export class NotProvisionedError extends Error {
  constructor() {
    super('meter has no keys: provision it or wait for the platform to re-key it');
    this.name = 'NotProvisionedError';
  }
}

export interface SecurityOptions {
  preferences: Preferences;
  crypto: Crypto;
  meterId: number;
}

export class SecurityUnit {
  readonly #preferences: Preferences;
  readonly #crypto: Crypto;
  readonly meterId: number;
  #keys: MeterKeys | undefined;
  #nextUplinkSeq: number;
  #reservedUpTo: number;
  #lastDownlinkSeq: number;

  constructor(options: SecurityOptions) {
    this.#preferences = options.preferences;
    this.#crypto = options.crypto;
    this.meterId = options.meterId;
    this.#keys = this.#loadKeys();
    this.#reservedUpTo = this.#number('upReserved');
    this.#nextUplinkSeq = this.#reservedUpTo + 1;
    this.#lastDownlinkSeq = this.#number('downSeq');
  }

  /** Factory provisioning (and, later, re-keying by the platform). */
  static provision(preferences: Preferences, keys: MeterKeys): void {
    preferences.set(DOMAIN, 'epoch', keys.epoch);
    preferences.set(DOMAIN, 'upKey', keys.uplink.slice().buffer);
    preferences.set(DOMAIN, 'downKey', keys.downlink.slice().buffer);
  }

  get provisioned(): boolean {
    return this.#keys !== undefined;
  }

  get epoch(): number {
    return this.#keys?.epoch ?? 0;
  }

  sealUplink(type: number, body: Uint8Array): Uint8Array {
    const keys = this.#requireKeys();
    if (isDownlink(type)) throw new RangeError(`frame type 0x${type.toString(16)} is a downlink type`);
    const seq = this.#nextUplinkSeq;
    if (seq > this.#reservedUpTo) {
      this.#reservedUpTo = seq + SEQ_BLOCK - 1;
      this.#preferences.set(DOMAIN, 'upReserved', this.#reservedUpTo);
    }
    this.#nextUplinkSeq = seq + 1;
    const header: FrameHeader = {
      version: FRAME_VERSION,
      type,
      meterId: this.meterId,
      epoch: keys.epoch,
      seq,
    };
    return sealFrame(this.#crypto, keys.uplink, header, body);
  }

  /** Authenticates a downlink addressed to this meter; refuses replays and foreign frames. */
  openDownlink(frame: Uint8Array): { header: FrameHeader; body: Uint8Array } {
    const keys = this.#requireKeys();
    const opened = openFrame(this.#crypto, keys.downlink, frame);
    const { header } = opened;
    if (header.meterId !== this.meterId)
      throw new ProtocolError('bad-field', `frame is for meter ${header.meterId}`);
    if (!isDownlink(header.type)) throw new ProtocolError('bad-type', 'uplink frame on the downlink');
    if (header.epoch !== keys.epoch) throw new ProtocolError('stale-epoch', `epoch ${header.epoch}`);
    if (header.seq <= this.#lastDownlinkSeq) {
      throw new ProtocolError('replay', `downlink seq ${header.seq} after ${this.#lastDownlinkSeq}`);
    }
    this.#lastDownlinkSeq = header.seq;
    this.#preferences.set(DOMAIN, 'downSeq', header.seq);
    return opened;
  }

  #requireKeys(): MeterKeys {
    if (!this.#keys) throw new NotProvisionedError();
    return this.#keys;
  }

  #number(key: string): number {
    const value = this.#preferences.get(DOMAIN, key);
    return typeof value === 'number' ? value : 0;
  }

  #loadKeys(): MeterKeys | undefined {
    const epoch = this.#preferences.get(DOMAIN, 'epoch');
    const up = this.#preferences.get(DOMAIN, 'upKey');
    const down = this.#preferences.get(DOMAIN, 'downKey');
    if (typeof epoch !== 'number' || !(up instanceof ArrayBuffer) || !(down instanceof ArrayBuffer))
      return undefined;
    return { epoch, uplink: new Uint8Array(up), downlink: new Uint8Array(down) };
  }
}
