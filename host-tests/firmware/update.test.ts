// The update unit (firmware/units/update.ts) on virtual A/B slots (hal/mock/ota.ts): a good image
// is downloaded, verified, switched to, self-tested and confirmed after the platform's contact; a
// badly signed, tampered, wrong-target or older image is refused before the switch; an image that
// fails its self-test, or hears nothing from the platform, rolls back by itself; a restart before
// confirming makes the bootloader roll it back. The record store is never written by any of it.
import assert from 'node:assert/strict';
import { FirmwareRejected } from '../../firmware/units/firmwareVerify';
import { UpdateRefused } from '../../firmware/units/update';
import { SeededRandom } from '../../hal/mock/random';
import { ProtocolError } from '../../protocol/errors';
import { encodeFirmwareDownlink, type FirmwareDownlink } from '../../protocol/firmware';
import {
  DeliverySim,
  drive,
  IMAGE_FAILS_SELF_TEST,
  makeImage,
  signImage,
  TARGET,
  UpdateRig,
} from '../../tools/updatePowercut';

const PAYLOAD = 10_000;

function rig(): UpdateRig {
  const r = new UpdateRig(makeImage(1, PAYLOAD));
  assert.ok(r.boot());
  r.appendRecord('before the update');
  r.appendRecord('another');
  return r;
}

const snapshot = (r: UpdateRig) => Object.values(r.records).map((c) => c.slice());
const send = (r: UpdateRig, m: FirmwareDownlink) => r.unit?.handle(encodeFirmwareDownlink(m));

describe('firmware update, meter side (virtual A/B slots)', () => {
  it('a good image: downloaded, verified, switched to pending, confirmed after self-test and the platform’s ok', () => {
    const r = rig();
    const records = snapshot(r);
    const image = makeImage(2, PAYLOAD);
    const sim = new DeliverySim(7, image, 2);
    drive(r, sim, new SeededRandom(1));
    assert.equal(r.unit?.state, 'pending-switch');
    assert.equal(r.slots?.restarted, 'restart');
    assert.deepEqual(
      r.heard.map((p) => p.state).slice(-2),
      ['downloading', 'verified'],
      'the last progress before the restart',
    );
    assert.deepEqual(
      r.heard.slice(0, 2).map((p) => p.state),
      ['idle', 'offered'],
    );
    assert.ok(r.boot());
    assert.equal(r.image?.version, 2);
    assert.equal(r.slots?.pending(), true);
    assert.equal(r.unit?.state, 'booted-pending');
    drive(r, sim, new SeededRandom(1));
    assert.equal(r.unit?.state, 'confirmed');
    assert.equal(r.slots?.pending(), false);
    assert.equal(r.unit?.floor, 2);
    assert.deepEqual(r.heard.at(-1), { id: 7, state: 'confirmed', version: 2, offset: image.length });
    // confirmed stays: the next boot runs version 2 and is not pending
    assert.ok(r.boot());
    assert.equal(r.image?.version, 2);
    assert.equal(r.slots?.pending(), false);
    assert.deepEqual(snapshot(r), records, 'record partitions byte for byte as before');
    assert.equal(r.recordsLost(), 0);
  });

  it('resumes after a dropped link and after a restart at the offset already written', () => {
    const r = rig();
    const image = makeImage(2, PAYLOAD);
    const sim = new DeliverySim(3, image, 2);
    send(r, sim.offer());
    send(r, { k: 'chunk', id: 3, offset: 0, data: image.subarray(0, 512) });
    send(r, { k: 'chunk', id: 3, offset: 512, data: image.subarray(512, 1024) });
    // a chunk lost on the way: the next one is not where the meter is; it says where it is
    send(r, { k: 'chunk', id: 3, offset: 1536, data: image.subarray(1536, 2048) });
    assert.deepEqual(r.heard.at(-1), { id: 3, state: 'downloading', version: 2, offset: 1024 });
    // power cycle: the state and offset survive
    assert.ok(r.boot());
    assert.equal(r.unit?.state, 'downloading');
    assert.equal(r.unit?.offset, 1024);
    send(r, sim.offer()); // the platform offers again after silence: the meter answers with its offset
    assert.equal(r.heard.at(-1)?.offset, 1024);
    drive(r, sim, new SeededRandom(2));
    assert.equal(r.unit?.state, 'pending-switch');
    assert.ok(r.boot());
    drive(r, sim, new SeededRandom(2));
    assert.equal(r.unit?.state, 'confirmed');
    assert.equal(r.image?.version, 2);
  });

  it('a power cut after the last chunk, before the check is saved: the next boot checks the slot and switches', () => {
    const r = rig();
    const image = makeImage(2, PAYLOAD);
    const sim = new DeliverySim(4, image, 2);
    send(r, sim.offer());
    const chunk = 1000;
    let off = 0;
    for (; off + chunk < image.length; off += chunk) {
      send(r, { k: 'chunk', id: 4, offset: off, data: image.subarray(off, off + chunk) });
    }
    const last = image.subarray(off);
    // power for the last chunk and the entry saying it was written (the erase of a new sector may come first)
    const erase =
      off % 4096 === 0 || Math.floor(off / 4096) !== Math.floor((image.length - 1) / 4096) ? 4096 : 0;
    r.rail.cutAfter(erase + last.length + 1);
    assert.throws(() => send(r, { k: 'chunk', id: 4, offset: off, data: last }), /power lost/);
    assert.equal(r.rail.cut, true);
    assert.ok(r.boot());
    assert.equal(r.unit?.state, 'pending-switch');
    assert.equal(r.slots?.restarted, 'restart');
    assert.ok(r.boot());
    assert.equal(r.image?.version, 2);
    assert.equal(r.unit?.state, 'booted-pending');
  });

  it('refuses a badly signed, wrong-target or older image at the offer, with a typed error and a refusal uplink', () => {
    const r = rig();
    const image = makeImage(2, PAYLOAD);
    const good = signImage(image, 2);
    const other = signImage(image, 2, TARGET, new Uint8Array(32).fill(1));
    const cases: [FirmwareDownlink, string][] = [
      [{ k: 'offer', id: 1, version: 2, length: image.length, target: TARGET, ...other }, 'bad-signature'],
      [{ k: 'offer', id: 2, version: 3, length: image.length, target: TARGET, ...good }, 'bad-signature'],
      [
        {
          k: 'offer',
          id: 3,
          version: 2,
          length: image.length,
          target: 'esp32-other',
          ...signImage(image, 2, 'esp32-other'),
        },
        'wrong-target',
      ],
      [
        { k: 'offer', id: 4, version: 1, length: image.length, target: TARGET, ...signImage(image, 1) },
        'downgrade',
      ],
    ];
    for (const [offer, reason] of cases) {
      assert.throws(
        () => send(r, offer),
        (e: unknown) => e instanceof FirmwareRejected && e.reason === reason,
      );
      assert.equal(r.heard.at(-1)?.state, 'refused');
      assert.equal(r.heard.at(-1)?.reason, reason);
      assert.equal(r.unit?.state, 'idle', 'nothing stored for a refused offer');
    }
    assert.throws(() => r.unit?.handle(Uint8Array.of(0xa1, 0x61)), ProtocolError);
    assert.equal(r.unit?.state, 'idle');
  });

  it('refuses an image whose downloaded bytes do not match the signed hash, before any switch', () => {
    const r = rig();
    const image = makeImage(2, PAYLOAD);
    const sim = new DeliverySim(5, image, 2);
    send(r, sim.offer());
    const tampered = image.slice();
    tampered[5000] ^= 0x40;
    for (let off = 0; off < image.length; off += 1024) {
      send(r, {
        k: 'chunk',
        id: 5,
        offset: off,
        data: tampered.subarray(off, Math.min(image.length, off + 1024)),
      });
    }
    assert.equal(r.unit?.state, 'refused');
    assert.equal(r.unit?.reason, 'hash');
    assert.equal(r.slots?.restarted, undefined, 'no switch');
    assert.ok(r.boot());
    assert.equal(r.image?.version, 1);
    assert.equal(r.slots?.pending(), false);
  });

  it('an image that fails its self-test rolls itself back to the previous one', () => {
    const r = rig();
    const records = snapshot(r);
    const sim = new DeliverySim(8, makeImage(2, PAYLOAD, IMAGE_FAILS_SELF_TEST), 2);
    drive(r, sim, new SeededRandom(3));
    assert.ok(r.boot());
    assert.equal(r.image?.version, 2);
    assert.equal(r.unit?.state, 'rolled-back');
    assert.equal(r.unit?.reason, 'self-test: display does not answer');
    assert.equal(r.slots?.restarted, 'rollback');
    assert.ok(r.boot());
    assert.equal(r.image?.version, 1);
    assert.equal(r.unit?.state, 'rolled-back');
    assert.equal(r.slots?.aborted(1), true);
    assert.equal(r.unit?.floor, 1, 'the floor stays at the confirmed version');
    assert.deepEqual(snapshot(r), records);
  });

  it('a new image that hears nothing from the platform in time rolls back; one restarted before confirming is rolled back by the bootloader', () => {
    const silent = rig();
    drive(silent, new DeliverySim(9, makeImage(2, PAYLOAD), 2), new SeededRandom(4));
    silent.linkUp = false;
    assert.ok(silent.boot());
    assert.equal(silent.unit?.state, 'booted-pending');
    silent.clock.advance(59_000);
    assert.equal(silent.unit?.state, 'booted-pending');
    silent.clock.advance(2_000);
    assert.equal(silent.unit?.state, 'rolled-back');
    assert.equal(silent.unit?.reason, 'no platform contact');
    assert.ok(silent.boot());
    assert.equal(silent.image?.version, 1);

    const hung = rig();
    drive(hung, new DeliverySim(10, makeImage(2, PAYLOAD), 2), new SeededRandom(5));
    assert.ok(hung.boot());
    assert.equal(hung.unit?.state, 'booted-pending');
    // the watchdog restarts the board before the platform's ok arrives
    assert.ok(hung.boot());
    assert.equal(hung.image?.version, 1);
    assert.equal(hung.unit?.state, 'rolled-back');
    assert.equal(hung.unit?.reason, 'restarted before confirming');
  });

  it('an offer during a switch is refused as busy', () => {
    const r = rig();
    drive(r, new DeliverySim(11, makeImage(2, PAYLOAD), 2), new SeededRandom(6));
    r.linkUp = true;
    assert.ok(r.boot());
    const image = makeImage(3, PAYLOAD);
    assert.throws(
      () =>
        send(r, {
          k: 'offer',
          id: 12,
          version: 3,
          length: image.length,
          target: TARGET,
          ...signImage(image, 3),
        }),
      UpdateRefused,
    );
    assert.equal(r.heard.at(-1)?.reason, 'busy');
    assert.equal(r.unit?.state, 'booted-pending');
  });
});
