// Main record (410): turns what happened into numbered, hash-chained records and hands them to
// storage. The chain is checked at boot: a record altered on flash breaks its link and is reported.
import type { Clock } from '../../hal/clock';
import type { Crypto } from '../../hal/crypto';
import { bytesEqual } from '../../protocol/bytes';
import { chainLink, genesisHash } from '../../protocol/chain';
import {
  encodeRecord,
  type MaintenanceData,
  type MeterRecord,
  type OperationData,
  RecordKind,
  type TransactionData,
} from '../../protocol/records';
import type { RecordLog, UploadLedger } from './storage';

export class ChainBrokenError extends Error {
  readonly seq: number;

  constructor(seq: number) {
    super(`record ${seq} does not follow its predecessor in the hash chain`);
    this.name = 'ChainBrokenError';
    this.seq = seq;
  }
}

export interface MainRecordOptions {
  log: RecordLog;
  ledger: UploadLedger;
  crypto: Crypto;
  clock: Clock;
  meterId: number;
  /** Called with each record once it is durable on flash. */
  onAppended?: (record: MeterRecord, link: Uint8Array) => void;
}

export class MainRecord {
  readonly #options: MainRecordOptions;

  constructor(options: MainRecordOptions) {
    this.#options = options;
  }

  /** Re-hashes every record held and compares with the stored links; returns how many were checked. */
  verifyChain(): number {
    const { log, crypto, meterId } = this.#options;
    const records = log.read(log.firstSeq);
    let previous: Uint8Array | undefined = records[0]?.seq === 1 ? genesisHash(crypto, meterId) : undefined;
    for (const r of records) {
      if (previous && !bytesEqual(chainLink(crypto, previous, r.bytes), r.link))
        throw new ChainBrokenError(r.seq);
      previous = r.link;
    }
    return records.length;
  }

  appendTransaction(data: TransactionData): MeterRecord {
    return this.#append((header) => ({ ...header, kind: RecordKind.Transaction, data }));
  }

  appendOperation(code: string, detail: string, cardNumber: string | null = null): MeterRecord {
    const data: OperationData = { code, detail, cardNumber };
    return this.#append((header) => ({ ...header, kind: RecordKind.Operation, data }));
  }

  appendMaintenance(code: string, detail: string): MeterRecord {
    const data: MaintenanceData = { code, detail };
    return this.#append((header) => ({ ...header, kind: RecordKind.Maintenance, data }));
  }

  #append(make: (header: { seq: number; time: number; meterId: number }) => MeterRecord): MeterRecord {
    const { log, ledger, crypto, clock, meterId } = this.#options;
    const seq = log.lastSeq + 1;
    const record = make({ seq, time: Math.floor(clock.now() / 1000), meterId });
    const bytes = encodeRecord(record);
    const previous = log.lastLink ?? (seq === 1 ? genesisHash(crypto, meterId) : ledger.acknowledgedLink);
    if (!previous) throw new ChainBrokenError(seq);
    const link = chainLink(crypto, previous, bytes);
    log.append(seq, link, bytes, ledger.acknowledgedSeq + 1);
    this.#options.onAppended?.(record, link);
    return record;
  }
}
