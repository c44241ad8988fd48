// Bundled by relay.test.ts and run under XS: the XBee driver, its twin on a virtual mesh, and the
// relay's slave link and master unit carrying a frame up and a downlink back, on virtual time.
import '../../firmware/setup/text';
import { XBee } from '../../drivers/radio/xbee';
import { RelayLink, RelayMaster } from '../../firmware/units/relay';
import { VirtualClock } from '../../hal/mock/clock';
import { VirtualBroker } from '../../hal/mock/mqtt';
import { VirtualSerialPort } from '../../hal/mock/serial';
import { VirtualXBee } from '../../hal/mock/xbee';
import { ZigbeeMesh } from '../../hal/mock/zigbeeMesh';
import { downlinkTopic, uplinkTopic } from '../../protocol/topics';
import { run, send } from '../../sim/xs/guest';

const SLAVE = 41_001;

async function pass(clock: VirtualClock, ms: number): Promise<void> {
  for (let t = 0; t < ms; t += 20) {
    clock.advance(20);
    for (let k = 0; k < 4; k++) await null;
  }
}

run(async () => {
  const clock = new VirtualClock();
  const mesh = new ZigbeeMesh({ timers: clock, seed: 3 });
  const broker = new VirtualBroker(clock);
  const radio = (address64: string, x: number) => {
    const serial = new VirtualSerialPort();
    const twin = new VirtualXBee({ mesh, address64, position: { x, y: 0 } });
    serial.attach(1, twin);
    return { twin, driver: new XBee({ serial: { io: serial.io, port: 1, baud: 115_200 }, timers: clock }) };
  };
  const m = radio('0013a20041a70001', 0);
  const s = radio('0013a20041a70002', 40);
  const master = new RelayMaster({ radio: m.driver, link: broker.link(), timers: clock, clock, session: 1 });
  const slave = new RelayLink({
    radio: s.driver,
    master: Uint8Array.of(0x00, 0x13, 0xa2, 0x00, 0x41, 0xa7, 0x00, 0x01),
    meterId: SLAVE,
    timers: clock,
    clock,
    helloMs: 1_000,
    session: 2,
  });
  const downlinks: Uint8Array[] = [];
  master.start();
  slave.open({ onConnect() {}, onDisconnect() {}, onMessage: (_t, p) => downlinks.push(p) });
  await pass(clock, 2_000);
  const frame = Uint8Array.from({ length: 600 }, (_, i) => (i * 7 + 0x7d) & 0xff);
  // A corrupted checksum on the slave's UART first: the frame is dropped, the relay goes on.
  s.twin.faults.corruptChecksum = 1;
  slave.publish(uplinkTopic(SLAVE), frame);
  await pass(clock, 3_000);
  // When the corrupted frame was this message's Transmit Status, the message was given up: the
  // comms unit would resend it after its ack timeout.
  if (master.stats.up === 0) slave.publish(uplinkTopic(SLAVE), frame);
  await pass(clock, 3_000);
  const up = broker.published.filter((p) => p.topic === uplinkTopic(SLAVE)).map((p) => p.payload);
  const platform = broker.link();
  platform.open({ onConnect() {}, onDisconnect() {}, onMessage() {} });
  const down = Uint8Array.from({ length: 200 }, (_, i) => (i * 13) & 0xff);
  platform.publish(downlinkTopic(SLAVE), down);
  await pass(clock, 2_000);
  send({
    test: 'relay',
    connected: slave.connected,
    frame,
    up,
    down,
    downlinks,
    held: master.heldBytes,
    lineErrors: s.driver.lineErrors,
  });
});
