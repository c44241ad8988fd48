// The key ceremony (tools/keys.ts): 3-of-5 shares restore the master from any three, fewer or
// damaged or altered or mixed shares are refused by name, the CLI moves a master between shares, a
// keystore file and the HSM, and nothing it prints (nor anything printed meanwhile) holds key bytes.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sinon from 'sinon';
import { nobleCrypto as crypto } from '../../hal/nobleCrypto';
import { toHex } from '../../protocol/bytes';
import { deriveMeterKeys } from '../../protocol/keys';
import { openHsmKeystore } from '../../platform-server/keys/hsm';
import { keyCheckValue, openKeystoreFile } from '../../platform-server/keys/keystore';
import {
  decodeShare,
  encodeShare,
  restoreMaster,
  run,
  SHARE_LENGTH,
  type Share,
  ShareError,
  splitMaster,
} from '../../tools/keys';
import { createSoftHsmToken, requireSoftHsm, type SoftHsmToken, USER_PIN } from './softhsm';

const MASTER = Uint8Array.from({ length: 32 }, (_, i) => (i * 37 + 11) & 0xff);
const PASSPHRASE = 'ceremony passphrase 7f3a';

function* choose<T>(items: T[], k: number, from = 0, acc: T[] = []): Generator<T[]> {
  if (acc.length === k) {
    yield [...acc];
    return;
  }
  for (let i = from; i < items.length; i++) yield* choose(items, k, i + 1, [...acc, items[i]]);
}

/** Re-encodes a share changed by `change`, with a valid checksum (a deliberate forgery). */
function forge(share: Share, change: (bytes: Uint8Array) => void): Share {
  const bytes = Uint8Array.from(share.bytes);
  change(bytes);
  const body = bytes.subarray(0, SHARE_LENGTH - 8);
  bytes.set(createHash('sha256').update(body).digest().subarray(0, 8), SHARE_LENGTH - 8);
  return decodeShare(`PLS1:${toHex(bytes)}`);
}

/** Runs the CLI with its output and the console captured; returns the exit code and all text. */
async function cli(argv: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; text: string }> {
  const lines: string[] = [];
  const out = { log: (l: string) => lines.push(l), error: (l: string) => lines.push(l) };
  const stubs = (['log', 'error', 'warn', 'info', 'debug'] as const).map((m) =>
    sinon.stub(console, m).callsFake((...args: unknown[]) => lines.push(args.join(' '))),
  );
  try {
    const code = await run(argv, env, out);
    return { code, text: lines.join('\n') };
  } finally {
    for (const stub of stubs) stub.restore();
  }
}

/** Every form a key or a share could take in text. */
function secretForms(bytes: Uint8Array): string[] {
  const buffer = Buffer.from(bytes);
  return [
    toHex(bytes),
    toHex(bytes).toUpperCase(),
    buffer.toString('base64'),
    buffer.toString('base64url'),
  ].map((s) => s.slice(0, 16));
}

function assertNoSecrets(text: string, secrets: Uint8Array[], extra: string[] = []): void {
  for (const secret of secrets) {
    for (const form of secretForms(secret))
      assert.ok(!text.includes(form), `key material in the output:\n${text}`);
  }
  for (const s of extra) assert.ok(!text.includes(s), `"${s}" in the output:\n${text}`);
}

describe('keys: ceremony shares (k of 5)', () => {
  it('any 3 of 5 shares rebuild the master, and so do 4 or 5', async () => {
    const shares = await splitMaster(MASTER, 3, 5);
    assert.equal(shares.length, 5);
    assert.deepEqual(
      shares.map((s) => s.number),
      [1, 2, 3, 4, 5],
    );
    for (const k of [3, 4, 5]) {
      for (const subset of choose(shares, k)) {
        const restored = await restoreMaster(subset);
        assert.deepEqual(restored.master, MASTER);
        assert.deepEqual(
          restored.used,
          subset.map((s) => s.number),
        );
        assert.deepEqual(restored.rejected, []);
      }
    }
    // Through their text form too, and in any order.
    const text = [shares[4], shares[0], shares[2]].map(encodeShare);
    assert.deepEqual((await restoreMaster(text.map((t) => decodeShare(t)))).master, MASTER);
  });

  it('fewer than 3 shares fail with a clear error, repeats of one share counting once', async () => {
    const shares = await splitMaster(MASTER, 3, 5);
    for (const few of [[shares[0]], [shares[1], shares[3]], [shares[2], shares[2], shares[4]]]) {
      await assert.rejects(restoreMaster(few), (error: Error) => {
        assert.ok(error instanceof ShareError);
        assert.match(error.message, /needs 3 of its 5 shares to restore the key; \d given/);
        return true;
      });
    }
    await assert.rejects(restoreMaster([]), /no shares/);
  });

  it('detects a damaged share by its checksum and names it, without echoing it', async () => {
    const [share] = await splitMaster(MASTER, 3, 5);
    const line = encodeShare(share);
    for (const at of [5, 10, 40, 100, line.length - 1]) {
      const digit = line[at] === '0' ? '1' : '0';
      const damaged = `${line.slice(0, at)}${digit}${line.slice(at + 1)}`;
      assert.throws(
        () => decodeShare(damaged, 'card 1'),
        (error: Error) =>
          error instanceof ShareError &&
          /card 1 is damaged: its checksum does not match|card 1 is not a version 1/.test(error.message) &&
          !error.message.includes(line.slice(5, 25)),
      );
    }
    assert.throws(() => decodeShare(line.slice(0, -2), 'card 1'), /card 1 is not a ParkLink key share/);
    assert.throws(() => decodeShare('hello', 'x.txt'), /x.txt is not a ParkLink key share/);
  });

  it('an altered share with a valid checksum: refused with 3, set aside and reported with 4', async () => {
    const shares = await splitMaster(MASTER, 3, 5);
    const altered = forge(shares[1], (bytes) => {
      bytes[40] ^= 0x5a; // inside the library's share (y values)
    });
    await assert.rejects(restoreMaster([shares[0], altered, shares[2]]), /do not rebuild the key.*altered/);
    const restored = await restoreMaster([shares[0], altered, shares[2], shares[3]]);
    assert.deepEqual(restored.master, MASTER);
    assert.deepEqual(restored.used, [1, 3, 4]);
    assert.deepEqual(restored.rejected, [2]);
    // A forged threshold (two cards instead of three) breaks the set's tag.
    const lowered = shares.slice(0, 2).map((share) =>
      forge(share, (bytes) => {
        bytes[4] = 2;
      }),
    );
    assert.equal(lowered[0].threshold, 2);
    await assert.rejects(restoreMaster(lowered), /do not rebuild the key/);
  });

  it('refuses shares of two different backups, even of the same master', async () => {
    const a = await splitMaster(MASTER, 3, 5);
    const b = await splitMaster(MASTER, 3, 5);
    assert.notEqual(a[0].setId, b[0].setId);
    await assert.rejects(restoreMaster([a[0], a[1], b[2]]), /different backups/);
  });

  it('refuses impossible parameters', async () => {
    await assert.rejects(splitMaster(MASTER, 1, 5), /threshold must be 2…5/);
    await assert.rejects(splitMaster(MASTER, 6, 5), /threshold must be 2…5/);
    await assert.rejects(splitMaster(MASTER.subarray(0, 16), 3, 5), /32 bytes/);
  });
});

describe('keys: ceremony CLI with a keystore file', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'parklink-ceremony-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  const env = { PARKLINK_KEYSTORE_PASSPHRASE: PASSPHRASE };

  it('generates, backs up 3 of 5, restores into a second keystore: same keys, nothing secret printed', async () => {
    const shares = join(dir, 'shares');
    const first = join(dir, 'first.json');
    const generated = await cli(
      ['generate', '--threshold', '3', '--out', shares, '--keystore', first, '--scrypt-logn', '10'],
      env,
    );
    assert.equal(generated.code, 0, generated.text);
    const files = readdirSync(shares).sort();
    assert.deepEqual(files, [1, 2, 3, 4, 5].map((n) => `share-${n}-of-5.txt`).sort());
    assert.equal(statSync(join(shares, files[0])).mode & 0o777, 0o600);
    const kcv = /key check value ([0-9a-f]{6})/.exec(generated.text)?.[1];
    assert.ok(kcv, generated.text);

    const second = join(dir, 'second.json');
    const restored = await cli(
      [
        'restore',
        join(shares, 'share-5-of-5.txt'),
        join(shares, 'share-2-of-5.txt'),
        join(shares, 'share-3-of-5.txt'),
        '--keystore',
        second,
        '--scrypt-logn',
        '10',
      ],
      env,
    );
    assert.equal(restored.code, 0, restored.text);
    assert.match(restored.text, /rebuilt from shares 2, 3, 5/);
    assert.match(restored.text, new RegExp(`key check value ${kcv}`));

    const a = await openKeystoreFile(first, PASSPHRASE);
    const b = await openKeystoreFile(second, PASSPHRASE);
    assert.deepEqual(a.meterKeys(4242, 2), b.meterKeys(4242, 2));
    assert.equal(a.keyCheckValue(), kcv);

    // Learn the master from the shares, then look for it (and for the shares) in everything printed.
    const all = files.map((f) => decodeShare(readFileSync(join(shares, f), 'utf8')));
    const { master } = await restoreMaster(all);
    assert.deepEqual(a.meterKeys(7, 1), deriveMeterKeys(crypto, master, 7, 1));
    assert.equal(keyCheckValue(crypto, master), kcv);
    const checked = await cli(['check', '--keystore', second], env);
    assert.equal(checked.text, `key check value ${kcv}`);
    const printed = [generated.text, restored.text, checked.text].join('\n');
    assertNoSecrets(
      printed,
      [master, ...all.map((s) => s.bytes.subarray(15, 48)), a.meterKeys(7, 1).uplink],
      [PASSPHRASE],
    );
  });

  it('keystore file: a wrong passphrase is refused, the passphrase never printed', async () => {
    const file = join(dir, 'ks.json');
    const made = await cli(
      [
        'generate',
        '--threshold',
        '2',
        '--shares',
        '3',
        '--out',
        join(dir, 's'),
        '--keystore',
        file,
        '--scrypt-logn',
        '10',
      ],
      env,
    );
    assert.equal(made.code, 0, made.text);
    const wrong = await cli(['check', '--keystore', file], { PARKLINK_KEYSTORE_PASSPHRASE: 'not it' });
    assert.equal(wrong.code, 1);
    assert.match(wrong.text, /wrong passphrase or damaged file/);
    assert.ok(!wrong.text.includes('not it'));
    await assert.rejects(openKeystoreFile(file, `${PASSPHRASE}!`), /wrong passphrase or damaged/);
    const none = await cli(['check', '--keystore', file], {});
    assert.equal(none.code, 2);
    assert.match(none.text, /needs PARKLINK_KEYSTORE_PASSPHRASE/);
  });

  it('refuses too few or damaged share files by exit code and message; keeps existing files', async () => {
    const shares = join(dir, 'shares');
    const made = await cli(
      [
        'generate',
        '--threshold',
        '3',
        '--out',
        shares,
        '--keystore',
        join(dir, 'k.json'),
        '--scrypt-logn',
        '10',
      ],
      env,
    );
    assert.equal(made.code, 0, made.text);
    const path = (n: number) => join(shares, `share-${n}-of-5.txt`);
    const few = await cli(['restore', path(1), path(2), '--verify'], {});
    assert.equal(few.code, 1);
    assert.match(few.text, /needs 3 of its 5 shares to restore the key; 2 given/);

    const text = readFileSync(path(4), 'utf8');
    const at = text.indexOf('PLS1:') + 60;
    writeFileSync(path(4), `${text.slice(0, at)}${text[at] === 'f' ? 'e' : 'f'}${text.slice(at + 1)}`);
    const damaged = await cli(['restore', path(1), path(4), path(5), '--verify'], {});
    assert.equal(damaged.code, 1);
    assert.match(damaged.text, /share-4-of-5\.txt is damaged: its checksum does not match/);
    const verified = await cli(['restore', path(1), path(3), path(5), '--verify'], {});
    assert.equal(verified.code, 0, verified.text);

    const again = await cli(
      ['generate', '--threshold', '3', '--out', join(dir, 'other'), '--keystore', join(dir, 'k.json')],
      env,
    );
    assert.equal(again.code, 1);
    assert.match(again.text, /already exists/);
    const usage = await cli(['generate', '--out', shares, '--keystore', 'x'], env);
    assert.equal(usage.code, 2);
    assert.match(usage.text, /usage: npm run keys/);
  });
});

describe('keys: ceremony CLI with the HSM (SoftHSM2)', () => {
  let token: SoftHsmToken;
  let dir: string;
  let env: NodeJS.ProcessEnv;
  before(function () {
    requireSoftHsm(this);
    token = createSoftHsmToken();
    dir = mkdtempSync(join(tmpdir(), 'parklink-ceremony-hsm-'));
    env = {
      PARKLINK_HSM_MODULE: token.config.module,
      PARKLINK_HSM_TOKEN: token.config.tokenLabel,
      PARKLINK_HSM_PIN: USER_PIN,
      PARKLINK_KEYSTORE_PASSPHRASE: PASSPHRASE,
    };
  });
  after(() => {
    token?.remove();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('generates into the HSM; 3 shares restore it into a keystore file and under a second HSM label', async () => {
    const shares = join(dir, 'shares');
    const generated = await cli(['generate', '--threshold', '3', '--out', shares, '--hsm'], env);
    assert.equal(generated.code, 0, generated.text);
    assert.match(generated.text, /imported into the HSM; key check value [0-9a-f]{6}/);
    const again = await cli(['generate', '--threshold', '3', '--out', join(dir, 'again'), '--hsm'], env);
    assert.equal(again.code, 1);
    assert.match(again.text, /already holds a master key/);

    const path = (n: number) => join(shares, `share-${n}-of-5.txt`);
    const file = join(dir, 'restored.json');
    const toFile = await cli(
      ['restore', path(1), path(2), path(4), '--keystore', file, '--scrypt-logn', '10'],
      env,
    );
    assert.equal(toFile.code, 0, toFile.text);
    const toHsm = await cli(['restore', path(3), path(4), path(5), '--hsm'], {
      ...env,
      PARKLINK_HSM_KEY_LABEL: 'parklink-master-restored',
    });
    assert.equal(toHsm.code, 0, toHsm.text);

    const hsm = openHsmKeystore(token.config);
    const restoredHsm = openHsmKeystore({ ...token.config, keyLabel: 'parklink-master-restored' });
    const software = await openKeystoreFile(file, PASSPHRASE);
    try {
      assert.deepEqual(hsm.meterKeys(31337, 4), software.meterKeys(31337, 4));
      assert.deepEqual(restoredHsm.meterKeys(31337, 4), software.meterKeys(31337, 4));
      const checked = await cli(['check', '--hsm'], env);
      assert.equal(checked.text, `key check value ${software.keyCheckValue()}`);

      const all = readdirSync(shares).map((f) => decodeShare(readFileSync(join(shares, f), 'utf8')));
      const { master } = await restoreMaster(all);
      const printed = [generated.text, again.text, toFile.text, toHsm.text, checked.text].join('\n');
      assertNoSecrets(printed, [master, hsm.meterKeys(1, 1).uplink], [USER_PIN, PASSPHRASE]);
    } finally {
      hsm.close();
      restoredHsm.close();
      software.close();
    }
  });

  it('a wrong PIN stops the ceremony before any key or share exists, and is not printed', async () => {
    const out = join(dir, 'never');
    const result = await cli(['generate', '--threshold', '3', '--out', out, '--hsm'], {
      ...env,
      PARKLINK_HSM_KEY_LABEL: 'other',
      PARKLINK_HSM_PIN: '999999',
    });
    assert.equal(result.code, 1);
    assert.match(result.text, /HSM refused the PIN/);
    assert.ok(!result.text.includes('999999'));
    assert.throws(() => statSync(out), /ENOENT/);
    const check = await cli(['check', '--hsm'], { ...env, PARKLINK_HSM_PIN: '999999' });
    assert.equal(check.code, 1);
    assert.match(check.text, /HSM refused the PIN/);
  });
});
