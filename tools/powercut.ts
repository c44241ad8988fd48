// Power-cut test of storage: cuts power at a random byte while the meter appends a record
// (main store), writes its backup copy, copies an upload set to the upload backup, handles an ack,
// or erases a sector; reboots on the same flash and preferences and checks every invariant:
//
//   - every record whose append returned (or that the platform acknowledged) is still held by the
//     meter with the same bytes, or by the platform ("acknowledged lost" counts the ones that are not);
//   - no sequence number is ever used for two different records, and the platform holds each
//     (meter, seq) once ("duplicates");
//   - after boot the main store and the backup hold the same unacknowledged records, the chain
//     verifies, and the meter's acknowledged point never passes what the platform holds.
//
// "recovered" counts the boots that found and repaired something (a torn write rolled back, the
// backup caught up, an ack carried over from the upload backup, a store restored).
//
//   npm run test:powercut -- --seed 2026 --cuts 100000
//
// prints `cuts N, acknowledged lost 0, duplicates 0, recovered R` and exits 1 on any violation.
// The real firmware units run here: RecordStore, MainRecord, CommsUnit, SecurityUnit; the platform
// side is played with the protocol functions (open, verify the chain, store once, ack).
import { EventBus } from '../firmware/bus';
import type { MeterEvents } from '../firmware/events';
import { CommsUnit } from '../firmware/units/comms';
import { MainRecord, ServiceUnavailableError } from '../firmware/units/records';
import { SecurityUnit } from '../firmware/units/security';
import { RecordStore, StorageFullError } from '../firmware/units/storage';
import type { NorFlash } from '../hal/flash';
import { VirtualClock } from '../hal/mock/clock';
import { PowerLoss, VirtualNorFlash } from '../hal/mock/flash';
import { MemoryPreferences } from '../hal/mock/preferences';
import { SeededRandom } from '../hal/mock/random';
import { RecordingMqttLink } from '../hal/mock/mqtt';
import { nobleCrypto as crypto } from '../hal/nobleCrypto';
import { bytesEqual } from '../protocol/bytes';
import { chainLink, genesisHash } from '../protocol/chain';
import { FRAME_VERSION, FrameType, openFrame, sealFrame } from '../protocol/frame';
import { deriveMeterKeys } from '../protocol/keys';
import { decodeRecordsMessage, encodeAckMessage } from '../protocol/messages';
import { encodeRecord } from '../protocol/records';
import type { PreferenceValue } from '../hal/preferences';

export type CutTarget = 'append' | 'backup' | 'upload-copy' | 'ack' | 'erase';
export const CUT_TARGETS: readonly CutTarget[] = ['append', 'backup', 'upload-copy', 'ack', 'erase'];
type Phase = 'append' | 'upload' | 'ack' | 'other';

export interface PowerCutOptions {
  seed: number;
  cuts: number;
  sectorSize?: number;
  sectors?: number;
  /** Called with each violation as it is found. */
  onViolation?: (message: string) => void;
}

export interface PowerCutResult {
  cuts: number;
  acknowledgedLost: number;
  duplicates: number;
  recovered: number;
  /** Other broken invariants (stores out of step, chain broken, ack beyond the platform...). */
  violations: number;
  cutsByTarget: Record<CutTarget, number>;
  records: number;
  acknowledged: number;
}

/** Decides where power fails: after `budget` more bytes of the targeted kind of flash operation. */
class PowerSwitch {
  phase: Phase = 'other';
  target: CutTarget | undefined;
  budget = 0;
  dead = false;

  matches(partition: 'records' | 'backup' | 'upload', erase: boolean): boolean {
    switch (this.target) {
      case 'append':
        return this.phase === 'append' && partition === 'records' && !erase;
      case 'backup':
        return this.phase === 'append' && partition === 'backup' && !erase;
      case 'erase':
        return erase && partition !== 'upload';
      case 'upload-copy':
        return this.phase === 'upload' && partition === 'upload';
      case 'ack':
        return this.phase === 'ack';
      default:
        return false;
    }
  }
}

/** A partition whose power can fail at any byte of the targeted operations. */
class CuttableFlash implements NorFlash {
  readonly byteLength: number;
  readonly sectorSize: number;

  constructor(
    readonly inner: VirtualNorFlash,
    readonly partition: 'records' | 'backup' | 'upload',
    readonly power: PowerSwitch,
  ) {
    this.byteLength = inner.byteLength;
    this.sectorSize = inner.sectorSize;
  }

  read(offset: number, byteLength: number): Uint8Array {
    if (this.power.dead) throw new PowerLoss();
    return this.inner.read(offset, byteLength);
  }

  write(offset: number, data: Uint8Array): void {
    this.#spend(data.length, false, () => this.inner.write(offset, data));
  }

  eraseSector(sector: number): void {
    this.#spend(this.sectorSize, true, () => this.inner.eraseSector(sector));
  }

  #spend(bytes: number, erase: boolean, op: () => void): void {
    const power = this.power;
    if (power.dead) throw new PowerLoss();
    if (!power.matches(this.partition, erase) || power.budget >= bytes) {
      if (power.matches(this.partition, erase)) power.budget -= bytes;
      op();
      return;
    }
    this.inner.cutPowerAfter(power.budget);
    power.dead = true;
    try {
      op();
    } finally {
      this.inner.restorePower();
    }
    throw new PowerLoss(); // (op threw already; this is for a zero-length remainder)
  }
}

const METER_ID = 4242;

export function runPowerCuts(options: PowerCutOptions): PowerCutResult {
  const random = new SeededRandom(options.seed);
  const int = (n: number) => Math.floor(random.nextFloat() * n);
  const sectorSize = options.sectorSize ?? 2048;
  const sectors = options.sectors ?? 8;
  const keys = deriveMeterKeys(crypto, new Uint8Array(32).fill(0x42), METER_ID, 1);
  const cells = {
    records: new Uint8Array(sectorSize * sectors).fill(0xff),
    backup: new Uint8Array(sectorSize * sectors).fill(0xff),
    upload: new Uint8Array(sectorSize * 4).fill(0xff),
  };
  const entries = new Map<string, PreferenceValue>();
  SecurityUnit.provision(new MemoryPreferences(entries), keys);
  const clock = new VirtualClock('2026-03-02T07:00:00Z');

  // The truth, kept outside the meter.
  const committed = new Map<number, Uint8Array>();
  const platform = new Map<number, { bytes: Uint8Array; link: Uint8Array }>();
  let platformDownSeq = 0;
  let platformFrameSeq = 0;
  let checkedAck = 0;
  let platformHigh = 0;

  const result: PowerCutResult = {
    cuts: 0,
    acknowledgedLost: 0,
    duplicates: 0,
    recovered: 0,
    violations: 0,
    cutsByTarget: { append: 0, backup: 0, 'upload-copy': 0, ack: 0, erase: 0 },
    records: 0,
    acknowledged: 0,
  };
  const violation = (kind: 'lost' | 'duplicate' | 'other', message: string) => {
    if (kind === 'lost') result.acknowledgedLost++;
    else if (kind === 'duplicate') result.duplicates++;
    else result.violations++;
    options.onViolation?.(message);
  };

  for (let round = 0; round < options.cuts; round++) {
    const power = new PowerSwitch();
    const flash = (name: 'records' | 'backup' | 'upload') =>
      new CuttableFlash(new VirtualNorFlash({ cells: cells[name], sectorSize }), name, power);
    const preferences = new MemoryPreferences(entries);

    // ---- Boot and check every invariant -------------------------------------------------------
    const store = new RecordStore({
      records: flash('records'),
      backup: flash('backup'),
      upload: flash('upload'),
      preferences,
      crypto,
    });
    if (store.report.findings.length > 0) result.recovered++;
    const bus = new EventBus<MeterEvents>();
    const records = new MainRecord({
      log: store,
      ledger: store.ledger,
      crypto,
      clock,
      meterId: METER_ID,
      bus,
      // The oracle: a record is committed once its append returns (onAppended runs just before).
      onAppended: (record) => {
        if (committed.has(record.seq)) violation('duplicate', `round ${round}: seq ${record.seq} used twice`);
        committed.set(record.seq, encodeRecord(record));
      },
    });
    const where = `round ${round} (seed ${options.seed})`;
    try {
      records.verifyChain();
    } catch (error) {
      violation('other', `${where}: ${(error as Error).message}`);
    }
    const maxCommitted = committed.size ? Math.max(...committed.keys()) : 0;
    // The append the cut interrupted may have completed: then it counts as committed from now on.
    for (const r of store.read(maxCommitted + 1)) {
      if (r.seq !== maxCommitted + 1) violation('other', `${where}: record ${r.seq} appeared from nowhere`);
      else committed.set(r.seq, r.bytes);
    }
    if (store.lastSeq < maxCommitted)
      violation(
        'duplicate',
        `${where}: last seq ${store.lastSeq} below committed ${maxCommitted}: reuse ahead`,
      );
    const acked = store.ledger.acknowledgedSeq;
    for (const [seq, bytes] of committed) {
      const held = seq >= store.firstSeq ? store.main.read(seq, seq)[0] : undefined;
      const atPlatform = platform.get(seq);
      if (held && !bytesEqual(held.bytes, bytes)) violation('duplicate', `${where}: record ${seq} changed`);
      if (!held && !(atPlatform && bytesEqual(atPlatform.bytes, bytes)))
        violation('lost', `${where}: committed record ${seq} is gone`);
      if (seq > acked && !store.backup.has(seq))
        violation('other', `${where}: unacknowledged record ${seq} not in the backup`);
    }
    for (let seq = checkedAck + 1; seq <= acked; seq++) {
      if (!platform.has(seq))
        violation('other', `${where}: meter holds an ack for ${seq} the platform lacks`);
    }
    checkedAck = Math.max(checkedAck, acked);
    if (round % 50 === 0) {
      // Bound memory and time: what is long acknowledged and checked is forgotten on both sides.
      for (const seq of committed.keys()) if (seq <= acked - 200) committed.delete(seq);
      for (const seq of platform.keys())
        if (seq <= acked - 200 && seq < store.firstSeq - 1) platform.delete(seq);
    }

    // ---- Run until the power fails ------------------------------------------------------------
    const security = new SecurityUnit({ preferences, crypto, meterId: METER_ID });
    const radio = new RecordingMqttLink();
    const sent = radio.sent;

    const comms = new CommsUnit({
      link: radio,
      security,
      log: store,
      ledger: store.ledger,
      crypto,
      clock,
      timers: clock,
      bus,
      maxSetBytes: 600,
      ackTimeoutMs: 1000,
    });
    const target = CUT_TARGETS[int(CUT_TARGETS.length)];
    const warmup = int(12);
    let steps = 0;
    const arm = () => {
      power.target = target;
      power.budget =
        target === 'erase'
          ? int(sectorSize)
          : target === 'upload-copy'
            ? int(700)
            : target === 'ack'
              ? int(40)
              : int(140);
    };
    try {
      power.phase = 'upload';
      comms.start();
      while (!power.dead && steps < 2000) {
        if (steps === warmup) arm();
        steps++;
        const choice = random.nextFloat();
        if (choice < 0.6) {
          power.phase = 'append';
          try {
            choice < 0.45
              ? records.appendTransaction({
                  transactionNumber: steps,
                  card: { token: new Uint8Array(16).fill(0x17), last4: '0017' },
                  cardExpiry: '2812',
                  cardType: 1 + (steps % 3),
                  bayId: 1 + (steps % 4),
                  minutes: 15 * (1 + (steps % 8)),
                  paidFrom: 1_772_434_800 + steps * 60,
                  paidUntil: 1_772_434_800 + steps * 60 + 900,
                  charge: 60 * (1 + (steps % 8)),
                  currency: 826,
                  remainingValue: 10_000 - steps,
                })
              : records.appendOperation('soak', `step ${steps}`.repeat(1 + (steps % 4)));
          } catch (error) {
            if (!(error instanceof ServiceUnavailableError || error instanceof StorageFullError)) throw error;
          }
        } else if (choice < 0.85) {
          power.phase = 'upload';
          comms.flush();
        } else {
          // The platform answers what was sent: stores each seq once, then (usually) acks.
          const frames = sent.splice(0);
          for (const frame of frames) {
            const up = openFrame(crypto, keys.uplink, frame);
            if (up.header.seq <= platformFrameSeq) {
              violation('other', `${where}: uplink frame sequence ${up.header.seq} reused`);
              continue;
            }
            platformFrameSeq = up.header.seq;
            const message = decodeRecordsMessage(up.body);
            let link = message.previous;
            const firstSeq = seqOf(message.records[0]);
            const before = firstSeq === 1 ? genesisHash(crypto, METER_ID) : platform.get(firstSeq - 1)?.link;
            if (before && !bytesEqual(before, link)) {
              violation('other', `${where}: set ${firstSeq} does not follow the platform's chain`);
              continue;
            }
            message.records.forEach((bytes, i) => {
              link = chainLink(crypto, link, bytes);
              const seq = firstSeq + i;
              const held = platform.get(seq);
              if (held && !bytesEqual(held.bytes, bytes))
                violation('duplicate', `${where}: seq ${seq} conflicts`);
              if (!held && seq > checkedAck - 200) platform.set(seq, { bytes, link });
              platformHigh = Math.max(platformHigh, seq);
            });
            if (random.nextFloat() < 0.25) continue; // the ack is lost
            const last = firstSeq + message.records.length - 1;
            const ack = sealFrame(
              crypto,
              keys.downlink,
              {
                version: FRAME_VERSION,
                type: FrameType.Ack,
                meterId: METER_ID,
                epoch: 1,
                seq: ++platformDownSeq,
              },
              encodeAckMessage({ seq: last, hash: link }),
            );
            power.phase = 'ack';
            radio.deliver(`parklink/v1/meters/${METER_ID}/down`, ack);
            power.phase = 'other';
          }
          if (random.nextFloat() < 0.3) {
            power.phase = 'upload';
            clock.advance(1100); // an ack timer fires: the set goes again
          }
        }
        power.phase = 'other';
      }
    } catch (error) {
      if (!(error instanceof PowerLoss)) throw error;
    } finally {
      comms.stop(); // the meter is off: none of its timers may fire in the next round
    }
    if (power.dead) {
      result.cuts++;
      result.cutsByTarget[target]++;
    } else {
      round--; // this target never came up: run again until the power does fail
    }
    clock.advance(60_000);
    // A cut inside a downlink handler is reported on the bus, not thrown: the switch knows anyway.
  }
  result.records = committed.size ? Math.max(...committed.keys()) : 0;
  result.acknowledged = platformHigh;
  return result;
}

/** The seq of an encoded record: [1, kind, seq, ...] with small uints. */
function seqOf(bytes: Uint8Array): number {
  const initial = bytes[3];
  const info = initial & 0x1f;
  if (info < 24) return info;
  if (info === 24) return bytes[4];
  if (info === 25) return (bytes[4] << 8) | bytes[5];
  return ((bytes[4] << 24) >>> 0) + ((bytes[5] << 16) | (bytes[6] << 8) | bytes[7]);
}

export function formatResult(r: PowerCutResult): string {
  return `cuts ${r.cuts}, acknowledged lost ${r.acknowledgedLost}, duplicates ${r.duplicates}, recovered ${r.recovered}`;
}

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const value = Number(process.argv[i + 1]);
  if (!Number.isSafeInteger(value) || value < 0) throw new Error(`--${name} needs a whole number`);
  return value;
}

if (
  process.argv[1]?.endsWith('powercut.ts') &&
  (process.argv.includes('--help') || process.argv.includes('-h'))
) {
  console.log(
    'usage: npm run test:powercut -- [--seed N] [--cuts N]\n' +
      '  cuts power at random bytes while the meter writes, reboots it, and checks that nothing\n' +
      '  acknowledged is lost or duplicated (default 2000 cuts; the seed replays a run); exits 1 on a violation',
  );
} else if (process.argv[1]?.endsWith('powercut.ts')) {
  const seed = arg('seed', Date.now() % 1_000_000);
  const cuts = arg('cuts', 2000);
  const started = Date.now();
  let shown = 0;
  const result = runPowerCuts({
    seed,
    cuts,
    onViolation: (m) => {
      if (shown++ < 20) console.error(m);
    },
  });
  console.log(formatResult(result));
  console.log(
    `seed ${seed}; cuts by target ${JSON.stringify(result.cutsByTarget)}; ${result.records} records, ` +
      `platform holds up to ${result.acknowledged}; other violations ${result.violations}; ` +
      `${((Date.now() - started) / 1000).toFixed(1)} s (replay: npm run test:powercut -- --seed ${seed} --cuts ${cuts})`,
  );
  if (result.acknowledgedLost || result.duplicates || result.violations) process.exitCode = 1;
}
