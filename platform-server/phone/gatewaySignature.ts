// The SMS and voice gateway's request signature, as SMS/voice providers sign their webhooks: the
// gateway and the platform share a secret (PARKLINK_GATEWAY_SECRET) and every incoming post carries
//   X-ParkLink-Timestamp: <Unix seconds>
//   X-ParkLink-Signature: v1=<hex HMAC-SHA-256(secret, timestamp + "\n" + full URL + "\n" + raw body)>
// The full URL is the one the gateway posted to (scheme, host, path and query), so a signature for
// /api/phone/sms does not pass at /api/phone/voice nor at another deployment. A timestamp more than
// the window (5 minutes) away from the platform's clock is refused, and a signature already seen in
// the window is refused as a replay (per platform instance: two instances do not share what they saw).
import { createHmac, timingSafeEqual } from 'node:crypto';

export const SIGNATURE_HEADER = 'x-parklink-signature';
export const TIMESTAMP_HEADER = 'x-parklink-timestamp';
export const SIGNATURE_WINDOW_MS = 5 * 60_000;

/** Why a post was refused; the HTTP answer is 401 with this as its code. */
export type SignatureFault =
  | 'missing-signature'
  | 'bad-timestamp'
  | 'stale-timestamp'
  | 'bad-signature'
  | 'replayed-signature';

export class GatewaySignatureError extends Error {
  override readonly name = 'GatewaySignatureError';
  constructor(
    readonly fault: SignatureFault,
    message: string,
  ) {
    super(message);
  }
}

/** The gateway secret is refused below this length: a guessable secret opens the gateway. */
export const MIN_SECRET_LENGTH = 16;

function mac(secret: string, timestamp: string, url: string, body: Uint8Array | string): Buffer {
  return createHmac('sha256', secret).update(`${timestamp}\n${url}\n`).update(body).digest();
}

/** The two headers a gateway sends with `body` posted to `url` at `nowMs`. */
export function signGatewayRequest(
  secret: string,
  url: string,
  body: Uint8Array | string,
  nowMs = Date.now(),
): Record<string, string> {
  const timestamp = String(Math.floor(nowMs / 1000));
  return {
    [TIMESTAMP_HEADER]: timestamp,
    [SIGNATURE_HEADER]: `v1=${mac(secret, timestamp, url, body).toString('hex')}`,
  };
}

export interface VerifierOptions {
  secret: string;
  now?: () => number;
  windowMs?: number;
}

export class GatewayVerifier {
  readonly #secret: string;
  readonly #now: () => number;
  readonly #windowMs: number;
  /** Signatures seen, with when they may be forgotten (their timestamp has left the window). */
  readonly #seen = new Map<string, number>();

  constructor(options: VerifierOptions) {
    if (options.secret.length < MIN_SECRET_LENGTH)
      throw new RangeError(`the gateway secret must have at least ${MIN_SECRET_LENGTH} characters`);
    this.#secret = options.secret;
    this.#now = options.now ?? Date.now;
    this.#windowMs = options.windowMs ?? SIGNATURE_WINDOW_MS;
  }

  /** Throws GatewaySignatureError unless the headers sign `body` posted to `url`, fresh and unseen. */
  verify(url: string, body: Uint8Array | string, headers: Record<string, unknown>): void {
    const timestamp = headers[TIMESTAMP_HEADER];
    const signature = headers[SIGNATURE_HEADER];
    if (typeof timestamp !== 'string' || typeof signature !== 'string')
      throw new GatewaySignatureError('missing-signature', 'the post carries no gateway signature');
    if (!/^[0-9]{1,12}$/.test(timestamp))
      throw new GatewaySignatureError('bad-timestamp', `${TIMESTAMP_HEADER} is not Unix seconds`);
    const now = this.#now();
    const at = Number(timestamp) * 1000;
    if (Math.abs(now - at) > this.#windowMs)
      throw new GatewaySignatureError('stale-timestamp', 'the signature timestamp is outside the window');
    const match = /^v1=([0-9a-f]{64})$/.exec(signature);
    const expected = mac(this.#secret, timestamp, url, body);
    // Compared in constant time; a malformed header is compared against zeros so it takes as long.
    const given = match ? Buffer.from(match[1], 'hex') : Buffer.alloc(expected.length);
    if (!timingSafeEqual(given, expected) || !match)
      throw new GatewaySignatureError('bad-signature', 'the gateway signature does not match');
    for (const [seen, forgetAt] of this.#seen) if (forgetAt < now) this.#seen.delete(seen);
    if (this.#seen.has(match[1]))
      throw new GatewaySignatureError('replayed-signature', 'this signed post was received before');
    this.#seen.set(match[1], at + this.#windowMs);
  }
}
