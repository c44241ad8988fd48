// Reader files (414d) on the platform, on both backends, with virtual meters on the broker: an admin
// uploads documents, settings and signed reader firmware (bad ones refused on upload); a push to an
// area reaches every meter in it and only those, chunk by chunk as each asks; each meter's 0x0B is
// recorded, a refusal with its reason; meters not holding the latest version are listed as stale.
import assert from 'node:assert/strict';
import { ed25519 } from '@noble/curves/ed25519';
import { Meter } from '../../firmware/meter';
import { provisionBoard } from '../../firmware/units/security';
import { VirtualBoard } from '../../hal/mock/board';
import { VirtualClock } from '../../hal/mock/clock';
import { meterClientId, NodeMqttLink } from '../../hal/mock/mqtt.node';
import { nobleCrypto } from '../../hal/nobleCrypto';
import type { Platform } from '../../platform-server/platform';
import { encodeCbor } from '../../protocol/cbor';
import {
  decodeReaderFilesDownlink,
  encodeReaderSettings,
  READER_FILES_DOWNLINK,
  READER_FILES_UPLINK,
  readerFirmwareMessage,
} from '../../protocol/readerFiles';
import { downlinkTopic } from '../../protocol/topics';
import { forEachBackend, type OperatorLogin, operatorLogin, randomMeterId } from '../../sim/fleet/platform';
import { nobleSignatures } from '../../hal/nobleSignatures';
import { phonePlatform, RATE, until } from '../phone/support';

const releaseSecret = new Uint8Array(32).fill(21);
const releaseKey = ed25519.getPublicKey(releaseSecret);

function sign(name: string, version: number, bytes: Uint8Array, secret = releaseSecret): string {
  const sha256 = nobleCrypto.sha256(bytes);
  const message = readerFirmwareMessage({ name, version, length: bytes.length, sha256 });
  return Buffer.from(ed25519.sign(message, secret)).toString('hex');
}

function fileBytes(length: number, seed: number): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => (i * 17 + seed) & 0xff);
}

const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');

interface RigMeter {
  meter: Meter;
  board: VirtualBoard;
  link: NodeMqttLink;
}

forEachBackend('reader files (0x8B/0x0B)', (backend) => {
  const clock = new VirtualClock('2026-06-01T09:00:00Z');
  let platform: Platform;
  let drop: () => Promise<void>;
  let admin: OperatorLogin;
  let operator: OperatorLogin;
  let viewer: OperatorLogin;
  const meters: RigMeter[] = [];
  const ids: number[] = [];

  const api = (method: 'GET' | 'POST' | 'PUT', url: string, who: OperatorLogin, payload?: object) =>
    platform.app.inject({ method, url, headers: who.headers, ...(payload === undefined ? {} : { payload }) });
  const ofMeter = async (id: number) => (await api('GET', `/api/meters/${id}/reader-files`, viewer)).json();
  const delivery = async (id: number, name: string) =>
    ((await ofMeter(id)).deliveries ?? []).find((d: { name: string }) => d.name === name);

  /**
   * A meter whose reader module takes firmware (all but the last), with the release key pinned; with
   * `state`, the same meter starting again on what its flash and preferences hold.
   */
  async function boot(
    id: number,
    readerModule: boolean,
    state?: VirtualBoard['state'],
    beforeStart?: (meter: Meter) => void,
  ): Promise<RigMeter> {
    const link = new NodeMqttLink({
      url: platform.brokerUrl,
      clientId: meterClientId(id),
      ...platform.meterMqttCredentials(id),
    });
    const board = new VirtualBoard({ mqtt: link, clock, readerModule, signatures: nobleSignatures, state });
    if (!state)
      provisionBoard(board.hardware, await platform.provisionMeter(id, `Meter ${id}`), id, {
        firmwareKey: releaseKey,
      });
    const meter = new Meter(board.hardware, { meterId: id, bays: [1, 2], rate: RATE });
    beforeStart?.(meter);
    meter.start();
    await until(() => link.subscribed(downlinkTopic(id)), 'the meter to subscribe to its downlink');
    return { meter, board, link };
  }

  before(async function () {
    this.timeout(60_000); // three meters boot on a broker shared with other work
    const fresh = await backend.fresh();
    drop = fresh.drop;
    platform = await phonePlatform({ ...fresh.config, firmwareReleaseKey: releaseKey }, clock);
    admin = await operatorLogin(platform.operators, 'admin');
    operator = await operatorLogin(platform.operators, 'operator');
    viewer = await operatorLogin(platform.operators, 'viewer');
    while (ids.length < 3) {
      const id = randomMeterId();
      if (!ids.includes(id)) ids.push(id);
    }
    for (const [i, id] of ids.entries()) meters.push(await boot(id, i < 2));
    for (const id of ids.slice(0, 2))
      assert.equal((await api('PUT', `/api/meters/${id}/area`, admin, { area: 'Harbour' })).statusCode, 200);
  });

  after(async () => {
    for (const m of meters) m.meter.stop();
    await platform?.close();
    await drop?.();
  });

  it('refuses bad uploads with a typed reason and stores nothing; an operator may not upload', async () => {
    const image = fileBytes(3000, 1);
    const cases: [object, number, string][] = [
      [
        {
          name: 'reader-settings',
          kind: 'settings',
          version: 1,
          content: b64(encodeCbor({ antennaGain: 9 })),
        },
        400,
        'bad-settings',
      ],
      [{ name: 'reader-fw', kind: 'reader-firmware', version: 1, content: b64(image) }, 400, 'no-signature'],
      [
        {
          name: 'reader-fw',
          kind: 'reader-firmware',
          version: 1,
          content: b64(image),
          signature: sign('reader-fw', 1, image, new Uint8Array(32).fill(3)),
        },
        422,
        'bad-signature',
      ],
      [
        {
          name: 'reader-fw',
          kind: 'reader-firmware',
          version: 2,
          content: b64(image),
          signature: sign('reader-fw', 1, image),
        },
        422,
        'bad-signature',
      ],
      [
        {
          name: 'card-profiles',
          kind: 'document',
          version: 1,
          content: b64(image),
          signature: sign('card-profiles', 1, image),
        },
        400,
        'bad-signature',
      ],
      [{ name: '../etc', kind: 'document', version: 1, content: b64(image) }, 400, 'FST_ERR_VALIDATION'],
    ];
    for (const [body, status, code] of cases) {
      const answer = await api('POST', '/api/reader-files', admin, body);
      assert.equal(answer.statusCode, status, answer.body);
      assert.equal(answer.json().code, code, answer.body);
    }
    const forbidden = await api('POST', '/api/reader-files', operator, {
      name: 'card-profiles',
      kind: 'document',
      version: 1,
      content: b64(image),
    });
    assert.equal(forbidden.statusCode, 403);
    assert.deepEqual((await api('GET', '/api/reader-files', viewer)).json().files, []);
  });

  it('stores a document, settings and signed reader firmware; versions only grow and a name keeps its kind', async () => {
    const upload = (body: object) => api('POST', '/api/reader-files', admin, body);
    const doc = fileBytes(3000, 2);
    const stored = await upload({
      name: 'card-profiles',
      kind: 'document',
      version: 1,
      content: b64(doc),
      note: 'schemes',
    });
    assert.equal(stored.statusCode, 201, stored.body);
    assert.equal(stored.json().sha256, Buffer.from(nobleCrypto.sha256(doc)).toString('hex'));
    const settings = encodeReaderSettings({ antennaGain: 4 });
    assert.equal(
      (await upload({ name: 'reader-settings', kind: 'settings', version: 1, content: b64(settings) }))
        .statusCode,
      201,
    );
    const image = fileBytes(5000, 3);
    const fw = await upload({
      name: 'reader-fw',
      kind: 'reader-firmware',
      version: 1,
      content: b64(image),
      signature: sign('reader-fw', 1, image),
    });
    assert.equal(fw.statusCode, 201, fw.body);
    assert.equal(fw.json().signed, true);
    const again = await upload({ name: 'card-profiles', kind: 'document', version: 1, content: b64(doc) });
    assert.equal(again.json().code, 'stale-version');
    const otherKind = await upload({
      name: 'card-profiles',
      kind: 'settings',
      version: 2,
      content: b64(settings),
    });
    assert.equal(otherKind.json().code, 'kind-mismatch');
    const audit = await platform.operators.auditLog({ action: 'reader-files.upload' });
    assert.equal(audit.entries.length, 3);
    assert.equal((await api('GET', '/api/reader-files', viewer)).json().files.length, 3);
  });

  it('a push to an area reaches every meter in it and only those, in chunks; each report is recorded', async () => {
    const pushed = await api('POST', '/api/reader-files/card-profiles/1/push', admin, {
      target: { area: 'Harbour' },
    });
    assert.equal(pushed.statusCode, 202, pushed.body);
    assert.deepEqual(
      pushed.json().meters.map((m: { meterId: number }) => m.meterId),
      ids.slice(0, 2).sort((a, b) => a - b),
    );
    for (const id of ids.slice(0, 2))
      await until(
        async () => (await delivery(id, 'card-profiles'))?.state === 'held',
        `meter ${id} to hold the file`,
      );
    assert.deepEqual(meters[0].meter.readerFiles.get('card-profiles')?.bytes, fileBytes(3000, 2));
    assert.deepEqual((await ofMeter(ids[0])).held, [{ name: 'card-profiles', kind: 'document', version: 1 }]);
    assert.equal(
      meters[2].meter.readerFiles.get('card-profiles'),
      undefined,
      'the meter outside the area got nothing',
    );
    // its report, sent unasked after its first acknowledged upload, says it holds nothing
    const outside = await ofMeter(ids[2]);
    assert.deepEqual([outside.held, outside.deliveries], [[], []]);
    assert.equal((await api('GET', '/api/meters/4000000001/reader-files', viewer)).statusCode, 404);
    const audit = await platform.operators.auditLog({ action: 'reader-files.push' });
    assert.equal(audit.entries[0].target, 'area Harbour');
  });

  it('settings reach the reader chip and signed firmware the reader module', async () => {
    const target = { meters: [ids[0]] };
    assert.equal(
      (await api('POST', '/api/reader-files/reader-settings/1/push', admin, { target })).statusCode,
      202,
    );
    assert.equal(
      (await api('POST', '/api/reader-files/reader-fw/1/push', admin, { target })).statusCode,
      202,
    );
    await until(
      async () => (await delivery(ids[0], 'reader-fw'))?.state === 'held',
      'the firmware to be held',
    );
    await until(
      async () => (await delivery(ids[0], 'reader-settings'))?.state === 'held',
      'the settings to be held',
    );
    assert.equal((meters[0].board.reader.peek(0x26) >> 4) & 7, 4, 'RFCfgReg RxGain');
    assert.equal(meters[0].board.readerFirmware?.version, 1);
    assert.deepEqual(meters[0].board.readerFirmware?.image, fileBytes(5000, 3));
  });

  it("a meter's refusal is recorded with its reason, and meters behind the latest version are listed as stale", async () => {
    // the third meter's reader takes no firmware
    assert.equal(
      (await api('POST', '/api/reader-files/reader-fw/1/push', admin, { target: { meters: [ids[2]] } }))
        .statusCode,
      202,
    );
    await until(
      async () => (await delivery(ids[2], 'reader-fw'))?.state === 'refused',
      'the refusal to be recorded',
    );
    assert.equal((await delivery(ids[2], 'reader-fw')).why, 'unsupported');
    const doc2 = fileBytes(2000, 4);
    assert.equal(
      (
        await api('POST', '/api/reader-files', admin, {
          name: 'card-profiles',
          kind: 'document',
          version: 2,
          content: b64(doc2),
        })
      ).statusCode,
      201,
    );
    const stale = (await api('POST', '/api/reader-files/stale', viewer, {})).json().meters;
    const byId = new Map(stale.map((m: { meterId: number }) => [m.meterId, m]));
    for (const id of ids.slice(0, 2))
      assert.deepEqual((byId.get(id) as { behind: unknown }).behind, [
        { name: 'card-profiles', latest: 2, held: 1 },
      ]);
    assert.deepEqual((byId.get(ids[2]) as { behind: unknown }).behind, [
      { name: 'reader-fw', latest: 1, held: null },
    ]);
    await api('POST', '/api/reader-files/card-profiles/2/push', admin, { target: { meters: [ids[0]] } });
    await until(
      async () =>
        (await delivery(ids[0], 'card-profiles'))?.version === 2 &&
        (await delivery(ids[0], 'card-profiles')).state === 'held',
      'v2 held',
    );
    const after = (
      await api('POST', '/api/reader-files/stale', viewer, { target: { area: 'Harbour' } })
    ).json().meters;
    assert.deepEqual(
      after.map((m: { meterId: number }) => m.meterId),
      [ids[1]],
    );
  });

  it('a meter whose link drops mid-download resumes after its restart from its flash: only the rest is sent', async () => {
    const doc = fileBytes(1500, 6); // two chunks, and room in the store beside the files held
    const uploaded = await api('POST', '/api/reader-files', admin, {
      name: 'receipts',
      kind: 'document',
      version: 1,
      content: b64(doc),
    });
    assert.equal(uploaded.statusCode, 201);
    const m = meters[0];
    // The link goes after the meter wrote the first chunk: its report of offset 1024 is lost.
    let reports = 0;
    const send = m.meter.comms.send.bind(m.meter.comms);
    m.meter.comms.send = (type, body) =>
      type === READER_FILES_UPLINK && ++reports >= 2 ? false : send(type, body);
    await api('POST', '/api/reader-files/receipts/1/push', admin, { target: { meters: [ids[0]] } });
    await until(() => m.meter.readerFileUpdates.download?.offset === 1024, 'the first chunk to be written');
    await m.link.closeAsync();
    m.meter.stop();
    // It starts again; its report after its first acknowledged upload says where it stands.
    const offsets: number[] = [];
    meters[0] = await boot(ids[0], true, m.board.state, (meter) =>
      meter.bus.on('downlink', ({ type, body }) => {
        if (type !== READER_FILES_DOWNLINK) return;
        const message = decodeReaderFilesDownlink(body);
        offsets.push(message.k === 'chunk' ? message.offset : -1);
      }),
    );
    await until(async () => (await delivery(ids[0], 'receipts'))?.state === 'held', 'the file to be held');
    assert.deepEqual(offsets, [1024], 'no offer again, no chunk twice');
    assert.deepEqual(meters[0].meter.readerFiles.get('receipts')?.bytes, doc);
  });

  it('refuses a push of an unknown file (404) or to an unknown meter (404)', async () => {
    const unknownFile = await api('POST', '/api/reader-files/card-profiles/9/push', admin, {
      target: { fleet: true },
    });
    assert.equal(unknownFile.statusCode, 404);
    assert.equal(unknownFile.json().code, 'unknown-reader-file');
    const unknownMeter = await api('POST', '/api/reader-files/card-profiles/1/push', admin, {
      target: { meters: [4_000_000_001] },
    });
    assert.equal(unknownMeter.statusCode, 404);
    assert.equal(unknownMeter.json().code, 'unknown-meter');
  });
});
