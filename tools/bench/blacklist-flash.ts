// The meter's blacklist as a sorted table on flash (firmware/units/blacklistTable.ts) on the
// board's 256 KiB partition, virtual flash: lookup time and flash reads per lookup for N cards,
// apply time of a 48-entry delta and of a full list (pages arriving last to first), the flash
// bytes each writes, and the peak live JS heap above the settled heap during each apply (a forced GC
// then a sample at every flash write and erase; the applies are timed in a second run without the
// sampling, so the GCs are not in the times). Virtual flash runs at memory speed: the times are the firmware's
// own work under Node, not an ESP32's SPI flash.
//
//   npm run bench -- blacklist-flash [--cards=7000] [--lookups=20000]
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { BlacklistUnit } from '../../firmware/units/blacklist';
import type { NorFlash } from '../../hal/flash';
import { VirtualNorFlash } from '../../hal/mock/flash';
import { BLACKLIST_PAGE_ENTRIES, blacklistPages, reasonCode } from '../../protocol/blacklist';

export const description = 'blacklist table on flash: lookups, delta and full-list applies, peak heap';

function option(args: string[], name: string, fallback: number): number {
  const found = args.find((a) => a.startsWith(`--${name}=`));
  return found ? Number(found.split('=')[1]) : fallback;
}

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Counts flash calls and samples the heap at each. */
class Metered implements NorFlash {
  reads = 0;
  readBytes = 0;
  writtenBytes = 0;
  erases = 0;
  peakHeap = 0;
  sampling = false;
  /** Resets the unit to the flash restored between the sampled run and the timed one. */
  constructor(readonly inner: VirtualNorFlash) {}
  get byteLength() {
    return this.inner.byteLength;
  }
  get sectorSize() {
    return this.inner.sectorSize;
  }
  /** The live heap (after a GC) at each flash write and erase: what the apply keeps, not its garbage. */
  #sample() {
    if (!this.sampling) return;
    gc();
    const used = process.memoryUsage().heapUsed;
    if (used > this.peakHeap) this.peakHeap = used;
  }
  read(offset: number, byteLength: number) {
    this.reads++;
    this.readBytes += byteLength;
    return this.inner.read(offset, byteLength);
  }
  write(offset: number, data: Uint8Array) {
    this.#sample();
    this.writtenBytes += data.length;
    this.inner.write(offset, data);
  }
  eraseSector(sector: number) {
    this.#sample();
    this.erases++;
    this.inner.eraseSector(sector);
  }
  reset() {
    this.reads = this.readBytes = this.writtenBytes = this.erases = 0;
  }
}

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

/** Applies on a fresh unit from the same flash three times: warm-up, sampled (reads, writes, heap), timed. */
function measure(flash: Metered, what: string, apply: (unit: BlacklistUnit) => void): BlacklistUnit {
  const snapshot = flash.inner.cells.slice();
  apply(new BlacklistUnit(flash)); // warm-up: the code's first run allocates compiled code and feedback
  flash.inner.cells.set(snapshot);
  // V8's heap figure moves with compilation and tiering: three sampled runs, the least and most.
  const peaks: number[] = [];
  for (let run = 0; run < 3; run++) {
    flash.inner.cells.set(snapshot);
    const sampled = new BlacklistUnit(flash);
    gc();
    const settled = process.memoryUsage().heapUsed;
    flash.peakHeap = settled;
    flash.reset();
    flash.sampling = true;
    apply(sampled);
    flash.sampling = false;
    peaks.push((flash.peakHeap - settled) / 1024);
  }
  const counts = { ...flash };
  flash.inner.cells.set(snapshot);
  const unit = new BlacklistUnit(flash);
  const started = performance.now();
  apply(unit);
  const ms = performance.now() - started;
  console.log(
    `${what}: ${ms.toFixed(1)} ms; flash ${counts.reads} reads (${(counts.readBytes / 1024).toFixed(0)} KiB), ` +
      `${(counts.writtenBytes / 1024).toFixed(0)} KiB written, ${counts.erases} sectors erased; ` +
      `peak live heap above the settled heap ${Math.min(...peaks).toFixed(0)}–${Math.max(...peaks).toFixed(0)} KiB`,
  );
  return unit;
}

export function run(args: string[]): void {
  const cards = option(args, 'cards', 7000);
  const lookups = option(args, 'lookups', 20_000);
  const stolen = reasonCode('stolen');
  const flash = new Metered(new VirtualNorFlash({ byteLength: 0x40000, sectorSize: 4096 }));
  console.log(
    `partition 256 KiB, two slots of 128 KiB: ${new BlacklistUnit(flash).capacity} cards a slot; list of ${cards} cards`,
  );

  const entries = Array.from({ length: cards }, (_, i) => ({ token: token(i), reason: stolen }));
  const pages = blacklistPages(1, entries).reverse();
  console.log(
    `full list: ${pages.length} pages of up to ${BLACKLIST_PAGE_ENTRIES} entries, applied last page first`,
  );
  let unit = measure(flash, `full list of ${cards}`, (u) => {
    for (const page of pages) u.apply(page);
  });
  if (unit.size !== cards) throw new Error(`held ${unit.size} cards, not ${cards}`);

  const add = Array.from({ length: 40 }, (_, i) => ({ token: token(cards + 1000 + i), reason: stolen }));
  const remove = Array.from({ length: 8 }, (_, i) => token(i * 97));
  unit = measure(flash, 'delta of 48 (40 adds, 8 removes)', (u) => {
    u.apply({ kind: 'delta', version: 2, base: 1, add, remove });
  });

  const probes = Array.from({ length: lookups }, (_, i) =>
    token(i % 2 === 0 ? (i * 7) % cards : cards + 5000 + i),
  );
  const beforeReads = unit.lookupReads;
  let listed = 0;
  const started = performance.now();
  for (const probe of probes) if (unit.check(probe) !== undefined) listed++;
  const ms = performance.now() - started;
  const reads = (unit.lookupReads - beforeReads) / lookups;
  console.log(
    `lookup among ${unit.size} cards: ${((ms * 1000) / lookups).toFixed(2)} µs each over ${lookups} ` +
      `(${listed} listed); ${reads.toFixed(2)} flash reads of 17 bytes each on average ` +
      `(binary search bound ${Math.ceil(Math.log2(unit.size + 1))})`,
  );
  gc();
  const before = process.memoryUsage().heapUsed;
  const asMap = new Map(entries.map((e) => [Buffer.from(e.token).toString('hex'), e.reason]));
  gc();
  console.log(
    `for comparison, the same ${asMap.size} cards held as a Map of hex tokens (the former design): ` +
      `${((process.memoryUsage().heapUsed - before) / 1024).toFixed(0)} KiB of heap`,
  );
  const start = performance.now();
  const reloaded = new BlacklistUnit(flash);
  console.log(
    `start (both headers, CRC of the slot in force read back): ${(performance.now() - start).toFixed(1)} ms, ${reloaded.size} cards`,
  );
}
