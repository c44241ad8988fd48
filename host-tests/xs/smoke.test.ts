// Real firmware-side code under the real XS engine: results are compared with Node's own.
import assert from 'node:assert/strict';
import { createCipheriv, createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { encode, rfc8949EncodeOptions } from 'cborg';
import { bundleForXs, type MeterUsage, startXs, type XsWorker, xsnapAvailable } from '../../sim/xs/xsnap';

type Message = Record<string, unknown> & { test: string };

const figures = (u: MeterUsage): string =>
  `compute ${u.compute.toLocaleString('en')}, heap ${u.currentHeapCount.toLocaleString('en')} slots, ` +
  `allocated ${(u.allocate / 1024 / 1024).toFixed(1)} MiB`;

describe('XS smoke: firmware-side code under the real XS engine', function () {
  this.timeout(20_000);
  let xs: XsWorker | undefined;
  let results = new Map<string, Message>();
  let usage: MeterUsage;

  before(async () => {
    const availability = xsnapAvailable();
    if (!availability.available) assert.fail(availability.reason);
    const script = await bundleForXs('host-tests/xs/smoke.entry.ts');
    xs = await startXs({ name: 'smoke', onPrint: (line) => console.log(`    [xs] ${line}`) });
    usage = await xs.evaluate(script);
    results = new Map((xs.messages as Message[]).map((m) => [m.test, m]));
    console.log(`    smoke bundle: ${(script.length / 1024).toFixed(0)} KiB; evaluate: ${figures(usage)}`);
  });

  after(async () => {
    await xs?.close();
  });

  /** The result the script sent for `test`, typed as the test expects it. */
  const result = <T = Message>(test: string): T => {
    const m = results.get(test);
    assert.ok(m, `the script sent no "${test}" result (got: ${[...results.keys()].join(', ')})`);
    return m as unknown as T;
  };

  it('reports a meter usage for the evaluate', () => {
    for (const key of ['compute', 'allocate', 'currentHeapCount'] as const) {
      assert.ok(Number.isInteger(usage[key]) && usage[key] > 0, `${key} = ${usage[key]}`);
    }
  });

  it('SHA-256 (hal/nobleCrypto) equals Node', () => {
    const { input, digest } = result<{ input: Uint8Array; digest: Uint8Array }>('sha256');
    assert.equal(new TextDecoder().decode(input), 'ParkLink meter 0042, bay 3, 2.50 EUR');
    assert.deepEqual(digest, new Uint8Array(createHash('sha256').update(input).digest()));
  });

  it('AES-256-GCM seals as Node does, opens, and refuses a tampered ciphertext', () => {
    const m = result<Record<string, Uint8Array> & { tamper: string }>('aes-gcm');
    const cipher = createCipheriv('aes-256-gcm', m.key, m.nonce);
    cipher.setAAD(m.aad);
    const expected = new Uint8Array([
      ...cipher.update(m.plaintext),
      ...cipher.final(),
      ...cipher.getAuthTag(),
    ]);
    assert.deepEqual(m.sealed, expected);
    assert.deepEqual(m.opened, m.plaintext);
    assert.equal(m.tamper, 'AuthenticationError');
  });

  it('virtual flash (hal/mock/flash) writes, reads back, only clears bits, erases a sector', () => {
    const m = result('flash');
    assert.deepEqual(m.written, m.data);
    assert.deepEqual(m.rewritten, m.data, 'writing 0xFF over programmed bytes must not set bits');
    assert.equal(m.erased, true);
    assert.deepEqual(m.eraseCounts, [0, 1, 0, 0]);
  });

  it('virtual clock (hal/mock/clock) fires timers in due order', () => {
    const m = result('clock');
    assert.deepEqual(m.fired, [
      ['tick', 1000],
      ['once', 1500],
      ['tick', 2000],
      ['tick', 3000],
    ]);
    assert.equal(m.now, Date.parse('2026-01-05T08:00:00Z') + 8500);
    assert.equal(m.pending, 0);
  });

  it('cborg encodes as it does on Node and decodes its own output', () => {
    const m = result('cbor');
    const m0 = result<Record<string, Uint8Array>>('aes-gcm');
    const record = [
      1,
      42,
      3,
      250,
      Date.parse('2026-01-05T08:00:00Z') + 8500,
      19n,
      m0.plaintext.subarray(0, 32),
    ];
    assert.deepEqual(m.cborArray, encode(record));
    assert.deepEqual(m.cborMap, encode({ meter: 42, bay: 3, amountCents: 250, seq: 19n }));
    assert.deepEqual(m.backArray, [1, 42, 3, 250, record[4], 19, record[6]]);
    assert.deepEqual(m.backMap, { meter: 42, bay: 3, amountCents: 250, seq: 19 });
  });

  it('known hazard: cborg default encoding of a map with 5+ keys throws under XS (console.warn)', () => {
    // XS's sort compares an element with itself; cborg's default map sorter then reaches
    // `console.warn`, which XS does not have. Firmware encoding maps must pass
    // rfc8949EncodeOptions (or its own mapSorter). If this starts failing, cborg or XS changed:
    // check, then drop this test.
    const m = result('cbor-wide-map');
    assert.match(String(m.defaultWide), /ReferenceError: .*console/);
    const wide = { meter: 42, bay: 3, amountCents: 250, at: 1767600000000, seq: 19 };
    assert.deepEqual(m.rfc8949, encode(wide, rfc8949EncodeOptions));
  });

  it('reads per-operation meter usage from later evaluates (96-byte record)', async () => {
    assert.ok(xs);
    for (const op of ['sha256', 'hmacSha256', 'aesGcmEncrypt', 'cborEncode']) {
      const u = await xs.evaluate(`smoke.${op}()`);
      assert.ok(u.compute > 0);
      console.log(`    ${op.padEnd(14)} ${figures(u)}`);
    }
  });

  it('rejects the evaluate when the script throws, or when work wrapped in run() rejects later', async () => {
    assert.ok(xs);
    await assert.rejects(xs.evaluate('throw new TypeError("sync failure")'), /TypeError: sync failure/);
    await assert.rejects(xs.evaluate('smoke.failLater()'), /under XS: RangeError: late failure/);
    await xs.evaluate('print("still alive")');
    assert.equal(xs.output.at(-1), 'still alive');
  });

  it('refuses to bundle anything that imports a Node builtin or a Node-only package', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'parklink-xs-'));
    try {
      const entry = path.join(dir, 'impure.ts');
      await writeFile(entry, "import { readFileSync } from 'node:fs';\nexport const read = readFileSync;\n");
      await assert.rejects(bundleForXs(entry), /Node builtin "node:fs" imported by .*impure\.ts/);
      await writeFile(entry, "import { connect } from 'mqtt';\nexport const c = connect;\n");
      await assert.rejects(bundleForXs(entry), /Node-only package "mqtt"/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
