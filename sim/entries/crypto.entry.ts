// Bundled for XS by tools/bench/crypto.ts and tools/bench/tamper.ts: globals the bench drives one
// evaluate at a time, so each evaluate's compute is one operation's cost.
import '../../firmware/setup/text'; // first, as on the device: cborg needs the text globals at load
import { ed25519 } from '@noble/curves/ed25519';
import { firmwareMessage, verifyFirmware } from '../../firmware/units/firmwareVerify';
import { Meter } from '../../firmware/meter';
import { provisionBoard } from '../../firmware/units/security';
import { VirtualBoard } from '../../hal/mock/board';
import { VirtualClock } from '../../hal/mock/clock';
import { VirtualBroker } from '../../hal/mock/mqtt';
import { nobleCrypto as crypto } from '../../hal/nobleCrypto';
import { openFrame, sealFrame } from '../../protocol/frame';
import { deriveMeterKeys } from '../../protocol/keys';

const keys = deriveMeterKeys(crypto, new Uint8Array(32).fill(1), 1001, 1);
const body = Uint8Array.from({ length: 106 }, (_, i) => i);
let seq = 0;
let frame = sealFrame(crypto, keys.uplink, { version: 1, type: 1, meterId: 1001, epoch: 1, seq: 1 }, body);
const secret = new Uint8Array(32).fill(7);
const pub = ed25519.getPublicKey(secret);
const image = Uint8Array.from({ length: 4096 }, (_, i) => i & 0xff);
const digest = crypto.sha256(image);
const signature = ed25519.sign(
  firmwareMessage({ version: 2, length: image.length, target: 'esp32-parklink-r2', digest }),
  secret,
);
let tamper: { meter: Meter; clock: VirtualClock } | undefined;

Object.assign(globalThis, {
  bench: {
    seal() {
      frame = sealFrame(
        crypto,
        keys.uplink,
        { version: 1, type: 1, meterId: 1001, epoch: 1, seq: ++seq },
        body,
      );
    },
    open() {
      openFrame(crypto, keys.uplink, frame);
    },
    verifyFirmware() {
      verifyFirmware(crypto, pub, image, 2, signature, 1, 'esp32-parklink-r2');
    },
    tamperSetup() {
      const clock = new VirtualClock('2026-05-01T08:00:00Z');
      const board = new VirtualBoard({ mqtt: new VirtualBroker(clock).link(), clock });
      provisionBoard(board.hardware, keys, 1001);
      const meter = new Meter(board.hardware, {
        meterId: 1001,
        bays: [1],
        rate: { currency: 826, perHour: 240, minMinutes: 15, maxMinutes: 60, stepMinutes: 15 },
      });
      meter.start();
      tamper = { meter, clock };
    },
    tamper() {
      if (!tamper) return;
      tamper.meter.bus.emit('cover-opened', { at: tamper.clock.monotonic() });
    },
    tamperWipedAfterMs() {
      return tamper?.meter.securityManagement.lastTamper?.wipedAfterMs;
    },
  },
});
