import assert from 'node:assert/strict';
import { ed25519 } from '@noble/curves/ed25519';
import {
  checkFirmwareSignature,
  FirmwareRejected,
  firmwareMessage,
  verifyFirmware,
} from '../../firmware/units/firmwareVerify';
import { pinnedFirmwareKey, provisionBoard } from '../../firmware/units/security';
import { VirtualBoard } from '../../hal/mock/board';
import { VirtualBroker } from '../../hal/mock/mqtt';
import { VirtualClock } from '../../hal/mock/clock';
import { nobleCrypto as crypto } from '../../hal/nobleCrypto';
import { fromHex, toHex } from '../../protocol/bytes';
import { deriveMeterKeys } from '../../protocol/keys';

describe('signed firmware (Ed25519 over the image hash and hardware target, key pinned at provisioning)', () => {
  const secret = new Uint8Array(32).fill(7);
  const pub = ed25519.getPublicKey(secret);
  const image = Uint8Array.from({ length: 5000 }, (_, i) => (i * 13) & 0xff);
  const T = 'esp32-parklink-r2';
  const sign = (version: number, bytes = image, target = T) =>
    ed25519.sign(
      firmwareMessage({ version, length: bytes.length, target, digest: crypto.sha256(bytes) }),
      secret,
    );

  it('checks the RFC 8032 test 1 vector with the library it uses', () => {
    const sk = fromHex('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60');
    assert.equal(
      toHex(ed25519.getPublicKey(sk)),
      'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a',
    );
    assert.ok(ed25519.getPublicKey(sk).length === 32);
  });

  it('accepts a newer image signed with the pinned key, and refuses the rest with a reason', () => {
    const clock = new VirtualClock();
    const board = new VirtualBoard({ mqtt: new VirtualBroker(clock).link(), clock });
    provisionBoard(board.hardware, deriveMeterKeys(crypto, new Uint8Array(32), 5, 1), 5, {
      firmwareKey: pub,
    });
    assert.deepEqual(
      pinnedFirmwareKey(board.hardware),
      undefined,
      'without the parts open, preferences hold none',
    );
    const pinned = Uint8Array.from(board.secureElement.state.slots[6]);
    assert.deepEqual(pinned, pub);
    verifyFirmware(crypto, pinned, image, 2, sign(2), 1, T);
    const flipped = image.slice();
    flipped[100] ^= 1;
    const reasons = [
      () => verifyFirmware(crypto, pinned, flipped, 2, sign(2), 1, T),
      () => verifyFirmware(crypto, pinned, image, 3, sign(2), 1, T),
      () => verifyFirmware(crypto, ed25519.getPublicKey(new Uint8Array(32).fill(8)), image, 2, sign(2), 1, T),
      () => verifyFirmware(crypto, pinned, image, 1, sign(1), 1, T),
      () => verifyFirmware(crypto, undefined, image, 2, sign(2), 1, T),
      () => verifyFirmware(crypto, pinned, image, 2, sign(2).subarray(0, 63), 1, T),
      () => verifyFirmware(crypto, pinned, image, 2, sign(2, image, 'esp32-other'), 1, T),
      () =>
        checkFirmwareSignature(
          pinned,
          { version: 2, length: image.length, target: 'esp32-other', digest: crypto.sha256(image) },
          sign(2, image, 'esp32-other'),
          { target: T, floor: 1 },
        ),
      () => verifyFirmware(crypto, pinned, image, 2, sign(2), 1, 'Bad Target!'),
    ].map((f) => {
      try {
        f();
        return 'accepted';
      } catch (e) {
        return e instanceof FirmwareRejected ? e.reason : 'crash';
      }
    });
    assert.deepEqual(reasons, [
      'bad-signature',
      'bad-signature',
      'bad-signature',
      'downgrade',
      'no-pinned-key',
      'malformed',
      'bad-signature',
      'wrong-target',
      'malformed',
    ]);
  });
});
