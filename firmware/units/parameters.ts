// Operating parameters (management service): the versioned set pushed by the platform (downlink
// 0x89), or changed by a technician in an authenticated maintenance session, kept in preferences
// and handed to the units that own each value. Every change is acknowledged with uplink 0x09
// carrying the values in force, so the platform knows what the meter runs.
//
// Power cuts: the set is one preferences entry (one NVS key, written whole or not at all) written
// before any unit takes it; at boot the stored set is handed to the units again. A cut before the
// write leaves the old set in force and unacknowledged, so the platform pushes it again.
// A set with one value out of range is refused whole: the set in force is untouched.
import type { Preferences } from '../../hal/preferences';
import { decodeCbor, encodeCbor } from '../../protocol/cbor';
import { ProtocolError } from '../../protocol/errors';
import { ownBuffer } from '../../protocol/bytes';
import {
  decodeParametersPush,
  encodeParametersAck,
  PARAMETERS_ACK_UPLINK,
  PARAMETERS_DOWNLINK,
  ParameterError,
  type ParameterSet,
  type ParametersAck,
  type ParameterValues,
  validateParameters,
} from '../../protocol/parameters';
import type { EventBus } from '../bus';
import type { MeterEvents } from '../events';

const PREFS = 'params';
const KEY = 'set';

/** Takes one parameter into the unit that owns it; called with the set in force at boot and on change. */
export type ParameterAppliers = {
  [K in keyof ParameterValues]?: (value: ParameterValues[K]) => void;
};

export interface ParametersOptions {
  preferences: Preferences;
  bus?: EventBus<MeterEvents>;
  /** Sends the 0x09 acknowledgement (CommsUnit.send). */
  send?: (type: number, body: Uint8Array) => boolean;
  appliers: ParameterAppliers;
  /** The staff member of the authenticated maintenance session, or undefined when none is open. */
  sessionStaff: () => string | undefined;
}

interface Held {
  version: number;
  local: boolean;
  values: ParameterSet;
}

export class ParametersUnit {
  readonly #o: ParametersOptions;
  #held: Held = { version: 0, local: false, values: {} };

  constructor(options: ParametersOptions) {
    this.#o = options;
    const saved = this.#load();
    if (saved) {
      this.#held = saved;
      this.#applyAll(saved.values);
    }
    options.bus?.on('downlink', ({ type, body }) => {
      if (type === PARAMETERS_DOWNLINK) this.applyDownlink(body);
    });
  }

  /** The platform version the set in force started from. */
  get version(): number {
    return this.#held.version;
  }

  /** The values in force (names absent run the provisioned value). */
  get values(): ParameterSet {
    return { ...this.#held.values };
  }

  /** True when the set in force was changed at the meter after its platform version. */
  get local(): boolean {
    return this.#held.local;
  }

  /** Handles a 0x89 body: applies a newer valid set, refuses a bad one whole, acknowledges either way. */
  applyDownlink(body: Uint8Array): ParametersAck {
    let ack: ParametersAck;
    try {
      const push = decodeParametersPush(body);
      if (push.version <= this.#held.version) ack = this.#ack();
      else {
        try {
          const values = validateParameters(push.values);
          this.#commit({ version: push.version, local: false, values });
          ack = this.#ack();
        } catch (error) {
          if (!(error instanceof ParameterError)) throw error;
          ack = { ...this.#ack(), ok: false, why: error.message, refused: push.version };
        }
      }
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      ack = { ...this.#ack(), ok: false, why: error.message };
    }
    this.#o.send?.(PARAMETERS_ACK_UPLINK, encodeParametersAck(ack));
    return ack;
  }

  /**
   * A change made at the meter in an authenticated maintenance session: `changes` are merged onto
   * the set in force, checked whole, kept, applied and reported to the platform (local: true).
   * Throws ParameterError (nothing changed) without a session or with a value out of range.
   */
  setLocal(changes: ParameterSet): ParametersAck {
    if (this.#o.sessionStaff() === undefined)
      throw new ParameterError('session', 'is not open: local changes need a maintenance session');
    const values = validateParameters({ ...this.#held.values, ...changes });
    this.#commit({ version: this.#held.version, local: true, values });
    const ack = this.#ack();
    this.#o.send?.(PARAMETERS_ACK_UPLINK, encodeParametersAck(ack));
    return ack;
  }

  /**
   * Puts back values the meter could not run (a broker endpoint that did not answer within its
   * trial): each name in `restore` takes the value given, or leaves the set (the provisioned value
   * serves) when given undefined. The set is kept so (the next start does not try the value again)
   * and the platform gets an ack saying ok false, refused the version in force and why.
   */
  withdraw(
    restore: { [K in keyof ParameterValues]?: ParameterValues[K] | undefined },
    why: string,
  ): ParametersAck {
    const values: Record<string, unknown> = { ...this.#held.values };
    for (const [name, value] of Object.entries(restore)) {
      if (value === undefined) delete values[name];
      else values[name] = value;
    }
    this.#commit({ ...this.#held, values: validateParameters(values) });
    const ack: ParametersAck = { ...this.#ack(), ok: false, why, refused: this.#held.version };
    this.#o.send?.(PARAMETERS_ACK_UPLINK, encodeParametersAck(ack));
    return ack;
  }

  #ack(): ParametersAck {
    return { version: this.#held.version, ok: true, local: this.#held.local, values: this.values };
  }

  #commit(next: Held): void {
    const record = encodeCbor({ v: next.version, local: next.local, p: next.values });
    this.#o.preferences.set(PREFS, KEY, ownBuffer(record)); // kept before applied
    const before = this.#held.values;
    this.#held = next;
    const changed: ParameterSet = {};
    for (const [name, value] of Object.entries(next.values)) {
      if ((before as Record<string, unknown>)[name] !== value)
        (changed as Record<string, unknown>)[name] = value;
    }
    this.#applyAll(changed);
  }

  #applyAll(values: ParameterSet): void {
    const appliers = this.#o.appliers as Record<string, ((value: unknown) => void) | undefined>;
    for (const [name, value] of Object.entries(values)) appliers[name]?.(value);
  }

  #load(): Held | undefined {
    const saved = this.#o.preferences.get(PREFS, KEY);
    if (!(saved instanceof ArrayBuffer)) return undefined;
    try {
      const m = decodeCbor(new Uint8Array(saved)) as Record<string, unknown>;
      if (typeof m.v !== 'number' || typeof m.local !== 'boolean') return undefined;
      return { version: m.v, local: m.local, values: validateParameters(m.p) };
    } catch {
      return undefined; // a damaged entry: the provisioned values serve until the platform pushes again
    }
  }
}
