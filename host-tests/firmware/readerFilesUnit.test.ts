// Reader files (414d) on the meter: files offered as 0x8B, downloaded chunk by chunk at the offset
// the meter asks for, verified (SHA-256; the release key's signature for reader firmware), applied
// and stored; every refusal typed and reported with the files held left as they were; a power cut
// at any point of a download resumes from flash.
import assert from 'node:assert/strict';
import { ed25519 } from '@noble/curves/ed25519';
import { Meter } from '../../firmware/meter';
import { provisionBoard } from '../../firmware/units/security';
import { ReaderFilesStore } from '../../firmware/units/readerFiles';
import { ReaderFileRefused, ReaderFilesUnit } from '../../firmware/units/readerFilesUnit';
import { VirtualBoard } from '../../hal/mock/board';
import { VirtualClock } from '../../hal/mock/clock';
import { PowerLoss, VirtualNorFlash } from '../../hal/mock/flash';
import { VirtualBroker } from '../../hal/mock/mqtt';
import { MemoryPreferences } from '../../hal/mock/preferences';
import { VirtualReaderFirmware } from '../../hal/mock/readerFirmware';
import { nobleCrypto } from '../../hal/nobleCrypto';
import type { PreferenceValue } from '../../hal/preferences';
import { encodeCbor } from '../../protocol/cbor';
import { sealFrame } from '../../protocol/frame';
import { deriveMeterKeys } from '../../protocol/keys';
import { ProtocolError } from '../../protocol/errors';
import {
  decodeReaderFilesDownlink,
  decodeReaderFilesReport,
  decodeReaderSettings,
  encodeReaderFilesDownlink,
  encodeReaderFilesReport,
  encodeReaderSettings,
  READER_FILE_CHUNK,
  READER_FILES_DOWNLINK,
  READER_FILES_UPLINK,
  type ReaderFileKind,
  type ReaderFilesReport,
  readerFirmwareMessage,
} from '../../protocol/readerFiles';
import { nobleSignatures } from '../../hal/nobleSignatures';

const releaseSecret = new Uint8Array(32).fill(7);
const releaseKey = ed25519.getPublicKey(releaseSecret);
const PARTITION_BYTES = 24 * 1024;

function fileBytes(length: number, seed: number): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => (i * 31 + seed) & 0xff);
}

function sign(name: string, version: number, bytes: Uint8Array, secret = releaseSecret): Uint8Array {
  const sha256 = nobleCrypto.sha256(bytes);
  return ed25519.sign(readerFirmwareMessage({ name, version, length: bytes.length, sha256 }), secret);
}

function offer(
  name: string,
  kind: ReaderFileKind,
  version: number,
  bytes: Uint8Array,
  extra: { sha256?: Uint8Array; signature?: Uint8Array } = {},
): Uint8Array {
  return encodeReaderFilesDownlink({
    k: 'offer',
    name,
    kind,
    version,
    length: bytes.length,
    sha256: extra.sha256 ?? nobleCrypto.sha256(bytes),
    ...(kind === 'reader-firmware' ? { signature: extra.signature ?? sign(name, version, bytes) } : {}),
  });
}

function chunk(name: string, version: number, bytes: Uint8Array, offset: number): Uint8Array {
  const data = bytes.subarray(offset, offset + READER_FILE_CHUNK);
  return encodeReaderFilesDownlink({ k: 'chunk', name, version, offset, data });
}

/** A meter's reader partition and preferences, which survive a power cut, and the unit over them. */
class Rig {
  readonly partition: VirtualNorFlash;
  readonly preferences: MemoryPreferences;
  readonly reports: ReaderFilesReport[] = [];
  readonly configured: unknown[] = [];
  readonly firmware = new VirtualReaderFirmware();
  store!: ReaderFilesStore;
  unit!: ReaderFilesUnit;

  constructor(
    readonly options: { pinned?: Uint8Array; signatures?: boolean; firmwarePort?: boolean } = {},
    cells?: Uint8Array,
    entries?: Map<string, PreferenceValue>,
  ) {
    this.partition = new VirtualNorFlash({ byteLength: PARTITION_BYTES, cells });
    this.preferences = new MemoryPreferences(entries);
    this.boot();
  }

  /** The board starts (again): the store and the unit are made from what the flash holds. */
  boot(): void {
    this.partition.restorePower();
    this.store = new ReaderFilesStore(this.partition);
    this.unit = new ReaderFilesUnit({
      store: this.store,
      partition: this.partition,
      preferences: this.preferences,
      crypto: nobleCrypto,
      signatures: this.options.signatures === false ? undefined : nobleSignatures,
      send: (type, body) => {
        assert.equal(type, READER_FILES_UPLINK);
        this.reports.push(decodeReaderFilesReport(body));
        return true;
      },
      pinnedKey: () => ('pinned' in this.options ? this.options.pinned : releaseKey),
      reader: { configure: (settings) => this.configured.push(settings) },
      readerFirmware: this.options.firmwarePort === false ? undefined : this.firmware,
    });
    this.unit.start();
  }

  /** The platform's side: an offer, then the chunk each report asks for, until the meter stops asking. */
  deliver(name: string, kind: ReaderFileKind, version: number, bytes: Uint8Array): ReaderFilesReport {
    let report = this.unit.handle(offer(name, kind, version, bytes));
    while (report.state === 'downloading')
      report = this.unit.handle(chunk(name, version, bytes, report.offset));
    return report;
  }

  get last(): ReaderFilesReport {
    const r = this.reports.at(-1);
    assert.ok(r, 'a report was sent');
    return r;
  }
}

function refusedWith(reason: string) {
  return (error: unknown) => error instanceof ReaderFileRefused && error.reason === reason;
}

describe('reader files unit (414d): download, verify, apply, report', () => {
  it('downloads a document in chunks, stores it and reports it held', () => {
    const rig = new Rig();
    const doc = fileBytes(2500, 1);
    const report = rig.deliver('card-profiles', 'document', 3, doc);
    assert.equal(report.state, 'held');
    assert.deepEqual(report.held, [{ name: 'card-profiles', kind: 'document', version: 3 }]);
    // offer, then after each of three chunks: downloading at 0, 1024, 2048, then held
    assert.deepEqual(
      rig.reports.map((r) => [r.state, r.offset]),
      [
        ['downloading', 0],
        ['downloading', 1024],
        ['downloading', 2048],
        ['held', 0],
      ],
    );
    assert.deepEqual(rig.store.get('card-profiles'), { version: 3, bytes: doc, kind: 'document' });
    assert.equal(rig.unit.download, undefined);
  });

  it('hands a settings file to the reader when it arrives and again at every start', () => {
    const rig = new Rig();
    const settings = encodeReaderSettings({ antennaGain: 5 });
    assert.equal(rig.deliver('reader-settings', 'settings', 1, settings).state, 'held');
    assert.deepEqual(rig.configured, [{ antennaGain: 5 }]);
    rig.boot();
    assert.deepEqual(rig.configured, [{ antennaGain: 5 }, { antennaGain: 5 }]);
  });

  it('installs signed reader firmware through the reader module and keeps its SHA-256', () => {
    const rig = new Rig();
    const image = fileBytes(9000, 2);
    const report = rig.deliver('reader-fw', 'reader-firmware', 7, image);
    assert.equal(report.state, 'held');
    assert.equal(rig.firmware.version, 7);
    assert.deepEqual(rig.firmware.image, image);
    assert.deepEqual(rig.store.get('reader-fw'), {
      version: 7,
      bytes: nobleCrypto.sha256(image),
      kind: 'reader-firmware',
    });
  });

  it('refuses a file whose bytes do not match its SHA-256 (hash), keeping the version held', () => {
    const rig = new Rig();
    const v1 = fileBytes(1500, 3);
    rig.deliver('card-profiles', 'document', 1, v1);
    const v2 = fileBytes(1500, 4);
    let report = rig.unit.handle(
      offer('card-profiles', 'document', 2, v2, { sha256: nobleCrypto.sha256(v1) }),
    );
    report = rig.unit.handle(chunk('card-profiles', 2, v2, report.offset));
    assert.throws(() => rig.unit.handle(chunk('card-profiles', 2, v2, 1024)), refusedWith('hash'));
    assert.deepEqual(
      { state: rig.last.state, reason: rig.last.reason, name: rig.last.name, version: rig.last.version },
      { state: 'refused', reason: 'hash', name: 'card-profiles', version: 2 },
    );
    assert.deepEqual(rig.store.get('card-profiles')?.bytes, v1);
    assert.equal(rig.unit.download, undefined, 'the refused download is dropped');
  });

  it('refuses reader firmware with a bad signature on the offer, before any byte, and at no key or checker', () => {
    const image = fileBytes(3000, 5);
    const rig = new Rig();
    const forged = sign('reader-fw', 2, image, new Uint8Array(32).fill(9));
    assert.throws(
      () => rig.unit.handle(offer('reader-fw', 'reader-firmware', 2, image, { signature: forged })),
      refusedWith('bad-signature'),
    );
    assert.equal(rig.unit.download, undefined, 'nothing is downloaded');
    // signed for another version: the signature binds the version
    assert.throws(
      () =>
        rig.unit.handle(
          offer('reader-fw', 'reader-firmware', 3, image, { signature: sign('reader-fw', 2, image) }),
        ),
      refusedWith('bad-signature'),
    );
    assert.equal(rig.firmware.installs, 0);
    const unpinned = new Rig({ pinned: undefined });
    assert.throws(
      () => unpinned.unit.handle(offer('reader-fw', 'reader-firmware', 2, image)),
      refusedWith('no-pinned-key'),
    );
    const noChecker = new Rig({ signatures: false });
    assert.throws(
      () => noChecker.unit.handle(offer('reader-fw', 'reader-firmware', 2, image)),
      refusedWith('unsupported'),
    );
    const noModule = new Rig({ firmwarePort: false });
    assert.throws(
      () => noModule.unit.handle(offer('reader-fw', 'reader-firmware', 2, image)),
      refusedWith('unsupported'),
    );
    assert.deepEqual(noModule.last.held, []);
  });

  it('refuses a stale version, a file too large, bad settings and a reader that refuses its firmware, keeping what is held', () => {
    const rig = new Rig();
    rig.deliver('reader-settings', 'settings', 4, encodeReaderSettings({ antennaGain: 3 }));
    assert.throws(
      () =>
        rig.unit.handle(offer('reader-settings', 'settings', 4, encodeReaderSettings({ antennaGain: 6 }))),
      refusedWith('stale'),
    );
    assert.throws(
      () => rig.unit.handle(offer('big', 'document', 1, fileBytes(rig.store.capacity + 1, 0))),
      refusedWith('too-large'),
    );
    assert.throws(
      () =>
        rig.unit.handle(offer('reader-fw', 'reader-firmware', 1, fileBytes(rig.unit.stagingCapacity + 1, 0))),
      refusedWith('too-large'),
    );
    rig.deliver('card-profiles', 'document', 1, fileBytes(3000, 1));
    assert.throws(
      () => rig.unit.handle(offer('receipts', 'document', 1, fileBytes(1500, 0))),
      refusedWith('too-large'),
      'a file that does not fit beside the files held is refused before any byte comes',
    );
    assert.equal(rig.unit.download, undefined);
    rig.store.remove('card-profiles');
    assert.throws(
      () => rig.deliver('reader-settings', 'settings', 5, encodeCbor({ antennaGain: 9 })),
      refusedWith('bad-settings'),
    );
    rig.firmware.refuseNext = 'flash full';
    assert.throws(
      () => rig.deliver('reader-fw', 'reader-firmware', 1, fileBytes(2000, 6)),
      refusedWith('apply-failed'),
    );
    assert.equal(rig.firmware.version, 0);
    assert.deepEqual(rig.store.list(), [{ name: 'reader-settings', kind: 'settings', version: 4 }]);
    assert.deepEqual(rig.configured, [{ antennaGain: 3 }]);
    assert.deepEqual(rig.last.held, [{ name: 'reader-settings', kind: 'settings', version: 4 }]);
  });

  it('refuses a malformed message (malformed) without disturbing the download in progress', () => {
    const rig = new Rig();
    const doc = fileBytes(2100, 8);
    const first = rig.unit.handle(offer('card-profiles', 'document', 1, doc));
    rig.unit.handle(chunk('card-profiles', 1, doc, first.offset));
    assert.throws(() => rig.unit.handle(Uint8Array.of(0xa1, 0x61)), refusedWith('malformed'));
    assert.throws(
      () =>
        rig.unit.handle(
          encodeCbor({ k: 'offer', n: '../x', kind: 'document', v: 1, len: 1, sha: new Uint8Array(32) }),
        ),
      refusedWith('malformed'),
    );
    // the refusal is reported, then the download again: the platform goes on from 1024
    assert.deepEqual([rig.last.state, rig.last.offset], ['downloading', 1024]);
    // a chunk at the wrong offset is not written: the report names the offset wanted
    assert.equal(rig.unit.handle(chunk('card-profiles', 1, doc, 2048)).offset, 1024);
    let report = rig.unit.handle(chunk('card-profiles', 1, doc, 1024));
    report = rig.unit.handle(chunk('card-profiles', 1, doc, report.offset));
    assert.equal(report.state, 'held');
    assert.deepEqual(rig.store.get('card-profiles')?.bytes, doc);
  });

  it('resumes after a power cut at any byte of a download and holds the file whole', () => {
    const doc = fileBytes(3500, 9);
    const baseline = new Rig();
    baseline.deliver('card-profiles', 'document', 1, fileBytes(100, 1));
    for (let cut = 0; cut < 3 * 4096 + 3600; cut += 211) {
      const rig = new Rig({}, baseline.partition.cells.slice(), new Map(baseline.preferences.entries));
      rig.partition.cutPowerAfter(cut);
      try {
        rig.deliver('card-profiles', 'document', 2, doc);
      } catch (error) {
        assert.ok(error instanceof PowerLoss, `cut ${cut}: ${(error as Error).message}`);
      }
      rig.boot(); // the board starts again on what the flash and preferences hold
      const held = rig.store.get('card-profiles');
      assert.ok(held?.version === 1 || held?.version === 2, `cut ${cut}: a whole file is held`);
      if (held.version === 1) {
        // the platform offers again; the meter says where it stands and takes the rest
        assert.equal(rig.deliver('card-profiles', 'document', 2, doc).state, 'held', `cut ${cut}`);
      }
      assert.deepEqual(
        rig.store.get('card-profiles'),
        { version: 2, bytes: doc, kind: 'document' },
        `cut ${cut}`,
      );
    }
  });

  it('a download cut after some chunks resumes at the last chunk written, not from the start', () => {
    const rig = new Rig();
    const doc = fileBytes(3500, 10);
    let report = rig.unit.handle(offer('card-profiles', 'document', 1, doc));
    report = rig.unit.handle(chunk('card-profiles', 1, doc, report.offset));
    report = rig.unit.handle(chunk('card-profiles', 1, doc, report.offset));
    assert.equal(report.offset, 2048);
    rig.boot();
    assert.equal(rig.unit.handle(offer('card-profiles', 'document', 1, doc)).offset, 2048);
  });

  it('on a meter: a 0x8B from comms applies settings to the MFRC522 (RxGain) and answers 0x0B', () => {
    const clock = new VirtualClock();
    const board = new VirtualBoard({ mqtt: new VirtualBroker(clock).link(), clock });
    const meter = new Meter(board.hardware, {
      meterId: 77,
      bays: [1],
      rate: { currency: 826, perHour: 120, minMinutes: 15, maxMinutes: 60, stepMinutes: 15 },
    });
    const sent: number[] = [];
    const send = meter.comms.send.bind(meter.comms);
    meter.comms.send = (type, body) => {
      sent.push(type);
      return send(type, body);
    };
    const settings = encodeReaderSettings({ antennaGain: 6 });
    const body = offer('reader-settings', 'settings', 1, settings);
    meter.bus.emit('downlink', { type: READER_FILES_DOWNLINK, seq: 1, body });
    meter.bus.emit('downlink', {
      type: READER_FILES_DOWNLINK,
      seq: 2,
      body: chunk('reader-settings', 1, settings, 0),
    });
    assert.equal((board.reader.peek(0x26) >> 4) & 7, 6, 'RFCfgReg RxGain');
    assert.deepEqual(meter.readerFiles.list(), [{ name: 'reader-settings', kind: 'settings', version: 1 }]);
    assert.deepEqual(sent, [READER_FILES_UPLINK, READER_FILES_UPLINK]);
    // a bad frame is reported, not raised as a fault of the meter
    const faults: unknown[] = [];
    meter.bus.on('fault', (f) => faults.push(f));
    meter.bus.emit('downlink', { type: READER_FILES_DOWNLINK, seq: 3, body: Uint8Array.of(1) });
    assert.deepEqual(faults, []);
    meter.stop();
  });

  it('on a meter: sealed 0x8B frames carried by a handheld (comms.receiveDownlink) download a file; a forged one is refused', () => {
    const clock = new VirtualClock();
    const board = new VirtualBoard({ mqtt: new VirtualBroker(clock).link(), clock });
    const keys = deriveMeterKeys(nobleCrypto, new Uint8Array(32).fill(0x5a), 78, 1);
    provisionBoard(board.hardware, keys, 78);
    const meter = new Meter(board.hardware, {
      meterId: 78,
      bays: [1],
      rate: { currency: 826, perHour: 120, minMinutes: 15, maxMinutes: 60, stepMinutes: 15 },
    });
    let seq = 0;
    const seal = (body: Uint8Array, key = keys.downlink) =>
      sealFrame(
        nobleCrypto,
        key,
        { version: 1, type: READER_FILES_DOWNLINK, meterId: 78, epoch: 1, seq: ++seq },
        body,
      );
    const doc = fileBytes(1800, 12);
    const forged = meter.comms.receiveDownlink(
      seal(offer('card-profiles', 'document', 1, doc), new Uint8Array(32)),
    );
    assert.equal(forged.ok, false);
    assert.equal(meter.readerFileUpdates.download, undefined, 'a forged offer starts nothing');
    assert.equal(meter.comms.receiveDownlink(seal(offer('card-profiles', 'document', 1, doc))).ok, true);
    for (const offset of [0, 1024]) meter.comms.receiveDownlink(seal(chunk('card-profiles', 1, doc, offset)));
    assert.deepEqual(meter.readerFiles.get('card-profiles'), { version: 1, bytes: doc, kind: 'document' });
    meter.stop();
  });
});

describe('reader files messages (protocol/readerFiles.ts)', () => {
  it('round-trips offers, chunks and reports', () => {
    const bytes = fileBytes(40, 1);
    const signature = sign('reader-fw', 2, bytes);
    const message = {
      k: 'offer' as const,
      name: 'reader-fw',
      kind: 'reader-firmware' as const,
      version: 2,
      length: 40,
      sha256: nobleCrypto.sha256(bytes),
      signature,
    };
    assert.deepEqual(decodeReaderFilesDownlink(encodeReaderFilesDownlink(message)), message);
    const report: ReaderFilesReport = {
      state: 'refused',
      name: 'reader-fw',
      version: 2,
      offset: 0,
      reason: 'bad-signature',
      held: [{ name: 'reader-settings', kind: 'settings', version: 1 }],
    };
    assert.deepEqual(decodeReaderFilesReport(encodeReaderFilesReport(report)), report);
  });

  it('refuses malformed bodies with a ProtocolError naming the field', () => {
    const sha = new Uint8Array(32);
    const bad: [unknown, RegExp][] = [
      [{ k: 'offer', n: 'doc', kind: 'document', v: 1, len: 0, sha }, /len/],
      [{ k: 'offer', n: 'doc', kind: 'document', v: 0, len: 1, sha }, /v is not/],
      [{ k: 'offer', n: 'doc', kind: 'manual', v: 1, len: 1, sha }, /kind/],
      [{ k: 'offer', n: 'doc', kind: 'document', v: 1, len: 1, sha, sig: new Uint8Array(64) }, /sig is for/],
      [{ k: 'offer', n: 'fw', kind: 'reader-firmware', v: 1, len: 1, sha }, /sig is not/],
      [{ k: 'chunk', n: 'doc', v: 1, off: 0, d: new Uint8Array(READER_FILE_CHUNK + 1) }, /d is not/],
      [{ k: 'erase' }, /not a reader files message/],
    ];
    for (const [body, why] of bad)
      assert.throws(
        () => decodeReaderFilesDownlink(encodeCbor(body)),
        (e: unknown) => e instanceof ProtocolError && why.test(e.message),
        JSON.stringify(body, (_k, v) => (v instanceof Uint8Array ? v.length : v)),
      );
    assert.throws(
      () => decodeReaderFilesReport(encodeCbor({ st: 'refused', off: 0, held: [], why: 'tired' })),
      ProtocolError,
    );
    assert.throws(() => decodeReaderSettings(encodeCbor({ antennaGain: 3, volume: 2 })), /volume/);
  });
});
