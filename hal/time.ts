// Where the meter learns the wall time, besides the platform's sealed time exchange (0x08/0x88):
// an SNTP client where the link has IP, and the cellular network's time where a modem carries it.
// Both are unauthenticated; firmware/units/time.ts decides what to believe (docs/time.md).

/** A server's time as the client read it: epoch milliseconds, valid to `resolutionMs` below it. */
export interface WallTimeReading {
  /** The time the server put in its answer (NTP transmit timestamp), epoch ms UTC. */
  timeMs: number;
  /** How coarse `timeMs` is: 1000 where the stack reports whole seconds (truncated). */
  resolutionMs: number;
}

export type TimeDone = (error: Error | undefined, reading?: WallTimeReading) => void;

/** One SNTP (RFC 4330) request/answer exchange with `host`; `done` is called exactly once. */
export interface SntpClient {
  request(host: string, done: TimeDone): void;
}

/**
 * The cellular network's time (NITZ, 3GPP TS 24.008 §9.2.15a) as the modem's clock holds it: an
 * error when the network has not sent it since the modem started.
 */
export interface NetworkTimeSource {
  networkTime(done: TimeDone): void;
}

/** A clock whose wall time can be set (the system clock the network stack and TLS read). */
export interface SettableClock {
  setWallClock(epochMs: number): void;
}
