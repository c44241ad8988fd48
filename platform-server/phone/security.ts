// Driver credentials and abuse limits: passwords hashed with scrypt (memory-hard, @noble/hashes),
// bearer tokens stored only as their SHA-256, an in-memory fixed-window rate limiter keyed by
// whatever the route chooses (phone number, IP) for registration and incoming SMS / voice, and the
// login limits on failed logins per address and per account.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { scryptAsync } from '@noble/hashes/scrypt';
import { sha256 } from '@noble/hashes/sha256';
import { bytesToHex } from '@noble/hashes/utils';
import { RateLimiter } from '../core/rateLimiter';

export interface ScryptParams {
  /** log2 of N. 15 (32 MiB with r = 8) by default. */
  logN: number;
  r: number;
  p: number;
}

export const DEFAULT_PASSWORD_SCRYPT: ScryptParams = Object.freeze({ logN: 15, r: 8, p: 1 });

export async function hashPassword(
  password: string,
  params: ScryptParams = DEFAULT_PASSWORD_SCRYPT,
): Promise<string> {
  const salt = randomBytes(16);
  const hash = await scryptAsync(password.normalize('NFKC'), salt, {
    N: 2 ** params.logN,
    r: params.r,
    p: params.p,
    dkLen: 32,
    maxmem: 2 ** 30,
  });
  return `scrypt$${params.logN}$${params.r}$${params.p}$${Buffer.from(salt).toString('base64')}$${Buffer.from(hash).toString('base64')}`;
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [logN, r, p] = parts.slice(1, 4).map(Number);
  const salt = Buffer.from(parts[4], 'base64');
  const expected = Buffer.from(parts[5], 'base64');
  const actual = await scryptAsync(password.normalize('NFKC'), salt, {
    N: 2 ** logN,
    r,
    p,
    dkLen: expected.length,
    maxmem: 2 ** 30,
  });
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}

export function newToken(): string {
  return randomBytes(32).toString('base64url');
}

export function tokenHash(token: string): string {
  return bytesToHex(sha256(new TextEncoder().encode(token)));
}

export { RateLimiter };

/**
 * Drivers' login limits, counting failed logins only: per network address (many drivers share
 * one behind a mobile carrier's NAT, and their successful logins must not lock each other out) and
 * per account (an address-hopping guesser still stops at the account's limit). An attempt is
 * counted when it starts, so concurrent guesses count at once, and taken back from the address
 * when it succeeds; a success clears its account's failures, never the address's (a guesser could
 * log into their own account between guesses).
 */
export class LoginLimits {
  constructor(
    readonly perAddress: RateLimiter,
    readonly perAccount: RateLimiter,
  ) {}

  /** Counts an attempt from `address`: 0 when allowed, else the seconds until it may try again. */
  startAddress(address: string): number {
    return this.perAddress.hit(`ip:${address}`);
  }

  /**
   * Counts an attempt on `account` (already counted from `address`): 0 when allowed, else the
   * seconds until it may be tried again. A refused attempt checks no password: the address gets it back.
   */
  startAccount(address: string, account: string): number {
    const wait = this.perAccount.hit(account);
    if (wait) this.perAddress.refund(`ip:${address}`);
    return wait;
  }

  /** A successful login: not counted against the address; the account's failures cleared. */
  succeeded(address: string, account: string): void {
    this.perAddress.refund(`ip:${address}`);
    this.perAccount.clear(account);
  }
}

/** Default drivers' login limits: 30 failures per address, 10 per account, in 15 minutes. */
export function defaultLoginLimits(): LoginLimits {
  return new LoginLimits(new RateLimiter(30, 15 * 60_000), new RateLimiter(10, 15 * 60_000));
}
