// The ESP32 task watchdog and reset reason (watchdog.c) as the HAL's Watchdog. The SDK has a
// resetReason module for examples only, and no watchdog API.
/// <reference path="./typings.d.ts" />
import type { ResetReason, Watchdog } from '../watchdog';

// esp_reset_reason_t (ESP-IDF esp_system.h): 1 power-on, 3 software, 4 panic, 5 interrupt WDT,
// 6 task WDT, 7 other WDT, 9 brownout.
function reasonOf(code: number): ResetReason {
  switch (code) {
    case 1:
      return 'power-on';
    case 3:
      return 'software';
    case 4:
      return 'panic';
    case 5:
    case 6:
    case 7:
      return 'watchdog';
    case 9:
      return 'brownout';
    default:
      return 'unknown';
  }
}

export class TaskWatchdog implements Watchdog {
  readonly lastReset: ResetReason = reasonOf(native('xs_parklink_reset_reason')() as number);

  start(timeoutMs: number): void {
    native('xs_parklink_wdt_start')(timeoutMs);
  }

  feed(): void {
    native('xs_parklink_wdt_feed')();
  }

  stop(): void {
    native('xs_parklink_wdt_stop')();
  }
}
