// SNTP on Moddable: the SDK's `sntp` module (modules/network/sntp), one UDP exchange per request.
// It resolves the host, sends a client packet to port 123 every 5 s (five tries), checks the answer
// is 48 bytes in server mode, discards a kiss-o'-death (stratum 0) and gives the transmit
// timestamp's whole seconds since 1970: the reading is truncated to the second.
import SNTP from 'sntp';
import type { SntpClient, TimeDone } from '../time';

/** The SDK's client could not resolve the host or had no answer. */
export class SntpError extends Error {
  override readonly name = 'SntpError';
}

export class ModdableSntp implements SntpClient {
  request(host: string, done: TimeDone): void {
    let settled = false;
    const settle = (error: Error | undefined, seconds?: number) => {
      if (settled) return;
      settled = true;
      if (error) done(error);
      else done(undefined, { timeMs: (seconds as number) * 1000, resolutionMs: 1000 });
    };
    try {
      new SNTP({ host }, (message, value) => {
        if (message === SNTP.time) settle(undefined, value);
        else if (message === SNTP.error)
          settle(new SntpError(`SNTP ${host}: ${String(value ?? 'no answer')}`));
        // SNTP.retry: the module sends again by itself. Returning nothing on an error ends it.
      });
    } catch (error) {
      settle(error instanceof Error ? error : new SntpError(String(error)));
    }
  }
}
