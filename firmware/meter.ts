// The meter's composition root: builds the units from the hardware it is given and wires them over
// the event bus. The same code runs on an ESP32 (firmware/main.ts) and on virtual hardware.
import type { MeterHardware } from '../hal/hardware';
import { EventBus } from './bus';
import type { MeterEvents } from './events';
import { Bays } from './units/bays';
import { BlacklistUnit } from './units/blacklist';

import { ChargingUnit, type FlatRate } from './units/charging';
import { CommsUnit } from './units/comms';
import { InformationUnit } from './units/information';
import { KeyInputUnit } from './units/keyInput';
import { NotifyUnit } from './units/notify';
import { MainRecord } from './units/records';
import { RegistrationUnit } from './units/registration';
import { type CardReaderPort, createCardReader } from './units/rfid';
import { SecurityUnit } from './units/security';
import { RecordStore, type UploadLedger } from './units/storage';
import { STORAGE_CONTROL_FRAME } from '../protocol/release';
import { TransactionUnit } from './units/transactions';

export interface MeterConfig {
  meterId: number;
  bays: readonly number[];
  rate: FlatRate;
  utcOffsetMinutes?: number;
}

export interface BootSummary {
  records: number;
  lastSeq: number;
  tornEntries: number;
  chainVerified: number;
  restart: 'first' | 'planned' | 'abnormal';
}

export class Meter {
  readonly bus = new EventBus<MeterEvents>();
  readonly config: MeterConfig;
  readonly log: RecordStore;
  readonly ledger: UploadLedger;
  readonly records: MainRecord;
  readonly security: SecurityUnit;
  readonly bays: Bays;
  readonly charging: ChargingUnit;
  readonly blacklist: BlacklistUnit;
  readonly transactions: TransactionUnit;
  readonly comms: CommsUnit;
  readonly registration: RegistrationUnit;
  readonly boot: BootSummary;
  readonly #hardware: MeterHardware;
  readonly #keys: KeyInputUnit;
  readonly #notify: NotifyUnit;
  readonly information: InformationUnit;

  constructor(hardware: MeterHardware, config: MeterConfig, reader?: CardReaderPort) {
    this.#hardware = hardware;
    this.config = config;
    const { clock, timers, crypto, preferences, partitions, io, pins } = hardware;
    const bus = this.bus;

    // Storage (411): main store and real-time backup in step, upload backup, ledger; repaired at mount.
    this.log = new RecordStore({
      records: partitions.records,
      backup: partitions.backup,
      upload: partitions.upload,
      preferences,
      crypto,
    });
    this.ledger = this.log.ledger;
    this.records = new MainRecord({
      log: this.log,
      ledger: this.ledger,
      crypto,
      clock,
      meterId: config.meterId,
      bus,
      preferences,
      onAppended: (record) => bus.emit('record-appended', { record }),
    });
    const chainVerified = this.records.verifyChain();
    this.security = new SecurityUnit({ preferences, crypto, meterId: config.meterId });
    this.bays = new Bays(config.bays, preferences);
    this.charging = new ChargingUnit(config.rate);
    this.blacklist = new BlacklistUnit(partitions.blacklist);
    this.information = new InformationUnit({
      display: hardware.display,
      bus,
      bays: this.bays,
      clock,
      timers,
      currency: config.rate.currency,
      utcOffsetMinutes: config.utcOffsetMinutes,
    });
    this.#notify = new NotifyUnit({
      Digital: io.Digital,
      lights: pins.lights,
      buzzer: hardware.buzzer,
      bus,
      bays: this.bays,
      clock,
      timers,
    });
    this.#keys = new KeyInputUnit({ Digital: io.Digital, pins: pins.buttons, clock, bus });
    this.transactions = new TransactionUnit({
      bus,
      bays: this.bays,
      charging: this.charging,
      blacklist: this.blacklist,
      records: this.records,
      reader: reader ?? createCardReader(hardware),
      clock,
      timers,
      preferences,
    });
    this.comms = new CommsUnit({
      link: hardware.mqtt,
      security: this.security,
      log: this.log,
      ledger: this.ledger,
      crypto,
      clock,
      timers,
      bus,
    });
    bus.on('record-appended', () => this.comms.flush());
    this.registration = new RegistrationUnit({
      bus,
      bays: this.bays,
      records: this.records,
      comms: this.comms,
      clock,
      preferences,
    });

    // A clean stop leaves a flag; its absence at boot means the last run ended abnormally (claim 10b).
    const clean = preferences.get('meter', 'cleanStop');
    const restart = clean === undefined ? (this.log.lastSeq === 0 ? 'first' : 'abnormal') : 'planned';
    preferences.delete('meter', 'cleanStop');
    this.boot = {
      records: this.log.report.records,
      lastSeq: this.log.lastSeq,
      tornEntries: this.log.report.tornEntries,
      chainVerified,
      restart,
    };
    this.records.recordBoot(restart, `${this.log.report.tornEntries} torn entries rolled back`);
    // Operator releases of unacknowledged upload sets (storage control downlinks, 0x82).
    bus.on('downlink', (d) => {
      if (d.type === STORAGE_CONTROL_FRAME) this.records.applyRelease(d.body);
    });
  }

  start(): void {
    this.records.reportBootFaults();
    this.records.startOperatingLog(this.#hardware.timers);
    this.comms.start();
  }

  /** A planned stop: closes IO and leaves the clean-stop flag. */
  stop(): void {
    this.records.stopOperatingLog();
    this.comms.stop();
    this.#keys.close();
    this.#notify.close();
    this.#hardware.preferences.set('meter', 'cleanStop', true);
  }
}
