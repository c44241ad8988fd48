// Time management (part of the management service unit, 414): the meter's wall clock, set and kept
// from three sources, best first: SNTP where the link has IP, the cellular network's time where a
// modem carries the link, and the platform's sealed time exchange (0x08/0x88). Small corrections
// are slewed (the clock never jumps back under a sale), big ones stepped; the oscillator's drift is
// estimated and compensated between syncs. SNTP and the network's time are unauthenticated, so they
// may never move a synchronised clock far, and the sealed exchange wins when they disagree with it
// (docs/time.md says why). Every record carries the clock's state (protocol/time.ts TimeState).
import type { Clock, TimerHandle, Timers } from '../../hal/clock';
import type { NetworkTimeSource, SettableClock, SntpClient, WallTimeReading } from '../../hal/time';
import { ProtocolError } from '../../protocol/errors';
import { statusEvent } from '../../protocol/status';
import {
  decodeTimeAnswer,
  encodeTimeRequest,
  exchangeOffset,
  TIME_ANSWER_DOWNLINK,
  TIME_REQUEST_UPLINK,
  TimeState,
  type TimeSourceName,
} from '../../protocol/time';
import type { EventBus } from '../bus';
import type { MeterEvents } from '../events';

/**
 * The clock the units read: the board's clock plus a correction that steps, slews at a bounded
 * rate and compensates the oscillator's frequency error. All of it is computed from monotonic time,
 * so a slew is smooth and the clock never runs backwards except on a step.
 */
export class DisciplinedClock implements Clock {
  readonly #base: Clock & Partial<SettableClock>;
  /** Correction at #anchor (ms), frequency correction (fraction), slew in progress. */
  #offset = 0;
  #anchor: number;
  #frequency = 0;
  #slew = { start: 0, amount: 0, rate: 0 };

  constructor(base: Clock & Partial<SettableClock>) {
    this.#base = base;
    this.#anchor = base.monotonic();
  }

  now(): number {
    return this.at(this.#base.monotonic());
  }

  monotonic(): number {
    return this.#base.monotonic();
  }

  /** The wall time this clock read (or will read) at monotonic time `mono`. */
  at(mono: number): number {
    const base = this.#base;
    return base.now() - (base.monotonic() - mono) + this.#correction(mono);
  }

  /** The oscillator frequency correction in force, parts per million (negative: slowed down). */
  get frequencyPpm(): number {
    return this.#frequency * 1e6;
  }

  /** What a slew in progress has still to apply, ms. */
  get slewRemainingMs(): number {
    return this.#slew.amount - this.#slewed(this.#base.monotonic());
  }

  /** Jumps by `deltaMs`, ending any slew; the board's own clock is set too where it can be. */
  step(deltaMs: number): void {
    const mono = this.#fold();
    const target = this.at(mono) + deltaMs;
    this.#slew = { start: mono, amount: 0, rate: 0 };
    const base = this.#base;
    if (base.setWallClock) {
      base.setWallClock(target);
      this.#offset = 0;
      this.#offset = target - this.at(mono); // what the board's clock cannot hold (whole seconds)
    } else this.#offset += deltaMs;
  }

  /** Applies `deltaMs` gradually, at most `ratePpm` of elapsed time; replaces any slew in progress. */
  slew(deltaMs: number, ratePpm: number): void {
    const mono = this.#fold();
    this.#slew = { start: mono, amount: deltaMs, rate: ratePpm / 1e6 };
  }

  /** Sets the frequency correction (ppm of elapsed time added to the clock). */
  setFrequencyPpm(ppm: number): void {
    const mono = this.#fold();
    const remaining = this.#slew.amount;
    this.#slew = { ...this.#slew, start: mono, amount: remaining };
    this.#frequency = ppm / 1e6;
  }

  #slewed(mono: number): number {
    const { start, amount, rate } = this.#slew;
    if (amount === 0 || rate === 0) return 0;
    const most = (mono - start) * rate;
    return amount > 0 ? Math.min(amount, most) : Math.max(amount, -most);
  }

  #correction(mono: number): number {
    return this.#offset + this.#frequency * (mono - this.#anchor) + this.#slewed(mono);
  }

  /** Folds frequency and the slew done so far into the offset, anchored now; returns now (monotonic). */
  #fold(): number {
    const mono = this.#base.monotonic();
    const done = this.#slewed(mono);
    this.#offset = this.#correction(mono);
    this.#anchor = mono;
    this.#slew = { ...this.#slew, start: mono, amount: this.#slew.amount - done };
    return mono;
  }
}

/** One reading of a source: the true time at a monotonic instant, and how far it can be trusted. */
export interface TimeSample {
  source: TimeSourceName;
  /** Epoch ms at monotonic time `atMono`. */
  timeMs: number;
  atMono: number;
  /** Half the round trip plus the source's resolution: the true time is within ± this. */
  uncertaintyMs: number;
  /** Only the sealed platform exchange is. */
  authenticated: boolean;
}

/** A local source (SNTP, the modem): one query, one sample or an error. */
export interface TimeSourcePort {
  readonly name: 'sntp' | 'cellular';
  query(done: (error: Error | undefined, sample?: TimeSample) => void): void;
}

/** Why a sample was not believed (the 'time-refused' event's reason; docs/time.md). */
export type TimeRefusalReason = 'implausible' | 'too-uncertain' | 'disagrees-with-platform' | 'too-far';

function sampleOf(
  source: 'sntp' | 'cellular',
  reading: WallTimeReading,
  sentMono: number,
  receivedMono: number,
): TimeSample {
  // A truncated reading is, on average, half its resolution behind; the server's time stands for
  // the middle of the round trip.
  return {
    source,
    timeMs: reading.timeMs + reading.resolutionMs / 2,
    atMono: (sentMono + receivedMono) / 2,
    uncertaintyMs: (receivedMono - sentMono) / 2 + reading.resolutionMs / 2,
    authenticated: false,
  };
}

/** SNTP through the board's client (hal/time.ts): each host in turn until one answers. */
export function sntpSource(client: SntpClient, hosts: readonly string[], clock: Clock): TimeSourcePort {
  if (hosts.length === 0) throw new RangeError('SNTP needs at least one host');
  return {
    name: 'sntp',
    query(done) {
      const attempt = (i: number, lastError: Error | undefined): void => {
        if (i >= hosts.length) {
          done(lastError ?? new Error('no SNTP host answered'));
          return;
        }
        const sent = clock.monotonic();
        client.request(hosts[i], (error, reading) => {
          if (error || !reading) attempt(i + 1, error);
          else done(undefined, sampleOf('sntp', reading, sent, clock.monotonic()));
        });
      };
      attempt(0, undefined);
    },
  };
}

/** The cellular network's time through the modem (AT+CCLK?, set by NITZ). */
export function cellularSource(modem: NetworkTimeSource, clock: Clock): TimeSourcePort {
  return {
    name: 'cellular',
    query(done) {
      const sent = clock.monotonic();
      modem.networkTime((error, reading) => {
        if (error || !reading) done(error ?? new Error('no network time'));
        else done(undefined, sampleOf('cellular', reading, sent, clock.monotonic()));
      });
    },
  };
}

export interface TimeOptions {
  clock: DisciplinedClock;
  timers: Timers;
  bus: EventBus<MeterEvents>;
  /** Sends the 0x08 request (CommsUnit.send): false while the link is down. */
  send: (type: number, body: Uint8Array) => boolean;
  /** Local sources, best first (SNTP before the network's time). */
  sources?: readonly TimeSourcePort[];
  /** How often local sources are asked once synchronised, and while unset, ms. */
  pollMs?: number;
  unsetPollMs?: number;
  /** How often the platform is asked once synchronised, ms; an unanswered request is given up after answerTimeoutMs. */
  platformPollMs?: number;
  answerTimeoutMs?: number;
  /** A sync older than this leaves the clock in holdover (not synchronised), ms. */
  holdoverMs?: number;
  /** Offsets from here up are stepped, below it slewed at maxSlewPpm. */
  stepThresholdMs?: number;
  maxSlewPpm?: number;
  /** The most an unauthenticated source may move a synchronised clock, ms. */
  maxUnauthenticatedStepMs?: number;
  /** How far an unauthenticated source may disagree with a clock the platform confirmed, beyond its uncertainty, ms. */
  agreementMs?: number;
  /** Samples less certain than this are refused, ms. */
  maxUncertaintyMs?: number;
  /** No true time is before this (the firmware's build date), epoch ms. */
  notBeforeMs?: number;
}

/** Which source corrects the clock when several answer: the most precise one heard recently. */
const PRECISION_RANK: Readonly<Record<TimeSourceName, number>> = Object.freeze({
  sntp: 0,
  cellular: 1,
  platform: 2,
});
const MAX_FREQUENCY_PPM = 500;
const MIN_DRIFT_INTERVAL_MS = 600_000;

export interface ClockReport {
  state: TimeState;
  source?: TimeSourceName;
  /** The last correction measured, ms (true time minus the meter's clock). */
  lastOffsetMs?: number;
  /** Epoch s of the last sync (applied or confirmed). */
  syncedAt?: number;
  /** Estimated oscillator drift, ppm (positive: the board's clock runs fast). */
  driftPpm: number;
}

export class TimeUnit {
  readonly #o: Required<Omit<TimeOptions, 'sources'>> & { sources: readonly TimeSourcePort[] };
  #timer: TimerHandle | undefined;
  #everSynced = false;
  /** Monotonic time of the last sync, of the last platform confirmation, of the last fix (correction). */
  #lastSync = 0;
  #lastPlatform: number | undefined;
  #fix: number | undefined;
  #source: TimeSourceName | undefined;
  #lastOffset: number | undefined;
  #syncedAtWall: number | undefined;
  /** The best source's last applied sample (monotonic), per rank. */
  readonly #heard = new Map<TimeSourceName, number>();
  #nextId = 1;
  #pending: { id: number; t1: number; sentMono: number } | undefined;
  #nextLocal = 0;
  #nextPlatform = 0;
  #querying = false;
  #lastState: TimeState = TimeState.Unset;
  #lastRefusal: string | undefined;

  constructor(options: TimeOptions) {
    this.#o = {
      sources: [],
      pollMs: 3_600_000,
      unsetPollMs: 30_000,
      platformPollMs: 6 * 3_600_000,
      answerTimeoutMs: 60_000,
      holdoverMs: 24 * 3_600_000,
      stepThresholdMs: 1_000,
      maxSlewPpm: 500,
      maxUnauthenticatedStepMs: 60_000,
      agreementMs: 5_000,
      maxUncertaintyMs: 10_000,
      notBeforeMs: Date.UTC(2026, 0, 1),
      ...options,
    };
    options.bus.on('downlink', ({ type, body }) => {
      if (type === TIME_ANSWER_DOWNLINK) this.receiveAnswer(body);
    });
    // An acknowledged upload proves the link and the platform: a good moment to ask when due.
    options.bus.on('upload-acknowledged', () => {
      if (this.#timer !== undefined && this.#o.clock.monotonic() >= this.#nextPlatform)
        this.requestPlatformTime();
    });
  }

  get clock(): DisciplinedClock {
    return this.#o.clock;
  }

  /** The clock's state now (what a record written now carries). */
  get state(): TimeState {
    if (!this.#everSynced) return TimeState.Unset;
    return this.#o.clock.monotonic() - this.#lastSync <= this.#o.holdoverMs
      ? TimeState.Synced
      : TimeState.Holdover;
  }

  report(): ClockReport {
    const r: ClockReport = { state: this.state, driftPpm: -this.#o.clock.frequencyPpm };
    if (this.#source !== undefined) r.source = this.#source;
    if (this.#lastOffset !== undefined) r.lastOffsetMs = this.#lastOffset;
    if (this.#syncedAtWall !== undefined) r.syncedAt = this.#syncedAtWall;
    return r;
  }

  start(): void {
    if (this.#timer !== undefined) return;
    const { timers } = this.#o;
    this.#timer = timers.setInterval(() => this.#tick(), Math.min(this.#o.unsetPollMs, 30_000));
    this.#tick();
  }

  stop(): void {
    this.#o.timers.clear(this.#timer);
    this.#timer = undefined;
  }

  #tick(): void {
    const { clock } = this.#o;
    const now = clock.monotonic();
    const unset = !this.#everSynced;
    if (now >= this.#nextLocal && this.#o.sources.length > 0 && !this.#querying) {
      this.#nextLocal = now + (unset ? this.#o.unsetPollMs : this.#o.pollMs);
      this.queryLocal();
    }
    if (this.#pending && now - this.#pending.sentMono > this.#o.answerTimeoutMs) this.#pending = undefined;
    if (now >= this.#nextPlatform && !this.#pending) this.requestPlatformTime();
    const state = this.state;
    if (state !== this.#lastState) {
      this.#lastState = state;
      if (state === TimeState.Holdover)
        this.#event(
          'clock-holdover',
          'warning',
          true,
          'no time source confirmed the clock within the holdover period',
        );
    }
  }

  /** Asks the local sources in order until one gives a sample the unit believes. */
  queryLocal(): void {
    const sources = this.#o.sources;
    this.#querying = true;
    const next = (i: number): void => {
      if (i >= sources.length) {
        this.#querying = false;
        return;
      }
      sources[i].query((error, sample) => {
        if (error || !sample) {
          this.#o.bus.emit('time-refused', {
            source: sources[i].name,
            reason: 'no-answer',
            detail: String(error),
          });
          next(i + 1);
        } else if (!this.consider(sample)) next(i + 1);
        else this.#querying = false;
      });
    };
    next(0);
  }

  /** Sends a 0x08 request carrying the meter's clock and state; false when the link is down. */
  requestPlatformTime(): boolean {
    const { clock, send } = this.#o;
    const report = this.report();
    const id = this.#nextId;
    const sentMono = clock.monotonic();
    const t1 = Math.max(0, Math.round(clock.at(sentMono)));
    const body = encodeTimeRequest({
      id,
      t1,
      state: report.state,
      ...(report.source === undefined ? {} : { source: report.source }),
      ...(report.lastOffsetMs === undefined ? {} : { offsetMs: report.lastOffsetMs }),
      ...(report.syncedAt === undefined ? {} : { syncedAt: report.syncedAt }),
      driftTenthsPpm: Math.round(report.driftPpm * 10),
    });
    if (!send(TIME_REQUEST_UPLINK, body)) {
      this.#nextPlatform = sentMono + this.#o.unsetPollMs; // try again soon
      return false;
    }
    this.#nextId = (id % 0xffffffff) + 1;
    this.#pending = { id, t1, sentMono };
    this.#nextPlatform = sentMono + (this.#everSynced ? this.#o.platformPollMs : this.#o.unsetPollMs);
    return true;
  }

  /**
   * Handles a 0x88 body (the frame already authenticated and checked against the replay window by
   * the comms unit): it must answer the request in flight, echoing its id and t1.
   */
  receiveAnswer(body: Uint8Array): boolean {
    const { clock, bus } = this.#o;
    const receivedMono = clock.monotonic();
    let answer: ReturnType<typeof decodeTimeAnswer>;
    try {
      answer = decodeTimeAnswer(body);
    } catch (error) {
      const detail = error instanceof ProtocolError ? error.message : String(error);
      bus.emit('time-refused', { source: 'platform', reason: 'bad-answer', detail });
      return false;
    }
    const pending = this.#pending;
    if (!pending || answer.id !== pending.id || answer.t1 !== pending.t1) {
      bus.emit('time-refused', {
        source: 'platform',
        reason: 'unsolicited',
        detail: `answer ${answer.id} does not match the request in flight (${pending?.id ?? 'none'})`,
      });
      return false;
    }
    this.#pending = undefined;
    // t4 on the request's time base: monotonic time elapsed, so a correction in between cannot skew it.
    const t4 = pending.t1 + (receivedMono - pending.sentMono);
    const { offsetMs, delayMs } = exchangeOffset(pending.t1, answer.t2, answer.t3, t4);
    const mid = (pending.sentMono + receivedMono) / 2;
    return this.consider({
      source: 'platform',
      timeMs: clock.at(pending.sentMono) + (mid - pending.sentMono) + offsetMs,
      atMono: mid,
      uncertaintyMs: Math.max(0, delayMs) / 2 + 1,
      authenticated: true,
    });
  }

  /** Judges one sample and, when believed, corrects the clock or counts it as a confirmation. */
  consider(sample: TimeSample): boolean {
    const o = this.#o;
    const { clock, bus } = o;
    const offset = sample.timeMs - clock.at(sample.atMono);
    const refuse = (reason: TimeRefusalReason, detail: string) => {
      bus.emit('time-refused', { source: sample.source, reason, detail, offsetMs: Math.round(offset) });
      // Reported to the platform once per source and reason, not at every poll of a source that stays wrong.
      const key = `${sample.source}:${reason}`;
      if (key !== this.#lastRefusal) {
        this.#lastRefusal = key;
        this.#event('clock-source-refused', 'warning', true, `${sample.source}: ${reason}: ${detail}`);
      }
      return false;
    };
    if (sample.timeMs < o.notBeforeMs)
      return refuse(
        'implausible',
        `${new Date(sample.timeMs).toISOString()} is before the firmware was built`,
      );
    if (sample.uncertaintyMs > o.maxUncertaintyMs)
      return refuse('too-uncertain', `± ${Math.round(sample.uncertaintyMs)} ms`);
    const mono = clock.monotonic();
    if (!sample.authenticated && this.#everSynced) {
      const anchored = this.#lastPlatform !== undefined && mono - this.#lastPlatform <= o.holdoverMs;
      if (anchored && Math.abs(offset) > o.agreementMs + sample.uncertaintyMs)
        return refuse('disagrees-with-platform', `${Math.round(offset)} ms from the clock the platform set`);
      if (Math.abs(offset) > o.maxUnauthenticatedStepMs)
        return refuse('too-far', `${Math.round(offset)} ms from a synchronised clock`);
    }
    if (sample.authenticated) this.#lastPlatform = mono;
    // A less precise source only confirms a clock a better one keeps, unless it finds it wrong.
    const better = [...this.#heard].some(
      ([name, at]) => PRECISION_RANK[name] < PRECISION_RANK[sample.source] && mono - at <= 2 * o.pollMs,
    );
    const within = Math.abs(offset) <= Math.max(o.stepThresholdMs, sample.uncertaintyMs);
    if (this.#everSynced && better && within) {
      this.#synced(sample, offset, 'confirmed');
      return true;
    }
    this.#lastRefusal = undefined;
    this.#correct(offset, sample);
    this.#heard.set(sample.source, mono);
    this.#synced(sample, offset, Math.abs(offset) >= o.stepThresholdMs ? 'stepped' : 'slewed');
    return true;
  }

  #correct(offset: number, sample: TimeSample): void {
    const o = this.#o;
    const clock = o.clock;
    const mono = clock.monotonic();
    // The residual error since the last correction, less what its slew has still to do, is the
    // oscillator's frequency error; measured over long enough to beat the samples' uncertainty.
    const fix = this.#fix;
    if (fix !== undefined && this.#everSynced && mono - fix >= MIN_DRIFT_INTERVAL_MS) {
      const residual = offset - clock.slewRemainingMs;
      const errorPpm = (residual / (mono - fix)) * 1e6;
      const noisePpm = (sample.uncertaintyMs / (mono - fix)) * 1e6;
      if (Math.abs(errorPpm) > noisePpm) {
        const ppm = clock.frequencyPpm + errorPpm * (clock.frequencyPpm === 0 ? 1 : 0.5);
        clock.setFrequencyPpm(Math.max(-MAX_FREQUENCY_PPM, Math.min(MAX_FREQUENCY_PPM, ppm)));
      }
    }
    if (Math.abs(offset) >= o.stepThresholdMs) {
      clock.step(offset);
      o.bus.emit('clock-stepped', { deltaMs: offset });
    } else clock.slew(offset, o.maxSlewPpm);
    this.#fix = mono;
  }

  #synced(sample: TimeSample, offset: number, how: 'stepped' | 'slewed' | 'confirmed'): void {
    const first = !this.#everSynced;
    this.#everSynced = true;
    this.#lastSync = this.#o.clock.monotonic();
    this.#lastState = TimeState.Synced;
    if (how !== 'confirmed') {
      this.#source = sample.source;
      this.#lastOffset = Math.round(offset);
    }
    this.#syncedAtWall = Math.floor(this.#o.clock.now() / 1000);
    this.#o.bus.emit('time-synced', {
      source: sample.source,
      offsetMs: Math.round(offset),
      how,
      driftPpm: -this.#o.clock.frequencyPpm,
    });
    if (first || how === 'stepped')
      this.#event('clock-synced', 'info', true, `${how} by ${Math.round(offset)} ms from ${sample.source}`);
  }

  #event(event: string, severity: 'info' | 'warning', active: boolean, detail: string): void {
    this.#o.bus.emit('status-event', statusEvent(this.#o.clock.now(), event, severity, active, detail));
  }
}
