// Pay by phone: the remote renewal downlink (frame type 0x86) and the meter's renewal
// acknowledgement uplink (0x06). The card token is protocol/cardToken.ts's.
//
// Renewal 0x86, platform → meter, CBOR map:
//   { "id": text, 1–14 chars [0-9a-z] — the renewal id; the meter applies an id once, ever
//     "bay": uint — the bay to extend
//     "min": uint — minutes added, from the bay's paid-until or now, whichever is later
//     "chg": uint — charge, minor units (already paid on the platform)
//     "cur": uint — ISO 4217 numeric currency
//     "auth": text — the platform's authorisation id, kept in the meter's renewal record
//     "exp": uint — validity: the meter refuses the renewal at or after this epoch second }
// Renewal ack 0x06, meter → platform, CBOR map:
//   { "id": text, "st": "applied" | "duplicate" | "refused", "until": uint (the bay's paid-until
//     after the renewal, 0 when refused), "why": text (reason when refused, else "") }
import { decodeCbor, encodeCbor } from './cbor';
import { ProtocolError } from './errors';
import { map, text, uint } from './fields';

export const RENEWAL_FRAME = 0x86;
export const RENEWAL_ACK_FRAME = 0x06;

export interface RenewalMessage {
  id: string;
  bayId: number;
  minutes: number;
  charge: number;
  currency: number;
  authorisation: string;
  /** Epoch seconds: not to be applied at or after this time. */
  validUntil: number;
}

export type RenewalStatus = 'applied' | 'duplicate' | 'refused';

export interface RenewalAckMessage {
  id: string;
  status: RenewalStatus;
  /** The bay's paid-until (epoch seconds) after the renewal; 0 when refused. */
  paidUntil: number;
  reason: string;
}

const ID = /^[0-9a-z]{1,14}$/;

export function encodeRenewal(m: RenewalMessage): Uint8Array {
  if (!ID.test(m.id)) throw new ProtocolError('bad-field', `renewal id ${m.id} is not 1-14 of [0-9a-z]`);
  return encodeCbor({
    id: m.id,
    bay: m.bayId,
    min: m.minutes,
    chg: m.charge,
    cur: m.currency,
    auth: m.authorisation,
    exp: m.validUntil,
  });
}

export function decodeRenewal(body: Uint8Array): RenewalMessage {
  const v = map(decodeCbor(body));
  const id = text(v.id, 'id', 64);
  if (!ID.test(id)) throw new ProtocolError('bad-field', 'renewal id is not 1-14 of [0-9a-z]');
  const minutes = uint(v.min, 'min');
  if (minutes === 0) throw new ProtocolError('bad-field', 'min is zero');
  return {
    id,
    bayId: uint(v.bay, 'bay'),
    minutes,
    charge: uint(v.chg, 'chg'),
    currency: uint(v.cur, 'cur'),
    authorisation: text(v.auth, 'auth', 64),
    validUntil: uint(v.exp, 'exp'),
  };
}

export function encodeRenewalAck(m: RenewalAckMessage): Uint8Array {
  return encodeCbor({ id: m.id, st: m.status, until: m.paidUntil, why: m.reason });
}

export function decodeRenewalAck(body: Uint8Array): RenewalAckMessage {
  const v = map(decodeCbor(body));
  const status = text(v.st, 'st', 64);
  if (status !== 'applied' && status !== 'duplicate' && status !== 'refused')
    throw new ProtocolError('bad-field', `st ${status} is not a renewal status`);
  return {
    id: text(v.id, 'id', 64),
    status,
    paidUntil: uint(v.until, 'until'),
    reason: text(v.why, 'why', 64),
  };
}
