// The virtual secure parts' own CMAC, written from NIST SP 800-38B (May 2005, §6.1 subkeys, §6.2
// MAC generation) and NXP AN10922 §2.2 (AES-128 key diversification), not taken from
// drivers/secure/cmac.ts: host-tests/twins/cmac.test.ts checks both against the published
// vectors and against each other.
import { type AesBlockCipher, nobleAesBlock } from './aes';

const BLOCK = 16;
/** SP 800-38B §5.3: R128 = 0^120 || 10000111. */
const R128 = 0x87;

/** SP 800-38B §6.1 step 2-3: shift left one bit, XOR R128 when the bit shifted out was 1. */
function shiftAndReduce(block: Uint8Array): Uint8Array {
  const out = new Uint8Array(BLOCK);
  let carry = 0;
  for (let i = BLOCK - 1; i >= 0; i--) {
    out[i] = ((block[i] << 1) | carry) & 0xff;
    carry = block[i] >> 7;
  }
  if (carry) out[BLOCK - 1] ^= R128;
  return out;
}

/** SP 800-38B §6.1: L = CIPH_K(0^128), K1 = L·x, K2 = K1·x. */
export function subkeys(key: Uint8Array, aes: AesBlockCipher = nobleAesBlock): [Uint8Array, Uint8Array] {
  const k1 = shiftAndReduce(aes(key, new Uint8Array(BLOCK)));
  return [k1, shiftAndReduce(k1)];
}

/**
 * SP 800-38B §6.2 with the full 128-bit tag. The last block is M_n ⊕ K1 when complete, else
 * (M_n* || 10^j) ⊕ K2. `padTo` pads a shorter message to that length first (AN10922 uses 32).
 */
export function cmac(key: Uint8Array, message: Uint8Array, padTo = 0, aes: AesBlockCipher = nobleAesBlock) {
  const [k1, k2] = subkeys(key, aes);
  const blocks = Math.max(1, Math.ceil(message.length / BLOCK), Math.ceil(padTo / BLOCK));
  const complete = message.length === blocks * BLOCK;
  const padded = new Uint8Array(blocks * BLOCK);
  padded.set(message);
  if (!complete) padded[message.length] = 0x80;
  const last = complete ? k1 : k2;
  for (let i = 0; i < BLOCK; i++) padded[(blocks - 1) * BLOCK + i] ^= last[i];
  let chain: Uint8Array = new Uint8Array(BLOCK);
  for (let b = 0; b < blocks; b++) {
    const input = new Uint8Array(BLOCK);
    for (let i = 0; i < BLOCK; i++) input[i] = chain[i] ^ padded[b * BLOCK + i];
    chain = aes(key, input);
  }
  return chain;
}

/** AN10922 §2.2: AES-128 diversified key = CMAC(K, 01 || M) with M of 1..31 bytes padded to 32. */
export function diversify(master: Uint8Array, input: Uint8Array, aes: AesBlockCipher = nobleAesBlock) {
  if (master.length !== BLOCK) throw new RangeError('AN10922 AES-128 takes a 16-byte master key');
  if (input.length < 1 || input.length > 31)
    throw new RangeError(`diversification input of ${input.length} bytes`);
  return cmac(master, Uint8Array.of(0x01, ...input), 32, aes);
}
