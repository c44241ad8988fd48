// Firmware update end to end (414a), on both backends: virtual meters (the real firmware on a
// virtual board with two application slots and a boot selector, hal/mock/ota.ts) against the real
// platform (the firmware room mounted in platform.ts, 0x07 through the uplink gate, 0x87 sealed by
// ingest). A good image rolls out to an area in stages and is confirmed; a badly signed image is
// refused at upload; an image that fails its self-test rolls back and halts the stage; power fails
// at a random byte of the download, the switch or the first boot and no record is lost, no board
// bricked; a handheld carries offer and chunks to a meter with no radio and its progress back.
import assert from 'node:assert/strict';
import { Meter } from '../../firmware/meter';
import { provisionBoard } from '../../firmware/units/security';
import { type BoardState, BrickedError, VirtualBoard } from '../../hal/mock/board';
import { VirtualClock } from '../../hal/mock/clock';
import { VirtualBroker } from '../../hal/mock/mqtt';
import { NodeMqttLink } from '../../hal/mock/mqtt.node';
import { IMAGE_FAILS_SELF_TEST, makeImage } from '../../hal/mock/otaImage';
import { SeededRandom } from '../../hal/mock/random';
import type { MqttLink } from '../../hal/mqtt';
import { nobleCrypto as crypto } from '../../hal/nobleCrypto';
import type { Platform } from '../../platform-server/platform';
import { encodeMaintenanceToken, maintenanceSecret } from '../../protocol/keys';
import { downlinkTopic, meterClientId } from '../../protocol/topics';
import { forEachBackend, type OperatorLogin, operatorLogin, randomMeterId } from '../../sim/fleet/platform';
import { framesOf, Handheld, type MeterDownlinks, type UploadResult } from '../../sim/handheld/client';
import { RELEASE_KEY, signImage, TARGET } from '../../tools/updatePowercut';
import { phonePlatform, RATE, until } from '../phone/support';

const PAYLOAD = 6000;
const IMAGE_BYTES = 16 + PAYLOAD + 32;
const SECTOR = 4096;
/** Bytes the download erases and writes in the slot (each sector erased, then the image). */
const DOWNLOAD_BYTES = Math.ceil(IMAGE_BYTES / SECTOR) * SECTOR + IMAGE_BYTES;
/** Bytes one boot selector entry costs: its sector erased, 12 bytes written. */
const SELECTOR_BYTES = SECTOR + 12;

/** One meter across its power cycles: the board and firmware of the current boot. */
class VirtualMeter {
  board!: VirtualBoard;
  meter!: Meter;
  link!: MqttLink & { close(): void };
  boots = 0;
  bricked = false;
  /** Power cuts so far (on the slots' rail while running, or during the bootloader's writes). */
  cuts = 0;
  /** Fails the bootloader's (and the first boot's) writes at the next power-up after this many bytes. */
  nextBootCut: number | undefined;
  /** Records as they stood before the update: seq → bytes. */
  readonly before = new Map<number, Uint8Array>();

  constructor(
    readonly platform: Platform,
    readonly id: number,
    readonly clock: VirtualClock,
    readonly radio: 'mqtt' | 'none' = 'mqtt',
  ) {}

  async boot(state?: BoardState): Promise<void> {
    this.boots++;
    let link: MqttLink & { close(): void };
    if (this.radio === 'mqtt') {
      link = new NodeMqttLink({
        url: this.platform.brokerUrl,
        clientId: meterClientId(this.id),
        ...this.platform.meterMqttCredentials(this.id),
      });
    } else {
      const offline = new VirtualBroker(this.clock).link();
      offline.setSignal(false); // no radio: the handheld is the meter's only way to the platform
      link = offline;
    }
    this.link = link;
    const cutBootAfter = this.nextBootCut;
    this.nextBootCut = undefined;
    try {
      this.board = new VirtualBoard({ mqtt: link, clock: this.clock, state, ota: {}, cutBootAfter });
    } catch (error) {
      if (!(error instanceof BrickedError)) throw error;
      this.bricked = true;
      return;
    }
    // The board stops the moment power fails or it restarts: nothing more leaves it.
    this.cuts += this.board.bootCuts;
    this.board.onStop = () => {
      if (this.board.otaRail?.cut) this.cuts++;
      if (link instanceof NodeMqttLink) link.power(false);
      if (this.board.ble.connected) this.board.ble.disconnect();
    };
    if (!state)
      provisionBoard(
        this.board.hardware,
        await this.platform.provisionMeter(this.id, `Meter ${this.id}`),
        this.id,
        {
          firmwareKey: RELEASE_KEY,
        },
      );
    this.meter = new Meter(this.board.hardware, {
      meterId: this.id,
      bays: [1, 2],
      rate: RATE,
      update: { confirmWindowMs: 600_000 },
    });
    this.meter.start();
    if (link instanceof NodeMqttLink)
      await until(
        () => link.subscribed(downlinkTopic(this.id)) || this.board.stoppedState !== undefined,
        `meter ${this.id} to subscribe`,
      );
  }

  /** Boots again when the board stopped (its own restart, a power cut); true when it did. */
  async revive(): Promise<boolean> {
    const state = this.board.stoppedState;
    if (this.bricked || !state) return false;
    this.meter.stop();
    if (this.link instanceof NodeMqttLink) await this.link.closeAsync();
    await this.boot(state);
    return true;
  }

  /** Keeps the records as they are now, to compare after the update. */
  keepRecords(): void {
    this.before.clear();
    for (const r of this.meter.log.read(1)) this.before.set(r.seq, r.bytes.slice());
  }

  /** Records kept by keepRecords that are missing or changed now. */
  recordsLost(): number {
    const now = new Map(this.meter.log.read(1).map((r) => [r.seq, r.bytes]));
    let lost = 0;
    for (const [seq, bytes] of this.before) {
      const held = now.get(seq);
      if (!held || Buffer.compare(Buffer.from(held), Buffer.from(bytes)) !== 0) lost++;
    }
    return lost;
  }
}

forEachBackend('firmware update end to end (414a)', (backend) => {
  const clock = new VirtualClock('2026-06-01T09:00:00Z');
  let platform: Platform;
  let drop: () => Promise<void>;
  let admin: OperatorLogin;
  let supervisor: OperatorLogin;
  let viewer: OperatorLogin;
  let operator: OperatorLogin;
  const fleet: VirtualMeter[] = [];
  const images = new Map<number, number>(); // version → image id

  const api = (method: 'GET' | 'POST' | 'PUT', url: string, who: OperatorLogin, payload?: object) =>
    platform.app.inject({ method, url, headers: who.headers, ...(payload === undefined ? {} : { payload }) });

  async function addMeter(radio: 'mqtt' | 'none' = 'mqtt'): Promise<VirtualMeter> {
    let id = randomMeterId();
    while (fleet.some((m) => m.id === id)) id = randomMeterId();
    const m = new VirtualMeter(platform, id, clock, radio);
    await m.boot();
    fleet.push(m);
    return m;
  }

  /** Waits for `condition`, booting again every meter that stopped on the way. */
  async function settle(what: string, condition: () => Promise<boolean> | boolean): Promise<void> {
    await until(
      async () => {
        for (const m of fleet) if (m.radio === 'mqtt') await m.revive();
        return condition();
      },
      what,
      90_000,
    );
  }

  async function upload(version: number, flags = 0): Promise<number> {
    const image = makeImage(version, PAYLOAD, flags);
    const response = await api('POST', '/api/firmware/images', admin, {
      version,
      target: TARGET,
      notes: `release ${version}`,
      image: Buffer.from(image).toString('base64'),
      signature: Buffer.from(signImage(image, version).signature).toString('hex'),
    });
    assert.equal(response.statusCode, 201, response.body);
    images.set(version, response.json().id);
    return response.json().id;
  }

  const rolloutOf = async (id: number) => (await api('GET', `/api/firmware/rollouts/${id}`, viewer)).json();

  async function storedRecords(meterId: number): Promise<number> {
    const { rows } = await platform.db.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM records WHERE meter_id = $1',
      [meterId],
    );
    return Number(rows[0].n);
  }

  before(async () => {
    const fresh = await backend.fresh();
    drop = fresh.drop;
    platform = await phonePlatform({ ...fresh.config, firmwareReleaseKey: RELEASE_KEY }, clock);
    admin = await operatorLogin(platform.operators, 'admin');
    supervisor = await operatorLogin(platform.operators, 'supervisor');
    viewer = await operatorLogin(platform.operators, 'viewer');
    operator = await operatorLogin(platform.operators, 'operator');
  });

  after(async () => {
    for (const m of fleet) {
      if (m.bricked) continue;
      m.meter.stop();
      if (m.link instanceof NodeMqttLink) await m.link.closeAsync();
    }
    await platform?.close();
    await drop?.();
  });

  it('a good image rolls out to an area stage by stage and each meter confirms it; records untouched', async () => {
    const quay = [await addMeter(), await addMeter()];
    const outside = await addMeter();
    for (const m of quay)
      assert.equal((await api('PUT', `/api/meters/${m.id}/area`, admin, { area: 'Quay' })).statusCode, 200);
    for (const m of [...quay, outside]) {
      m.meter.records.appendMaintenance('note', 'before the update');
      await until(async () => (await storedRecords(m.id)) === m.meter.log.lastSeq, 'records to be stored');
      m.keepRecords();
      assert.equal(m.board.image?.version, 1);
    }
    const imageId = await upload(2);
    const created = await api('POST', '/api/firmware/rollouts', supervisor, {
      imageId,
      target: { area: 'Quay' },
      stages: [50, 100],
      maxFailureRate: 0,
    });
    assert.equal(created.statusCode, 201, created.body);
    assert.equal(created.json().meters, 2);
    const id = created.json().id;
    await settle('the rollout to finish', async () => (await rolloutOf(id)).state === 'done');
    const view = await rolloutOf(id);
    assert.equal(view.target, 'area Quay');
    const ordered = [...quay].sort((a, b) => a.id - b.id);
    assert.deepEqual(
      view.meters.map((m: { meterId: number; stage: number; state: string }) => [
        m.meterId,
        m.stage,
        m.state,
      ]),
      ordered.map((m, i) => [m.id, i, 'confirmed']),
    );
    const events: string[] = view.events.map((e: { event: string }) => e.event);
    assert.ok(
      events.indexOf('stage') > events.indexOf('confirmed'),
      'stage 1 started after stage 0 confirmed',
    );
    for (const m of quay) {
      assert.equal(m.board.image?.version, 2, 'runs the new image');
      assert.equal(m.meter.update?.state, 'confirmed');
      assert.equal(m.board.ota?.pending(), false, 'confirmed in the boot selector');
      assert.equal(m.meter.update?.floor, 2);
      assert.equal(m.recordsLost(), 0);
      await settle(
        'the records since to be stored',
        async () => (await storedRecords(m.id)) === m.meter.log.lastSeq,
      );
      const report = (await api('GET', `/api/meters/${m.id}/firmware`, viewer)).json();
      assert.equal(report.state, 'confirmed');
      assert.equal(report.version, 2);
      assert.ok(report.history.some((h: { event: string }) => h.event === 'offer-sent'));
    }
    assert.equal(outside.board.image?.version, 1, 'a meter outside the area is not offered it');
    assert.equal(outside.meter.update?.state, 'idle');
    const audit = await platform.operators.auditLog({ action: 'firmware.rollout' });
    assert.equal(audit.entries[0].target, 'area Quay');
  });

  it('refuses a badly signed image at upload (422), stores nothing and audits no upload', async () => {
    const image = makeImage(7, PAYLOAD);
    const other = signImage(image, 7, TARGET, new Uint8Array(32).fill(9)); // not the release key
    const refused = await api('POST', '/api/firmware/images', admin, {
      version: 7,
      target: TARGET,
      image: Buffer.from(image).toString('base64'),
      signature: Buffer.from(other.signature).toString('hex'),
    });
    assert.equal(refused.statusCode, 422);
    assert.equal(refused.json().code, 'bad-signature');
    const tampered = new Uint8Array(image);
    tampered[100] ^= 1; // signed as released, changed after
    const changed = await api('POST', '/api/firmware/images', admin, {
      version: 7,
      target: TARGET,
      image: Buffer.from(tampered).toString('base64'),
      signature: Buffer.from(signImage(image, 7).signature).toString('hex'),
    });
    assert.equal(changed.statusCode, 422);
    const listed = (await api('GET', '/api/firmware/images', viewer)).json().images;
    assert.ok(!listed.some((i: { version: number }) => i.version === 7));
    const uploads = await platform.operators.auditLog({ action: 'firmware.upload' });
    assert.ok(uploads.entries.every((e) => !/v7$/.test(e.target ?? '')));
    assert.equal((await api('POST', '/api/firmware/images', operator, {})).statusCode, 403);
  });

  it('an image failing its self-test rolls back by itself and halts the stage; the next stage is never offered', async () => {
    const pier = [await addMeter(), await addMeter()].sort((a, b) => a.id - b.id);
    for (const m of pier) {
      assert.equal((await api('PUT', `/api/meters/${m.id}/area`, admin, { area: 'Pier' })).statusCode, 200);
      m.keepRecords();
    }
    const imageId = await upload(3, IMAGE_FAILS_SELF_TEST);
    const created = await api('POST', '/api/firmware/rollouts', supervisor, {
      imageId,
      target: { area: 'Pier' },
      stages: [50, 100],
      maxFailureRate: 0,
    });
    assert.equal(created.statusCode, 201, created.body);
    const id = created.json().id;
    await settle('the rollout to halt', async () => (await rolloutOf(id)).state === 'halted');
    const view = await rolloutOf(id);
    assert.match(view.reason, /stage 0: 1 of 1 meters failed/);
    const [first, second] = pier;
    assert.equal(first.meter.update?.state, 'rolled-back');
    assert.match(first.meter.update?.reason ?? '', /self-test/);
    assert.equal(first.board.image?.version, 1, 'back on the old image');
    assert.equal(first.board.ota?.pending(), false);
    assert.equal(first.meter.update?.floor, 1, 'the floor did not rise');
    assert.equal(first.recordsLost(), 0);
    assert.deepEqual(
      view.meters.map((m: { meterId: number; state: string }) => [m.meterId, m.state]),
      [
        [first.id, 'rolled-back'],
        [second.id, 'waiting'],
      ],
    );
    assert.equal(second.meter.update?.state, 'idle', 'the second stage was never offered');
    assert.equal(second.board.image?.version, 1);
    const resumed = await api('POST', `/api/firmware/rollouts/${id}/abort`, supervisor, {
      reason: 'bad build',
    });
    assert.equal(resumed.json().state, 'aborted');
  });

  it('a power cut at a random byte of the download, the switch or the first boot loses no record and bricks nothing', async () => {
    const random = new SeededRandom(2026);
    const phases = ['download', 'switch', 'first boot'] as const;
    const tally = { confirmed: 0, rolledBack: 0, cut: 0, phases: [] as string[] };
    for (let trial = 0; trial < 6; trial++) {
      const phase = phases[trial % phases.length];
      const m = await addMeter();
      m.meter.records.appendMaintenance('note', `trial ${trial}`);
      await until(async () => (await storedRecords(m.id)) === m.meter.log.lastSeq, 'records to be stored');
      m.keepRecords();
      const budget = (n: number) => Math.floor(random.nextFloat() * n);
      if (phase === 'download') m.board.otaRail?.cutAfter(budget(DOWNLOAD_BYTES));
      if (phase === 'switch') m.board.otaRail?.cutAfter(DOWNLOAD_BYTES + budget(SELECTOR_BYTES));
      // the first boot: the bootloader marks the new slot pending, then the image confirms itself
      if (phase === 'first boot') m.nextBootCut = budget(2 * SELECTOR_BYTES);
      const created = await api('POST', '/api/firmware/rollouts', supervisor, {
        imageId: images.get(2) ?? (await upload(2)),
        target: { meters: [m.id] },
        stages: [100],
        maxFailureRate: 0,
      });
      assert.equal(created.statusCode, 201, created.body);
      const id = created.json().id;
      await settle(`trial ${trial} (${phase}) to settle`, async () => {
        const state = m.meter.update?.state;
        return (
          m.bricked ||
          (['done', 'halted'].includes((await rolloutOf(id)).state) &&
            (state === 'confirmed' || state === 'rolled-back'))
        );
      });
      assert.equal(m.bricked, false, `trial ${trial} (${phase}): bricked`);
      assert.equal(m.cuts, 1, `trial ${trial} (${phase}): the power was cut once`);
      tally.cut += m.cuts;
      tally.phases.push(`${phase} ${m.meter.update?.state}`);
      const state = m.meter.update?.state;
      if (state === 'confirmed') {
        tally.confirmed++;
        assert.equal(m.board.image?.version, 2);
        assert.equal(m.board.ota?.pending(), false);
      } else {
        tally.rolledBack++;
        assert.equal(m.board.image?.version, 1, `trial ${trial}: rolled back to the old image`);
      }
      assert.equal(m.recordsLost(), 0, `trial ${trial} (${phase}): records lost`);
      await settle(
        'every record to be stored',
        async () => (await storedRecords(m.id)) === m.meter.log.lastSeq,
      );
    }
    assert.equal(tally.confirmed + tally.rolledBack, 6, tally.phases.join(', '));
    assert.equal(tally.cut, 6);
  });

  it('a handheld carries the offer and the chunks to a meter with no radio, and its progress back', async () => {
    const m = await addMeter('none');
    m.keepRecords();
    const handheld = new Handheld(crypto, { mtu: 512 });
    const created = await api('POST', '/api/firmware/rollouts', supervisor, {
      imageId: images.get(2) ?? (await upload(2)),
      target: { meters: [m.id] },
      stages: [100],
      maxFailureRate: 0,
    });
    assert.equal(created.statusCode, 201, created.body);
    const id = created.json().id;
    const fetch = async (meterId: number) =>
      framesOf(
        (await api('GET', `/api/handheld/meters/${meterId}/downlinks`, operator)).json() as MeterDownlinks,
      );
    const post = async (frames: string[]): Promise<UploadResult[]> => {
      const response = await api('POST', '/api/handheld/uplinks', operator, { frames });
      assert.equal(response.statusCode, 200, response.body);
      return response.json().results;
    };
    const keys = platform.keystore.meterKeys(m.id, 1);
    let visits = 0;
    let tokenId = 0;
    while ((await rolloutOf(id)).state !== 'done') {
      assert.ok(++visits <= 40, 'the update settles within 40 visits');
      if (m.board.stoppedState) await m.boot(m.board.stoppedState); // restarted for the switch
      const now = Math.floor(clock.now() / 1000);
      const token = encodeMaintenanceToken({
        meterId: m.id,
        staff: 'alice',
        tokenId: ++tokenId,
        notBefore: now - 10,
        expiresAt: now + 600,
      });
      const secret = maintenanceSecret(crypto, keys.secrets!.m, token);
      m.meter.bus.emit('maintenance-entry', {}); // the mode key switches the handheld link on
      await handheld.serve(m.board.ble, { token, secret, meterId: m.id }, { fetch, post });
      clock.advance(1000);
    }
    assert.equal(m.board.image?.version, 2);
    assert.equal(m.meter.update?.state, 'confirmed');
    assert.equal(m.board.ota?.pending(), false);
    assert.equal(m.recordsLost(), 0);
    const report = (await api('GET', `/api/meters/${m.id}/firmware`, viewer)).json();
    assert.equal(report.state, 'confirmed');
    assert.ok(visits >= Math.ceil(IMAGE_BYTES / 1024), `${visits} visits: a chunk a visit at most`);
  });
});
