// Main record (410): turns what happened into numbered, hash-chained records and hands them to
// storage. The chain is checked at boot: a record altered on flash breaks its link and is reported.
// It also keeps the operation records of claim 10b that no other unit owns (restarts, downtime,
// daily operating hours, periods without service) and the maintenance records of storage repairs
// and upload releases (claim 10c), and stops sales while storage is full.
import type { Clock, TimerHandle, Timers } from '../../hal/clock';
import type { Crypto } from '../../hal/crypto';
import type { Preferences } from '../../hal/preferences';
import { bytesEqual, toHex } from '../../protocol/bytes';
import type { CardRef } from '../../protocol/cardToken';
import { chainLink, genesisHash } from '../../protocol/chain';
import {
  encodeRecord,
  recordHeader,
  type MaintenanceData,
  MaintenanceCode,
  type MeterRecord,
  OperationCode,
  type OperationData,
  RecordKind,
  type TransactionData,
} from '../../protocol/records';
import { verifyReleaseToken } from '../../protocol/release';
import type { TimeState } from '../../protocol/time';
import type { EventBus } from '../bus';
import type { MeterEvents } from '../events';
import {
  type RecordSource,
  RecordStore,
  type StorageFinding,
  StorageFullError,
  type UploadLedger,
} from './storage';

export class ChainBrokenError extends Error {
  override readonly name: string = 'ChainBrokenError';
  readonly seq: number;

  constructor(seq: number) {
    super(`record ${seq} does not follow its predecessor in the hash chain`);
    this.seq = seq;
  }
}

/** A sale was attempted while the meter cannot record it. */
export class ServiceUnavailableError extends Error {
  override readonly name: string = 'ServiceUnavailableError';
  constructor(reason: string) {
    super(`service unavailable: ${reason}`);
  }
}

/** Storage damage found and repaired (or not) at boot: the fault event's error. */
export class StorageDamageError extends Error {
  override readonly name: string = 'StorageDamageError';
  readonly finding: StorageFinding;

  constructor(finding: StorageFinding) {
    super(finding.detail);
    this.finding = finding;
  }
}

export class ReleaseRefusedError extends Error {
  override readonly name: string = 'ReleaseRefusedError';
  constructor(message: string) {
    super(message);
  }
}

export interface MainRecordOptions {
  log: RecordSource;
  ledger: UploadLedger;
  crypto: Crypto;
  clock: Clock;
  meterId: number;
  /** Storage-full notices, fault events for storage damage, releases. */
  bus?: EventBus<MeterEvents>;
  /** Where the operating log keeps its hourly checkpoint (last sign of life, today's seconds). */
  preferences?: Preferences;
  /**
   * The clock's state for each record (time management, units/time.ts); without it records carry
   * no state, as before meters reported one.
   */
  timeState?: () => TimeState;
  /** Called with each record once it is durable on flash. */
  onAppended?: (record: MeterRecord, link: Uint8Array) => void;
}

const HOUR_MS = 3_600_000;
const DAY_S = 86_400;

export class MainRecord {
  readonly #options: MainRecordOptions;
  /** Since when sales are stopped for lack of storage (epoch s), if they are. */
  #fullSince: number | undefined;
  #hourly: TimerHandle | undefined;
  readonly #bootFaults: StorageDamageError[] = [];
  /** Records that could not be stored at all (storage exhausted even for notices). */
  dropped = 0;

  constructor(options: MainRecordOptions) {
    this.#options = options;
    options.bus?.on('upload-acknowledged', () => this.#checkSpace());
  }

  get #store(): RecordStore | undefined {
    const log = this.#options.log;
    return log instanceof RecordStore ? log : undefined;
  }

  /** Whether a sale may start: false while storage is too full to record it. */
  get available(): boolean {
    return !this.#store?.full;
  }

  /** Re-hashes every record held and compares with the stored links; returns how many were checked.
   * After a hole (records lost in every copy) the check starts again from the next held link. */
  verifyChain(): number {
    const { log, crypto, meterId } = this.#options;
    const records = log.read(log.firstSeq);
    let previous: Uint8Array | undefined = records[0]?.seq === 1 ? genesisHash(crypto, meterId) : undefined;
    let previousSeq = records[0] ? records[0].seq - 1 : 0;
    for (const r of records) {
      if (r.seq !== previousSeq + 1) previous = undefined;
      if (previous && !bytesEqual(chainLink(crypto, previous, r.bytes), r.link))
        throw new ChainBrokenError(r.seq);
      previous = r.link;
      previousSeq = r.seq;
    }
    return records.length;
  }

  /** The chain link of a record still held: the receipt code's check is made from it. */
  linkOf(seq: number): Uint8Array | undefined {
    return this.#options.log.linkOf(seq);
  }

  appendTransaction(data: TransactionData): MeterRecord {
    if (!this.available) throw new ServiceUnavailableError('storage full');
    const record = this.#append((header) => ({ ...header, kind: RecordKind.Transaction, data }));
    this.#checkSpace();
    return record;
  }

  appendOperation(
    code: string,
    detail: string,
    card: CardRef | null = null,
    extra: { period?: { from: number; to: number }; quantity?: number } = {},
  ): MeterRecord {
    const data: OperationData = { code, detail, card, ...extra };
    const record = this.#append((header) => ({ ...header, kind: RecordKind.Operation, data }));
    this.#checkSpace();
    return record;
  }

  appendMaintenance(code: string, detail: string): MeterRecord {
    const data: MaintenanceData = { code, detail };
    const record = this.#append((header) => ({ ...header, kind: RecordKind.Maintenance, data }));
    this.#checkSpace();
    return record;
  }

  /** Appends a notice, counting it as dropped instead of throwing when storage is exhausted. */
  tryAppend(append: () => MeterRecord): MeterRecord | undefined {
    try {
      return append();
    } catch (error) {
      if (!(error instanceof StorageFullError)) throw error;
      this.dropped++;
      this.#options.bus?.emit('fault', { unit: 'records', error });
      return undefined;
    }
  }

  /**
   * The records of a start (claim 10b): what storage found and repaired (one maintenance record
   * and one fault event each), the restart (planned or abnormal) and the downtime before it.
   */
  recordBoot(restart: 'first' | 'planned' | 'abnormal', detail: string): void {
    const store = this.#store;
    for (const finding of store?.report.findings ?? []) {
      const code = maintenanceCodeOf(finding);
      if (!code) continue;
      this.tryAppend(() => this.appendMaintenance(code, finding.detail));
      if (finding.action === 'restored' || finding.action === 'lost') {
        this.#bootFaults.push(new StorageDamageError(finding));
      }
    }
    // One record per start: the restart kind in the detail, the downtime before it as its period.
    const now = Math.floor(this.#options.clock.now() / 1000);
    const alive = restart === 'first' ? undefined : this.#lastAlive();
    const extra = alive !== undefined && alive <= now ? { period: { from: alive, to: now } } : {};
    this.tryAppend(() =>
      this.appendOperation(OperationCode.Boot, `${restart} restart; ${detail}`, null, extra),
    );
    this.#checkSpace();
  }

  /** Emits the storage damage found at boot as fault events (once the units listening exist). */
  reportBootFaults(): void {
    for (const error of this.#bootFaults.splice(0))
      this.#options.bus?.emit('fault', { unit: 'storage', error });
  }

  /**
   * Keeps the cumulative operating time of each UTC day (claim 10b): a checkpoint every hour in the
   * preferences (also the "last alive" time that dates downtime), and an operation record when a
   * day ends with the seconds the meter ran in it.
   */
  startOperatingLog(timers: Timers): void {
    const { clock, preferences } = this.#options;
    if (!preferences) throw new RangeError('the operating log needs preferences');
    let last = Math.floor(clock.now() / 1000);
    const checkpoint = () => {
      const now = Math.floor(clock.now() / 1000);
      const saved = preferences.get('ops', 'day');
      let [day, seconds] = typeof saved === 'string' ? saved.split(':').map(Number) : [dayOf(now), 0];
      if (!Number.isFinite(day) || !Number.isFinite(seconds)) [day, seconds] = [dayOf(now), 0];
      while (day < dayOf(now)) {
        // The part of the interval before midnight belongs to the ending day.
        const end = day + DAY_S;
        seconds += Math.max(0, end - Math.max(last, day));
        last = Math.max(last, end);
        const total = Math.min(seconds, DAY_S);
        this.tryAppend(() =>
          this.appendOperation(OperationCode.DailyOperatingHours, `${(total / 3600).toFixed(2)} h`, null, {
            period: { from: day, to: end },
            quantity: total,
          }),
        );
        day = end;
        seconds = 0;
      }
      seconds += Math.max(0, now - Math.max(last, day));
      last = now;
      preferences.set('ops', 'day', `${day}:${seconds}`);
      preferences.set('ops', 'alive', now);
    };
    // A stepped clock (time management setting a clock that counted from 1970) moves the calendar,
    // not the meter's operating time: the seconds run so far count towards the day stepped into, and
    // no day between the two times is recorded.
    const stepped = this.#options.bus?.on('clock-stepped', ({ deltaMs }) => {
      const now = Math.floor(clock.now() / 1000);
      const before = now - Math.round(deltaMs / 1000);
      const saved = preferences.get('ops', 'day');
      let [day, seconds] = typeof saved === 'string' ? saved.split(':').map(Number) : [dayOf(before), 0];
      if (!Number.isFinite(day) || !Number.isFinite(seconds)) [day, seconds] = [dayOf(before), 0];
      seconds += Math.max(0, before - Math.max(last, day));
      last = now;
      preferences.set('ops', 'day', `${dayOf(now)}:${Math.min(seconds, now - dayOf(now))}`);
      preferences.set('ops', 'alive', now);
    });
    checkpoint();
    this.#hourly = timers.setInterval(checkpoint, HOUR_MS);
    this.#stopOperatingLog = () => {
      checkpoint();
      stepped?.cancel();
      timers.clear(this.#hourly);
      this.#hourly = undefined;
    };
  }

  #stopOperatingLog: (() => void) | undefined;

  /** Takes the last checkpoint (a planned stop). */
  stopOperatingLog(): void {
    this.#stopOperatingLog?.();
    this.#stopOperatingLog = undefined;
  }

  /** The last sign of life before this start: the hourly checkpoint or the newest record's time. */
  #lastAlive(): number | undefined {
    const saved = this.#options.preferences?.get('ops', 'alive');
    const newest = this.#options.log.read(this.#options.log.lastSeq, this.#options.log.lastSeq)[0];
    let newestTime: number | undefined;
    if (newest) {
      try {
        newestTime = recordHeader(newest.bytes).time; // any format: a format 1 record from before card tokens too
      } catch {
        newestTime = undefined; // an undecodable record dates nothing
      }
    }
    const alive = typeof saved === 'number' ? saved : undefined;
    if (alive === undefined) return newestTime;
    return newestTime === undefined ? alive : Math.max(alive, newestTime);
  }

  /**
   * Applies an operator's release token: discards the unacknowledged records fromSeq..toSeq from
   * the upload queue. The maintenance record is written first, then the acknowledged point moves.
   */
  applyRelease(tokenBytes: Uint8Array): MeterRecord {
    const { crypto, meterId, ledger, clock, bus } = this.#options;
    const store = this.#store;
    const key = store?.releaseKey;
    if (!store || !key) throw new ReleaseRefusedError('no release key provisioned');
    const token = verifyReleaseToken(crypto, key, tokenBytes);
    const now = Math.floor(clock.now() / 1000);
    if (token.meterId !== meterId) throw new ReleaseRefusedError(`token is for meter ${token.meterId}`);
    if (token.fromSeq !== ledger.acknowledgedSeq + 1)
      throw new ReleaseRefusedError(
        `token starts at ${token.fromSeq}, the first unacknowledged record is ${ledger.acknowledgedSeq + 1}`,
      );
    if (token.toSeq > store.lastSeq) throw new ReleaseRefusedError(`record ${token.toSeq} does not exist`);
    if (token.issuedAt > now + DAY_S || token.issuedAt < now - 7 * DAY_S)
      throw new ReleaseRefusedError('token is not current');
    const link = store.linkOf(token.toSeq);
    if (!link) throw new ReleaseRefusedError(`no chain link held for record ${token.toSeq}`);
    const record = this.appendMaintenance(
      MaintenanceCode.UploadReleased,
      `records ${token.fromSeq}..${token.toSeq} released by ${token.operator} (token ${toHex(
        crypto.sha256(tokenBytes).subarray(0, 8),
      )}, issued ${token.issuedAt})`,
    );
    store.acknowledge(token.toSeq, link);
    bus?.emit('upload-released', { fromSeq: token.fromSeq, toSeq: token.toSeq, operator: token.operator });
    this.#checkSpace();
    return record;
  }

  /** Sales stop when storage is full and resume when acknowledgements free space (claim: seed 288). */
  #checkSpace(): void {
    const store = this.#store;
    if (!store) return;
    const { bus, clock } = this.#options;
    const now = Math.floor(clock.now() / 1000);
    if (store.full && this.#fullSince === undefined) {
      this.#fullSince = now;
      bus?.emit('service-unavailable', { reason: 'storage full' });
      this.tryAppend(() =>
        this.appendOperation(
          OperationCode.StorageFull,
          `sales stopped: ${store.freeBytes} bytes free, ${store.lastSeq - store.ledger.acknowledgedSeq} records unacknowledged`,
        ),
      );
    } else if (!store.full && this.#fullSince !== undefined) {
      const from = this.#fullSince;
      this.#fullSince = undefined;
      this.tryAppend(() =>
        this.appendOperation(
          OperationCode.ServiceNotProvided,
          'storage full until uploads were acknowledged',
          null,
          {
            period: { from, to: now },
          },
        ),
      );
      bus?.emit('service-available', {});
    }
  }

  #append(
    make: (header: { seq: number; time: number; meterId: number; timeState?: TimeState }) => MeterRecord,
  ): MeterRecord {
    const { log, ledger, crypto, clock, meterId, timeState } = this.#options;
    const seq = log.lastSeq + 1;
    const time = Math.floor(clock.now() / 1000);
    const record = make(timeState ? { seq, time, meterId, timeState: timeState() } : { seq, time, meterId });
    const bytes = encodeRecord(record);
    const previous = log.lastLink ?? (seq === 1 ? genesisHash(crypto, meterId) : ledger.acknowledgedLink);
    if (!previous) throw new ChainBrokenError(seq);
    const link = chainLink(crypto, previous, bytes);
    log.append(seq, link, bytes, ledger.acknowledgedSeq + 1);
    this.#options.onAppended?.(record, link);
    return record;
  }
}

function maintenanceCodeOf(finding: StorageFinding): string | undefined {
  switch (finding.action) {
    case 'restored':
      return MaintenanceCode.StorageRestored;
    case 'lost':
      return MaintenanceCode.RecordsLost;
    case 'caught-up':
      return MaintenanceCode.StorageCaughtUp;
    default:
      return undefined; // torn writes and recovered acks are in the boot record's detail
  }
}

function dayOf(seconds: number): number {
  return seconds - (seconds % DAY_S);
}
