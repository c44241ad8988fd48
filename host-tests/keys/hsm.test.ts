// The platform's master key in SoftHSM2 through PKCS#11: derivation equal to the software keystore,
// the key never readable, a wrong PIN refused, the platform choosing the HSM from its environment.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { inspect } from 'node:util';
import { nobleCrypto as crypto } from '../../hal/nobleCrypto';
import { fromHex, toHex } from '../../protocol/bytes';
import { deriveMeterKeys } from '../../protocol/keys';
import {
  destroyHsmMaster,
  HsmError,
  hsmRandom,
  importMasterToHsm,
  openHsmKeystore,
} from '../../platform-server/keys/hsm';
import { keystoreFromHex, loadKeystore } from '../../platform-server/keys/keystore';
import { createPlatform } from '../../platform-server/platform';
import { configFromEnv } from '../../platform-server/config';
import { createSoftHsmToken, requireSoftHsm, type SoftHsmToken, SOFTHSM_MODULE, USER_PIN } from './softhsm';
import { PaymentSimulator } from '../../platform-server/payments/simulator';

const MASTER_HEX = '8f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0';
const pkcs11js = createRequire(import.meta.url)('pkcs11js') as typeof import('pkcs11js');

describe('keys: HSM through PKCS#11 (SoftHSM2)', () => {
  let token: SoftHsmToken;

  before(function () {
    requireSoftHsm(this);
    token = createSoftHsmToken();
    importMasterToHsm(token.config, fromHex(MASTER_HEX));
  });
  after(() => token?.remove());

  it('derives every meter key exactly as protocol/keys.ts does in software from the same master', () => {
    const hsm = openHsmKeystore(token.config);
    const software = keystoreFromHex(MASTER_HEX);
    try {
      assert.equal(hsm.source, 'hsm');
      for (const [meterId, epoch] of [
        [0, 0],
        [1, 1],
        [1001, 3],
        [0xffffffff, 7],
        [123456789, 0xffffffff],
      ]) {
        const expected = deriveMeterKeys(crypto, fromHex(MASTER_HEX), meterId, epoch);
        assert.deepEqual(hsm.meterKeys(meterId, epoch), expected, `meter ${meterId} epoch ${epoch}`);
        assert.deepEqual(software.meterKeys(meterId, epoch), expected);
      }
      assert.match(hsm.keyCheckValue(), /^[0-9a-f]{6}$/);
      assert.equal(hsm.keyCheckValue(), software.keyCheckValue());
    } finally {
      hsm.close();
    }
  });

  it('a different master gives different keys and a different check value', () => {
    const hsm = openHsmKeystore(token.config);
    try {
      const software = keystoreFromHex(`${MASTER_HEX.slice(0, 62)}00`);
      assert.notDeepEqual(hsm.meterKeys(5, 1), software.meterKeys(5, 1));
      assert.notEqual(hsm.keyCheckValue(), software.keyCheckValue());
    } finally {
      hsm.close();
    }
  });

  it('keeps the master non-extractable: its CKA_VALUE cannot be read, nor the key wrapped out', () => {
    const p = pkcs11js;
    const pkcs11 = new p.PKCS11();
    pkcs11.load(SOFTHSM_MODULE);
    pkcs11.C_Initialize();
    try {
      const slot = pkcs11
        .C_GetSlotList(true)
        .find((s) => pkcs11.C_GetTokenInfo(s).label.trimEnd() === token.config.tokenLabel)!;
      const session = pkcs11.C_OpenSession(slot, p.CKF_SERIAL_SESSION | p.CKF_RW_SESSION);
      pkcs11.C_Login(session, p.CKU_USER, USER_PIN);
      pkcs11.C_FindObjectsInit(session, [
        { type: p.CKA_CLASS, value: p.CKO_SECRET_KEY },
        { type: p.CKA_LABEL, value: 'parklink-master' },
      ]);
      const [key] = pkcs11.C_FindObjects(session, 2);
      pkcs11.C_FindObjectsFinal(session);
      assert.ok(key, 'the master key object is on the token');
      assert.throws(
        () => pkcs11.C_GetAttributeValue(session, key, [{ type: p.CKA_VALUE }]),
        /CKR_ATTRIBUTE_SENSITIVE/,
      );
      const flags = pkcs11.C_GetAttributeValue(session, key, [
        { type: p.CKA_SENSITIVE },
        { type: p.CKA_EXTRACTABLE },
        { type: p.CKA_NEVER_EXTRACTABLE },
        { type: p.CKA_TOKEN },
        { type: p.CKA_PRIVATE },
      ]);
      assert.deepEqual(
        flags.map((a) => (a.value as Buffer)[0]),
        [1, 0, 0, 1, 1],
      );
      // Wrapping it out under a key we know is refused too.
      const kek = pkcs11.C_GenerateKey(session, { mechanism: p.CKM_AES_KEY_GEN }, [
        { type: p.CKA_CLASS, value: p.CKO_SECRET_KEY },
        { type: p.CKA_KEY_TYPE, value: p.CKK_AES },
        { type: p.CKA_VALUE_LEN, value: 32 },
        { type: p.CKA_WRAP, value: true },
        { type: p.CKA_TOKEN, value: false },
      ]);
      assert.throws(
        () => pkcs11.C_WrapKey(session, { mechanism: p.CKM_AES_KEY_WRAP }, kek, key, Buffer.alloc(64)),
        /CKR_KEY_UNEXTRACTABLE|CKR_KEY_NOT_WRAPPABLE/,
      );
      pkcs11.C_Logout(session);
      pkcs11.C_CloseSession(session);
    } finally {
      pkcs11.C_Finalize();
      pkcs11.close();
    }
  });

  it('refuses a wrong PIN, and a wrong PIN while the token is already open', () => {
    assert.throws(
      () => openHsmKeystore({ ...token.config, pin: '000000' }),
      (error: Error) =>
        error instanceof HsmError &&
        /refused the PIN/.test(error.message) &&
        !error.message.includes('000000'),
    );
    const open = openHsmKeystore(token.config);
    try {
      assert.throws(() => openHsmKeystore({ ...token.config, pin: `${USER_PIN}9` }), /refused the PIN/);
      const second = openHsmKeystore(token.config);
      assert.deepEqual(second.meterKeys(9, 2), open.meterKeys(9, 2));
      second.close();
      assert.deepEqual(open.meterKeys(9, 3), keystoreFromHex(MASTER_HEX).meterKeys(9, 3), 'still open');
    } finally {
      open.close();
    }
    assert.throws(() => openHsmKeystore({ ...token.config, pin: '' }), /PIN is empty/);
  });

  it('names what is missing: token, key label, module; refuses a second import under one label', () => {
    assert.throws(
      () => openHsmKeystore({ ...token.config, tokenLabel: 'nope' }),
      /no HSM token labelled "nope"/,
    );
    assert.throws(() => openHsmKeystore({ ...token.config, keyLabel: 'absent' }), /no key labelled "absent"/);
    assert.throws(
      () => openHsmKeystore({ ...token.config, module: '/nonexistent/libp11.so' }),
      /does not exist/,
    );
    assert.throws(() => importMasterToHsm(token.config, fromHex(MASTER_HEX)), /already holds a key labelled/);
    assert.throws(
      () => importMasterToHsm({ ...token.config, keyLabel: 'short' }, new Uint8Array(16)),
      /32 bytes/,
    );
  });

  it('keeps several masters under their labels; destroys one on request', () => {
    const second = { ...token.config, keyLabel: 'parklink-master-2' };
    const bytes = hsmRandom(token.config, 32);
    assert.equal(bytes.length, 32);
    const kcv = importMasterToHsm(second, bytes);
    assert.equal(kcv, keystoreFromHex(toHex(bytes)).keyCheckValue());
    const hsm = openHsmKeystore(second);
    assert.deepEqual(hsm.meterKeys(3, 1), deriveMeterKeys(crypto, bytes, 3, 1));
    // The keystore holds no key of its own: with the token's object gone, derivation fails.
    assert.equal(destroyHsmMaster(second), 1);
    assert.throws(
      () => hsm.meterKeys(3, 1),
      (error: Error) => error instanceof HsmError,
    );
    hsm.close();
    assert.throws(() => openHsmKeystore(second), /no key labelled/);
  });

  it('shows no key material through inspect or JSON, and is unusable once closed', () => {
    const hsm = openHsmKeystore(token.config);
    const software = keystoreFromHex(MASTER_HEX);
    for (const store of [hsm, software]) {
      const shown = `${inspect(store, { showHidden: true, depth: 5 })} ${JSON.stringify(store)}`;
      assert.ok(!shown.includes(MASTER_HEX.slice(0, 8)), shown);
      assert.ok(!/\d+, \d+, \d+/.test(shown), `no byte lists: ${shown}`);
    }
    hsm.close();
    assert.throws(() => hsm.meterKeys(1, 1), /closed/);
  });

  it('refuses to derive from a key imported under another HKDF salt (a changed protocol/keys.ts)', () => {
    const p = pkcs11js;
    const pkcs11 = new p.PKCS11();
    pkcs11.load(SOFTHSM_MODULE);
    pkcs11.C_Initialize();
    try {
      const slot = pkcs11
        .C_GetSlotList(true)
        .find((s) => pkcs11.C_GetTokenInfo(s).label.trimEnd() === token.config.tokenLabel)!;
      const session = pkcs11.C_OpenSession(slot, p.CKF_SERIAL_SESSION | p.CKF_RW_SESSION);
      pkcs11.C_Login(session, p.CKU_USER, USER_PIN);
      pkcs11.C_CreateObject(session, [
        { type: p.CKA_CLASS, value: p.CKO_SECRET_KEY },
        { type: p.CKA_KEY_TYPE, value: p.CKK_GENERIC_SECRET },
        { type: p.CKA_TOKEN, value: true },
        { type: p.CKA_SENSITIVE, value: true },
        { type: p.CKA_EXTRACTABLE, value: false },
        { type: p.CKA_SIGN, value: true },
        { type: p.CKA_LABEL, value: 'old-salt' },
        { type: p.CKA_ID, value: Buffer.from('ParkLink meter keys v0') },
        { type: p.CKA_VALUE, value: Buffer.alloc(32, 1) },
      ]);
      pkcs11.C_Logout(session);
      pkcs11.C_CloseSession(session);
    } finally {
      pkcs11.C_Finalize();
      pkcs11.close();
    }
    const hsm = openHsmKeystore({ ...token.config, keyLabel: 'old-salt' });
    try {
      assert.throws(() => hsm.meterKeys(1, 1), /imported for another derivation salt/);
    } finally {
      hsm.close();
    }
    assert.equal(destroyHsmMaster({ ...token.config, keyLabel: 'old-salt' }), 1);
  });

  it('platform: provisions meters with keys from the HSM, equal to the software keystore', async function () {
    this.timeout(20_000); // PGlite and the embedded broker start
    const platform = await createPlatform({
      hsm: token.config,
      phone: { gateway: false, paymentProvider: new PaymentSimulator() },
      httpLogger: false,
    });
    try {
      assert.equal(platform.keystore.source, 'hsm');
      const { cardTokenKey, ...keys } = await platform.provisionMeter(4711, 'HSM meter');
      assert.deepEqual(keys, keystoreFromHex(MASTER_HEX).meterKeys(4711, 1));
      assert.equal(cardTokenKey.length, 32, "with the fleet's card-token key");
    } finally {
      await platform.close();
    }
    assert.throws(() => platform.keystore.meterKeys(4711, 1), /closed/);
  });

  it('platform: PARKLINK_HSM_* select the HSM; loadKeystore opens it', async () => {
    const config = configFromEnv({
      PARKLINK_HSM_MODULE: SOFTHSM_MODULE,
      PARKLINK_HSM_TOKEN: token.config.tokenLabel,
      PARKLINK_HSM_PIN: USER_PIN,
      PARKLINK_MASTER_KEY: '00'.repeat(32),
    });
    assert.deepEqual(config.hsm, {
      module: SOFTHSM_MODULE,
      tokenLabel: token.config.tokenLabel,
      pin: USER_PIN,
    });
    const keystore = await loadKeystore(config);
    try {
      assert.equal(keystore.source, 'hsm');
      assert.deepEqual(keystore.meterKeys(77, 1), keystoreFromHex(MASTER_HEX).meterKeys(77, 1));
    } finally {
      keystore.close();
    }
    assert.throws(() => configFromEnv({ PARKLINK_HSM_MODULE: SOFTHSM_MODULE }), /PARKLINK_HSM_PIN/);
  });
});
