// Bundled by smoke.test.ts and run under XS: real firmware-side code (the pure-JS crypto provider,
// the virtual flash and clock, cborg) reporting its results to the Node side with guest.ts `send`.
import '../../firmware/setup/text'; // first, as on the device: cborg needs the text globals at load
import { decode, encode, rfc8949EncodeOptions } from 'cborg';
import { AuthenticationError } from '../../hal/crypto';
import { VirtualClock } from '../../hal/mock/clock';
import { VirtualNorFlash } from '../../hal/mock/flash';
import { nobleCrypto } from '../../hal/nobleCrypto';
import { run, send } from '../../sim/xs/guest';

const bytes = (length: number, seed: number): Uint8Array =>
  Uint8Array.from({ length }, (_, i) => (seed + i * 31) & 0xff);

const key = bytes(32, 1);
const nonce = bytes(12, 2);
const aad = new TextEncoder().encode('v1|meter-0042|epoch-7|seq-19');
/** One 96-byte record, the size XS.md quotes costs for. */
const record = bytes(96, 3);

run(() => {
  const input = new TextEncoder().encode('ParkLink meter 0042, bay 3, 2.50 EUR');
  send({ test: 'sha256', input, digest: nobleCrypto.sha256(input) });

  const sealed = nobleCrypto.aesGcmEncrypt(key, nonce, record, aad);
  const opened = nobleCrypto.aesGcmDecrypt(key, nonce, sealed, aad);
  const tampered = sealed.slice();
  tampered[5] ^= 0x01;
  let tamper = 'accepted';
  try {
    nobleCrypto.aesGcmDecrypt(key, nonce, tampered, aad);
  } catch (error) {
    tamper = error instanceof AuthenticationError ? error.name : `other: ${String(error)}`;
  }
  send({ test: 'aes-gcm', key, nonce, aad, plaintext: record, sealed, opened, tamper });

  const flash = new VirtualNorFlash({ byteLength: 16 * 1024, sectorSize: 4096 });
  const data = bytes(64, 4);
  flash.write(4096 + 100, data);
  const written = flash.read(4096 + 100, 64);
  flash.write(4096 + 100, new Uint8Array(64).fill(0xff)); // programming cannot set bits back to 1
  const rewritten = flash.read(4096 + 100, 64);
  flash.eraseSector(1);
  const erased = flash.read(4096, 4096).every((b) => b === 0xff);
  send({ test: 'flash', data, written, rewritten, erased, eraseCounts: [...flash.eraseCounts] });

  const clock = new VirtualClock('2026-01-05T08:00:00Z');
  const fired: [string, number][] = [];
  clock.setTimeout(() => fired.push(['once', clock.monotonic()]), 1500);
  const tick = clock.setInterval(() => fired.push(['tick', clock.monotonic()]), 1000);
  clock.advance(3500);
  clock.clear(tick);
  clock.advance(5000);
  send({ test: 'clock', fired, now: clock.now(), pending: clock.pendingTimers });

  // A record as protocol/ shapes it (an array) and a small map, with cborg's default options.
  const cborArray = encode([1, 42, 3, 250, clock.now(), 19n, record.subarray(0, 32)]);
  const cborMap = encode({ meter: 42, bay: 3, amountCents: 250, seq: 19n });
  send({ test: 'cbor', cborArray, cborMap, backArray: decode(cborArray), backMap: decode(cborMap) });

  // XS's Array.prototype.sort compares an element with itself (seen from 5 elements on); cborg's
  // default map sorter then calls console.warn, and XS has no console. RFC 8949 ordering does not.
  const wide = { meter: 42, bay: 3, amountCents: 250, at: 1767600000000, seq: 19 };
  let defaultWide: string;
  try {
    defaultWide = `ok ${encode(wide).length} bytes`;
  } catch (error) {
    defaultWide = `${(error as Error).name}: ${(error as Error).message}`;
  }
  send({ test: 'cbor-wide-map', defaultWide, rfc8949: encode(wide, rfc8949EncodeOptions) });
});

// Left behind for later evaluates, so each operation's own meter usage can be read.
(globalThis as unknown as { smoke: Record<string, () => unknown> }).smoke = {
  sha256: () => nobleCrypto.sha256(record),
  hmacSha256: () => nobleCrypto.hmacSha256(key, record),
  aesGcmEncrypt: () => nobleCrypto.aesGcmEncrypt(key, nonce, record, aad),
  cborEncode: () => encode({ meter: 42, bay: 3, amountCents: 250, record }),
  failLater: () =>
    run(async () => {
      await null;
      throw new RangeError('late failure');
    }),
};
