// Flash wear of the record store: one million transaction records through a 1 MB
// partition of 4 KB sectors, the platform acknowledging as it goes, so sectors rotate. Prints the
// erase count of every sector (min, mean, max, spread) and the projected lifetime at 500
// transactions a day against 100,000 erase cycles per sector. The backup partition sees the same
// writes (it is written in step), so its figures are the same.
//
//   npm run bench -- wear [--records=1000000] [--perDay=500]
import { RecordLog } from '../../firmware/units/storage';
import { VirtualNorFlash } from '../../hal/mock/flash';
import { encodeRecord, RecordKind } from '../../protocol/records';

export const description = 'erase counts per sector and projected lifetime: 1,000,000 records through 1 MB';

const CYCLES = 100_000;

function option(args: string[], name: string, fallback: number): number {
  const found = args.find((a) => a.startsWith(`--${name}=`));
  return found ? Number(found.split('=')[1]) : fallback;
}

export function run(args: string[]): void {
  const total = option(args, 'records', 1_000_000);
  const perDay = option(args, 'perDay', 500);
  const flash = new VirtualNorFlash({ byteLength: 1024 * 1024, sectorSize: 4096 });
  const log = new RecordLog(flash);
  const link = new Uint8Array(32).fill(0xa5);
  let acked = 0;
  let bytes = 0;
  const started = performance.now();
  for (let seq = 1; seq <= total; seq++) {
    const time = 1_772_440_200 + seq * 120;
    const record = encodeRecord({
      kind: RecordKind.Transaction,
      seq,
      time,
      meterId: 1001,
      data: {
        transactionNumber: seq,
        card: { token: new Uint8Array(16).fill(0x17), last4: '0017' },
        cardExpiry: '2812',
        cardType: 1 + (seq % 3),
        bayId: 1 + (seq % 4),
        minutes: 60,
        paidFrom: time,
        paidUntil: time + 3600,
        charge: 240,
        currency: 826,
        remainingValue: 19_760 - (seq % 10_000),
      },
    });
    bytes += record.length;
    log.append(seq, link, record, acked + 1);
    // The platform acknowledges in sets of 20, one set behind (an upload in flight).
    if (seq % 20 === 0) acked = Math.max(0, seq - 20);
  }
  const seconds = (performance.now() - started) / 1000;
  const counts = Array.from(flash.eraseCounts);
  const min = Math.min(...counts);
  const max = Math.max(...counts);
  const mean = counts.reduce((a, b) => a + b, 0) / counts.length;
  const meanRecord = bytes / total;
  console.log(
    `${total.toLocaleString('en')} records (${meanRecord.toFixed(0)} bytes each + 45 of framing) through ` +
      `${counts.length} sectors of 4 KB in ${seconds.toFixed(1)} s`,
  );
  console.log(
    `erases per sector: min ${min}, mean ${mean.toFixed(1)}, max ${max} (max/mean ${(max / mean).toFixed(3)})`,
  );
  const rows: string[] = [];
  for (let i = 0; i < counts.length; i += 16) rows.push(counts.slice(i, i + 16).join(' '));
  console.log(`erase count by sector (16 a row):\n  ${rows.join('\n  ')}`);
  const erasesPerRecord = max / total; // per sector, worst sector
  const days = CYCLES / (erasesPerRecord * perDay);
  console.log(
    `projected lifetime at ${perDay} transactions/day: ${Math.round(days).toLocaleString('en')} days ` +
      `(${(days / 365.25).toFixed(0)} years) before the most-erased sector reaches ${CYCLES.toLocaleString('en')} cycles`,
  );
  // The upload backup erases one slot (sector) per set; worst case one set per transaction, in
  // rotation over the device's 256 KB upload partition (64 sectors).
  const uploadDays = CYCLES / (perDay / 64);
  console.log(
    `upload backup, worst case one set per transaction over 64 slots: ${(uploadDays / 365.25).toFixed(0)} years`,
  );
  // The device's records partition is 512 KB (partitions.csv): half the sectors, twice the rate.
  console.log(`same load on the device's 512 KB records partition: ${(days / 2 / 365.25).toFixed(0)} years`);
}
