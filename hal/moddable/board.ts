// The meter's hardware on an ESP32 board through Moddable: ECMA-419 IO, the five flash
// partitions of partitions.csv, NVS preferences, the hardware RNG, native crypto, MQTT over Wi-Fi
// or over the A7670E cellular modem on UART1, the HD44780 LCD and the PWM buzzer. The composition root calls createBoardHardware() once.
import ModdableDigital from 'embedded:io/digital';
import ModdableI2C from 'embedded:io/i2c';
import ModdableSPI from 'embedded:io/spi';
import Timer from 'timer';
import type { MeterHardware, BoardPins, PartitionName } from '../hardware';
import { PARTITION_NAMES } from '../hardware';
import type { NorFlash } from '../flash';
import {
  bytesOf,
  type Digital,
  type DigitalOptions,
  type I2C,
  type I2COptions,
  type IOBuffer,
  type IOClass,
  type SPI,
  type SPIOptions,
} from '../io';
import { PwmBuzzer } from './buzzer';
import { ModdableBlePeripheral } from './ble';
import { ModdableClock, ModdableTimers } from './clock';
import { ModdableCrypto } from './crypto';
import { LcdTextDisplay } from './display';
import { ModdableFlash } from './flash';
import { ModdableSntp } from './sntp';
import { ModdableMqttLink, type ModdableMqttOptions } from './mqtt';
import { ModdablePreferences } from './preferences';
import { ModdableWifiPort } from './wifiPort';
import { BoardSerial } from './serial';
import { hardwareRandom } from './random';
import type { PowerParts, SensorParts } from '../sensors';
import { TaskWatchdog } from './watchdog';
import { BOARD_TARGET } from '../ota';
import { Esp32OtaSlots } from './ota';
import { A7670 } from '../../drivers/radio/a7670';
import { ModemLink } from '../../drivers/radio/modemLink';
import { type BoardBuses, type BoardModem, DEVKITC_BUSES, DEVKITC_PINS } from './profiles';

export { DEVKITC_BUSES, DEVKITC_PINS, T_A7670_MODEM, type BoardBuses, type BoardModem } from './profiles';

export interface BoardConfig {
  mqtt: ModdableMqttOptions;
  /** Carry the link over the cellular modem (its own MQTT/TLS stack) instead of Wi-Fi. */
  modem?: {
    wiring: BoardModem;
    apn: string;
    /** The platform CA (PEM) the broker's certificate chains to; absent: plain MQTT. */
    ca?: Uint8Array;
    /** Told of each failed bring-up (no SIM, no coverage, a TLS refusal), for the console. */
    onError?: (error: Error) => void;
  };
  pins?: BoardPins;
  buses?: BoardBuses;
  /** The running image's version (firmware/version.ts): the update unit's anti-rollback floor starts there. */
  firmwareVersion: number;
  onDisplayError?: (message: string) => void;
  /** The handheld service over BLE (default on) and on a Wi-Fi port (default off). */
  handheld?: { ble?: boolean; wifi?: boolean; name?: string };
  /**
   * An XBee 3 Zigbee module (API mode 2) on a UART, when fitted: its UART pins and its RESET line.
   * No default pins: the two-bay DevKitC map leaves only strapping pins free for outputs (GPIO 12
   * must not idle high at boot), so a build that fits the module names its own (e.g. receive on
   * input-only GPIO 35, transmit and reset on pins freed from the map).
   */
  zigbee?: {
    port?: number;
    baud?: number;
    transmit: number;
    receive: number;
    reset?: number;
    /** SLEEP_RQ (DIO8) and ON/SLEEP (DIO9): wired, a slave's module pin-sleeps between uploads. */
    sleepRequest?: number;
    onSleep?: number;
  };
  /** The guard's sensors and the packs as this board wires them, built on its IO classes. */
  parts?: (io: { I2C: IOClass<I2C, I2COptions>; Digital: IOClass<Digital, DigitalOptions> }) => {
    sensors?: SensorParts;
    power?: PowerParts;
  };
}

// ECMA-419 names modes with constants on the Digital class; the HAL names them with strings.
const MODES = Object.freeze({
  input: ModdableDigital.Input,
  inputPullUp: ModdableDigital.InputPullUp,
  inputPullDown: ModdableDigital.InputPullDown,
  output: ModdableDigital.Output,
  outputOpenDrain: ModdableDigital.OutputOpenDrain,
});

/** Moddable's IO buffers are ArrayBuffers and byte views; any other view goes as its bytes. */
function ioBuffer(buffer: IOBuffer): ArrayBuffer | Uint8Array | DataView {
  return buffer instanceof ArrayBuffer || buffer instanceof DataView ? buffer : bytesOf(buffer);
}

/**
 * ECMA-419 gives every IO instance close(); @moddable/typings 5.6 omits it for I2C and SPI
 * (modules/io/i2c/_i2c.js and modules/io/spi/spi.js define it).
 */
type Closable = { close(): void };

/** Own properties that are not undefined, so that a caller's `hz: undefined` keeps the default. */
function defined<T extends object>(options: T): Partial<T> {
  const result: Partial<T> = {};
  for (const key of Object.keys(options) as (keyof T)[]) {
    if (options[key] !== undefined) result[key] = options[key];
  }
  return result;
}

/** The HAL's Digital over ECMA-419 Digital, mapping mode names and keeping `this` for onReadable. */
class BoardDigital implements Digital {
  readonly #pin: ModdableDigital;

  constructor(options: DigitalOptions) {
    const mode = MODES[options.mode];
    const onReadable = options.onReadable;
    if (onReadable) {
      const self = this;
      this.#pin = new ModdableDigital({
        pin: options.pin,
        mode,
        edge: options.edge ?? ModdableDigital.Rising | ModdableDigital.Falling,
        onReadable() {
          onReadable.call(self);
        },
      });
    } else {
      this.#pin = new ModdableDigital({ pin: options.pin, mode });
    }
  }

  read(): 0 | 1 {
    return this.#pin.read();
  }

  write(value: 0 | 1): void {
    this.#pin.write(value);
  }

  close(): void {
    this.#pin.close();
  }
}

/** An I2C class whose instances default to the board's bus pins and speed. */
function boardI2C(bus: BoardBuses['i2c']): IOClass<I2C, I2COptions> {
  return class BoardI2C implements I2C {
    readonly #i2c: ModdableI2C & Closable;
    constructor(options: I2COptions) {
      const settings = {
        data: bus.data,
        clock: bus.clock,
        hz: bus.hz,
        ...defined(options),
        address: options.address,
      };
      this.#i2c = new ModdableI2C(settings) as ModdableI2C & Closable;
    }
    read(byteLength: number, stop?: boolean): ArrayBuffer {
      return this.#i2c.read(byteLength, stop);
    }
    write(buffer: IOBuffer, stop?: boolean): void {
      this.#i2c.write(ioBuffer(buffer), stop);
    }
    close(): void {
      this.#i2c.close();
    }
  };
}

/** An SPI class whose instances default to the board's bus pins and speed. */
function boardSPI(bus: BoardBuses['spi']): IOClass<SPI, SPIOptions> {
  return class BoardSPI implements SPI {
    readonly #spi: ModdableSPI & Closable;
    constructor(options: SPIOptions) {
      const settings = { out: bus.out, in: bus.in, clock: bus.clock, hz: bus.hz, ...defined(options) };
      this.#spi = new ModdableSPI(settings) as ModdableSPI & Closable;
    }
    read(byteLength: number): ArrayBuffer {
      return this.#spi.read(byteLength);
    }
    write(buffer: IOBuffer): void {
      this.#spi.write(ioBuffer(buffer));
    }
    transfer(buffer: IOBuffer): void {
      this.#spi.transfer(ioBuffer(buffer));
    }
    flush(deselect?: boolean): void {
      this.#spi.flush(deselect);
    }
    close(): void {
      this.#spi.close();
    }
  };
}

/** Opens the five stores; throws naming the partition that partitions.csv lacks. */
export function openPartitions(): Readonly<Record<PartitionName, NorFlash>> {
  const partitions = {} as Record<PartitionName, NorFlash>;
  for (const name of PARTITION_NAMES) {
    try {
      partitions[name] = new ModdableFlash(name);
    } catch {
      throw new Error(`flash partition "${name}" missing: flash with ParkLink's partitions.csv`);
    }
  }
  return Object.freeze(partitions);
}

export function createBoardHardware(config: BoardConfig): MeterHardware {
  const pins = config.pins ?? DEVKITC_PINS;
  const buses = config.buses ?? DEVKITC_BUSES;
  const I2C = boardI2C(buses.i2c);
  const parts = config.parts?.({ I2C, Digital: BoardDigital });
  const timers = new ModdableTimers();
  const modem = config.modem && createModemLink(config.modem, config.mqtt, timers);
  return {
    clock: new ModdableClock(),
    timers,
    partitions: openPartitions(),
    preferences: new ModdablePreferences(),
    random: hardwareRandom,
    crypto: new ModdableCrypto(),
    mqtt: modem ?? new ModdableMqttLink(config.mqtt),
    callIn: modem,
    // Wall time: the network's time through the modem on a cellular board, SNTP over Wi-Fi.
    networkTime: modem,
    sntp: modem ? undefined : new ModdableSntp(),
    display: new LcdTextDisplay({ io: I2C, ...buses.lcd, onError: config.onDisplayError }),
    buzzer: new PwmBuzzer(buses.buzzer),
    io: { Digital: BoardDigital, SPI: boardSPI(buses.spi), I2C, Serial: BoardSerial },
    pins,
    sensors: parts?.sensors,
    power: parts?.power,
    watchdog: new TaskWatchdog(),
    // ota_0 and ota_1 (partitions.csv) and the boot selector, through ota.c
    ota: { slots: new Esp32OtaSlots(), version: config.firmwareVersion, target: BOARD_TARGET },
    ble: config.handheld?.ble === false ? undefined : new ModdableBlePeripheral(config.handheld?.name),
    wifiPort: config.handheld?.wifi ? new ModdableWifiPort() : undefined,
    zigbee: config.zigbee && {
      // UART1 by default (UART0 is the console, UART2 the SAM's line); a relay master that also
      // fits the modem on UART1 gives the module UART0 in a build without a serial console.
      serial: {
        io: BoardSerial,
        port: config.zigbee.port ?? 1,
        baud: config.zigbee.baud ?? 115_200, // the XBee 3's BD = 7
        transmit: config.zigbee.transmit,
        receive: config.zigbee.receive,
      },
      reset: config.zigbee.reset === undefined ? undefined : { io: BoardDigital, pin: config.zigbee.reset },
      sleepRequest:
        config.zigbee.sleepRequest === undefined
          ? undefined
          : { io: BoardDigital, pin: config.zigbee.sleepRequest },
      onSleep:
        config.zigbee.onSleep === undefined ? undefined : { io: BoardDigital, pin: config.zigbee.onSleep },
    },
  };
}

/** The A7670E on its UART and lines, and the MqttLink over its MQTT stack. */
function createModemLink(
  modem: NonNullable<BoardConfig['modem']>,
  mqtt: ModdableMqttOptions,
  timers: ModdableTimers,
): ModemLink {
  const w = modem.wiring;
  const line = (pin: number | undefined) => (pin === undefined ? undefined : { io: BoardDigital, pin });
  const driver = new A7670({
    serial: { io: BoardSerial, ...w.uart },
    pwrkey: { io: BoardDigital, pin: w.pwrkey, inverted: w.pwrkeyInverted },
    status: line(w.status),
    dtr: line(w.dtr),
    ri: line(w.ri),
    supply: line(w.supply),
    timers,
  });
  return new ModemLink({
    modem: driver,
    timers,
    broker: {
      host: mqtt.host,
      port: mqtt.port ?? (modem.ca ? 8883 : 1883),
      user: mqtt.user,
      password: mqtt.password,
    },
    clientId: mqtt.id,
    apn: modem.apn,
    onError: modem.onError,
    ...(modem.ca ? { tls: { caName: 'parklink-ca.pem', ca: modem.ca } } : {}),
  });
}

/** Blocks for `ms` milliseconds (Timer.delay); for bench code only, never in a unit. */
export function delay(ms: number): void {
  Timer.delay(ms);
}
