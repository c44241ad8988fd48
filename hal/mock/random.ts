// Deterministic randomness for repeatable tests (xorshift128+; not for keys in production).
import type { Random } from '../random';

export class SeededRandom implements Random {
  #s0: bigint;
  #s1: bigint;

  constructor(seed = 1) {
    this.#s0 = BigInt(seed >>> 0) | 0x9e3779b97f4a7c15n;
    this.#s1 = (BigInt(seed >>> 0) << 17n) ^ 0xbf58476d1ce4e5b9n;
    for (let i = 0; i < 8; i++) this.#next();
  }

  fill(bytes: Uint8Array): void {
    for (let i = 0; i < bytes.length; i += 8) {
      let word = this.#next();
      for (let j = i; j < Math.min(i + 8, bytes.length); j++) {
        bytes[j] = Number(word & 0xffn);
        word >>= 8n;
      }
    }
  }

  /** A float in [0, 1), for test scenarios. */
  nextFloat(): number {
    return Number(this.#next() >> 11n) / 2 ** 53;
  }

  #next(): bigint {
    const mask = 0xffffffffffffffffn;
    let s1 = this.#s0;
    const s0 = this.#s1;
    this.#s0 = s0;
    s1 = (s1 ^ (s1 << 23n)) & mask;
    this.#s1 = s1 ^ s0 ^ (s1 >> 17n) ^ (s0 >> 26n);
    return (this.#s1 + s0) & mask;
  }
}
