// The meter's composition root: builds the units from the hardware it is given and wires them over
// the event bus. The same code runs on an ESP32 (firmware/main.ts) and on virtual hardware.
import type { MeterHardware } from '../hal/hardware';
import { EventBus } from './bus';
import type { MeterEvents } from './events';
import { Bays } from './units/bays';
import { BlacklistUnit } from './units/blacklist';
import { ReaderFilesStore } from './units/readerFiles';
import { nobleSignatures } from '../hal/nobleSignatures';
import { ReaderFilesUnit } from './units/readerFilesUnit';

import type { TariffDocument } from '../protocol/tariff/index';
import { ChargingUnit, type FlatRate } from './units/charging';
import { CommsUnit } from './units/comms';
import { HandheldLink, type HandheldTransport, type ServiceInfo } from './units/handheld';
import { GuardedDisplay, InformationUnit } from './units/information';
import { KeyInputUnit, type MaintenanceOptions } from './units/keyInput';
import { NotifyUnit } from './units/notify';
import { MainRecord } from './units/records';
import { RegistrationUnit } from './units/registration';
import { ServiceFreeLog } from './units/serviceFree';
import { type CardReaderPort, createCardReader } from './units/rfid';
import {
  noSam,
  pinnedFirmwareKey,
  SecurePartsHolder,
  SecurityManagement,
  SecurityUnit,
} from './units/security';
import { RecordStore, type UploadLedger } from './units/storage';
import { STORAGE_CONTROL_FRAME } from '../protocol/release';
import { PurchaseHistory } from './units/purchaseHistory';
import { TransactionUnit } from './units/transactions';
import { uplinkTopic } from '../protocol/topics';
import { GuardUnit } from './units/guard';
import { FailoverLink, MonitorUnit, StatusChannel } from './units/monitor';
import type { BrokerEndpoint, MqttLink } from '../hal/mqtt';
import { PowerUnit, RelaySleepDuty } from './units/power';
import { type RelayMaster, type RelayRole, zigbeeRelay } from './units/relay';
import { CallInUnit } from './units/callIn';
import { ParametersUnit } from './units/parameters';
import { UpdateRefused, UpdateUnit } from './units/update';
import { FirmwareRejected } from './units/firmwareVerify';
import { FIRMWARE_DOWNLINK } from '../protocol/firmware';
import { ProtocolError } from '../protocol/errors';
import { ReportsUnit } from './units/reports';
import { StorageWatch } from './units/storageWatch';
import { encodeStatusMessage, STATUS_FRAME, statusEvent } from '../protocol/status';
import { TimeState } from '../protocol/time';
import {
  cellularSource,
  DisciplinedClock,
  type TimeOptions,
  type TimeSourcePort,
  sntpSource,
  TimeUnit,
} from './units/time';

export interface MeterConfig {
  meterId: number;
  bays: readonly number[];
  /** The provisioned tariff: a flat rate, or a tariff document (protocol/tariff) which wins. */
  rate?: FlatRate;
  tariff?: TariffDocument;
  utcOffsetMinutes?: number;
  /** Where drivers enter a receipt code ("parklink.city/r"), shown under the code; as on the meter's label. */
  receiptSite?: string;
  /** Mode key of the maintenance mode (key input 42); none: the mode key is off. */
  maintenance?: MaintenanceOptions;
  /**
   * Idle time before display, reader antenna (and with `radio`, the radio) are switched off; the
   * operating parameters sleepIdleSeconds and sleepRadio override them.
   */
  sleep?: { idleMs: number; radio?: boolean };
  /**
   * Overrides the applied tariff's `nonTransferable` (document or timetable entry): true, a bay the
   * vehicle leaves always ends its session; false, never. Absent: the tariff decides.
   */
  nonTransferable?: boolean;
  /** The Zigbee relay's role, on a board with a Zigbee module (firmware/units/relay.ts). */
  relay?: RelayRole;
  /** The platform's numbers whose call or SMS makes the meter connect and report (cellular boards). */
  callIn?: { numbers: readonly string[] };
  /**
   * The cellular modem's duty cycle (power unit): asleep once the link has been idle for idleMs,
   * awake for uploads and every wakeEveryMs. On by default where a modem and the power parts are
   * fitted; false leaves the modem awake.
   */
  radioDuty?: false | { idleMs?: number; wakeEveryMs?: number };
  /**
   * A Zigbee slave's XBee duty cycle (power unit's RelaySleepDuty), where SLEEP_RQ is wired: asleep
   * between uploads, awake for them and every pollEveryMs to collect what its parent holds. On by
   * default; false leaves the module awake. The operating parameter sleepRadio overrides it.
   */
  relaySleep?: false | { idleMs?: number; pollEveryMs?: number; pollAwakeMs?: number };
  /**
   * The non-connectable service beacon while the handheld link is off (docs/handheld.md): on by
   * default, every 2 s; false switches it off.
   */
  serviceBeacon?: false | { intervalMs?: number; refreshMs?: number; companyId?: number };
  /**
   * Time management (units/time.ts): the wall clock set from the board's SNTP client (`sntpHosts`),
   * the modem's network time and the platform's time exchange (0x08/0x88), each record flagged with
   * the clock's state. Absent: the board's clock is used as it is and records carry no state.
   */
  time?: TimeConfig;
  /** Firmware update (414a), on a board with application slots: how long a new image waits for the platform. */
  update?: { confirmWindowMs?: number };
}

export interface TimeConfig
  extends Partial<Omit<TimeOptions, 'clock' | 'timers' | 'bus' | 'send' | 'sources'>> {
  /** SNTP servers, tried in order, where the board has an SNTP client (hardware.sntp). */
  sntpHosts?: readonly string[];
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
  /** Service-free operation records: the tariff's free periods, once ended. */
  readonly #serviceFree: ServiceFreeLog;
  readonly security: SecurityUnit;
  /** Security management (47) on the bus: rotation, replays, tamper, maintenance sessions. */
  readonly securityManagement: SecurityManagement;
  /** The secure element and SAM, when the board has them (open, or out of service until they answer). */
  readonly secure: SecurePartsHolder | undefined;
  readonly bays: Bays;
  readonly charging: ChargingUnit;
  readonly blacklist: BlacklistUnit;
  /** The reader files store (card profiles, reader parameters) on the reader partition. */
  readonly readerFiles: ReaderFilesStore;
  /** Reader files (414d): documents, settings and reader firmware downloaded (0x8B), reported (0x0B). */
  readonly readerFileUpdates: ReaderFilesUnit;
  readonly transactions: TransactionUnit;
  readonly comms: CommsUnit;
  /** The handheld link (BLE and Wi-Fi port), when the board has one. */
  readonly handheld: HandheldLink | undefined;
  readonly registration: RegistrationUnit;
  readonly boot: BootSummary;
  /** Security & environment (48) and hybrid power (416), on boards with their parts. */
  readonly guard: GuardUnit | undefined;
  readonly power: PowerUnit | undefined;
  /** The Zigbee slave's XBee duty cycle, on a slave whose module's SLEEP_RQ is wired (on or off). */
  readonly relaySleep: RelaySleepDuty | undefined;
  /** Call-in (dial-up) through the modem, when the board has one and numbers are provisioned. */
  readonly callIn: CallInUnit | undefined;
  /** Operating parameters (0x89/0x09): pushed by the platform or set in a maintenance session. */
  readonly parameters: ParametersUnit;
  /**
   * Firmware update (414a, 0x87/0x07), on a board with two application slots (hardware.ota): the
   * download into the slot not running, the switch, the self-test and confirmation or rollback.
   */
  readonly update: UpdateUnit | undefined;
  /** Reports on demand (414b, 0x8C/0x0C): an immediate status report or a range of records re-sent. */
  readonly reports: ReportsUnit;
  /** When the record store counts as nearly full (a warning for the platform). */
  readonly storageWatch: StorageWatch;
  /** Monitoring (413): every module's state, the fault log, repairs and escalation. */
  readonly monitor: MonitorUnit;
  /** Status events (uplink 0x04) on their way to the platform. */
  readonly status: StatusChannel;
  /** The display as the units use it: a failing display is a fault, never a throw. */
  readonly display: GuardedDisplay;
  /** The radio the units use: the board's link, or a FailoverLink over it and the second path. */
  readonly radio: MqttLink;
  /** The Zigbee relay master, on a meter that relays for its neighbours. */
  readonly relayMaster: RelayMaster | undefined;
  readonly #hardware: MeterHardware;
  readonly #keys: KeyInputUnit;
  readonly #cardReader: CardReaderPort;
  readonly #notify: NotifyUnit;
  readonly information: InformationUnit;
  /** Time management (414), when configured: the disciplined clock every unit reads. */
  readonly time: TimeUnit | undefined;
  /** The clock the units read: the board's, or the disciplined one when time management is on. */
  readonly clock: MeterHardware['clock'];
  /** Whether key input's sleep switches the radio off too (sleep.radio, then sleepRadio). */
  #sleepRadio: boolean;
  #brokerSwitchQueued = false;
  /** The broker endpoint the board was built with, before any parameter set moved it. */
  readonly #provisionedEndpoint: BrokerEndpoint | undefined;
  /** Parts that failed while the meter was built, reported to the monitor when it starts. */
  readonly #bootFaults: MeterEvents['fault'][] = [];

  /**
   * Builds the units. A part that does not answer (reader, secure parts, display, BLE, sensors,
   * gauges) leaves its module out of service instead of throwing: the monitor records it, reports
   * it and repairs it once the meter starts; only what needs the part stops.
   */
  constructor(hardware: MeterHardware, config: MeterConfig, reader?: CardReaderPort) {
    this.#hardware = hardware;
    this.config = config;
    const { timers, crypto, preferences, partitions, io, pins } = hardware;
    const disciplined = config.time ? new DisciplinedClock(hardware.clock) : undefined;
    const clock = disciplined ?? hardware.clock;
    this.clock = clock;
    const bus = this.bus;
    const bootFaults = bus.on('fault', (fault) => this.#bootFaults.push(fault));
    this.#sleepRadio = config.sleep?.radio ?? false;
    // The Zigbee relay: a slave's fallback path, or a master's relay unit on a shared connection.
    const relay = zigbeeRelay(hardware, config.meterId, config.relay);
    this.relayMaster = relay.master;
    const fallback = hardware.fallbackLink ?? relay.fallback;
    const primary = relay.primary ?? hardware.mqtt;
    const radio = fallback ? new FailoverLink([{ name: 'primary', link: primary }, fallback]) : primary;
    this.radio = radio;
    this.#provisionedEndpoint = radio.endpoint;

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
      timeState: config.time ? () => this.time?.state ?? TimeState.Unset : undefined,
      onAppended: (record) => bus.emit('record-appended', { record }),
    });
    const chainVerified = this.records.verifyChain();
    const secure = new SecurePartsHolder(hardware);
    this.secure = secure.fitted ? secure : undefined;
    const secureFault = secure.outOfService();
    if (secureFault) bus.emit('fault', { unit: 'secure', error: secureFault });
    const vault = this.secure?.vault;
    this.security = new SecurityUnit({ preferences, crypto, meterId: config.meterId, vault, clock });
    this.bays = new Bays(config.bays, preferences);
    const tariff = config.tariff ?? config.rate;
    if (!tariff) throw new RangeError('a meter needs a tariff or a flat rate');
    this.charging = new ChargingUnit({
      tariff,
      preferences,
      bus,
      send: (type, body) => this.comms.send(type, body),
    });
    // A list stored before card tokens is tokenised now, when the meter holds the card-token key.
    this.blacklist = new BlacklistUnit(
      partitions.blacklist,
      this.security.cardTokensReady ? (n) => this.security.cardRef(n) : undefined,
      { bus, send: (type, body) => this.comms.send(type, body) }, // fleet list 0x8A, answered 0x0A
    );
    this.readerFiles = new ReaderFilesStore(partitions.reader);
    this.#serviceFree = new ServiceFreeLog({
      clock,
      preferences,
      records: this.records,
      tariff: () => this.charging.tariff,
      bays: this.bays.ids,
      bus,
    });
    const display = new GuardedDisplay(hardware.display, {
      onFault: (error) => bus.emit('fault', { unit: 'display', error }),
      onRecovered: () =>
        bus.emit('module-state', { module: 'display', state: 'ok', detail: 'answers again' }),
    });
    this.display = display;
    this.information = new InformationUnit({
      display,
      bus,
      bays: this.bays,
      clock,
      timers,
      currency: this.charging.currency,
      utcOffsetMinutes: config.utcOffsetMinutes,
      receiptSite: config.receiptSite,
      tariff: () => this.charging.tariff,
      timeKnown: config.time ? () => (this.time?.state ?? TimeState.Unset) !== TimeState.Unset : undefined,
      bayMode: (bayId, now) => this.charging.bayMode(bayId, now),
    });
    this.#notify = new NotifyUnit({
      Digital: io.Digital,
      lights: pins.lights,
      buzzer: hardware.buzzer,
      bus,
      bays: this.bays,
      clock,
      timers,
      graceMinutes: () => this.charging.tariff.graceMinutes,
    });
    const cardReader = reader ?? createCardReader(hardware, this.secure?.authenticator ?? noSam);
    this.#cardReader = cardReader;
    const readerFault = cardReader.outOfService?.();
    if (readerFault) bus.emit('fault', { unit: 'reader', error: readerFault });
    this.readerFileUpdates = new ReaderFilesUnit({
      store: this.readerFiles,
      partition: partitions.reader,
      preferences,
      crypto,
      signatures: hardware.signatures ?? nobleSignatures,
      bus,
      send: (type, body) => this.comms.send(type, body),
      pinnedKey: () => pinnedFirmwareKey(hardware, this.secure?.parts),
      reader: cardReader,
      readerFirmware: hardware.readerFirmware,
    });
    const sleep = config.sleep && {
      idleMs: config.sleep.idleMs,
      consumers: [
        { name: 'display', power: (on: boolean) => display.power(on) },
        { name: 'reader', power: (on: boolean) => (on ? undefined : cardReader.antenna(false)) },
        // Whether the radio sleeps too: MeterConfig.sleep.radio, then the parameter sleepRadio.
        { name: 'radio', power: (on: boolean) => (on || this.#sleepRadio ? radio.power?.(on) : undefined) },
      ],
    };
    this.#keys = new KeyInputUnit({
      Digital: io.Digital,
      pins: pins.buttons,
      clock,
      bus,
      timers,
      maintenance: config.maintenance,
      sleep,
    });
    this.transactions = new TransactionUnit({
      bus,
      bays: this.bays,
      charging: this.charging,
      // The card tokens' earlier purchases here, read back from the latest records once at start.
      history: PurchaseHistory.fromLog(this.log),
      blacklist: this.blacklist,
      records: this.records,
      paymentBlock: () => this.securityManagement.paymentBlock,
      reader: cardReader,
      cardRef: (n) => this.security.cardRef(n),
      cardTokensReady: () => this.security.cardTokensReady,
      cardsOutOfService: () => {
        const fault = this.secure?.outOfService();
        return fault && `secure parts out of service: ${fault.message}`;
      },
      clock,
      timers,
      preferences,
    });
    this.comms = new CommsUnit({
      link: radio,
      security: this.security,
      log: this.log,
      ledger: this.ledger,
      crypto,
      clock,
      timers,
      bus,
      handheldPresent: () =>
        this.handheld?.connectedOn !== undefined && this.securityManagement.handheldStaff !== undefined,
    });
    bus.on('record-appended', () => this.comms.flush());
    if (disciplined && config.time) {
      const { sntpHosts, ...tuning } = config.time;
      const sources: TimeSourcePort[] = [];
      if (hardware.sntp && sntpHosts && sntpHosts.length > 0)
        sources.push(sntpSource(hardware.sntp, sntpHosts, disciplined));
      if (hardware.networkTime) sources.push(cellularSource(hardware.networkTime, disciplined));
      this.time = new TimeUnit({
        ...tuning,
        clock: disciplined,
        timers,
        bus,
        send: (type, body) => this.comms.send(type, body),
        sources,
      });
    } else this.time = undefined;
    // The handheld link (BLE, and the Wi-Fi port where the board has one): off until the mode key.
    const transports: HandheldTransport[] = [];
    if (hardware.ble) transports.push({ name: 'ble', port: hardware.ble });
    if (hardware.wifiPort) transports.push({ name: 'ble:wifi', port: hardware.wifiPort });
    this.handheld =
      transports.length > 0
        ? new HandheldLink({
            transports,
            bus,
            timers,
            uploadSet: (first) => this.comms.uploadSet(first),
            sealSet: (set) => this.comms.sealSet(set),
            receiveDownlink: (frame) => this.comms.receiveDownlink(frame),
            keptUplink: (after) => this.comms.keptAfter(after),
            releaseKept: (upTo) => this.comms.release(upTo),
            collectPending: () => this.status.flush(),
            applyRelease: (token) => {
              this.records.applyRelease(token);
            },
            acknowledgedSeq: () => this.ledger.acknowledgedSeq,
            authorised: () => this.securityManagement.handheldStaff !== undefined,
            keepAlive: () => this.securityManagement.keepHandheld(),
            serviceInfo: () => this.serviceInfo(),
            nowSeconds: () => Math.floor(clock.now() / 1000),
            beacon: config.serviceBeacon,
            parameters: {
              read: () => this.parameters,
              set: (changes) => this.parameters.setLocal(changes),
            },
          })
        : undefined;
    this.securityManagement = new SecurityManagement({
      security: this.security,
      bus,
      records: this.records,
      clock,
      timers,
      crypto,
      random: hardware.random,
      buzzer: hardware.buzzer,
      send: (type, body) => this.comms.send(type, body),
      publishSealed: (frame) =>
        (radio.connected && radio.publish(uplinkTopic(config.meterId), frame)) ||
        this.comms.keepSealed(frame),
      ble: this.handheld?.channel,
    });
    this.registration = new RegistrationUnit({
      bus,
      bays: this.bays,
      records: this.records,
      comms: this.comms,
      clock,
      preferences,
    });

    this.status = new StatusChannel({ bus, send: (type, body) => this.comms.send(type, body), timers });

    // The guard and hybrid power when the board has their parts; the monitoring engine always.
    const { sensors, power, watchdog } = hardware;
    const duty = hardware.callIn && config.radioDuty !== false ? (config.radioDuty ?? {}) : undefined;
    this.power =
      power &&
      new PowerUnit({
        parts: power,
        bus,
        records: this.records,
        clock,
        timers,
        preferences,
        radio: duty && {
          link: radio,
          pending: () => this.comms.pending + this.comms.kept + this.status.pending,
          ...duty,
        },
      });
    const sleepyRelay = relay.slave && hardware.zigbee?.sleepRequest ? relay.slave : undefined;
    // Built wherever SLEEP_RQ is wired, so the parameter sleepRadio can switch it on; relaySleep false
    // only starts it switched off.
    this.relaySleep = sleepyRelay
      ? new RelaySleepDuty({
          link: sleepyRelay,
          bus,
          timers,
          clock,
          ...(config.relaySleep || {}),
          enabled: config.relaySleep !== false,
        })
      : undefined;
    this.guard =
      sensors &&
      new GuardUnit({
        parts: sensors,
        bus,
        records: this.records,
        bays: this.bays,
        clock,
        timers,
        preferences,
        send: (type, body) => this.comms.send(type, body),
        nonTransferable: (bayId, at) =>
          config.nonTransferable ?? this.charging.tariff.nonTransferableAt(bayId, at),
        wake: (reason) => this.#keys.wake(reason),
      });
    this.storageWatch = new StorageWatch({
      bus,
      clock,
      freeBytes: () => this.log.freeBytes,
      totalBytes: partitions.records.byteLength,
    });
    this.parameters = new ParametersUnit({
      preferences,
      bus,
      send: (type, body) => this.comms.send(type, body),
      sessionStaff: () => this.securityManagement.handheldStaff,
      appliers: {
        uploadIntervalSeconds: (s) => this.comms.setUploadInterval(s),
        uploadBatchBytes: (bytes) => this.comms.setMaxSetBytes(bytes),
        sleepIdleSeconds: (s) => this.#keys.setSleepIdle(s * 1000),
        statusIntervalSeconds: (s) => this.guard?.setStatusInterval(s),
        storageNearlyFullPercent: (percent) => this.storageWatch.setThreshold(percent),
        sleepRadio: (on) => {
          this.#sleepRadio = on;
          this.relaySleep?.setEnabled(on);
        },
        preferredLink: (link) => {
          if (radio instanceof FailoverLink) radio.prefer(link === 'primary' ? 0 : 1);
        },
        // Host and port come together (the set is checked so); the switch waits for both.
        brokerHost: () => this.#scheduleBrokerSwitch(),
        brokerPort: () => this.#scheduleBrokerSwitch(),
      },
    });
    // Firmware update: offers and chunks arrive as 0x87 from the radio or a handheld (both reach the
    // bus through comms.receiveDownlink); progress goes up as 0x07 like any uplink. It writes the
    // slot not running and its own preference entries, never the record store.
    const ota = hardware.ota;
    this.update =
      ota &&
      new UpdateUnit({
        slots: ota.slots,
        preferences,
        timers,
        send: (type, body) => this.comms.send(type, body),
        pinnedKey: pinnedFirmwareKey(hardware, this.secure?.parts),
        target: ota.target,
        version: ota.version,
        selfTest: () => this.#selfTest(),
        confirmWindowMs: config.update?.confirmWindowMs,
      });
    if (this.update) {
      const update = this.update;
      bus.on('downlink', ({ type, body }) => {
        if (type !== FIRMWARE_DOWNLINK) return;
        try {
          update.handle(body);
        } catch (error) {
          // a refused offer or a malformed message: the unit's progress uplink told the platform
          if (error instanceof UpdateRefused || error instanceof FirmwareRejected) return;
          if (error instanceof ProtocolError) return;
          throw error;
        }
      });
      // an acknowledgement of records is the platform heard from, as its ok is
      bus.on('upload-acknowledged', () => update.platformContact());
    }
    this.callIn =
      hardware.callIn && config.callIn
        ? new CallInUnit({
            source: hardware.callIn,
            numbers: config.callIn.numbers,
            bus,
            radio,
            clock,
            timers,
            // The guard's full status report where the board has one; otherwise a status event.
            sendStatus: () =>
              this.guard
                ? this.guard.sendStatus()
                : this.comms.send(
                    STATUS_FRAME,
                    encodeStatusMessage(
                      statusEvent(clock.now(), 'call-in', 'info', true, 'connected on call-in'),
                    ),
                  ),
          })
        : undefined;
    this.monitor = new MonitorUnit({
      bus,
      records: this.records,
      clock,
      timers,
      absent: [
        ...(sensors ? [] : (['sensors'] as const)),
        ...(power ? [] : (['power'] as const)),
        ...(this.secure ? [] : (['secure'] as const)),
        ...(this.handheld ? [] : (['ble'] as const)),
      ],
      watchdog,
      radio,
      reinitialise: {
        reader: () => cardReader.reinitialise?.() ?? false,
        sensors: (part) => this.guard?.reinitialise(part) ?? false,
        power: (part) => this.power?.reinitialise(part) ?? false,
        radio: (part) => part === 'link' && this.comms.reopen(),
        secure: () => {
          if (!secure.reopen()) return false;
          this.security.reloadKeys(); // keys held in the parts are usable again
          return true;
        },
        display: () => display.reinitialise(),
        ble: () => this.handheld?.reopen() ?? false,
      },
      selfTest: { reader: () => cardReader.selfTest?.() },
      powerCycle: (module, ms, done) => {
        if (!this.power) return false;
        if (module === 'sensors') this.guard?.suspend(); // drivers closed before their supply goes
        return this.power.powerCycle(module, ms, done);
      },
    });
    this.reports = new ReportsUnit({
      bus,
      log: this.log,
      acknowledgedSeq: () => this.ledger.acknowledgedSeq,
      crypto,
      meterId: config.meterId,
      maxSetBytes: () => this.comms.maxSetBytes,
      sendSet: (set) => this.comms.sendSet(set),
      sendStatus: () => this.sendStatus(),
      send: (type, body) => this.comms.send(type, body),
    });
    bootFaults.cancel(); // from here on the monitor hears faults itself

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

  /**
   * The service information a phone reads without pairing: the meter, its bays and their state, and
   * the tariff applied. Nothing personal: no card, no vehicle, no staff.
   */
  serviceInfo(): ServiceInfo {
    const now = Math.floor(this.clock.now() / 1000);
    const tariff = this.charging.tariff;
    return {
      meterId: this.config.meterId,
      bays: this.bays.ids.map((bay) => ({ bay, ...this.information.bayState(bay, now) })),
      tariff: { id: tariff.id, version: tariff.version, currency: tariff.currency },
    };
  }

  /**
   * What a new image checks about the meter before it may confirm itself: the keys to seal uplinks,
   * the secure parts (where fitted) and the card reader answering, and the image's own check. The
   * record chain was verified while the meter was built (a broken chain stops the build).
   */
  #selfTest(): string | undefined {
    if (!this.security.provisioned) return 'no meter keys';
    const secureFault = this.secure?.outOfService();
    if (secureFault) return `secure parts: ${secureFault.message}`;
    const readerFault = this.#cardReader.selfTest?.();
    if (readerFault) return `reader: ${readerFault.message}`;
    return this.#hardware.ota?.imageCheck?.();
  }

  /**
   * The broker endpoint of the parameters in force, tried once both values are in (one call for a
   * host and port changed together): the comms unit moves after the acknowledgement has left and
   * goes back if the new endpoint does not connect within its trial; then the endpoint is taken out
   * of the set in force and the platform told why (0x09 ok false).
   */
  #scheduleBrokerSwitch(): void {
    if (this.#brokerSwitchQueued) return;
    this.#brokerSwitchQueued = true;
    Promise.resolve().then(() => {
      this.#brokerSwitchQueued = false;
      const { brokerHost, brokerPort } = this.parameters.values;
      if (brokerHost === undefined || brokerPort === undefined) return;
      const next = { host: brokerHost, port: brokerPort };
      this.comms.switchBroker(next, (outcome) => {
        if (outcome.state === 'connected') {
          this.bus.emit(
            'status-event',
            statusEvent(
              this.clock.now(),
              'broker-switched',
              'info',
              false,
              `connected to ${next.host}:${next.port}`,
            ),
          );
          return;
        }
        this.bus.emit(
          'status-event',
          statusEvent(this.clock.now(), 'broker-rolled-back', 'warning', false, outcome.why),
        );
        // Back to the endpoint that worked: the provisioned one (out of the set) or an earlier set's.
        const back = outcome.previous;
        const provisioned = this.#provisionedEndpoint;
        const isProvisioned = provisioned && provisioned.host === back.host && provisioned.port === back.port;
        this.parameters.withdraw(
          isProvisioned
            ? { brokerHost: undefined, brokerPort: undefined }
            : { brokerHost: back.host, brokerPort: back.port },
          outcome.why,
        );
      });
    });
  }

  /**
   * Sends a status report (0x04) now: the guard's full report where the board has its sensors;
   * otherwise the monitor's module states and open faults, with no sensor, battery or bay readings
   * (those come from the guard's parts).
   */
  sendStatus(): boolean {
    if (this.guard) return this.guard.sendStatus();
    const modules = this.monitor.states;
    return this.comms.send(
      STATUS_FRAME,
      encodeStatusMessage({
        kind: 'status',
        at: Math.floor(this.clock.now() / 1000),
        battery: { source: 'unknown', packs: {} },
        sensors: {},
        modules,
        faults: Object.entries(modules)
          .filter(([, state]) => state === 'failed' || state === 'repairing')
          .map(([name]) => name),
        bays: [],
        fan: false,
        settings: 0,
      }),
    );
  }

  /** Key input (42): mode key state and sleep. */
  get keyInput(): KeyInputUnit {
    return this.#keys;
  }

  /** Operation notification (415): bays in overtime, buzzer patterns. */
  get notify(): NotifyUnit {
    return this.#notify;
  }

  start(): void {
    this.records.reportBootFaults();
    this.records.startOperatingLog(this.#hardware.timers);
    this.#serviceFree.start(this.#hardware.timers);
    this.comms.start();
    this.readerFileUpdates.start();
    this.time?.start();
    this.relayMaster?.start();
    this.monitor.start();
    this.status.start();
    // What failed while the meter was built: recorded, reported and repaired like any fault.
    for (const fault of this.#bootFaults.splice(0)) this.bus.emit('fault', fault);
    this.power?.start();
    this.relaySleep?.start();
    this.guard?.start();
    // Last: settles a switch across the restart, and on a new image runs the self-test and waits
    // for the platform (confirm) or rolls back. It may restart the board.
    this.update?.start();
  }

  /** A planned stop: closes IO and leaves the clean-stop flag. */
  stop(): void {
    this.records.stopOperatingLog();
    this.#serviceFree.stop(this.#hardware.timers);
    this.monitor.stop();
    this.status.stop();
    this.guard?.stop();
    this.power?.stop();
    this.relaySleep?.stop();
    this.callIn?.stop();
    this.update?.stop();
    this.time?.stop();
    this.comms.stop();
    this.handheld?.close();
    this.relayMaster?.stop();
    this.#keys.close();
    this.#notify.close();
    this.#hardware.preferences.set('meter', 'cleanStop', true);
  }
}
