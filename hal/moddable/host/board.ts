// The meter's hardware for the host build (x-cli-lin): the real Moddable runtime's modules where a
// host has the thing (timer and time, the preference and file modules, native crypt, MQTT over a
// real TCP socket, the kernel's random source), and hal/mock's virtual chips where it has not (the
// MFRC522 with cards in its field, the secure element and SAM, sensors, buttons, display). The five
// stores are files with NOR flash rules, sized as partitions.csv sizes them on the ESP32.
import type { Clock, TimerHandle, Timers } from '../../clock';
import type { MeterHardware, PartitionName } from '../../hardware';
import { PARTITION_NAMES } from '../../hardware';
import type { MqttLink } from '../../mqtt';
import type { Random } from '../../random';
import type { Buzzer, TextDisplay } from '../../ui';
import { VirtualBoard } from '../../mock/board';
import type { Atecc608State } from '../../mock/secure/atecc608';
import type { SamState } from '../../mock/secure/sam';
import { ModdableClock, ModdableTimers } from '../clock';
import { ModdableCrypto } from '../crypto';
import { ModdablePreferences } from '../preferences';
import { FileFlash } from './fileFlash';
import { fillRandom } from './native';
import { loadSecureState, saveSecureState } from './secureState';

/** partitions.csv's sizes: the host's store files are the ESP32's partitions, byte for byte. */
export const HOST_PARTITION_BYTES: Readonly<Record<PartitionName, number>> = Object.freeze({
  records: 0x80000,
  backup: 0x80000,
  upload: 0x40000,
  blacklist: 0x40000,
  reader: 0x20000,
});

/** Wall and monotonic time and timers from the runtime's time and timer modules. */
class HostClock implements Clock, Timers {
  readonly #clock = new ModdableClock();
  readonly #timers = new ModdableTimers();
  now(): number {
    return this.#clock.now();
  }
  monotonic(): number {
    return this.#clock.monotonic();
  }
  setTimeout(callback: () => void, ms: number): TimerHandle {
    return this.#timers.setTimeout(callback, ms);
  }
  setInterval(callback: () => void, ms: number): TimerHandle {
    return this.#timers.setInterval(callback, ms);
  }
  clear(handle: TimerHandle | undefined): void {
    this.#timers.clear(handle);
  }
}

const kernelRandom: Random = Object.freeze({ fill: fillRandom });

/**
 * The screen as the host shows it: the current lines only. hal/mock's display and buzzer keep every
 * screen and tone for tests to read back, which a meter running for days must not.
 */
class CurrentScreen implements TextDisplay {
  readonly rows = 4;
  readonly columns = 20;
  lines: readonly string[] = [];
  on = true;
  show(lines: readonly string[]): void {
    this.lines = lines.slice(0, this.rows).map((line) => line.slice(0, this.columns));
  }
  power(on: boolean): void {
    this.on = on;
  }
}

const silentBuzzer: Buzzer = Object.freeze({ tone() {}, stop() {} });

export interface HostBoardOptions {
  mqtt: MqttLink;
  /** Where the store files and the secure parts' state live ("./" is the working directory). */
  directory: string;
}

export interface HostBoard {
  hardware: MeterHardware;
  /** The virtual chips, for the simulated driver at the meter: buttons, the reader's field. */
  virtual: VirtualBoard;
  /** Writes the virtual secure parts' state when it changed (keys installed, rotated or wiped). */
  persist(): void;
}

export function createHostBoard(options: HostBoardOptions): HostBoard {
  const clock = new HostClock();
  const statePath = `${options.directory}secure-parts.bin`;
  const secure = loadSecureState(statePath);
  const virtual = new VirtualBoard({
    mqtt: options.mqtt,
    clock,
    sensors: true,
    ...(secure ? { state: secureOnly(secure) } : {}),
  });
  const partitions = {} as Record<PartitionName, FileFlash>;
  for (const name of PARTITION_NAMES) {
    partitions[name] = new FileFlash(`${options.directory}${name}.flash`, HOST_PARTITION_BYTES[name]);
  }
  const hardware: MeterHardware = {
    ...virtual.hardware,
    clock,
    timers: clock,
    partitions: Object.freeze(partitions),
    preferences: new ModdablePreferences(),
    random: kernelRandom,
    crypto: new ModdableCrypto(),
    display: new CurrentScreen(),
    buzzer: silentBuzzer,
  };
  let saved = secure ? saveSecureState(undefined, secureStateOf(virtual)) : undefined;
  return {
    hardware,
    virtual,
    persist() {
      saved = saveSecureState(statePath, secureStateOf(virtual), saved);
    },
  };
}

function secureStateOf(virtual: VirtualBoard) {
  return { element: virtual.secureElement.state, sam: virtual.sam.state };
}

/** A board state carrying only the secure parts: flash and preferences are the host's own. */
function secureOnly(secure: { element: Atecc608State; sam: SamState }) {
  return {
    flash: {} as Record<PartitionName, Uint8Array>,
    preferences: new Map(),
    secure,
  };
}
