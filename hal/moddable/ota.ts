// The ESP32's two application slots (partitions.csv ota_0, ota_1) and boot selector through
// ota.c's host functions (ESP-IDF app_update with rollback). Type-checked only: no test runs it on
// a chip. The inactive slot is written at an offset so a download resumes after a power cut; see
// ota.c for why Moddable's sequential `ota` module is not used for it.
/// <reference path="./typings.d.ts" />
import { checkFlashRange, FlashRangeError, type NorFlash } from '../flash';
import type { OtaSlotIndex, OtaSlots } from '../ota';

// esp_ota_img_states_t (esp_ota_ops.h)
const PENDING_VERIFY = 1;
const INVALID = 3;
const ABORTED = 4;
const SECTOR = 4096;

class AppSlot implements NorFlash {
  readonly byteLength: number;
  readonly sectorSize = SECTOR;
  constructor(readonly slot: OtaSlotIndex) {
    this.byteLength = native('xs_parklink_ota_size')(slot) as number;
  }
  read(offset: number, byteLength: number): Uint8Array {
    checkFlashRange(this, offset, byteLength);
    if (byteLength === 0) return new Uint8Array(0);
    return new Uint8Array(native('xs_parklink_ota_read')(this.slot, offset, byteLength) as ArrayBuffer);
  }
  write(offset: number, data: Uint8Array): void {
    checkFlashRange(this, offset, data.byteLength);
    if (data.byteLength > 0) native('xs_parklink_ota_write')(this.slot, offset, data);
  }
  eraseSector(sector: number): void {
    if (!Number.isInteger(sector) || sector < 0 || (sector + 1) * SECTOR > this.byteLength)
      throw new FlashRangeError(`bad ota sector ${sector}`);
    native('xs_parklink_ota_erase')(this.slot, sector);
  }
}

export class Esp32OtaSlots implements OtaSlots {
  readonly #running: OtaSlotIndex = native('xs_parklink_ota_running')() === 1 ? 1 : 0;
  #inactive: AppSlot | undefined;

  running(): OtaSlotIndex {
    return this.#running;
  }
  inactiveIndex(): OtaSlotIndex {
    return this.#running === 0 ? 1 : 0;
  }
  inactive(): NorFlash {
    this.#inactive ??= new AppSlot(this.inactiveIndex());
    return this.#inactive;
  }
  setBoot(slot: OtaSlotIndex): void {
    native('xs_parklink_ota_set_boot')(slot);
  }
  pending(): boolean {
    return native('xs_parklink_ota_state')(this.#running) === PENDING_VERIFY;
  }
  confirm(): void {
    native('xs_parklink_ota_confirm')();
  }
  rollback(): void {
    native('xs_parklink_ota_rollback')();
  }
  restart(): void {
    native('xs_parklink_ota_restart')();
  }
  aborted(slot: OtaSlotIndex): boolean {
    const state = native('xs_parklink_ota_state')(slot);
    return state === ABORTED || state === INVALID;
  }
}
