// Registration management (41): the meter's side of pay by phone. The platform pairs a registered
// driver's card with the bay it paid at; when the driver renews by app, SMS or voice call, the
// platform sends a renewal downlink (0x86). This unit applies it once: extends the bay's paid-until,
// records the renewal (an operation record "remote-renewal" whose detail carries the platform's
// authorisation id — the transaction record's fields stay those of claim 8), tells the display over
// the bus, and acknowledges (uplink 0x06). A renewal id already seen is acknowledged again and never
// applied twice, across restarts: the ids live in preferences. One at or after its validity is
// refused, so the platform can void and refund it.
import type { Clock } from '../../hal/clock';
import type { Preferences } from '../../hal/preferences';
import { ProtocolError } from '../../protocol/errors';
import {
  decodeRenewal,
  encodeRenewalAck,
  RENEWAL_ACK_FRAME,
  RENEWAL_FRAME,
  type RenewalAckMessage,
  type RenewalMessage,
} from '../../protocol/renewal';
import type { EventBus } from '../bus';
import type { MeterEvents } from '../events';
import type { Bays } from './bays';
import type { MainRecord } from './records';

const DOMAIN = 'renewal';
const KEY = 'seen';
/** Renewal ids remembered (the oldest are forgotten; the platform voids long before). */
const REMEMBERED = 64;

/** What this unit needs of communication management: a message outside the record chain. */
export interface UplinkPort {
  send(type: number, body: Uint8Array): boolean;
}

export interface RegistrationOptions {
  bus: EventBus<MeterEvents>;
  bays: Bays;
  records: MainRecord;
  comms: UplinkPort;
  clock: Clock;
  preferences: Preferences;
}

interface Seen {
  id: string;
  status: 'applied' | 'refused';
  until: number;
  reason: string;
}

export class RegistrationUnit {
  readonly #o: RegistrationOptions;
  readonly #seen: Seen[];

  constructor(options: RegistrationOptions) {
    this.#o = options;
    this.#seen = load(options.preferences);
    options.bus.on('downlink', ({ type, body }) => {
      if (type === RENEWAL_FRAME) this.#onRenewal(body);
    });
  }

  /** Renewal ids this meter has handled, oldest first. */
  get handled(): readonly string[] {
    return this.#seen.map((s) => s.id);
  }

  #onRenewal(body: Uint8Array): void {
    const { bus } = this.#o;
    let renewal: RenewalMessage;
    try {
      renewal = decodeRenewal(body);
    } catch (error) {
      bus.emit('downlink-refused', {
        reason: error instanceof ProtocolError ? error.code : (error as Error).name,
      });
      return;
    }
    const earlier = this.#seen.find((s) => s.id === renewal.id);
    if (earlier) {
      this.#ack({
        id: renewal.id,
        status: earlier.status === 'applied' ? 'duplicate' : 'refused',
        paidUntil: earlier.until,
        reason: earlier.reason,
      });
      return;
    }
    const outcome = this.#apply(renewal);
    this.#ack({ id: renewal.id, ...outcome });
  }

  #apply(r: RenewalMessage): Omit<RenewalAckMessage, 'id'> {
    const { bays, records, clock, bus } = this.#o;
    const now = Math.floor(clock.now() / 1000);
    let reason = '';
    if (!bays.has(r.bayId)) reason = 'unknown-bay';
    else if (now >= r.validUntil) reason = 'expired';
    if (reason) {
      this.#remember({ id: r.id, status: 'refused', until: 0, reason });
      records.appendOperation('remote-renewal-refused', `id=${r.id} auth=${r.authorisation} ${reason}`);
      return { status: 'refused', paidUntil: 0, reason };
    }
    const paidFrom = Math.max(now, bays.paidUntil(r.bayId));
    const paidUntil = paidFrom + r.minutes * 60;
    // Remembered first: a power cut after this point can lose the extension, never apply it twice.
    this.#remember({ id: r.id, status: 'applied', until: paidUntil, reason: '' });
    records.appendOperation(
      'remote-renewal',
      `id=${r.id} auth=${r.authorisation} bay=${r.bayId} min=${r.minutes} from=${paidFrom} until=${paidUntil} charge=${r.charge} cur=${r.currency}`,
    );
    bays.setPaidUntil(r.bayId, paidUntil);
    bus.emit('renewal-applied', {
      renewalId: r.id,
      authorisation: r.authorisation,
      bayId: r.bayId,
      minutes: r.minutes,
      charge: r.charge,
      paidUntil,
    });
    return { status: 'applied', paidUntil, reason: '' };
  }

  #ack(ack: RenewalAckMessage): void {
    // When the link is down the ack is not kept: the platform sends the renewal again on reconnect
    // and gets a "duplicate" ack carrying the same paid-until.
    this.#o.comms.send(RENEWAL_ACK_FRAME, encodeRenewalAck(ack));
  }

  #remember(seen: Seen): void {
    this.#seen.push(seen);
    while (this.#seen.length > REMEMBERED) this.#seen.shift();
    this.#o.preferences.set(
      DOMAIN,
      KEY,
      this.#seen.map((s) => `${s.id}:${s.status === 'applied' ? 'a' : 'r'}:${s.until}:${s.reason}`).join(';'),
    );
  }
}

function load(preferences: Preferences): Seen[] {
  const saved = preferences.get(DOMAIN, KEY);
  if (typeof saved !== 'string' || saved === '') return [];
  const seen: Seen[] = [];
  for (const entry of saved.split(';')) {
    const [id, status, until, reason] = entry.split(':');
    if (!id) continue;
    seen.push({
      id,
      status: status === 'a' ? 'applied' : 'refused',
      until: Number(until) || 0,
      reason: reason ?? '',
    });
  }
  return seen;
}
