// Bundled by blacklist.test.ts and run under XS: the meter's blacklist unit takes a delta, a paged
// full list, a delta for the wrong base and a malformed body off the bus, answering each with 0x0A.
import '../../firmware/setup/text';
import { EventBus } from '../../firmware/bus';
import type { MeterEvents } from '../../firmware/events';
import { BlacklistUnit } from '../../firmware/units/blacklist';
import { VirtualNorFlash } from '../../hal/mock/flash';
import {
  BLACKLIST_DOWNLINK,
  blacklistPages,
  decodeBlacklistAck,
  encodeBlacklistPush,
  reasonCode,
} from '../../protocol/blacklist';
import { run, send } from '../../sim/xs/guest';

const token = (n: number) => Uint8Array.from({ length: 16 }, (_, i) => (n * 31 + i * 7) & 0xff);
/** Distinct for n below 65,536 (token's bytes repeat every 256). */
const wide = (n: number) => {
  const t = token(n);
  t[14] = n >>> 8;
  t[15] = n & 0xff;
  return t;
};

run(() => {
  const flash = new VirtualNorFlash({ byteLength: 2 * 4096, sectorSize: 4096 });
  const bus = new EventBus<MeterEvents>();
  const acks: unknown[] = [];
  const unit = new BlacklistUnit(flash, undefined, {
    bus,
    send: (type, body) => {
      acks.push({ type, ...decodeBlacklistAck(body) });
      return true;
    },
  });
  const down = (body: Uint8Array) => bus.emit('downlink', { type: BLACKLIST_DOWNLINK, seq: 0, body });
  const stolen = reasonCode('stolen');
  down(
    encodeBlacklistPush({
      kind: 'delta',
      version: 1,
      base: 0,
      add: [{ token: token(1), reason: stolen }],
      remove: [],
    }),
  );
  const afterDelta = unit.check(token(1));
  const entries = Array.from({ length: 60 }, (_, i) => ({ token: token(i + 100), reason: stolen }));
  for (const page of blacklistPages(5, entries)) down(encodeBlacklistPush(page));
  down(encodeBlacklistPush({ kind: 'delta', version: 9, base: 8, add: [], remove: [token(100)] }));
  down(Uint8Array.of(0xa1, 0x61));
  const reloaded = new BlacklistUnit(flash);
  // The board's 256 KiB partition: a table over several sectors, pages last to first, then a delta.
  const board = new VirtualNorFlash({ byteLength: 0x40000, sectorSize: 4096 });
  const table = new BlacklistUnit(board);
  const many = Array.from({ length: 1000 }, (_, i) => ({ token: wide(i + 2000), reason: stolen }));
  for (const page of blacklistPages(3, many).reverse()) table.apply(page);
  table.apply({
    kind: 'delta',
    version: 4,
    base: 3,
    add: [{ token: wide(5000), reason: stolen }],
    remove: [wide(2000)],
  });
  const tableReloaded = new BlacklistUnit(board);
  send({
    table: [
      tableReloaded.version,
      tableReloaded.size,
      tableReloaded.check(wide(2999)) ?? null,
      tableReloaded.check(wide(5000)) ?? null,
      tableReloaded.check(wide(2000)) ?? null,
    ],
    test: 'blacklist',
    afterDelta,
    acks,
    size: unit.size,
    version: unit.version,
    removed: unit.check(token(1)) === undefined,
    reloaded: [reloaded.version, reloaded.size, reloaded.check(token(159)) ?? null],
  });
});
