// CMAC and AN10922 vectors, the ATECC608 driver against its virtual twin,
// the SAM over T=1 on a virtual UART, and the key hierarchy computed by the two chips.
import assert from 'node:assert/strict';
import { hmac } from '@noble/hashes/hmac';
import { sha256 } from '@noble/hashes/sha256';
import { ATECC608, crc16, SecureElementError } from '../../drivers/secure/atecc608';
import { aesCmac, cmacSubkeys, diversifyAes128 } from '../../drivers/secure/cmac';
import { decodeT1Block, encodeT1Block, SamError, SecureAccessModule } from '../../drivers/secure/sam';
import { VirtualI2cBus } from '../../hal/mock/bus';
import { VirtualClock } from '../../hal/mock/clock';
import { nobleAesBlock as aes } from '../../hal/mock/secure/aes';
import { blankAtecc608State, VirtualAtecc608 } from '../../hal/mock/secure/atecc608';
import { blankSamState, VirtualSam } from '../../hal/mock/secure/sam';
import { VirtualSerialPort } from '../../hal/mock/serial';
import { nobleCrypto } from '../../hal/nobleCrypto';
import { fromHex, toHex } from '../../protocol/bytes';
import {
  combineDownlinkKey,
  deriveMeterKeys,
  downlinkSaltMessage,
  sha256 as plainSha256,
  softwareHmac,
} from '../../protocol/keys';

describe('AES-CMAC (RFC 4493) and AN10922 diversification', () => {
  const key = fromHex('2b7e151628aed2a6abf7158809cf4f3c');
  const message = fromHex(
    '6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e5130c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710',
  );

  it('derives the RFC 4493 §4 subkeys', () => {
    const { k1, k2 } = cmacSubkeys(aes, key);
    assert.equal(toHex(k1), 'fbeed618357133667c85e08f7236a8de');
    assert.equal(toHex(k2), 'f7ddac306ae266ccf90bc11ee46d513b');
  });

  it('matches the four RFC 4493 §4 examples (0, 16, 40 and 64 bytes)', () => {
    assert.equal(toHex(aesCmac(aes, key, new Uint8Array(0))), 'bb1d6929e95937287fa37d129b756746');
    assert.equal(toHex(aesCmac(aes, key, message.subarray(0, 16))), '070a16b46b4d4144f79bdd9dd04a287c');
    assert.equal(toHex(aesCmac(aes, key, message.subarray(0, 40))), 'dfa66747de9ae63030ca32611497c827');
    assert.equal(toHex(aesCmac(aes, key, message)), '51f0bebf7e3b9d92fc49741779363cfe');
  });

  it('matches AN10922 §2.2.1 (UID 04782E21801D80, AID 3042F5, system "NXP Abu")', () => {
    const master = fromHex('00112233445566778899aabbccddeeff');
    const input = fromHex('04782e21801d80' + '3042f5' + '4e585020416275');
    assert.equal(toHex(cmacSubkeys(aes, master).k2), 'f793eeb928278083bfdc8a5a7e0e0d25');
    assert.equal(toHex(diversifyAes128(aes, master, input)), 'a8dd63a3b89d54b37ca802473fda9175');
    assert.throws(() => diversifyAes128(aes, master, new Uint8Array(32)), RangeError);
    assert.throws(() => diversifyAes128(aes, master.subarray(0, 8), input), RangeError);
  });
});

describe('protocol/keys software SHA-256 and the key hierarchy', () => {
  it('hashes like @noble/hashes at every padding boundary, and HMACs like it', () => {
    for (const length of [0, 1, 55, 56, 63, 64, 65, 119, 120, 200]) {
      const data = Uint8Array.from({ length }, (_, i) => (i * 31 + length) & 0xff);
      assert.equal(toHex(plainSha256(data)), toHex(sha256(data)), `length ${length}`);
      const k = data.subarray(0, Math.min(length, 90));
      assert.equal(toHex(softwareHmac.hmacSha256(k, data)), toHex(hmac(sha256, k, data)));
    }
  });

  it('gives every meter and epoch its own A, B, C, M and D; D = KDF(A, B)', () => {
    const master = new Uint8Array(32).fill(3);
    const a = deriveMeterKeys(nobleCrypto, master, 1, 1);
    const b = deriveMeterKeys(nobleCrypto, master, 1, 2);
    const all = [a.uplink, a.downlink, a.secrets?.a, a.secrets?.b, a.secrets?.m, b.uplink, b.downlink].map(
      (k) => toHex(k!),
    );
    assert.equal(new Set(all).size, all.length);
    assert.equal(toHex(combineDownlinkKey(nobleCrypto, a.secrets!.a, a.secrets!.b, 1, 1)), toHex(a.downlink));
  });
});

function elementRig(state = blankAtecc608State()) {
  const bus = new VirtualI2cBus();
  const chip = new VirtualAtecc608({ state });
  chip.attachTo(bus);
  return { bus, chip, driver: () => new ATECC608({ element: { io: bus.io } }) };
}

describe('ATECC608 driver and virtual chip', () => {
  it('computes the datasheet CRC-16 (the wake answer 04 11 carries 33 43)', () => {
    const crc = crc16(Uint8Array.of(0x04, 0x11));
    assert.deepEqual([crc & 0xff, crc >> 8], [0x33, 0x43]);
  });

  it('checks the revision at once and sleeps; random bytes differ', () => {
    const { chip, driver } = elementRig();
    const se = driver();
    assert.equal(se.revision, 0x6002);
    assert.equal(chip.awake, false);
    assert.notEqual(toHex(se.random()), toHex(se.random()));
    se.close();
    se.close();
  });

  it('refuses a chip of another revision', () => {
    const { chip, driver } = elementRig();
    chip.revision = 0x5000;
    assert.throws(driver, SecureElementError);
  });

  it('HMACs with a secret slot key that it will not read out', () => {
    const state = blankAtecc608State();
    state.secret[2] = true;
    const { driver } = elementRig(state);
    const se = driver();
    const key = Uint8Array.from({ length: 32 }, (_, i) => i + 1);
    se.writeSlot(2, key);
    for (const length of [0, 10, 64, 100, 128]) {
      const message = new Uint8Array(length).fill(7);
      assert.equal(toHex(se.hmac(2, message)), toHex(hmac(sha256, key, message)));
    }
    assert.equal(toHex(se.sha256(Uint8Array.of(1, 2, 3))), toHex(sha256(Uint8Array.of(1, 2, 3))));
    assert.throws(
      () => se.readSlot(2),
      (e: unknown) => e instanceof SecureElementError && e.status === 0x0f,
    );
    se.writeSlot(4, key);
    assert.deepEqual(se.readSlot(4), key);
    se.wipe([2, 4]);
    assert.equal(toHex(se.readSlot(4)), '00'.repeat(32));
  });

  it('turns a corrupted answer CRC or an error status into SecureElementError', () => {
    const { chip, driver } = elementRig();
    const se = driver();
    chip.failNext = 'crc';
    assert.throws(() => se.random(), /CRC/);
    chip.failNext = 0x0f;
    assert.throws(
      () => se.random(),
      (e: unknown) => e instanceof SecureElementError && e.status === 0x0f,
    );
    assert.equal(se.random().length, 32);
  });
});

function samRig(state = blankSamState(new Uint8Array(16).fill(9))) {
  const port = new VirtualSerialPort();
  const chip = new VirtualSam({ state });
  port.attach(1, chip);
  const clock = new VirtualClock();
  return { chip, driver: () => new SecureAccessModule({ sam: { io: port.io, port: 1 }, clock }) };
}

describe('SAM over ISO 7816-3 T=1 on a virtual UART', () => {
  it('frames blocks with the LRC and refuses a bad one', () => {
    const block = encodeT1Block(0x40, Uint8Array.of(0x80, 0x10, 0, 0, 0));
    assert.deepEqual(decodeT1Block(block).inf, Uint8Array.of(0x80, 0x10, 0, 0, 0));
    block[block.length - 1] ^= 1;
    assert.throws(() => decodeT1Block(block), SamError);
    assert.throws(() => decodeT1Block(Uint8Array.of(0, 0, 9, 1)), SamError);
  });

  it('personalises, derives D = KDF(A, B) with the secure element, and wipes', () => {
    const { chip, driver } = samRig();
    const sam = driver();
    const master = new Uint8Array(32).fill(5);
    const keys = deriveMeterKeys(nobleCrypto, master, 77, 3);
    sam.setMeterId(77);
    sam.loadKeys(1, 3, keys.secrets!.a, keys.secrets!.m);
    const salt = hmac(sha256, keys.secrets!.b, downlinkSaltMessage(77, 3));
    assert.equal(toHex(sam.deriveDownlinkKey(1, salt)), toHex(keys.downlink));
    assert.deepEqual(sam.info(), { meterId: 77, epochs: [0, 3], wiped: false });
    assert.throws(
      () => sam.deriveDownlinkKey(0, salt),
      (e: unknown) => e instanceof SamError && e.sw === 0x6a88,
    );
    sam.wipe();
    assert.equal(chip.state.banks[1], undefined);
    assert.equal(chip.state.cardMaster, undefined);
    assert.throws(() => sam.deriveDownlinkKey(1, salt), SamError);
  });

  it('survives a bad LRC, a WTX and silence with typed errors, and resynchronises', () => {
    const { chip, driver } = samRig();
    const sam = driver();
    chip.fault = 'wtx';
    assert.equal(sam.info().wiped, false);
    chip.fault = 'lrc';
    assert.throws(() => sam.info(), SamError);
    sam.resynch();
    chip.fault = 'silent';
    assert.throws(() => sam.info(), /in time/);
    sam.resynch();
    assert.equal(sam.info().meterId, 0);
  });
});
