// The meter's side of the fleet blacklist: 0x8A deltas applied only on top of the version held,
// full lists in pages, typed refusals that leave the held list untouched, power cuts mid-apply,
// and the 0x0A answers.
import assert from 'node:assert/strict';
import { EventBus } from '../../firmware/bus';
import type { MeterEvents } from '../../firmware/events';
import { BlacklistUnit } from '../../firmware/units/blacklist';
import { SlotStore } from '../../firmware/units/slotStore';
import { PowerLoss, VirtualNorFlash } from '../../hal/mock/flash';
import {
  BLACKLIST_ACK_UPLINK,
  BLACKLIST_DOWNLINK,
  BLACKLIST_PAGE_ENTRIES,
  BlacklistError,
  blacklistPages,
  decodeBlacklistAck,
  decodeBlacklistPush,
  encodeBlacklistPush,
  reasonCode,
} from '../../protocol/blacklist';
import { encodeCbor } from '../../protocol/cbor';

const token = (n: number) => Uint8Array.from({ length: 16 }, (_, i) => (n * 31 + i * 7) & 0xff);
const stolen = reasonCode('stolen');
const flash = () => new VirtualNorFlash({ byteLength: 2 * 4096, sectorSize: 4096 });

function delta(base: number, version: number, add: number[], remove: number[] = []) {
  return encodeBlacklistPush({
    kind: 'delta',
    version,
    base,
    add: add.map((n) => ({ token: token(n), reason: stolen })),
    remove: remove.map(token),
  });
}

function linked(f = flash()) {
  const bus = new EventBus<MeterEvents>();
  const sent: { type: number; body: Uint8Array }[] = [];
  const unit = new BlacklistUnit(f, undefined, {
    bus,
    send: (type, body) => {
      sent.push({ type, body });
      return true;
    },
  });
  const acks = () => sent.map((s) => ({ type: s.type, ...decodeBlacklistAck(s.body) }));
  return { bus, unit, sent, acks, flash: f };
}

describe('blacklist 0x8A messages', () => {
  it('round-trips a delta and a page', () => {
    const d = decodeBlacklistPush(delta(3, 5, [1], [2]));
    assert.equal(d.kind, 'delta');
    if (d.kind !== 'delta') return;
    assert.deepEqual([d.base, d.version, d.add[0].reason, d.remove.length], [3, 5, stolen, 1]);
    const pages = blacklistPages(
      9,
      Array.from({ length: BLACKLIST_PAGE_ENTRIES + 1 }, (_, i) => ({ token: token(i), reason: stolen })),
    );
    assert.equal(pages.length, 2);
    for (const page of pages) assert.ok(encodeBlacklistPush(page).length < 1024, 'a page is under 1 KiB');
    assert.deepEqual(decodeBlacklistPush(encodeBlacklistPush(pages[1])), pages[1]);
  });

  const malformed: [string, Uint8Array][] = [
    ['not CBOR', Uint8Array.of(0xff, 0x00)],
    ['not a map', encodeCbor([1, 2])],
    ['unknown kind', encodeCbor({ k: 'x', v: 1 })],
    ['short token', encodeCbor({ k: 'd', v: 2, b: 1, a: [[new Uint8Array(15), 2]], r: [] })],
    ['unknown reason', encodeCbor({ k: 'd', v: 2, b: 1, a: [[token(1), 9]], r: [] })],
    ['base not below version', encodeCbor({ k: 'd', v: 2, b: 2, a: [], r: [] })],
    ['page past the count', encodeCbor({ k: 'f', v: 2, p: 3, n: 3, e: [] })],
    ['negative version', encodeCbor({ k: 'f', v: -1, p: 0, n: 1, e: [] })],
  ];
  for (const [what, body] of malformed) {
    it(`refuses a malformed body (${what}) with BlacklistError 'malformed'`, () => {
      assert.throws(
        () => decodeBlacklistPush(body),
        (e: unknown) => e instanceof BlacklistError && e.code === 'malformed',
      );
    });
  }
});

describe('blacklist unit (meter)', () => {
  it('applies a delta on top of the version held and answers with the version it holds', () => {
    const m = linked();
    m.bus.emit('downlink', { type: BLACKLIST_DOWNLINK, seq: 1, body: delta(0, 1, [1]) });
    assert.equal(m.unit.check(token(1)), 'stolen');
    m.bus.emit('downlink', { type: BLACKLIST_DOWNLINK, seq: 2, body: delta(1, 3, [2], [1]) });
    assert.equal(m.unit.check(token(1)), undefined);
    assert.equal(m.unit.check(token(2)), 'stolen');
    assert.deepEqual(m.acks(), [
      { type: BLACKLIST_ACK_UPLINK, version: 1, ok: true },
      { type: BLACKLIST_ACK_UPLINK, version: 3, ok: true },
    ]);
    // Kept across a restart, version and all.
    const again = new BlacklistUnit(m.flash);
    assert.deepEqual([again.version, again.check(token(2)), again.size], [3, 'stolen', 1]);
  });

  it('refuses a delta for another base (base-mismatch), the held list untouched', () => {
    const m = linked();
    m.unit.applyDownlink(delta(0, 2, [1]));
    const generation = m.unit.generation;
    const ack = m.unit.applyDownlink(delta(5, 6, [9], [1]));
    assert.deepEqual(ack, { version: 2, ok: false, why: 'base-mismatch' });
    assert.throws(
      () => m.unit.apply(decodeBlacklistPush(delta(5, 6, [9]))),
      (e: unknown) => e instanceof BlacklistError && e.code === 'base-mismatch',
    );
    assert.deepEqual(
      [m.unit.check(token(1)), m.unit.check(token(9)), m.unit.generation],
      ['stolen', undefined, generation],
    );
  });

  it('answers a repeated delta with the version held and writes nothing', () => {
    const m = linked();
    m.unit.applyDownlink(delta(0, 1, [1]));
    const generation = m.unit.generation;
    assert.deepEqual(m.unit.applyDownlink(delta(0, 1, [1])), { version: 1, ok: true });
    assert.equal(m.unit.generation, generation);
  });

  it('refuses a malformed body, the held list untouched', () => {
    const m = linked();
    m.unit.applyDownlink(delta(0, 1, [1]));
    const ack = m.unit.applyDownlink(encodeCbor({ k: 'd', v: 2, b: 1, a: [[token(2)]], r: [] }));
    assert.deepEqual(ack, { version: 1, ok: false, why: 'malformed' });
    assert.deepEqual([m.unit.version, m.unit.check(token(1)), m.unit.size], [1, 'stolen', 1]);
  });

  it('replaces the list once every page of a full list is here, in any order', () => {
    const m = linked();
    m.unit.applyDownlink(delta(0, 1, [1000]));
    const entries = Array.from({ length: 100 }, (_, i) => ({ token: token(i), reason: stolen }));
    const pages = blacklistPages(40, entries);
    assert.equal(pages.length, 3);
    assert.equal(m.unit.applyDownlink(encodeBlacklistPush(pages[2])), undefined, 'no answer yet');
    assert.equal(m.unit.applyDownlink(encodeBlacklistPush(pages[0])), undefined);
    assert.equal(m.unit.check(token(1000)), 'stolen', 'the old list until the last page');
    assert.equal(m.unit.version, 1);
    assert.deepEqual(m.unit.applyDownlink(encodeBlacklistPush(pages[1])), { version: 40, ok: true });
    assert.deepEqual(
      [m.unit.size, m.unit.check(token(1000)), m.unit.check(token(99))],
      [100, undefined, 'stolen'],
    );
  });

  it("refuses a list too large for the partition ('too-large'), the held list untouched", () => {
    const m = linked();
    m.unit.applyDownlink(delta(0, 1, [1]));
    const entries = Array.from({ length: 400 }, (_, i) => ({ token: token(i + 10), reason: stolen }));
    const pages = blacklistPages(2, entries);
    let ack: unknown;
    for (const page of pages) ack = m.unit.applyDownlink(encodeBlacklistPush(page));
    assert.deepEqual(ack, { version: 1, ok: false, why: 'too-large' });
    assert.deepEqual([m.unit.version, m.unit.size, m.unit.check(token(1))], [1, 1, 'stolen']);
    const again = new BlacklistUnit(m.flash);
    assert.deepEqual([again.version, again.size], [1, 1]);
  });

  it('reports the version it holds once per start, after its first acknowledged upload', () => {
    const m = linked();
    m.unit.applyDownlink(delta(0, 4, [1]));
    const restarted = linked(m.flash);
    restarted.bus.emit('upload-acknowledged', { seq: 1 });
    restarted.bus.emit('upload-acknowledged', { seq: 2 });
    assert.deepEqual(restarted.acks(), [{ type: BLACKLIST_ACK_UPLINK, version: 4, ok: true }]);
  });

  it('keeps the old list or the new one, whole, when the power goes during a delta or a full list', () => {
    const base = linked();
    base.unit.applyDownlink(delta(0, 1, [1, 2]));
    const pushes = [
      [delta(1, 2, [3], [1])],
      blacklistPages(7, [{ token: token(5), reason: stolen }]).map(encodeBlacklistPush),
    ];
    for (const bodies of pushes) {
      let cuts = 0;
      for (let cut = 0; cut < 4300; cut += 61) {
        const copy = new VirtualNorFlash({ cells: base.flash.cells.slice(), sectorSize: 4096 });
        const unit = new BlacklistUnit(copy);
        copy.cutPowerAfter(cut);
        try {
          for (const body of bodies) unit.apply(decodeBlacklistPush(body));
        } catch (error) {
          assert.ok(error instanceof PowerLoss, `cut ${cut}: ${(error as Error).message}`);
          cuts++;
        }
        const after = new BlacklistUnit(new VirtualNorFlash({ cells: copy.cells, sectorSize: 4096 }));
        const old =
          after.version === 1 && after.check(token(1)) === 'stolen' && after.check(token(2)) === 'stolen';
        const updated =
          after.version > 1 &&
          after.check(token(1)) === undefined &&
          (after.check(token(3)) === 'stolen' || after.check(token(5)) === 'stolen');
        assert.ok(
          old || updated,
          `cut ${cut}: version ${after.version}, the old list or the new, never a mix`,
        );
        assert.equal(after.size, after.version === 1 ? 2 : after.version === 2 ? 2 : 1);
      }
      assert.ok(cuts > 10, 'the power went mid-write in several runs');
    }
  });

  it('reads a list stored before versions as version 0', () => {
    const f = flash();
    const old = new SlotStore(f, 0x504c4231); // the unit's slot magic
    old.save([[token(1), 'bad debt']]);
    const again = linked(f);
    assert.deepEqual([again.unit.version, again.unit.check(token(1))], [0, 'bad debt']);
    again.unit.applyDownlink(delta(0, 1, [2]));
    assert.deepEqual([again.unit.check(token(1)), again.unit.check(token(2))], ['bad debt', 'stolen']);
  });
});
