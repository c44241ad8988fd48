// The hardware watchdog: once started it restarts the board unless fed within its timeout. The
// monitoring engine (413) feeds it only while every unit shows signs of life, so a hung firmware
// is restarted; after the restart `lastReset` says why the board started.

export type ResetReason = 'power-on' | 'watchdog' | 'software' | 'brownout' | 'panic' | 'unknown';

export interface Watchdog {
  start(timeoutMs: number): void;
  feed(): void;
  stop(): void;
  /** Why this start happened (read from the chip at boot). */
  readonly lastReset: ResetReason;
}
