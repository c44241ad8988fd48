// Two application slots and the boot selector, shaped after ESP-IDF's app_update (esp_ota_ops.h)
// with rollback on (CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE): an image written to the slot not
// running is selected with setBoot and boots pending verification; the running image confirms
// itself (esp_ota_mark_app_valid_cancel_rollback) or is rolled back, by itself
// (esp_ota_mark_app_invalid_rollback_and_reboot) or by the bootloader when the board restarts
// (watchdog, power cut) before it confirmed.
import type { NorFlash } from './flash';

export type OtaSlotIndex = 0 | 1;

export interface OtaSlots {
  /** The slot the running image was booted from. */
  running(): OtaSlotIndex;
  /** The other slot's index. */
  inactiveIndex(): OtaSlotIndex;
  /** The slot not running, for writing an update (NOR rules: erase a sector before writing it). */
  inactive(): NorFlash;
  /** Boots `slot` at the next restart, pending verification (esp_ota_set_boot_partition). */
  setBoot(slot: OtaSlotIndex): void;
  /** Whether the running image booted pending verification and is not confirmed yet. */
  pending(): boolean;
  /** Marks the running image valid: the bootloader no longer rolls it back. */
  confirm(): void;
  /** Marks the running image invalid and restarts into the other slot; does not return on a device. */
  rollback(): void;
  /** Restarts the board (esp_restart); does not return on a device. */
  restart(): void;
  /** Whether the bootloader gave up on `slot` (it booted pending and was never confirmed). */
  aborted(slot: OtaSlotIndex): boolean;
}

/** The hardware target of the ParkLink ESP32 board, revision 2: images are signed for it. */
export const BOARD_TARGET = 'esp32-parklink-r2';

/** A board's firmware update parts (414a): its slots and what the running image says about itself. */
export interface FirmwareSlots {
  slots: OtaSlots;
  /** The running image's version (the build's own on a device, the image header on the virtual board). */
  version: number;
  /** The hardware target images must be signed for. */
  target: string;
  /**
   * A check only the running image can make about itself, run in the self-test after an update:
   * undefined when it passes, else what failed.
   */
  imageCheck?(): string | undefined;
}
