import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nobleCrypto as crypto } from '../../hal/nobleCrypto';
import { fromHex, toHex } from '../../protocol/bytes';
import { deriveMeterKeys, type MeterKeys } from '../../protocol/keys';
import {
  createKeystoreFile,
  frameKeys,
  generatedKeystore,
  keystoreFromHex,
  loadKeystore,
  openKeystoreFile,
} from '../../platform-server/keys/keystore';

const MASTER_HEX = '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f';
const FAST = { logN: 10, r: 8, p: 1 }; // keeps the tests quick; files default to 2^17

describe('keystore', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'parklink-keystore-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('derives meter keys from a hex master key exactly as protocol/keys does', () => {
    const keystore = keystoreFromHex(MASTER_HEX);
    assert.equal(keystore.source, 'env');
    assert.deepEqual(keystore.meterKeys(1001, 3), deriveMeterKeys(crypto, fromHex(MASTER_HEX), 1001, 3));
  });

  it('refuses a master key that is not 64 hex digits', () => {
    for (const bad of ['', 'abc', MASTER_HEX.slice(2), `${MASTER_HEX}00`, `${MASTER_HEX.slice(1)}g`]) {
      assert.throws(() => keystoreFromHex(bad), /64 hexadecimal digits/);
    }
  });

  it('generates a different master key per process run, and forgets it on close', () => {
    const a = generatedKeystore();
    const b = generatedKeystore();
    assert.equal(a.source, 'generated');
    assert.notDeepEqual(a.meterKeys(1, 1).uplink, b.meterKeys(1, 1).uplink);
    a.close();
    assert.throws(() => a.meterKeys(1, 1), /closed/);
  });

  it('seals the master key in a passphrase-protected file and opens it again', async () => {
    const path = join(dir, 'keystore.json');
    const created = await createKeystoreFile(path, 'correct horse battery staple', {
      master: fromHex(MASTER_HEX),
      scrypt: FAST,
    });
    const text = await readFile(path, 'utf8');
    assert.ok(!text.includes(MASTER_HEX), 'the file does not hold the key in clear');
    const opened = await openKeystoreFile(path, 'correct horse battery staple');
    assert.equal(opened.source, 'file');
    assert.deepEqual(opened.meterKeys(42, 1), created.meterKeys(42, 1));
    assert.deepEqual(opened.meterKeys(42, 1), keystoreFromHex(MASTER_HEX).meterKeys(42, 1));
    await assert.rejects(openKeystoreFile(path, 'wrong passphrase'), /wrong passphrase or damaged/);
    await assert.rejects(createKeystoreFile(path, 'other', { scrypt: FAST }), /already exists/);
  });

  it('refuses a keystore file whose parameters or sealed key were altered', async () => {
    const path = join(dir, 'tampered.json');
    await createKeystoreFile(path, 'pass', { scrypt: FAST });
    const file = JSON.parse(await readFile(path, 'utf8'));
    const sealed = fromHex(file.sealed);
    sealed[0] ^= 1;
    await writeFile(path, JSON.stringify({ ...file, sealed: toHex(sealed) }));
    await assert.rejects(openKeystoreFile(path, 'pass'), /wrong passphrase or damaged/);
    await writeFile(path, JSON.stringify({ ...file, kdf: { ...file.kdf, r: 9 } }));
    await assert.rejects(openKeystoreFile(path, 'pass'), /wrong passphrase or damaged/);
  });

  it('loadKeystore: explicit key first, then the file, else generated', async () => {
    assert.equal((await loadKeystore({ masterKey: MASTER_HEX, keystoreFile: '/nonexistent' })).source, 'env');
    assert.equal((await loadKeystore({})).source, 'generated');
    await assert.rejects(
      loadKeystore({ keystoreFile: join(dir, 'missing.json'), keystorePassphrase: 'x' }),
      /does not exist/,
    );
    await assert.rejects(loadKeystore({ keystoreFile: join(dir, 'missing.json') }), /passphrase/);
  });

  it('frameKeys hands out C and D only, and wipes the key parts A, B and M it derived', () => {
    const keystore = keystoreFromHex(MASTER_HEX, crypto);
    let derived: MeterKeys | undefined;
    const watching = {
      ...keystore,
      meterKeys(meterId: number, epoch: number) {
        derived = keystore.meterKeys(meterId, epoch);
        return derived;
      },
    };
    const keys = frameKeys(watching, 4242, 3);
    const expected = deriveMeterKeys(crypto, fromHex(MASTER_HEX), 4242, 3);
    assert.deepEqual(keys.uplink, expected.uplink);
    assert.deepEqual(keys.downlink, expected.downlink);
    assert.equal(keys.epoch, 3);
    assert.equal(keys.secrets, undefined);
    const parts = derived?.secrets;
    assert.ok(parts, 'the derivation yields the key parts');
    for (const part of [parts.a, parts.b, parts.m])
      assert.ok(
        part.every((b) => b === 0),
        'wiped',
      );
  });
});
