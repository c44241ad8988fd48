// Anti-replay with a sliding window (as IPsec does, RFC 4303 §3.4.3): a sequence number is accepted
// once, if it is above the highest seen or within the 64 below it and not seen yet. Downlinks come
// from several platform paths (acks, renewals, tariffs) that allocate numbers in the database and
// may publish them out of order; a strict "must increase" would refuse the overtaken one.

export const REPLAY_WINDOW = 64;
const MASK = (1n << BigInt(REPLAY_WINDOW)) - 1n;

export class ReplayWindow {
  #highest: number;
  /** Bit i set: sequence number highest - i has been accepted. */
  #seen: bigint;

  constructor(highest = 0, seen: bigint = highest > 0 ? MASK : 0n) {
    this.#highest = highest;
    this.#seen = seen & MASK;
  }

  get highest(): number {
    return this.#highest;
  }

  /** The mask of accepted numbers (bit i: highest - i), for storing beside `highest`. */
  get seen(): bigint {
    return this.#seen;
  }

  /** Why `seq` would be refused, or undefined when it is new. */
  check(seq: number): string | undefined {
    if (!Number.isInteger(seq) || seq < 1) return `sequence ${seq} is not positive`;
    if (seq > this.#highest) return undefined;
    const age = this.#highest - seq;
    if (age >= REPLAY_WINDOW) return `sequence ${seq} is older than the window below ${this.#highest}`;
    if ((this.#seen >> BigInt(age)) & 1n) return `sequence ${seq} was already accepted`;
    return undefined;
  }

  accept(seq: number): void {
    const reason = this.check(seq);
    if (reason) throw new RangeError(reason);
    if (seq > this.#highest) {
      const shift = seq - this.#highest;
      this.#seen = shift >= REPLAY_WINDOW ? 1n : ((this.#seen << BigInt(shift)) | 1n) & MASK;
      this.#highest = seq;
    } else {
      this.#seen |= 1n << BigInt(this.#highest - seq);
    }
  }

  /** 12 bytes: highest u32 big-endian, then the 64-bit mask big-endian. */
  encode(): Uint8Array {
    const out = new Uint8Array(12);
    const view = new DataView(out.buffer);
    view.setUint32(0, this.#highest);
    view.setBigUint64(4, this.#seen);
    return out;
  }

  static decode(bytes: Uint8Array): ReplayWindow {
    if (bytes.length !== 12) throw new RangeError('replay window state is 12 bytes');
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    return new ReplayWindow(view.getUint32(0), view.getBigUint64(4));
  }
}
