// Frame seal/open (AES-256-GCM, 106-byte body) and Ed25519 firmware verification
// under XS with the pure-JS provider (compute units, deterministic) and on Node (operations per s).
import { bundleForXs, startXs } from '../../host-tests/xs/xsnap';
import { nobleCrypto as crypto } from '../../hal/nobleCrypto';
import { openFrame, sealFrame } from '../../protocol/frame';
import { deriveMeterKeys } from '../../protocol/keys';

export const description = 'frame seal/open and Ed25519 firmware check: XS compute units and Node ops/s';

export async function run(): Promise<void> {
  const script = await bundleForXs('host-tests/security/crypto.entry.ts');
  const xs = await startXs({ name: 'bench-crypto' });
  try {
    await xs.evaluate(script);
    for (const op of ['seal', 'open', 'verifyFirmware']) {
      const runs: number[] = [];
      for (let i = 0; i < (op === 'verifyFirmware' ? 3 : 20); i++)
        runs.push((await xs.evaluate(`bench.${op}()`)).compute);
      runs.sort((a, b) => a - b);
      console.log(
        `XS ${op}: compute median ${runs[runs.length >> 1].toLocaleString('en')} (min ${runs[0].toLocaleString('en')})`,
      );
    }
  } finally {
    await xs.close();
  }
  const keys = deriveMeterKeys(crypto, new Uint8Array(32).fill(1), 1001, 1);
  const body = Uint8Array.from({ length: 106 }, (_, i) => i);
  const n = 20_000;
  let frame: Uint8Array = new Uint8Array(0);
  let started = performance.now();
  for (let i = 1; i <= n; i++)
    frame = sealFrame(crypto, keys.uplink, { version: 1, type: 1, meterId: 1001, epoch: 1, seq: i }, body);
  const sealMs = performance.now() - started;
  started = performance.now();
  for (let i = 0; i < n; i++) openFrame(crypto, keys.uplink, frame);
  const openMs = performance.now() - started;
  console.log(
    `Node: seal ${Math.round((n / sealMs) * 1000).toLocaleString('en')}/s, open ${Math.round((n / openMs) * 1000).toLocaleString('en')}/s (${n} frames of 136 bytes)`,
  );
}
