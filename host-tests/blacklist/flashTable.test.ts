// The meter's blacklist as a sorted table on a 256 KiB partition (the board's, partitions.csv):
// thousands of cards, lookups reading only the entries a binary search probes, deltas merged into
// the other slot, full-list pages staged in any order, refusals, power cuts at every stage, and the
// conversion of a list in the former one-sector format.
import assert from 'node:assert/strict';
import type { NorFlash } from '../../hal/flash';
import { BlacklistUnit } from '../../firmware/units/blacklist';
import { SlotStore } from '../../firmware/units/slotStore';
import { PowerLoss, VirtualNorFlash } from '../../hal/mock/flash';
import {
  BLACKLIST_PAGE_ENTRIES,
  BlacklistError,
  blacklistPages,
  decodeBlacklistPush,
  encodeBlacklistPush,
  reasonCode,
} from '../../protocol/blacklist';

const PARTITION = 0x40000;
const stolen = reasonCode('stolen');
const badDebt = reasonCode('bad-debt');
/** Distinct pseudo-random tokens (not in order). */
const token = (n: number) => {
  const t = new Uint8Array(16);
  let x = (n + 1) * 2654435761;
  for (let i = 0; i < 16; i++) {
    x = (x ^ (x >>> 13)) * 1274126177;
    t[i] = (x >>> 8) & 0xff;
  }
  t[15] = n & 0xff;
  t[14] = (n >>> 8) & 0xff;
  return t;
};
const big = (cells?: Uint8Array) => new VirtualNorFlash({ byteLength: PARTITION, sectorSize: 4096, cells });
const list = (from: number, count: number, reason = stolen) =>
  Array.from({ length: count }, (_, i) => ({ token: token(from + i), reason }));

/** Counts reads and the bytes they return. */
class CountingFlash implements NorFlash {
  reads = 0;
  largestRead = 0;
  constructor(readonly inner: VirtualNorFlash) {}
  get byteLength() {
    return this.inner.byteLength;
  }
  get sectorSize() {
    return this.inner.sectorSize;
  }
  read(offset: number, byteLength: number) {
    this.reads++;
    this.largestRead = Math.max(this.largestRead, byteLength);
    return this.inner.read(offset, byteLength);
  }
  write(offset: number, data: Uint8Array) {
    this.inner.write(offset, data);
  }
  eraseSector(sector: number) {
    this.inner.eraseSector(sector);
  }
}

function fullList(unit: BlacklistUnit, version: number, entries: { token: Uint8Array; reason: number }[]) {
  const pages = blacklistPages(version, entries).reverse();
  let changed = false;
  for (const page of pages) changed = unit.apply(page);
  return changed;
}

describe('blacklist table on a 256 KiB partition', function () {
  this.timeout(120_000);
  let seven: Uint8Array;

  before(() => {
    const f = big();
    const unit = new BlacklistUnit(f);
    assert.ok(fullList(unit, 10, list(0, 7000)));
    seven = f.cells.slice();
  });

  it('holds 7,680 cards a slot and 7,000 from a full list whose pages came last to first', () => {
    const unit = new BlacklistUnit(big(seven.slice()));
    assert.equal(unit.capacity, 7680);
    assert.deepEqual([unit.version, unit.size], [10, 7000]);
    for (const n of [0, 1, 3499, 6999]) assert.equal(unit.check(token(n)), 'stolen', `card ${n}`);
    assert.equal(unit.check(token(7000)), undefined);
  });

  it('looks a card up with at most 13 reads of one 17-byte entry each, listed or not', () => {
    const counting = new CountingFlash(big(seven.slice()));
    const unit = new BlacklistUnit(counting);
    for (const n of [0, 17, 2500, 6999, 7001, 9000]) {
      counting.reads = 0;
      counting.largestRead = 0;
      unit.check(token(n));
      assert.ok(counting.reads >= 1 && counting.reads <= 13, `card ${n}: ${counting.reads} reads`);
      assert.equal(counting.largestRead, 17);
    }
  });

  it('merges a 48-entry delta (adds, removes, a reason changed) into the other slot', () => {
    const f = big(seven.slice());
    const unit = new BlacklistUnit(f);
    const generation = unit.generation;
    const add = [...list(8000, 40), { token: token(5), reason: badDebt }];
    const remove = [0, 1, 2, 3, 4, 6, 7].map(token);
    assert.equal(add.length + remove.length, BLACKLIST_PAGE_ENTRIES);
    assert.ok(unit.apply({ kind: 'delta', version: 11, base: 10, add, remove }));
    const again = new BlacklistUnit(big(f.cells));
    assert.deepEqual([again.version, again.size, again.generation], [11, 7033, generation + 1]);
    assert.deepEqual(
      [again.check(token(0)), again.check(token(5)), again.check(token(8039)), again.check(token(6999))],
      [undefined, 'bad-debt', 'stolen', 'stolen'],
    );
  });

  it("refuses a delta past the slot ('too-large') and a full list past it, the held list untouched", () => {
    const f = big();
    const unit = new BlacklistUnit(f);
    assert.ok(fullList(unit, 3, list(0, 7680 - 1)));
    const delta = { kind: 'delta' as const, version: 4, base: 3, add: list(9000, 2), remove: [] };
    assert.throws(
      () => unit.apply(delta),
      (e: unknown) => e instanceof BlacklistError && e.code === 'too-large',
    );
    assert.throws(
      () => fullList(unit, 5, list(20000, 7681)),
      (e: unknown) => e instanceof BlacklistError && e.code === 'too-large',
    );
    const again = new BlacklistUnit(big(f.cells));
    assert.deepEqual([again.version, again.size, again.check(token(7678))], [3, 7679, 'stolen']);
  });

  it("refuses a page out of token order or short before the last ('malformed')", () => {
    const unit = new BlacklistUnit(big());
    const pages = blacklistPages(2, list(0, 100));
    const page0 = pages[0];
    if (page0.kind !== 'page') return;
    const reversed = { ...page0, entries: [...page0.entries].reverse() };
    const short = { ...page0, entries: page0.entries.slice(1) };
    for (const bad of [reversed, short])
      assert.throws(
        () => unit.apply(bad),
        (e: unknown) => e instanceof BlacklistError && e.code === 'malformed',
      );
    assert.deepEqual([unit.version, unit.size], [0, 0]);
  });

  it('sorts a full list by token in pages, every page but the last full, a token twice kept once', () => {
    const entries = [...list(0, 100), { token: token(3), reason: badDebt }];
    const pages = blacklistPages(1, entries);
    const all = pages.flatMap((p) => (p.kind === 'page' ? p.entries : []));
    assert.equal(all.length, 100);
    assert.equal(all.find((e) => e.token[15] === 3 && e.token[14] === 0)?.reason, badDebt);
    for (let i = 1; i < all.length; i++) assert.ok(Buffer.compare(all[i - 1].token, all[i].token) < 0);
    const decoded = decodeBlacklistPush(encodeBlacklistPush(pages[0]));
    assert.equal(decoded.kind === 'page' && decoded.entries.length, BLACKLIST_PAGE_ENTRIES);
  });

  it('keeps the old list or the new one, whole, when the power goes during a delta or a full list of thousands', () => {
    const pushes: (() => ReturnType<typeof blacklistPages>)[] = [
      () => [{ kind: 'delta', version: 11, base: 10, add: list(8000, 47), remove: [token(0)] }],
      () => blacklistPages(12, list(3000, 6000)).reverse(),
    ];
    for (const push of pushes) {
      let cuts = 0;
      let updates = 0;
      // The bytes a whole apply programs and erases, to cut through its last writes byte by byte.
      const whole = big(seven.slice());
      const wholeUnit = new BlacklistUnit(whole);
      const programmed = whole.bytesProgrammed;
      const erased = whole.eraseCounts.reduce((a, b) => a + b, 0);
      for (const p of push()) wholeUnit.apply(p);
      const spent =
        whole.bytesProgrammed - programmed + (whole.eraseCounts.reduce((a, b) => a + b, 0) - erased) * 4096;
      const cutsAt: number[] = [];
      for (let cut = 0; cut < spent; cut += 8_191) cutsAt.push(cut);
      for (let cut = spent - 40; cut <= spent; cut++) cutsAt.push(cut);
      for (const cut of cutsAt) {
        const copy = big(seven.slice());
        const unit = new BlacklistUnit(copy);
        copy.cutPowerAfter(cut);
        try {
          for (const p of push()) unit.apply(p);
        } catch (error) {
          assert.ok(error instanceof PowerLoss, `cut ${cut}: ${(error as Error).message}`);
          cuts++;
        }
        copy.restorePower();
        const after = new BlacklistUnit(big(copy.cells));
        if (after.version === 10) {
          assert.deepEqual(
            [after.size, after.check(token(0)), after.check(token(8000))],
            [7000, 'stolen', undefined],
          );
        } else if (after.version === 11) {
          updates++;
          assert.deepEqual(
            [after.size, after.check(token(0)), after.check(token(8046))],
            [7046, undefined, 'stolen'],
          );
        } else {
          updates++;
          assert.equal(after.version, 12, `cut ${cut}`);
          assert.deepEqual(
            [after.size, after.check(token(2999)), after.check(token(8999))],
            [6000, undefined, 'stolen'],
          );
        }
      }
      assert.ok(cuts > 10 && updates > 0, `${cuts} runs cut mid-write, ${updates} committed`);
    }
  });

  it('converts a list in the former one-sector format (numbers tokenised, then erased), power cut or not', () => {
    const number = '6703123412341234';
    const tokenise = (cardNumber: string) => ({
      token: token(Number(cardNumber.slice(-4))),
      last4: cardNumber.slice(-4),
    });
    const holds = (cells: Uint8Array) => Buffer.from(cells).includes(Buffer.from(number));
    for (const size of [PARTITION, 2 * 4096]) {
      const former = new VirtualNorFlash({ byteLength: size, sectorSize: 4096 });
      const store = new SlotStore(former, 0x504c4231);
      store.save({
        v: 6,
        e: [
          [number, 'bad debt'],
          [token(9), 2],
        ],
      });
      store.save({
        v: 7,
        e: [
          [number, 'bad debt'],
          [token(9), 2],
          [token(10), 1],
        ],
      });
      let cuts = 0;
      for (let cut = 0; cut < 2 * 4096 + 200; cut += 211) {
        const copy = new VirtualNorFlash({ cells: former.cells.slice(), sectorSize: 4096 });
        copy.cutPowerAfter(cut);
        try {
          new BlacklistUnit(copy, tokenise);
        } catch (error) {
          assert.ok(error instanceof PowerLoss);
          cuts++;
        }
        copy.restorePower();
        const after = new BlacklistUnit(
          new VirtualNorFlash({ cells: copy.cells, sectorSize: 4096 }),
          tokenise,
        );
        assert.deepEqual(
          [
            after.version,
            after.size,
            after.check(token(1234)),
            after.check(token(9)),
            after.check(token(10)),
          ],
          [7, 3, 'bad debt', 'stolen', 'bad-debt'],
          `${size} bytes, cut ${cut}`,
        );
        assert.equal(holds(copy.cells), false, `${size} bytes, cut ${cut}: the number left the flash`);
      }
      assert.ok(cuts > 5);
    }
  });

  it('refuses a local reason code outside 1 to 127 with a RangeError, nothing changed', () => {
    const unit = new BlacklistUnit(big());
    unit.replace([{ token: token(1), reason: 'reported stolen' }]);
    assert.throws(() => unit.replace([{ token: token(2), reason: 200 }]), RangeError);
    assert.deepEqual([unit.size, unit.check(token(1))], [1, 'reported stolen']);
  });
});
