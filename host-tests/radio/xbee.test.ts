// The XBee 3 driver against its twin, at the protocol level: API frames with escapes (AP = 2), AT
// commands, Transmit Request / Status, Receive Packet, Modem Status, and every fault the twin has.
import assert from 'node:assert/strict';
import {
  address64Hex,
  ApiFrameParser,
  DeliveryStatus,
  encodeApiFrame,
  ModemStatus,
  XBee,
  XBeeError,
} from '../../drivers/radio/xbee';
import { VirtualClock } from '../../hal/mock/clock';
import { VirtualSerialPort } from '../../hal/mock/serial';
import { VirtualXBee } from '../../hal/mock/xbee';
import { ZigbeeMesh } from '../../hal/mock/zigbeeMesh';

/** Lets virtual time pass in small steps, running promise callbacks between them. */
async function pass(clock: VirtualClock, ms: number): Promise<void> {
  for (let t = 0; t < ms; t += 5) {
    clock.advance(5);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** Waits (virtual time) for a promise, failing when it does not settle within `ms`. */
async function settle<T>(clock: VirtualClock, promise: Promise<T>, ms = 3_000): Promise<T> {
  let done = false;
  promise.then(
    () => {
      done = true;
    },
    () => {
      done = true;
    },
  );
  for (let t = 0; t < ms && !done; t += 5) await pass(clock, 5);
  return promise;
}

interface Node {
  twin: VirtualXBee;
  driver: XBee;
  received: { source: string; data: Uint8Array }[];
  statuses: number[];
}

function rig(options: { loss?: number; apiMode?: number } = {}) {
  const clock = new VirtualClock();
  const mesh = new ZigbeeMesh({ timers: clock, loss: options.loss ?? 0, seed: 7 });
  const nodes: Node[] = [];
  function add(
    address64: string,
    x: number,
    withResetPin = false,
    sleep?: { statusPin: boolean; transmitTimeoutMs?: number },
  ): Node {
    const serial = new VirtualSerialPort();
    const twin = new VirtualXBee({ mesh, address64, position: { x, y: 0 }, apiMode: options.apiMode });
    serial.attach(1, twin);
    const driver = new XBee({
      serial: { io: serial.io, port: 1, baud: 115_200 },
      reset: withResetPin ? { io: twin.resetLine(), pin: 21 } : undefined,
      sleep: sleep && {
        request: { io: twin.sleepRequestLine(), pin: 23 },
        status: sleep.statusPin ? { io: twin.onSleepLine(), pin: 24 } : undefined,
      },
      timers: clock,
      timeoutMs: 500,
      transmitTimeoutMs: sleep?.transmitTimeoutMs,
    });
    const node: Node = { twin, driver, received: [], statuses: [] };
    driver.onReceive = (source, data) => node.received.push({ source: address64Hex(source), data });
    driver.onModemStatus = (status) => node.statuses.push(status);
    nodes.push(node);
    return node;
  }
  return { clock, mesh, add, nodes };
}

const A = '0013a20041a7b001';
const B = '0013a20041a7b002';
const C = '0013a20041a7b003';

function bytes(hex: string): Uint8Array {
  return Uint8Array.from(hex.match(/../g)!.map((h) => Number.parseInt(h, 16)));
}

describe('XBee 3 API mode driver and its twin', () => {
  it('frames as the user guide example: 23 11 is sent 7E 00 02 23 7D 31 CB', () => {
    assert.deepEqual(
      [...encodeApiFrame(Uint8Array.of(0x23, 0x11))],
      [0x7e, 0x00, 0x02, 0x23, 0x7d, 0x31, 0xcb],
    );
    const got: number[][] = [];
    const parser = new ApiFrameParser(
      (d) => got.push([...d]),
      () => assert.fail('no error expected'),
    );
    parser.push(Uint8Array.of(0x7e, 0x00, 0x02, 0x23, 0x7d, 0x31, 0xcb));
    assert.deepEqual(got, [[0x23, 0x11]]);
  });

  it('resynchronises on the next delimiter after line noise, a cut frame, a bad escape or a bad length', () => {
    const got: number[][] = [];
    const errors: string[] = [];
    const parser = new ApiFrameParser(
      (d) => got.push([...d]),
      (e) => errors.push(e.code),
    );
    parser.push(Uint8Array.of(0x01, 0x02, 0xff)); // noise before any delimiter is skipped
    parser.push(Uint8Array.of(0x7e, 0x00, 0x05, 0x10)); // cut short by the next delimiter
    parser.push(encodeApiFrame(Uint8Array.of(0x8a, 0x02)));
    parser.push(Uint8Array.of(0x7e, 0x00, 0x7d, 0x41)); // 0x7D 0x41: not an escaped byte
    parser.push(Uint8Array.of(0x7e, 0x7d, 0x31, 0x00)); // length 0x1100: beyond any frame
    parser.push(encodeApiFrame(Uint8Array.of(0x7e, 0x7d, 0x11, 0x13)));
    assert.deepEqual(got, [
      [0x8a, 0x02],
      [0x7e, 0x7d, 0x11, 0x13],
    ]);
    assert.deepEqual(errors, ['truncated', 'escape', 'length']);
  });

  it('configure() reads AP, SH/SL, NP and AI once the module has joined', async () => {
    const { clock, add } = rig();
    const a = add(A, 0);
    await pass(clock, 300);
    assert.deepEqual(a.statuses, [ModemStatus.HARDWARE_RESET, ModemStatus.JOINED]);
    const info = await settle(clock, a.driver.configure());
    assert.equal(address64Hex(info.address64), A);
    assert.equal(info.maxPayload, 84);
    assert.equal(info.association, 0);
    const my = await settle(clock, a.driver.command('MY'));
    assert.equal(my.length, 2);
  });

  it('refuses a module not in API mode 2, an unknown AT command and a read-only parameter', async () => {
    const { clock, add } = rig({ apiMode: 1 });
    const a = add(A, 0);
    await pass(clock, 300);
    await assert.rejects(
      settle(clock, a.driver.configure()),
      (e: unknown) => e instanceof XBeeError && e.code === 'not-api-mode',
    );
    await assert.rejects(
      settle(clock, a.driver.command('ZZ')),
      (e: unknown) => e instanceof XBeeError && e.code === 'at-status',
    );
    await assert.rejects(settle(clock, a.driver.command('NP', Uint8Array.of(1))), /status 3/);
    assert.throws(() => a.driver.command('toolong'), RangeError);
  });

  it('delivers a payload with every escaped byte to the other node, with a successful Transmit Status', async () => {
    const { clock, add } = rig();
    const a = add(A, 0);
    const b = add(B, 40);
    await pass(clock, 300);
    await settle(clock, a.driver.configure());
    const payload = Uint8Array.of(0x7e, 0x7d, 0x11, 0x13, 0x00, 0xff, 0x20);
    const result = await settle(clock, a.driver.transmit(bytes(B), payload));
    assert.deepEqual(result, { delivery: DeliveryStatus.SUCCESS, retries: 0, discovery: 0, ok: true });
    await pass(clock, 50);
    assert.equal(b.received.length, 1);
    assert.equal(b.received[0].source, A);
    assert.deepEqual([...b.received[0].data], [...payload]);
  });

  it('reports the statuses the user guide lists: no route, unknown address, self-addressed, not joined, and refuses a payload beyond NP before sending it', async () => {
    const { clock, add } = rig();
    const a = add(A, 0);
    add(C, 500); // beyond range, nobody in between
    await pass(clock, 300);
    await settle(clock, a.driver.configure());
    assert.equal(
      (await settle(clock, a.driver.transmit(bytes(C), Uint8Array.of(1)))).delivery,
      DeliveryStatus.ROUTE_NOT_FOUND,
    );
    assert.equal(
      (await settle(clock, a.driver.transmit(bytes('0013a200ffffffff'), Uint8Array.of(1)))).delivery,
      DeliveryStatus.ADDRESS_NOT_FOUND,
    );
    assert.equal(
      (await settle(clock, a.driver.transmit(bytes(A), Uint8Array.of(1)))).delivery,
      DeliveryStatus.SELF_ADDRESSED,
    );
    await assert.rejects(
      settle(clock, a.driver.transmit(bytes(C), new Uint8Array(85))),
      (e: unknown) => e instanceof XBeeError && e.code === 'payload-too-large',
    );
    await assert.rejects(
      a.driver.transmit(Uint8Array.of(1, 2, 3), Uint8Array.of(1)),
      (e: unknown) => e instanceof XBeeError && e.code === 'address',
    );
    a.twin.reset();
    await pass(clock, 100); // booted, not yet joined
    const early = await settle(clock, a.driver.transmit(bytes(C), Uint8Array.of(1)));
    assert.equal(early.delivery, DeliveryStatus.NOT_JOINED);
  });

  it('reaches a node out of its own range through a router in between', async () => {
    const { clock, add } = rig();
    const a = add(A, 0);
    add(B, 50);
    const c = add(C, 100);
    await pass(clock, 300);
    await settle(clock, a.driver.configure());
    const result = await settle(clock, a.driver.transmit(bytes(C), Uint8Array.of(9)));
    assert.equal(result.ok, true);
    await pass(clock, 50);
    assert.equal(c.received.length, 1);
  });

  it('survives a corrupted checksum: the frame is dropped, counted, the request times out, the next one works', async () => {
    const { clock, add } = rig();
    const a = add(A, 0);
    await pass(clock, 300);
    a.twin.faults.corruptChecksum = 1;
    await assert.rejects(
      settle(clock, a.driver.command('NP')),
      (e: unknown) => e instanceof XBeeError && e.code === 'timeout',
    );
    assert.equal(a.driver.lineErrors.checksum, 1);
    assert.deepEqual([...(await settle(clock, a.driver.command('NP')))], [0, 84]);
  });

  it('survives a garbled escape the same way', async () => {
    const { clock, add } = rig();
    const a = add(A, 0);
    await pass(clock, 300);
    a.twin.faults.garbleEscape = 1;
    await assert.rejects(
      settle(clock, a.driver.command('AI')),
      (e: unknown) => e instanceof XBeeError && e.code === 'timeout',
    );
    assert.equal(a.driver.lineErrors.escape, 1);
    assert.deepEqual([...(await settle(clock, a.driver.command('AI')))], [0]);
  });

  it('passes on a forced delivery failure and a lossy mesh as Transmit Status failures, never as success', async () => {
    const { clock, mesh, add } = rig();
    const a = add(A, 0);
    const b = add(B, 30);
    await pass(clock, 300);
    await settle(clock, a.driver.configure());
    a.twin.faults.deliveryFailure = { status: DeliveryStatus.CCA_FAILURE, count: 1 };
    const forced = await settle(clock, a.driver.transmit(bytes(B), Uint8Array.of(1)));
    assert.deepEqual([forced.ok, forced.delivery], [false, DeliveryStatus.CCA_FAILURE]);
    mesh.loss = 1;
    const lost = await settle(clock, a.driver.transmit(bytes(B), Uint8Array.of(2)));
    assert.deepEqual([lost.ok, lost.delivery, lost.retries], [false, DeliveryStatus.NETWORK_ACK_FAILURE, 2]);
    mesh.loss = 0.7;
    let ok = 0;
    for (let i = 0; i < 40; i++)
      if ((await settle(clock, a.driver.transmit(bytes(B), Uint8Array.of(3)))).ok) ok++;
    await pass(clock, 50);
    assert.ok(ok > 0 && ok < 40, `some deliveries fail at 70 % loss per attempt (${ok}/40 delivered)`);
    assert.equal(
      b.received.filter((r) => r.data[0] === 3).length,
      ok,
      'every success was received, nothing else',
    );
  });

  it('a silent module times out every request', async () => {
    const { clock, add } = rig();
    const a = add(A, 0);
    await pass(clock, 300);
    a.twin.faults.silent = true;
    await assert.rejects(
      settle(clock, a.driver.command('SH')),
      (e: unknown) => e instanceof XBeeError && e.code === 'timeout',
    );
  });

  it('a module reset (RESET line, ATFR, brown-out) refuses what was waiting and is announced by Modem Status', async () => {
    const { clock, add } = rig();
    const a = add(A, 0, true);
    const b = add(B, 30);
    await pass(clock, 300);
    await settle(clock, a.driver.configure());
    // The RESET line: the twin is held in reset for 1 ms, then boots and joins again.
    const waiting = a.driver.transmit(bytes(B), Uint8Array.of(1));
    a.driver.reset();
    await assert.rejects(waiting, (e: unknown) => e instanceof XBeeError && e.code === 'reset');
    assert.equal(a.driver.info, undefined);
    await pass(clock, 300);
    assert.equal(a.twin.counters.resets, 1);
    assert.deepEqual(a.statuses.slice(-2), [ModemStatus.HARDWARE_RESET, ModemStatus.JOINED]);
    await settle(clock, a.driver.configure());
    // A brown-out mid-request on the other node: its driver hears the restart and refuses the request.
    await settle(clock, b.driver.configure());
    b.twin.faults.silent = true; // the answer is lost in the brown-out
    const pending = b.driver.command('SH');
    b.twin.faults.silent = false;
    b.twin.reset();
    await assert.rejects(
      settle(clock, pending),
      (e: unknown) => e instanceof XBeeError && /reset|restart/.test(e.message),
    );
    // ATFR, when no line is wired.
    b.driver.reset();
    await pass(clock, 400);
    assert.equal(b.twin.counters.resets, 2);
    assert.equal(b.twin.joined, true);
    assert.equal((await settle(clock, b.driver.transmit(bytes(A), Uint8Array.of(5)))).ok, true);
  });

  it('close() refuses what waits and every later request', async () => {
    const { clock, add } = rig();
    const a = add(A, 0);
    await pass(clock, 300);
    a.twin.faults.silent = true; // nothing answers before the close
    const waiting = a.driver.command('SL');
    a.driver.close();
    await assert.rejects(waiting, (e: unknown) => e instanceof XBeeError && e.code === 'closed');
    await assert.rejects(
      a.driver.command('SL'),
      (e: unknown) => e instanceof XBeeError && e.code === 'closed',
    );
  });
});

describe('XBee 3 pin sleep (SM = 1): driver and twin', () => {
  it('an end device sleeps on SLEEP_RQ, refuses requests while held asleep, and wakes on ON/SLEEP', async () => {
    const { clock, add } = rig();
    const router = add(A, 0);
    const end = add(B, 40, false, { statusPin: true });
    await pass(clock, 300);
    await settle(clock, end.driver.configurePinSleep());
    assert.equal(end.twin.endDevice, true, 'SM = 1 made it an end device');
    await pass(clock, 300); // it joined again as an end device
    assert.equal((await settle(clock, end.driver.configure())).association, 0);
    end.driver.sleep();
    await pass(clock, 20);
    assert.equal(end.twin.asleep, true);
    assert.equal(end.driver.awake, false, 'ON/SLEEP is low');
    await assert.rejects(
      end.driver.command('AI'),
      (e: unknown) => e instanceof XBeeError && e.code === 'asleep',
    );
    assert.equal(end.twin.counters.uartWhileAsleep, 0, 'nothing was written to a sleeping UART');
    await settle(clock, end.driver.wake());
    assert.equal(end.driver.awake, true);
    assert.equal(end.twin.asleep, false);
    assert.ok((await settle(clock, end.driver.transmit(bytes(A), Uint8Array.of(1)))).ok);
    await pass(clock, 50);
    assert.equal(router.received.length, 1);
  });

  it('its parent holds a packet while it sleeps and hands it over when it wakes; the sender learns only then', async () => {
    const { clock, mesh, add } = rig();
    const parent = add(A, 0, false, { statusPin: false, transmitTimeoutMs: 120_000 });
    const end = add(B, 40, false, { statusPin: true });
    await pass(clock, 300);
    await settle(clock, parent.driver.configureParent(1_000)); // SP = 100: held 1.2 s per attempt
    await settle(clock, end.driver.configurePinSleep());
    await pass(clock, 300);
    end.driver.sleep();
    await pass(clock, 20);
    let status: number | undefined;
    parent.driver.transmit(bytes(B), Uint8Array.of(7, 7)).then((r) => {
      status = r.delivery;
    });
    await pass(clock, 1_000);
    assert.equal(end.received.length, 0, 'nothing reaches a sleeping end device');
    assert.equal(status, undefined, 'no Transmit Status while the parent holds it');
    assert.equal(mesh.heldForSleepers, 1);
    await settle(clock, end.driver.wake());
    await pass(clock, 100);
    assert.deepEqual(
      end.received.map((r) => [...r.data]),
      [[7, 7]],
    );
    assert.equal(status, DeliveryStatus.SUCCESS);
  });

  it('a packet held past three attempts of 1.2 × SP is lost: network ACK failure, never delivered', async () => {
    const { clock, mesh, add } = rig();
    const parent = add(A, 0, false, { statusPin: false, transmitTimeoutMs: 120_000 });
    const end = add(B, 40, false, { statusPin: true });
    await pass(clock, 300);
    await settle(clock, parent.driver.configureParent(1_000));
    await settle(clock, end.driver.configurePinSleep());
    await pass(clock, 300);
    end.driver.sleep();
    await pass(clock, 20);
    const result = await settle(clock, parent.driver.transmit(bytes(B), Uint8Array.of(9)), 10_000);
    assert.equal(result.delivery, DeliveryStatus.NETWORK_ACK_FAILURE);
    assert.equal(mesh.stats.heldLost, 1);
    await settle(clock, end.driver.wake());
    await pass(clock, 100);
    assert.equal(end.received.length, 0, 'the packet is gone, as on the real network');
  });

  it('an end device does not route, and a reset brings back SM = 0 (settings without WR are not kept)', async () => {
    const { clock, add } = rig();
    const a = add(A, 0);
    const middle = add(B, 50, true, { statusPin: true });
    add(C, 100);
    await pass(clock, 300);
    await settle(clock, a.driver.configure());
    assert.ok((await settle(clock, a.driver.transmit(bytes(C), Uint8Array.of(1)))).ok, 'through the router');
    await settle(clock, middle.driver.configurePinSleep());
    await pass(clock, 300);
    const noRoute = await settle(clock, a.driver.transmit(bytes(C), Uint8Array.of(2)));
    assert.equal(noRoute.delivery, DeliveryStatus.ROUTE_NOT_FOUND);
    middle.driver.reset();
    await pass(clock, 300);
    assert.equal(middle.twin.endDevice, false);
    assert.deepEqual([...(await settle(clock, middle.driver.command('SM')))], [0]);
  });

  it('refuses an SP outside 0x20–0xAF0 before sending it, and pin sleep without a SLEEP_RQ line', async () => {
    const { clock, add } = rig();
    const a = add(A, 0);
    await pass(clock, 300);
    await assert.rejects(a.driver.configureParent(100), RangeError);
    await assert.rejects(a.driver.configureParent(40_000), RangeError);
    await assert.rejects(
      a.driver.configurePinSleep(),
      (e: unknown) => e instanceof XBeeError && e.code === 'not-wired',
    );
  });
});
