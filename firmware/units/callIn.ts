// Call-in (dial-up): the platform rings or texts the meter's number to make it connect and report.
// Only the caller's number counts (caller ID / the SMS originating address), checked against the
// numbers provisioned for the platform; an SMS's text is never read as a command. Anything else is
// refused and reported (a 'call-in-refused' status event). A driver ringing the meter is not a
// payment path: payments stay on the platform. Caller ID can be forged, so an accepted call-in does
// no more than connect and send the status, at most once a minute.
import type { Clock, TimerHandle, Timers } from '../../hal/clock';
import type { CallInEvent, CallInSource } from '../../hal/dialup';
import type { MqttLink } from '../../hal/mqtt';
import { statusEvent } from '../../protocol/status';
import type { EventBus } from '../bus';
import type { MeterEvents } from '../events';

export interface CallInOptions {
  source: CallInSource;
  /** The platform's numbers (E.164, e.g. +447700900123). */
  numbers: readonly string[];
  bus: EventBus<MeterEvents>;
  radio: MqttLink;
  clock: Clock;
  timers: Timers;
  /** Sends the status report (or a status event where the board has no guard); false if not sent. */
  sendStatus: () => boolean;
  /** How long to wait for the link after a call-in, ms (default 3 minutes). */
  connectWaitMs?: number;
  /** Least time between two accepted call-ins, ms (default one minute). */
  minIntervalMs?: number;
  /** Least time between two reports of refused callers, ms (default ten minutes). */
  refusalReportMs?: number;
}

/** "+44 7700-900 123", "0044…" → "+447700900123"; anything else keeps only its digits and a leading +. */
export function normaliseNumber(number: string): string {
  let n = '';
  for (const c of number) if ((c >= '0' && c <= '9') || (c === '+' && n.length === 0)) n += c;
  if (n.startsWith('00')) n = `+${n.slice(2)}`;
  return n;
}

/** The number with all but its last three digits hidden (status events leave the meter). */
function masked(number: string): string {
  const n = normaliseNumber(number);
  return n.length <= 3 ? '***' : `${'*'.repeat(n.length - 3)}${n.slice(-3)}`;
}

export class CallInUnit {
  readonly #o: Required<CallInOptions>;
  readonly #numbers: Set<string>;
  #waiting: TimerHandle | undefined;
  #lastAccepted = Number.NEGATIVE_INFINITY;
  #lastRefusalReport = Number.NEGATIVE_INFINITY;
  #refusedUnreported = 0;
  accepted = 0;
  refused = 0;
  /** Status sent after a call-in. */
  answered = 0;

  constructor(options: CallInOptions) {
    this.#o = { connectWaitMs: 180_000, minIntervalMs: 60_000, refusalReportMs: 600_000, ...options };
    this.#numbers = new Set(options.numbers.map(normaliseNumber).filter((n) => n.length > 3));
    options.source.onCallIn = (event) => this.#onCallIn(event);
  }

  stop(): void {
    this.#o.source.onCallIn = undefined;
    this.#o.timers.clear(this.#waiting);
    this.#waiting = undefined;
  }

  #onCallIn(event: CallInEvent): void {
    const { bus, clock } = this.#o;
    const number = normaliseNumber(event.number);
    if (!this.#numbers.has(number)) {
      this.refused++;
      bus.emit('call-in', { kind: event.kind, number, accepted: false });
      // Reported at most once per refusalReportMs: each report wakes the modem, so a stranger
      // ringing over and over must not drain the battery. The ones in between are counted.
      const now = clock.monotonic();
      if (now - this.#lastRefusalReport < this.#o.refusalReportMs) {
        this.#refusedUnreported++;
        return;
      }
      const more = this.#refusedUnreported > 0 ? ` (and ${this.#refusedUnreported} more before)` : '';
      this.#lastRefusalReport = now;
      this.#refusedUnreported = 0;
      bus.emit(
        'status-event',
        statusEvent(
          clock.now(),
          'call-in-refused',
          'warning',
          true,
          `${event.kind} from ${masked(number)}${more}`,
        ),
      );
      return;
    }
    const now = clock.monotonic();
    if (this.#waiting || now - this.#lastAccepted < this.#o.minIntervalMs) return; // one at a time
    this.#lastAccepted = now;
    this.accepted++;
    bus.emit('call-in', { kind: event.kind, number, accepted: true });
    this.#o.radio.power?.(true);
    this.#awaitLink(0);
  }

  #awaitLink(waited: number): void {
    const { radio, timers, bus, clock } = this.#o;
    this.#waiting = undefined;
    if (radio.connected && this.#o.sendStatus()) {
      this.answered++;
      return;
    }
    if (waited >= this.#o.connectWaitMs) {
      bus.emit(
        'status-event',
        statusEvent(clock.now(), 'call-in-failed', 'warning', true, 'link did not come up after a call-in'),
      );
      return;
    }
    this.#waiting = timers.setTimeout(() => this.#awaitLink(waited + 1_000), 1_000);
  }
}
