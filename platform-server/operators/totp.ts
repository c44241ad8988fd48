// Time-based one-time passwords (RFC 6238 over RFC 4226's HOTP) for operators' second factor, the
// otpauth:// URI authenticator apps read, base32 (RFC 4648) for the secret, and recovery codes.
// HMAC from node:crypto; a code is checked in constant time.
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export type TotpAlgorithm = 'SHA1' | 'SHA256' | 'SHA512';

export interface TotpParams {
  /** Seconds per step (X), default 30. */
  period?: number;
  /** Code length, default 6. */
  digits?: number;
  algorithm?: TotpAlgorithm;
}

const DIGITS_MAX = 10;

/** RFC 4226 HOTP: the dynamic truncation of HMAC(secret, counter) as `digits` decimal digits. */
export function hotp(
  secret: Uint8Array,
  counter: number,
  digits = 6,
  algorithm: TotpAlgorithm = 'SHA1',
): string {
  if (!Number.isSafeInteger(counter) || counter < 0) throw new RangeError(`HOTP counter ${counter}`);
  if (!Number.isInteger(digits) || digits < 6 || digits > DIGITS_MAX)
    throw new RangeError(`${digits} digits`);
  const message = Buffer.alloc(8);
  message.writeBigUInt64BE(BigInt(counter));
  const mac = createHmac(algorithm.toLowerCase(), secret).update(message).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  const binary = mac.readUInt32BE(offset) & 0x7fffffff;
  return String(binary % 10 ** digits).padStart(digits, '0');
}

/** The time step of `unixSeconds` (T = floor((now - T0) / X), T0 = 0). */
export function totpStep(unixSeconds: number, period = 30): number {
  return Math.floor(unixSeconds / period);
}

/** RFC 6238 TOTP at `unixSeconds`. */
export function totp(secret: Uint8Array, unixSeconds: number, params: TotpParams = {}): string {
  return hotp(
    secret,
    totpStep(unixSeconds, params.period ?? 30),
    params.digits ?? 6,
    params.algorithm ?? 'SHA1',
  );
}

/**
 * The step `code` is valid for, within `window` steps either side of now (clock drift, a code typed
 * as it turned), and after `lastStep` (a code used once is not taken again); null when none.
 */
export function verifyTotp(
  secret: Uint8Array,
  code: string,
  unixSeconds: number,
  options: TotpParams & { window?: number; lastStep?: number | null } = {},
): number | null {
  const digits = options.digits ?? 6;
  if (!new RegExp(`^[0-9]{${digits}}$`).test(code)) return null;
  const now = totpStep(unixSeconds, options.period ?? 30);
  const window = options.window ?? 1;
  let found: number | null = null;
  // Every candidate is computed and compared (no early exit): the time taken does not tell which matched.
  for (let step = now - window; step <= now + window; step++) {
    if (step < 0) continue;
    const expected = Buffer.from(hotp(secret, step, digits, options.algorithm ?? 'SHA1'));
    if (timingSafeEqual(expected, Buffer.from(code)) && found === null) found = step;
  }
  if (found === null || (options.lastStep != null && found <= options.lastStep)) return null;
  return found;
}

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** RFC 4648 base32 without padding (as authenticator apps take it). */
export function base32Encode(bytes: Uint8Array): string {
  let out = '';
  let bits = 0;
  let value = 0;
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += BASE32[(value << (5 - bits)) & 31];
  return out;
}

export function base32Decode(text: string): Uint8Array {
  const clean = text.replace(/=+$/, '').toUpperCase();
  const out: number[] = [];
  let bits = 0;
  let value = 0;
  for (const ch of clean) {
    const index = BASE32.indexOf(ch);
    if (index < 0) throw new RangeError(`not base32: ${ch}`);
    value = (value << 5) | index;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Uint8Array.from(out);
}

/** A new secret: 20 random bytes (160 bits, RFC 4226's recommended length). */
export function newTotpSecret(): Uint8Array {
  return new Uint8Array(randomBytes(20));
}

/** The key URI authenticator apps read (as a QR code or typed): SHA1, 6 digits, 30 s. */
export function otpauthUri(issuer: string, account: string, secret: Uint8Array): string {
  const label = `${encodeURIComponent(issuer)}:${encodeURIComponent(account)}`;
  return `otpauth://totp/${label}?secret=${base32Encode(secret)}&issuer=${encodeURIComponent(issuer)}&algorithm=SHA1&digits=6&period=30`;
}

/** Ten recovery codes, each 50 random bits as "xxxxx-xxxxx" (base32, lower case). */
export function newRecoveryCodes(count = 10): string[] {
  return Array.from({ length: count }, () => {
    const code = base32Encode(randomBytes(7)).slice(0, 10).toLowerCase();
    return `${code.slice(0, 5)}-${code.slice(5)}`;
  });
}

/** A recovery code as stored: SHA-256 (hex) of its normalised form (random codes: no salt needed). */
export function recoveryCodeHash(code: string): string {
  return createHash('sha256').update(code.trim().toLowerCase().replace(/[\s-]/g, '')).digest('hex');
}
