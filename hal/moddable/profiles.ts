// The ESP32 boards the firmware builds for, as data: each board's pin map, buses and (on a board
// that carries one) the cellular modem's wiring. firmware/main.ts picks the profile from the link
// the factory provisioned (network.link). No SDK imports here, so the maps are checked on the host
// (host-tests/device/profiles.test.ts) for pins used twice and pins the board reserves.
import type { BoardPins } from '../hardware';

/** Bus pins and the parts that are not in BoardPins (they never reach a processor unit). */
export interface BoardBuses {
  i2c: { data: number; clock: number; hz: number };
  spi: { out: number; in: number; clock: number; hz: number };
  buzzer: { pin: number };
  /** PCF8574 backpack address (0x27; 0x3F for a PCF8574A) and the LCD's geometry. */
  lcd: { address: number; columns: number; rows: number };
}

/** How a board wires the A7670E: its UART and the control lines (absent ones left out). */
export interface BoardModem {
  uart: { port: number; transmit: number; receive: number; baud?: number };
  pwrkey: number;
  /** PWRKEY through a transistor: the MCU writes 1 to press. */
  pwrkeyInverted?: boolean;
  status?: number;
  dtr?: number;
  ri?: number;
  /** The module's supply switch (1 = on). */
  supply?: number;
}

export type LinkKind = 'wifi' | 'cellular';

export interface BoardProfile {
  name: string;
  link: LinkKind;
  pins: BoardPins;
  buses: BoardBuses;
  /** The cellular modem's wiring, on a board that carries one. */
  modem?: BoardModem;
  /**
   * Pins the board itself uses for something the firmware does not drive (module RESET, PSRAM,
   * an SD slot's lines kept, ADC dividers): the pin map must stay off them.
   */
  reserved: readonly number[];
}

/**
 * Default pin map of an ESP32-DevKitC (ESP32-WROOM-32), two bays. Free of the flash pins
 * (GPIO 6-11), UART0 (1, 3) and the input-only 34-39 (no pull-ups); strapping pins carry only
 * outputs whose loads keep them at their boot level (GPIO 2 and 15 drive LEDs to ground; GPIO 5
 * is the reader's chip select, idle high as its strap wants).
 */
export const DEVKITC_PINS: BoardPins = Object.freeze({
  reader: Object.freeze({ select: 5, reset: 4, hz: 4_000_000 }), // MFRC522 on VSPI
  buttons: Object.freeze({ bay: 32, up: 33, down: 25, ok: 26, cancel: 27 }),
  lights: Object.freeze({ paid: Object.freeze([16, 17]), expired: Object.freeze([14, 2]), overtime: 15 }),
});

export const DEVKITC_BUSES: BoardBuses = Object.freeze({
  i2c: Object.freeze({ data: 21, clock: 22, hz: 100_000 }), // LCD backpack
  spi: Object.freeze({ out: 23, in: 19, clock: 18, hz: 4_000_000 }), // VSPI: MOSI, MISO, SCK
  buzzer: Object.freeze({ pin: 13 }),
  lcd: Object.freeze({ address: 0x27, columns: 20, rows: 4 }),
});

/** Flash and PSRAM-free DevKitC: the module's SPI flash lines. */
const WROOM_RESERVED = Object.freeze([6, 7, 8, 9, 10, 11, 1, 3]);

export const DEVKITC_PROFILE: BoardProfile = Object.freeze({
  name: 'ESP32-DevKitC (Wi-Fi)',
  link: 'wifi',
  pins: DEVKITC_PINS,
  buses: DEVKITC_BUSES,
  reserved: WROOM_RESERVED,
});

/**
 * LilyGO T-A7670E (ESP32-WROVER + A7670E): modem wiring as Xinyuan-LilyGO/LilyGO-T-A76XX
 * examples/ATdebug/utilities.h (LILYGO_T_A7670) gives it: ESP32 TX 26 → module RX, RX 27, PWRKEY 4
 * (through a transistor), DTR 25, RI 33, supply switch (BOARD_POWERON) 12; no STATUS line.
 */
export const T_A7670_MODEM: BoardModem = Object.freeze({
  uart: Object.freeze({ port: 1, transmit: 26, receive: 27, baud: 115_200 }),
  pwrkey: 4,
  pwrkeyInverted: true,
  dtr: 25,
  ri: 33,
  supply: 12,
});

/**
 * The same utilities.h: MODEM_RESET 5 (active high through a transistor: never drive it), the
 * WROVER's PSRAM on 16/17, the battery divider on ADC 35, flash 6-11, UART0 1/3. The SD slot's
 * lines (MISO 2, MOSI 15, SCK 14, CS 13) are used by this map: the slot stays empty.
 */
const T_A7670_RESERVED = Object.freeze([5, 16, 17, 35, 6, 7, 8, 9, 10, 11, 1, 3]);

/**
 * The meter's parts on the T-A7670E, one bay: what the modem, the PSRAM and the module RESET leave
 * of the ESP32 carries one bay's lights and five buttons, not the DevKitC map's two bays. Moved from
 * the DevKitC map: the reader's select 5 → 32 (GPIO 5 resets the modem), no NRSTPD line (tie it high:
 * no hard power-down and no hard reset, so between taps the reader is only antenna-off); buttons to the input-only 34, 39, 36 (10 kΩ pull-ups on the
 * meter board: these pins have none, and the SDK's InputPullUp there does nothing (digitalbank.c
 * ignores gpio_set_pull_mode's refusal); 36 is free on boards before V1.4, where it became the solar
 * divider), GPIO 0 (the BOOT key's line, pulled up; held at reset it starts the bootloader) and 15
 * (pulled up at boot; held at power-on it only silences the boot log); paid light 13, expired light
 * 2 (LEDs to ground, as GPIO 2's strap wants); buzzer 14; no overtime light.
 */
export const T_A7670_PINS: BoardPins = Object.freeze({
  reader: Object.freeze({ select: 32, hz: 4_000_000 }),
  buttons: Object.freeze({ bay: 34, up: 39, down: 36, ok: 0, cancel: 15 }),
  lights: Object.freeze({ paid: Object.freeze([13]), expired: Object.freeze([2]) }),
});

export const T_A7670_BUSES: BoardBuses = Object.freeze({
  i2c: Object.freeze({ data: 21, clock: 22, hz: 100_000 }),
  spi: Object.freeze({ out: 23, in: 19, clock: 18, hz: 4_000_000 }),
  buzzer: Object.freeze({ pin: 14 }),
  lcd: Object.freeze({ address: 0x27, columns: 20, rows: 4 }),
});

export const T_A7670_PROFILE: BoardProfile = Object.freeze({
  name: 'LilyGO T-A7670E (cellular)',
  link: 'cellular',
  pins: T_A7670_PINS,
  buses: T_A7670_BUSES,
  modem: T_A7670_MODEM,
  reserved: T_A7670_RESERVED,
});

/** The board profile for a provisioned link. */
export function boardProfile(link: LinkKind): BoardProfile {
  return link === 'cellular' ? T_A7670_PROFILE : DEVKITC_PROFILE;
}

/** Why a meter with `bays` bays does not fit the profile's board, or undefined when it does. */
export function bayMismatch(profile: BoardProfile, bays: number): string | undefined {
  const lights = Math.min(profile.pins.lights.paid.length, profile.pins.lights.expired.length);
  if (bays <= lights) return undefined;
  return `meter.bays lists ${bays} bays; the ${profile.name} board has lights for ${lights}`;
}

/** Every pin a profile drives or reads, with what it is for. */
export function profilePins(profile: BoardProfile): { pin: number; use: string }[] {
  const { pins, buses, modem } = profile;
  const used: { pin: number; use: string }[] = [];
  const add = (pin: number | undefined, use: string) => {
    if (pin !== undefined) used.push({ pin, use });
  };
  add(pins.reader.select, 'reader select');
  add(pins.reader.reset, 'reader reset');
  for (const [key, pin] of Object.entries(pins.buttons)) add(pin, `${key} button`);
  for (const [i, pin] of pins.lights.paid.entries()) add(pin, `paid light ${i + 1}`);
  for (const [i, pin] of pins.lights.expired.entries()) add(pin, `expired light ${i + 1}`);
  add(pins.lights.overtime, 'overtime light');
  add(buses.i2c.data, 'I2C data');
  add(buses.i2c.clock, 'I2C clock');
  add(buses.spi.out, 'SPI MOSI');
  add(buses.spi.in, 'SPI MISO');
  add(buses.spi.clock, 'SPI clock');
  add(buses.buzzer.pin, 'buzzer');
  if (modem) {
    add(modem.uart.transmit, 'modem UART transmit');
    add(modem.uart.receive, 'modem UART receive');
    add(modem.pwrkey, 'modem PWRKEY');
    add(modem.status, 'modem STATUS');
    add(modem.dtr, 'modem DTR');
    add(modem.ri, 'modem RI');
    add(modem.supply, 'modem supply');
  }
  return used;
}

/** The ESP32's input-only pins (no output driver, no internal pull-ups). */
const INPUT_ONLY = Object.freeze([34, 35, 36, 37, 38, 39]);

/** What is wrong with a profile's pin map: pins used twice, reserved pins used, outputs on input-only pins. */
export function pinMapClashes(profile: BoardProfile): string[] {
  const clashes: string[] = [];
  const seen = new Map<number, string>();
  const outputs = new Set<string>(['reader select', 'reader reset', 'buzzer', 'SPI MOSI', 'SPI clock']);
  for (const { pin, use } of profilePins(profile)) {
    const earlier = seen.get(pin);
    if (earlier) clashes.push(`GPIO ${pin}: ${earlier} and ${use}`);
    else seen.set(pin, use);
    if (profile.reserved.includes(pin)) clashes.push(`GPIO ${pin} (${use}) is reserved on ${profile.name}`);
    const output =
      outputs.has(use) ||
      use.includes('light') ||
      (use.startsWith('modem') &&
        use !== 'modem UART receive' &&
        use !== 'modem RI' &&
        use !== 'modem STATUS');
    if (output && INPUT_ONLY.includes(pin)) clashes.push(`GPIO ${pin} (${use}) is input-only`);
  }
  return clashes;
}
