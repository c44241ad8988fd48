// The pieces of time management one by one: the 0x08/0x88 messages and NTP's arithmetic, records
// with and without their clock state, the disciplined clock (step, slew, frequency), the SNTP twin
// over a virtual network and over real UDP, and the A7670's network time (AT+CTZU, +CTZV, AT+CCLK?)
// against the virtual module.
import assert from 'node:assert/strict';
import { parseCclk } from '../../drivers/radio/a7670';
import { NetworkTimeUnavailable } from '../../drivers/radio/modemLink';
import { cellularSource, DisciplinedClock, sntpSource } from '../../firmware/units/time';
import { VirtualClock } from '../../hal/mock/clock';
import {
  NTP_PACKET_LENGTH,
  ntpRequest,
  PacketSntpClient,
  readNtpTimestamp,
  VirtualDatagramNetwork,
  VirtualSntpServer,
} from '../../hal/mock/sntp';
import { startUdpSntpServer, UdpDatagramPort } from '../../hal/mock/sntp.node';
import type { WallTimeReading } from '../../hal/time';
import { ProtocolError } from '../../protocol/errors';
import {
  decodeRecord,
  encodeRecord,
  type MeterRecord,
  RecordKind,
  recordHeader,
} from '../../protocol/records';
import {
  decodeTimeAnswer,
  decodeTimeRequest,
  encodeTimeAnswer,
  encodeTimeRequest,
  exchangeOffset,
  TimeState,
} from '../../protocol/time';
import { rig, runUntil } from '../radio/support';

const NOW = Date.parse('2026-06-01T12:00:00Z');

describe('time protocol', () => {
  it('round-trips a time request and answer, and refuses bad fields with typed errors', () => {
    const request = {
      id: 7,
      t1: 1_000,
      state: TimeState.Synced,
      source: 'sntp' as const,
      offsetMs: -250,
      syncedAt: 1_780_000_000,
      driftTenthsPpm: 123,
    };
    assert.deepEqual(decodeTimeRequest(encodeTimeRequest(request)), request);
    assert.deepEqual(decodeTimeRequest(encodeTimeRequest({ id: 1, t1: 0, state: TimeState.Unset })), {
      id: 1,
      t1: 0,
      state: TimeState.Unset,
    });
    const answer = { id: 7, t1: 1_000, t2: NOW, t3: NOW + 3 };
    assert.deepEqual(decodeTimeAnswer(encodeTimeAnswer(answer)), answer);
    const refused = (f: () => unknown, code: string) =>
      assert.throws(f, (e: unknown) => e instanceof ProtocolError && e.code === code);
    refused(() => decodeTimeAnswer(encodeTimeAnswer({ ...answer, t3: NOW - 1 })), 'bad-field');
    refused(() => decodeTimeRequest(encodeTimeRequest({ ...request, state: 3 as TimeState })), 'bad-field');
    refused(() => decodeTimeRequest(new Uint8Array([0xa0])), 'bad-field');
    refused(() => decodeTimeAnswer(new Uint8Array([0xff])), 'bad-cbor');
  });

  it("computes NTP's offset and delay from the four timestamps", () => {
    // Client 5 s behind, 100 ms each way, server holds it 10 ms.
    const t1 = 1_000_000;
    const t2 = t1 + 5_000 + 100;
    const t3 = t2 + 10;
    const t4 = t1 + 210;
    assert.deepEqual(exchangeOffset(t1, t2, t3, t4), { offsetMs: 5_000, delayMs: 200 });
  });

  it('records carry the clock state as a 7th field; records without it still decode', () => {
    const base: MeterRecord = {
      kind: RecordKind.Maintenance,
      seq: 4,
      time: 60,
      meterId: 9,
      data: { code: 'diagnosis', detail: 'ok' },
    };
    const old = encodeRecord(base);
    assert.equal(old[0], 0x86, 'an array of 6, as before');
    assert.equal(decodeRecord(old).timeState, undefined);
    const flagged = encodeRecord({ ...base, timeState: TimeState.Unset });
    assert.equal(flagged[0], 0x87, 'an array of 7');
    assert.equal(flagged.length, old.length + 1, 'one byte more');
    assert.equal(decodeRecord(flagged).timeState, TimeState.Unset);
    assert.equal(
      recordHeader(encodeRecord({ ...base, timeState: TimeState.Holdover })).timeState,
      TimeState.Holdover,
    );
    const bad = flagged.slice();
    bad[bad.length - 1] = 0x03;
    assert.throws(
      () => decodeRecord(bad),
      (e: unknown) => e instanceof ProtocolError && e.code === 'bad-field',
    );
    assert.throws(() => encodeRecord({ ...base, timeState: 5 as TimeState }), ProtocolError);
  });
});

describe('disciplined clock', () => {
  it('slews at the rate given without going back, steps at once, and compensates frequency', () => {
    const base = new VirtualClock('2026-06-01T12:00:00Z');
    const clock = new DisciplinedClock(base);
    const start = clock.now();
    clock.slew(-500, 500); // half a second back at 500 ppm: 1000 s
    let previous = clock.now();
    for (let s = 0; s < 1_200; s++) {
      base.advance(1_000);
      const now = clock.now();
      assert.ok(now > previous, `went back at ${s} s`);
      previous = now;
    }
    assert.equal(clock.now() - start, 1_200_000 - 500);
    assert.equal(clock.slewRemainingMs, 0);
    clock.step(60_000);
    assert.equal(clock.now() - start, 1_260_000 - 500);
    assert.equal(base.now() - clock.now(), 0, "the board's own clock is set by a step");
    clock.setFrequencyPpm(-100);
    const before = clock.now();
    base.advance(3_600_000);
    assert.equal(clock.now() - before, 3_600_000 - 360);
  });
});

describe('SNTP twin', () => {
  it('speaks the NTP packet format: a client request, a server answer echoing its transmit time', () => {
    const server = new VirtualSntpServer(() => NOW + 250);
    const request = ntpRequest(12_345_000);
    assert.equal(request.length, NTP_PACKET_LENGTH);
    assert.equal(request[0], 0x23, 'LI 0, version 4, mode 3 (client)');
    const answer = server.answer(request);
    assert.ok(answer);
    assert.equal(answer[0] & 7, 4, 'mode 4 (server)');
    assert.equal(answer[1], 1, 'stratum 1');
    assert.deepEqual(
      answer.subarray(24, 32),
      request.subarray(40, 48),
      'originate = the request transmit time',
    );
    assert.equal(readNtpTimestamp(answer, 40), NOW + 250);
  });

  it('reads whole seconds as the SDK client does, discards kisses of death and gives up when no answer comes', () => {
    const clock = new VirtualClock();
    const network = new VirtualDatagramNetwork();
    const server = new VirtualSntpServer(() => NOW + 999);
    network.servers.set('ntp.test', server);
    const client = new PacketSntpClient({
      port: network,
      clientNow: () => clock.now(),
      retry: (again) => {
        const handle = clock.setTimeout(again, 5_000);
        return { cancel: () => clock.clear(handle) };
      },
    });
    const results: (Error | WallTimeReading)[] = [];
    client.request('ntp.test', (e, r) => results.push(e ?? (r as WallTimeReading)));
    assert.deepEqual(results[0], { timeMs: NOW, resolutionMs: 1000 }, 'truncated to the second');
    server.faults.kissOfDeath = true;
    client.request('ntp.test', (e, r) => results.push(e ?? (r as WallTimeReading)));
    assert.equal(results.length, 1, 'a kiss of death is no answer');
    server.faults.kissOfDeath = false;
    clock.advance(5_000);
    assert.deepEqual(results[1], { timeMs: NOW, resolutionMs: 1000 }, 'the next try is answered');
    assert.equal(server.requests, 3, 'the first request, the kissed one and its retry');
    server.faults.silent = true;
    client.request('ntp.test', (e, r) => results.push(e ?? (r as WallTimeReading)));
    clock.advance(30_000);
    assert.ok(results[2] instanceof Error && /no response/.test(results[2].message));
    assert.equal(results.length, 3, 'one callback per request');
  });

  it('makes a real SNTP exchange over UDP and gives the firmware a sample centred on the round trip', async () => {
    const server = new VirtualSntpServer(() => NOW + 1_400);
    const udp = await startUdpSntpServer((packet) => server.answer(packet));
    try {
      const clock = new VirtualClock();
      const client = new PacketSntpClient({
        port: new UdpDatagramPort(udp.port),
        clientNow: () => clock.now(),
        retry: (again) => {
          const handle = setTimeout(again, 1_000);
          return { cancel: () => clearTimeout(handle) };
        },
      });
      const source = sntpSource(client, ['127.0.0.1'], clock);
      const sample = await new Promise<Parameters<Parameters<typeof source.query>[0]>[1]>((resolve, reject) =>
        source.query((e, s) => (e ? reject(e) : resolve(s))),
      );
      assert.equal(server.requests >= 1, true);
      assert.equal(sample?.source, 'sntp');
      assert.equal(sample?.timeMs, NOW + 1_000 + 500, 'whole seconds plus half a second');
      assert.equal(sample?.uncertaintyMs, 500, 'no virtual time passed: half the resolution');
      assert.equal(sample?.authenticated, false);
    } finally {
      await udp.close();
    }
  });
});

describe('cellular network time (A7670)', () => {
  it('parses +CCLK local time and zone into UTC', () => {
    assert.deepEqual(parseCclk('+CCLK: "26/06/01,14:00:05+08"'), {
      utcMs: Date.parse('2026-06-01T12:00:05Z'),
      zoneQuarters: 8,
    });
    assert.deepEqual(parseCclk('+CCLK: "26/01/01,00:30:00-04"'), {
      utcMs: Date.parse('2026-01-01T01:30:00Z'),
      zoneQuarters: -4,
    });
    assert.equal(parseCclk('+CCLK: "26/13/01,00:00:00+00"'), undefined);
    assert.equal(parseCclk('+CCLK: 26/06/01'), undefined);
  });

  it("enables NITZ in the bring-up, sees +CTZV and reads the network's time through AT+CCLK?", () => {
    const network = { now: () => NOW + 0, zoneQuarters: 8 };
    const r = rig({ network: { now: () => network.now(), zoneQuarters: network.zoneQuarters } });
    network.now = () => NOW + r.clock.monotonic();
    r.link.open(r.mqttEvents);
    assert.ok(runUntil(r.clock, () => r.link.connected));
    const c = r.twin.commands;
    assert.ok(c.indexOf('AT+CTZU=1') > c.indexOf('AT+CEREG=1'));
    assert.ok(c.indexOf('AT+CTZR=1') > c.indexOf('AT+CTZU=1'));
    assert.ok(c.indexOf('AT+CTZR=1') < c.indexOf('AT+CEREG?'), 'before waiting for registration');
    assert.equal(r.modem.networkZone, 8, '+CTZV: +08 seen');
    const source = cellularSource(r.link, r.clock);
    let sample: Parameters<Parameters<typeof source.query>[0]>[1];
    source.query((e, s) => {
      assert.equal(e, undefined);
      sample = s;
    });
    assert.ok(runUntil(r.clock, () => sample !== undefined, 5_000, 10));
    assert.ok(c.includes('AT+CCLK?'));
    const truth = NOW + (sample as { atMono: number }).atMono;
    assert.ok(Math.abs((sample?.timeMs ?? 0) - truth) <= 1_000, `network time ${sample?.timeMs} vs ${truth}`);
    assert.equal(sample?.authenticated, false);
  });

  it('does not wake a sleeping modem for the time', () => {
    const r = rig();
    r.link.open(r.mqttEvents);
    assert.ok(runUntil(r.clock, () => r.link.connected));
    r.link.power(false);
    assert.ok(runUntil(r.clock, () => r.link.state === 'sleeping', 120_000));
    const before = r.twin.commands.length;
    let error: Error | undefined;
    r.link.networkTime((e) => {
      error = e;
    });
    assert.ok(error instanceof NetworkTimeUnavailable && /sleeps/.test(error.message));
    assert.equal(r.twin.commands.length, before, 'no command sent');
  });

  it('refuses the modem clock when the network never sent its time', () => {
    const r = rig();
    r.twin.faults.noNitz = true;
    r.link.open(r.mqttEvents);
    assert.ok(runUntil(r.clock, () => r.link.connected));
    let error: Error | undefined;
    r.link.networkTime((e) => {
      error = e;
    });
    assert.ok(error instanceof NetworkTimeUnavailable);
    assert.ok(!r.twin.commands.includes('AT+CCLK?'), 'the module clock, counting from 1970, is not read');
  });
});
