// Everything physical the meter is built from, handed to the composition root (firmware/meter.ts).
// hal/moddable/board.ts makes one from a real ESP32 board; hal/mock/board.ts from virtual parts.
import type { Clock, Timers } from './clock';
import type { Crypto } from './crypto';
import type { NorFlash } from './flash';
import type { BlePeripheral } from './ble';
import type { CallInSource } from './dialup';
import type {
  Digital,
  DigitalOptions,
  I2C,
  I2COptions,
  IOClass,
  SPI,
  SPIOptions,
  Serial,
  SerialOptions,
} from './io';
import type { MqttLink } from './mqtt';
import type { FirmwareSlots } from './ota';
import type { Preferences } from './preferences';
import type { ReaderFirmwarePort } from './readerFirmware';
import type { Random } from './random';
import type { SignatureVerifier } from './signatures';
import type { PowerParts, SensorParts } from './sensors';
import type { NetworkTimeSource, SntpClient } from './time';
import type { Watchdog } from './watchdog';
import type { Buzzer, TextDisplay } from './ui';

/** The seed's five stores, one flash partition each (partitions.csv on the device). */
export type PartitionName = 'records' | 'blacklist' | 'reader' | 'backup' | 'upload';
export const PARTITION_NAMES: readonly PartitionName[] = Object.freeze([
  'records',
  'blacklist',
  'reader',
  'backup',
  'upload',
]);

export interface BoardPins {
  /** MFRC522 on SPI: chip select and the NRSTPD reset line. */
  reader: { select: number; reset?: number; hz?: number; port?: number };
  /** Momentary buttons, active low with pull-ups. */
  buttons: { bay: number; up: number; down: number; ok: number; cancel: number };
  /** One green (paid) and one red (expired) light per bay, and the rear overtime light (when fitted). */
  lights: { paid: readonly number[]; expired: readonly number[]; overtime?: number };
  /** The secure element (ATECC608, I2C address) and the SAM (ISO 7816 UART), when fitted. */
  secure?: {
    element: { address: number };
    sam: { port: number; baud: number; transmit?: number; receive?: number };
  };
}

/**
 * The Zigbee module's UART and, when wired, its RESET line (active low) and its pin-sleep lines:
 * SLEEP_RQ (DIO8, the meter's output, high = sleep) and ON/SLEEP (DIO9, the module's, high = awake).
 */
export interface ZigbeeWiring {
  serial: SerialOptions & { io: IOClass<Serial, SerialOptions> };
  reset?: { io: IOClass<Digital, DigitalOptions>; pin: number };
  sleepRequest?: { io: IOClass<Digital, DigitalOptions>; pin: number };
  onSleep?: { io: IOClass<Digital, DigitalOptions>; pin: number };
}

export interface MeterHardware {
  clock: Clock;
  timers: Timers;
  partitions: Readonly<Record<PartitionName, NorFlash>>;
  preferences: Preferences;
  random: Random;
  crypto: Crypto;
  mqtt: MqttLink;
  /** Calls and texts to the meter's number, when a cellular modem carries the link. */
  callIn?: CallInSource;
  /** A second radio path (e.g. the Zigbee relay), when fitted: the monitor falls back to it. */
  fallbackLink?: { name: string; link: MqttLink };
  /** A Zigbee module (XBee 3, API mode 2) on a UART, when fitted: the relay to or from a neighbour. */
  zigbee?: ZigbeeWiring;
  display: TextDisplay;
  buzzer: Buzzer;
  io: {
    Digital: IOClass<Digital, DigitalOptions>;
    SPI: IOClass<SPI, SPIOptions>;
    I2C: IOClass<I2C, I2COptions>;
    /** The UARTs (the SAM's line); absent on boards without a SAM. */
    Serial?: IOClass<Serial, SerialOptions>;
  };
  /** The BLE peripheral the maintenance handheld connects to, when fitted. */
  ble?: BlePeripheral;
  /** The Wi-Fi port of the same handheld service (docs/handheld.md), on boards with Wi-Fi for it. */
  wifiPort?: BlePeripheral;
  pins: BoardPins;
  /** Security & environment sensors, when fitted. */
  sensors?: SensorParts;
  /** Battery packs, their gauges and switches, module power switches, when fitted. */
  power?: PowerParts;
  /** An SNTP client, on boards whose link has IP (Wi-Fi): the meter's first time source. */
  sntp?: SntpClient;
  /** The cellular network's time, on boards whose link is a modem (ModemLink). */
  networkTime?: NetworkTimeSource;
  /** Signature checks (Ed25519), where the board binds them. */
  signatures?: SignatureVerifier;
  /** The card reader module's firmware loader, on readers with firmware of their own. */
  readerFirmware?: ReaderFirmwarePort;
  /** The hardware watchdog, when the board binds one. */
  watchdog?: Watchdog;
  /** Two application slots and the boot selector, when the board takes firmware updates (hal/ota.ts). */
  ota?: FirmwareSlots;
}
