// A whole virtual meter board: the same MeterHardware an ESP32 gives, made of virtual parts, plus
// the handles a test or the virtual fleet uses to press buttons, hold cards to the reader and cut
// power. `state` survives a power cycle: pass it to the next board to reboot the same meter.
import type { Clock, Timers } from '../clock';
import type { BoardPins, MeterHardware, PartitionName } from '../hardware';
import { PARTITION_NAMES } from '../hardware';
import type { MqttLink } from '../mqtt';
import type { PreferenceValue } from '../preferences';
import { nobleCrypto } from '../nobleCrypto';
import { VirtualPins, VirtualSpiBus, VirtualI2cBus, type VirtualSpiChip } from './bus';
import { VirtualClock } from './clock';
import { VirtualNorFlash } from './flash';
import { VirtualMfrc522 } from './mfrc522';
import { MemoryPreferences } from './preferences';
import { SeededRandom } from './random';
import { VirtualBuzzer, VirtualDisplay } from './ui';
import { VirtualBleLink } from './ble';
import { DEMO_CARD_MASTER } from './cards';
import { type Atecc608State, blankAtecc608State, VirtualAtecc608 } from './secure/atecc608';
import { blankSamState, type SamState, VirtualSam } from './secure/sam';
import { type VirtualSerialDevice, VirtualSerialPort } from './serial';
import type { KeyName } from '../../firmware/events';
import type { ResetReason } from '../watchdog';
import { VirtualPowerRail, VirtualSensorKit } from './sensors/kit';
import { VirtualWatchdog } from './watchdog';
import { VirtualReaderFirmware } from './readerFirmware';
import type { SignatureVerifier } from '../signatures';
import { VirtualXBee } from './xbee';
import type { ZigbeeMesh } from './zigbeeMesh';
import { A7670 } from '../../drivers/radio/a7670';
import { ModemLink } from '../../drivers/radio/modemLink';
import { VirtualA7670 } from './modem/a7670';
import type { VirtualBroker } from './mqtt';
import { BOARD_TARGET } from '../ota';
import { newOtaMemory, type OtaMemory, PowerRail, VirtualOtaSlots } from './ota';
import { IMAGE_FAILS_SELF_TEST, type ImageInfo, makeImage, readImage } from './otaImage';

export const VIRTUAL_PINS: BoardPins = Object.freeze({
  reader: Object.freeze({ select: 5, reset: 4 }),
  buttons: Object.freeze({ bay: 32, up: 33, down: 25, ok: 26, cancel: 27 }),
  lights: Object.freeze({
    paid: Object.freeze([16, 17, 18, 19]),
    expired: Object.freeze([12, 13, 14, 2]),
    overtime: 15,
  }),
  secure: Object.freeze({
    element: Object.freeze({ address: 0x60 }),
    sam: Object.freeze({ port: 2, baud: 115_200 }),
  }),
});

/** The cellular modem's UART and lines on the virtual board (UART1 on the ESP32 board). */
export const VIRTUAL_MODEM_PINS = Object.freeze({ port: 1, pwrkey: 50, status: 51, dtr: 52, ri: 53 });

/** Sizes of the five stores on the virtual flash (small, so tests reach "full" quickly). */
export const VIRTUAL_PARTITION_BYTES: Readonly<Record<PartitionName, number>> = Object.freeze({
  records: 64 * 1024,
  blacklist: 8 * 1024,
  reader: 24 * 1024, // the store's two slots and a 16 KiB staging area for downloads
  backup: 64 * 1024,
  upload: 32 * 1024,
});

/** What survives a power cycle: flash cells and preferences. */
export interface BoardState {
  flash: Record<PartitionName, Uint8Array>;
  preferences: Map<string, PreferenceValue>;
  /** The secure element's data zone and the SAM's memory. */
  secure?: { element: Atecc608State; sam: SamState };
  /** The application slots and boot selector, on a board fitted with them (options.ota). */
  ota?: OtaMemory;
}

/** The bootloader found no slot holding a whole, intact image. */
export class BrickedError extends Error {
  override readonly name: string = 'BrickedError';
}

/** Bytes of each virtual application slot unless options.ota says otherwise. */
export const VIRTUAL_SLOT_BYTES = 64 * 1024;
const OTA_SECTOR = 4096;

/** A secure element as the factory configures it: B slots (2, 3) secret, usable only for HMAC. */
function factoryElement(): Atecc608State {
  const state = blankAtecc608State();
  state.secret[2] = true;
  state.secret[3] = true;
  return state;
}

export interface VirtualModemOptions {
  /** The broker the virtual module's MQTT stack reaches. */
  broker: VirtualBroker;
  apn?: string;
  clientId?: string;
  /** The CA the meter is provisioned with, and the one the broker's certificate chains to. */
  ca?: Uint8Array;
  brokerCa?: Uint8Array;
  /** Idle time before the link's own retry (tests shorten it). */
  retryMs?: number;
  /** The network's time (NITZ) the virtual module receives on registration. */
  network?: { now?: () => number; zoneQuarters?: number };
}

export interface VirtualBoardOptions {
  /** Fit a reader module with firmware of its own (hal/readerFirmware.ts), simulated. */
  readerModule?: boolean;
  /** The board's own Ed25519 check; none: the meter checks in pure JavaScript (hal/nobleSignatures.ts). */
  signatures?: SignatureVerifier;
  /** The direct MQTT link; leave it out and give `modem` to fit the cellular modem instead. */
  mqtt?: MqttLink;
  /** Fit a (virtual) A7670 cellular modem on UART1 as the meter's link, with call-in. */
  modem?: VirtualModemOptions;
  /** A second radio path (e.g. a Zigbee relay as another link on the VirtualBroker). */
  fallbackMqtt?: { name: string; link: MqttLink };
  /** Fits a Wi-Fi port for the handheld service (VirtualBoard.wifi). */
  wifiPort?: boolean;
  /** A VirtualClock (tests: time moves when advanced) or real time (the fleet of npm start). */
  clock?: Clock & Timers;
  state?: BoardState;
  seed?: number;
  /** Fit the guard sensors (4 bays), the battery packs, the module switches and the watchdog. */
  sensors?: boolean;
  /** What the watchdog reports as the cause of this start (a restart after a bite: 'watchdog'). */
  lastReset?: ResetReason;
  /** Fit an XBee 3 Zigbee module (UART 0, RESET on pin 22, SLEEP_RQ 23, ON/SLEEP 24) joined to a virtual mesh. */
  zigbee?: { mesh: ZigbeeMesh; address64: string; position: { x: number; y: number }; range?: number };
  /**
   * Fit two application slots and a boot selector (hal/mock/ota.ts) for firmware updates: a new
   * board's slot 0 holds `factory` (a virtual image, hal/mock/otaImage.ts; version 1 when absent).
   * A board booted from a `state` with slots fits them whatever this says.
   */
  ota?: { factory?: Uint8Array; slotBytes?: number };
  /** Fails the slots' power at the n+1-th byte the bootloader writes at this power-up (it then powers up again). */
  cutBootAfter?: number;
}

/**
 * Where the virtual board wires the Zigbee module: UART 0, the console's on a development board, so
 * that a relay master fits the modem (UART 1) and the SAM (UART 2) beside it, as a production build
 * without a serial console can.
 */
export const VIRTUAL_ZIGBEE = Object.freeze({
  port: 0,
  baud: 115_200,
  reset: 22,
  sleepRequest: 23,
  onSleep: 24,
});

/**
 * The reader's SPI line as the board wires it: a hung MFRC522 (latched up by a surge) answers
 * nothing, MISO held low, until its supply is cycled; the supply coming back resets it (§8.8.1).
 * An absent reader (unplugged, a broken connector) answers nothing whatever the supply does.
 */
class ReaderLine implements VirtualSpiChip {
  hung = false;
  absent = false;
  readonly #chip: VirtualMfrc522;

  constructor(chip: VirtualMfrc522) {
    this.#chip = chip;
  }

  get #silent(): boolean {
    return this.hung || this.absent;
  }

  select(): void {
    if (!this.#silent) this.#chip.select();
  }

  exchange(mosi: number): number {
    return this.#silent ? 0 : this.#chip.exchange(mosi);
  }

  deselect(): void {
    if (!this.#silent) this.#chip.deselect();
  }

  #off = false;

  /** Supply off, then on: the chip starts from its reset values (a SoftReset over SPI models it). */
  supply(on: boolean): void {
    const wasOff = this.#off;
    this.#off = !on;
    if (!on || !wasOff) return;
    this.hung = false;
    this.#chip.select();
    this.#chip.exchange(0x01 << 1); // CommandReg, write
    this.#chip.exchange(0x0f); // SoftReset
    this.#chip.deselect();
  }
}

/** A UART with nothing on the far end. */
const SILENT_LINE: VirtualSerialDevice = Object.freeze({ receive() {} });

export class VirtualBoard {
  readonly clock: Clock & Timers;
  readonly pins = new VirtualPins();
  readonly spi = new VirtualSpiBus();
  readonly i2c = new VirtualI2cBus();
  readonly reader = new VirtualMfrc522();
  readonly #readerLine = new ReaderLine(this.reader);
  readonly serial = new VirtualSerialPort();
  readonly ble = new VirtualBleLink();
  /** The handheld service's Wi-Fi port, when the board has one (options.wifiPort). */
  readonly wifi: VirtualBleLink | undefined;
  readonly secureElement: VirtualAtecc608;
  readonly sam: VirtualSam;
  readonly display = new VirtualDisplay(4, 20);
  readonly buzzer = new VirtualBuzzer();
  readonly partitions: Record<PartitionName, VirtualNorFlash>;
  readonly preferences: MemoryPreferences;
  readonly hardware: MeterHardware;
  /** The guard sensors, battery packs and module switches, when fitted (options.sensors). */
  readonly sensors: VirtualSensorKit | undefined;
  readonly power: VirtualPowerRail | undefined;
  readonly watchdog: VirtualWatchdog | undefined;
  /** The reader module's firmware loader, when fitted (options.readerModule). */
  readonly readerFirmware: VirtualReaderFirmware | undefined;
  /** The Zigbee module's twin, when fitted (options.zigbee). */
  readonly xbee: VirtualXBee | undefined;
  /** The virtual cellular module and the link over it, when fitted (options.modem). */
  readonly modem: VirtualA7670 | undefined;
  readonly modemLink: ModemLink | undefined;
  /** The application slots as the bootloader left them, when fitted (options.ota). */
  readonly ota: VirtualOtaSlots | undefined;
  /** The supply of the slots and selector: `cutAfter(n)` fails the power at the n+1-th byte. */
  readonly otaRail: PowerRail | undefined;
  /** The running image's header, when the slots are fitted. */
  readonly image: ImageInfo | undefined;
  /**
   * What flash and preferences held the moment the board stopped (a power cut on the slots' rail,
   * or the board restarting itself for an update or a rollback): boot the next board from it.
   */
  stoppedState: BoardState | undefined;
  /** Called the moment the board stops, after stoppedState is taken (a test cuts the link there). */
  onStop: (() => void) | undefined;
  /** Power cuts during the bootloader's own writes at this power-up (the board powered up again). */
  bootCuts = 0;
  #secureElementAbsent = false;
  #samAbsent = false;

  constructor(options: VirtualBoardOptions) {
    this.clock = options.clock ?? new VirtualClock();
    const partitions = {} as Record<PartitionName, VirtualNorFlash>;
    for (const name of PARTITION_NAMES) {
      partitions[name] = new VirtualNorFlash({
        byteLength: VIRTUAL_PARTITION_BYTES[name],
        cells: options.state?.flash[name],
      });
    }
    this.partitions = partitions;
    this.preferences = new MemoryPreferences(options.state?.preferences);
    this.spi.attach(VIRTUAL_PINS.reader.select, this.#readerLine);
    // The SAM comes personalised by the card scheme with its master key; meter keys come at provisioning.
    this.secureElement = new VirtualAtecc608({ state: options.state?.secure?.element ?? factoryElement() });
    this.secureElement.attachTo(this.i2c);
    this.sam = new VirtualSam({ state: options.state?.secure?.sam ?? blankSamState(DEMO_CARD_MASTER) });
    this.serial.attach(VIRTUAL_PINS.secure?.sam.port ?? 2, this.sam);
    // Buttons idle high (pull-ups); a press pulls the line low.
    for (const pin of Object.values(VIRTUAL_PINS.buttons)) this.pins.drive(pin, 1);
    let mqtt = options.mqtt;
    if (options.modem) {
      const m = VIRTUAL_MODEM_PINS;
      this.modem = new VirtualA7670({
        clock: this.clock,
        timers: this.clock,
        pins: this.pins,
        pinMap: m,
        broker: options.modem.broker,
        brokerCa: options.modem.brokerCa,
        network: options.modem.network,
      });
      this.serial.attach(m.port, this.modem);
      const driver = new A7670({
        serial: { io: this.serial.io, port: m.port },
        pwrkey: { io: this.pins.io, pin: m.pwrkey },
        status: { io: this.pins.io, pin: m.status },
        dtr: { io: this.pins.io, pin: m.dtr },
        ri: { io: this.pins.io, pin: m.ri },
        timers: this.clock,
      });
      const ca = options.modem.ca;
      this.modemLink = new ModemLink({
        modem: driver,
        timers: this.clock,
        broker: { host: 'broker.virtual', port: ca ? 8883 : 1883 },
        clientId: options.modem.clientId ?? 'meter',
        apn: options.modem.apn ?? 'iot.virtual',
        ...(ca ? { tls: { caName: 'platform-ca.pem', ca } } : {}),
        ...(options.modem.retryMs ? { retryMs: options.modem.retryMs } : {}),
      });
      mqtt = this.modemLink;
    }
    if (!mqtt) throw new TypeError('a virtual board needs an MQTT link or a modem');
    this.hardware = {
      clock: this.clock,
      timers: this.clock,
      partitions,
      preferences: this.preferences,
      random: new SeededRandom(options.seed ?? 1),
      crypto: nobleCrypto,
      mqtt,
      display: this.display,
      buzzer: this.buzzer,
      io: { Digital: this.pins.io, SPI: this.spi.io, I2C: this.i2c.io, Serial: this.serial.io },
      ble: this.ble.peripheral,
      pins: VIRTUAL_PINS,
    };
    if (options.fallbackMqtt) this.hardware.fallbackLink = options.fallbackMqtt;
    if (options.signatures) this.hardware.signatures = options.signatures;
    if (options.readerModule) {
      this.readerFirmware = new VirtualReaderFirmware();
      this.hardware.readerFirmware = this.readerFirmware;
    }
    if (options.wifiPort) {
      // A TCP port has no ATT MTU: its chunks are as large as the meter's side allows.
      this.wifi = new VirtualBleLink({ maxMtu: 1024, broadcast: false });
      this.hardware.wifiPort = this.wifi.peripheral;
    }
    if (options.zigbee) {
      const { mesh, address64, position, range } = options.zigbee;
      this.xbee = new VirtualXBee({ mesh, address64, position, range });
      this.serial.attach(VIRTUAL_ZIGBEE.port, this.xbee);
      this.hardware.zigbee = {
        serial: { io: this.serial.io, port: VIRTUAL_ZIGBEE.port, baud: VIRTUAL_ZIGBEE.baud },
        reset: { io: this.xbee.resetLine(), pin: VIRTUAL_ZIGBEE.reset },
        sleepRequest: { io: this.xbee.sleepRequestLine(), pin: VIRTUAL_ZIGBEE.sleepRequest },
        onSleep: { io: this.xbee.onSleepLine(), pin: VIRTUAL_ZIGBEE.onSleep },
      };
    }
    if (this.modemLink) {
      this.hardware.callIn = this.modemLink;
      this.hardware.networkTime = this.modemLink; // used only where the meter's time management is on
    }
    const otaMemory =
      options.state?.ota ??
      (options.ota
        ? newOtaMemory(
            options.ota.slotBytes ?? VIRTUAL_SLOT_BYTES,
            OTA_SECTOR,
            options.ota.factory ?? makeImage(1, 4096),
          )
        : undefined);
    if (otaMemory) {
      const isBootable = (slot: Parameters<typeof readImage>[0]) => readImage(slot) !== undefined;
      let booted: { rail: PowerRail; slots: VirtualOtaSlots | undefined } | undefined;
      // A cut while the bootloader writes the selector: the power comes back and it boots again.
      for (let attempt = 0; !booted; attempt++) {
        const rail = new PowerRail();
        if (attempt === 0 && options.cutBootAfter !== undefined) rail.cutAfter(options.cutBootAfter);
        try {
          booted = { rail, slots: VirtualOtaSlots.boot(otaMemory, rail, isBootable, OTA_SECTOR) };
        } catch (error) {
          if (!rail.cut || attempt > 0) throw error;
          this.bootCuts++;
        }
      }
      const slots = booted.slots;
      if (!slots) throw new BrickedError('no application slot holds a bootable image');
      this.ota = slots;
      this.otaRail = booted.rail;
      const running = new VirtualNorFlash({
        cells: otaMemory.slots[slots.running()],
        sectorSize: OTA_SECTOR,
      });
      const image = readImage(running);
      this.image = image;
      const flags = image?.flags ?? 0;
      this.hardware.ota = {
        slots,
        version: image?.version ?? 0,
        target: BOARD_TARGET,
        imageCheck: () =>
          (flags & IMAGE_FAILS_SELF_TEST) !== 0
            ? 'the virtual image is flagged to fail its self-test'
            : undefined,
      };
      this.otaRail.onDown = () => {
        this.stoppedState = copyState(this.state);
        this.onStop?.();
      };
    }
    if (options.sensors) {
      this.sensors = new VirtualSensorKit(this.pins, VIRTUAL_PINS.lights.paid.length);
      this.power = new VirtualPowerRail(this.pins);
      this.power.onModule = (module, on) => {
        if (module === 'sensors') this.sensors?.power(on);
        if (module === 'reader') this.#readerLine.supply(on);
      };
      this.watchdog = new VirtualWatchdog(this.clock, options.lastReset);
      Object.assign(this.hardware, {
        sensors: this.sensors.parts,
        power: this.power.parts,
        watchdog: this.watchdog,
      });
    }
  }

  /** A hung reader chip answers nothing on SPI until the reader module's supply is cycled. */
  get readerHung(): boolean {
    return this.#readerLine.hung;
  }

  set readerHung(hung: boolean) {
    this.#readerLine.hung = hung;
  }

  /** An absent reader answers nothing on SPI (VersionReg reads 0x00), power cycle or not. */
  get readerAbsent(): boolean {
    return this.#readerLine.absent;
  }

  set readerAbsent(absent: boolean) {
    this.#readerLine.absent = absent;
  }

  /** An absent secure element acknowledges nothing on I2C (its wake detector neither). */
  get secureElementAbsent(): boolean {
    return this.#secureElementAbsent;
  }

  set secureElementAbsent(absent: boolean) {
    if (absent === this.#secureElementAbsent) return;
    this.#secureElementAbsent = absent;
    if (absent) {
      this.i2c.detach(this.secureElement.address);
      this.i2c.detach(0x00);
    } else this.secureElement.attachTo(this.i2c);
  }

  /** An absent SAM leaves its UART silent: every block times out. */
  get samAbsent(): boolean {
    return this.#samAbsent;
  }

  set samAbsent(absent: boolean) {
    this.#samAbsent = absent;
    this.serial.attach(VIRTUAL_PINS.secure?.sam.port ?? 2, absent ? SILENT_LINE : this.sam);
  }

  get field() {
    return this.reader.field;
  }

  /** A press and release of a button; on a virtual clock the contacts are held for 80 ms. */
  press(key: KeyName): void {
    const pin = VIRTUAL_PINS.buttons[key];
    const virtual = this.clock instanceof VirtualClock ? this.clock : undefined;
    this.pins.drive(pin, 0);
    virtual?.advance(80);
    this.pins.drive(pin, 1);
    virtual?.advance(40);
  }

  light(kind: 'paid' | 'expired', bayIndex: number): 0 | 1 {
    return this.pins.level(VIRTUAL_PINS.lights[kind][bayIndex]);
  }

  /** Flash and preferences as they are now: what a reboot finds. */
  get state(): BoardState {
    const flash = {} as Record<PartitionName, Uint8Array>;
    for (const name of PARTITION_NAMES) flash[name] = this.partitions[name].cells;
    return {
      flash,
      preferences: this.preferences.entries,
      secure: { element: this.secureElement.state, sam: this.sam.state },
      ...(this.ota ? { ota: this.ota.memory } : {}),
    };
  }
}

/** A copy of a board's state that later writes to the running board do not reach. */
export function copyState(state: BoardState): BoardState {
  const flash = {} as Record<PartitionName, Uint8Array>;
  for (const name of PARTITION_NAMES) flash[name] = state.flash[name].slice();
  const copy: BoardState = { flash, preferences: copyPreferences(state.preferences) };
  if (state.secure) {
    const { element, sam } = state.secure;
    copy.secure = {
      element: { slots: element.slots.map((s) => s.slice()), secret: [...element.secret] },
      sam: {
        meterId: sam.meterId,
        banks: sam.banks.map((b) => copyValue(b)) as SamState['banks'],
        cardMaster: sam.cardMaster?.slice(),
        wiped: sam.wiped,
      },
    };
  }
  if (state.ota) {
    const { slots, otadata } = state.ota;
    copy.ota = { slots: [slots[0].slice(), slots[1].slice()], otadata: otadata.slice() };
  }
  return copy;
}

function copyPreferences(entries: Map<string, PreferenceValue>): Map<string, PreferenceValue> {
  const copy = new Map<string, PreferenceValue>();
  for (const [key, value] of entries) copy.set(key, value instanceof ArrayBuffer ? value.slice(0) : value);
  return copy;
}

/** Plain data (objects, arrays, byte arrays, numbers, strings) copied all the way down. */
function copyValue<T>(value: T): T {
  if (value instanceof Uint8Array) return value.slice() as T;
  if (Array.isArray(value)) return value.map((v) => copyValue(v)) as T;
  if (typeof value === 'object' && value !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = copyValue(v);
    return out as T;
  }
  return value;
}
