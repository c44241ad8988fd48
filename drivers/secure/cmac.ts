// AES-CMAC (NIST SP 800-38B, RFC 4493) and NXP AN10922 AES-128 key diversification, over any AES
// block encryption (the SAM's, a virtual card's). @noble/ciphers 1.3 has no CMAC, so it is here;
// host-tests/security/cmac.test.ts checks RFC 4493's and AN10922's published vectors.

/** One AES block encryption (ECB of 16 bytes) under `key`. */
export type AesBlock = (key: Uint8Array, block: Uint8Array) => Uint8Array;

const RB = 0x87; // SP 800-38B §5.3: R128 = 0^120 || 10000111

function double(block: Uint8Array): Uint8Array {
  const out = new Uint8Array(16);
  for (let i = 0; i < 16; i++) out[i] = ((block[i] << 1) | (i < 15 ? block[i + 1] >> 7 : 0)) & 0xff;
  if (block[0] & 0x80) out[15] ^= RB;
  return out;
}

/** RFC 4493 §2.3: K1 and K2 from L = AES(K, 0^128). */
export function cmacSubkeys(aes: AesBlock, key: Uint8Array): { k1: Uint8Array; k2: Uint8Array } {
  const l = aes(key, new Uint8Array(16));
  const k1 = double(l);
  const k2 = double(k1);
  l.fill(0);
  return { k1, k2 };
}

/**
 * CMAC over `message` (RFC 4493 §2.4). `padTo`, when given, pads a short message to that many
 * bytes before the last block (AN10922 pads to 32); the padded last block takes K2, a full one K1.
 */
export function aesCmac(aes: AesBlock, key: Uint8Array, message: Uint8Array, padTo = 0): Uint8Array {
  const { k1, k2 } = cmacSubkeys(aes, key);
  const complete = message.length > 0 && message.length % 16 === 0 && message.length >= padTo;
  const length = complete ? message.length : Math.max(padTo, (Math.floor(message.length / 16) + 1) * 16);
  const m = new Uint8Array(length);
  m.set(message);
  if (!complete) m[message.length] = 0x80;
  const last = complete ? k1 : k2;
  for (let i = 0; i < 16; i++) m[length - 16 + i] ^= last[i];
  let x: Uint8Array = new Uint8Array(16);
  for (let offset = 0; offset < length; offset += 16) {
    for (let i = 0; i < 16; i++) x[i] ^= m[offset + i];
    const next = aes(key, x);
    x.fill(0);
    x = next;
  }
  k1.fill(0);
  k2.fill(0);
  m.fill(0);
  return x;
}

/**
 * AN10922 §2.2 AES-128 diversification: CMAC(K, 0x01 || M) with M (1..31 bytes, typically
 * UID || AID || system identifier) padded to 32 bytes.
 */
export function diversifyAes128(aes: AesBlock, master: Uint8Array, input: Uint8Array): Uint8Array {
  if (master.length !== 16) throw new RangeError('AN10922 AES-128 needs a 16-byte master key');
  if (input.length < 1 || input.length > 31)
    throw new RangeError(`diversification input of ${input.length} bytes`);
  const m = new Uint8Array(1 + input.length);
  m[0] = 0x01;
  m.set(input, 1);
  return aesCmac(aes, master, m, 32);
}

/** The ParkLink purse's diversification input: UID || purse AID || "PKLNK" system identifier. */
export function purseDiversificationInput(uid: Uint8Array, aid: readonly number[]): Uint8Array {
  const system = [0x50, 0x4b, 0x4c, 0x4e, 0x4b];
  return Uint8Array.of(...uid, ...aid, ...system);
}

// ---- The ParkLink purse's authentication (protocol in drivers/rfid/purse.ts) -------------------

const PURSE_AID_BYTES = [0xf0, 0x50, 0x4b, 0x4c, 0x4e, 0x4b, 0x01];

/** The card's key K: AN10922 diversification of the scheme's master key with the UID. */
export function purseCardKey(aes: AesBlock, master: Uint8Array, uid: Uint8Array): Uint8Array {
  return diversifyAes128(aes, master, purseDiversificationInput(uid, PURSE_AID_BYTES));
}

function tagged(tag: number, ...parts: Uint8Array[]): Uint8Array {
  let length = 1;
  for (const p of parts) length += p.length;
  const out = new Uint8Array(length);
  out[0] = tag;
  let at = 1;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** The card's proof in AUTH 1: CMAC(K, 43 RndR RndC). */
export const purseCardProof = (aes: AesBlock, k: Uint8Array, rndR: Uint8Array, rndC: Uint8Array) =>
  aesCmac(aes, k, tagged(0x43, rndR, rndC));
/** The reader's proof in AUTH 2: CMAC(K, 52 RndC RndR). */
export const purseReaderProof = (aes: AesBlock, k: Uint8Array, rndR: Uint8Array, rndC: Uint8Array) =>
  aesCmac(aes, k, tagged(0x52, rndC, rndR));
/** The session key: CMAC(K, 53 RndR RndC). */
export const purseSessionKey = (aes: AesBlock, k: Uint8Array, rndR: Uint8Array, rndC: Uint8Array) =>
  aesCmac(aes, k, tagged(0x53, rndR, rndC));
/** A session MAC: the first 8 bytes of CMAC(Ks, data). */
export const purseMac = (aes: AesBlock, ks: Uint8Array, data: Uint8Array) =>
  aesCmac(aes, ks, data).slice(0, 8);
