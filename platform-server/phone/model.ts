// Pay by phone's shared model: the API's error, the views it returns, the service's options and
// events, the rows of its tables and the helpers every part of the service uses.
import { type CountryCode, parsePhoneNumberFromString } from 'libphonenumber-js';
import { randomBytes } from 'node:crypto';
import type { Crypto } from '../../hal/crypto';
import type { Database } from '../core/db';
import type { Logger } from '../ingest/gate';
import type { MeterDirectory, RecordReader } from '../ingest/meters';
import type { KeptDownlink } from '../ingest/outbox';
import type { Keystore } from '../keys/keystore';
import { deriveCardTokenKey } from '../keys/cardToken';
import type { Channel, ChannelAdapter } from './channels';
import type { PaymentProvider } from '../payments/provider';
import type { Pricing } from './pricing';
import type { ScryptParams } from './security';

/** A 4xx for the API: the status, a stable code and a message a driver can act on. */
export class PhoneError extends Error {
  override readonly name: string = 'PhoneError';
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    /** The most minutes that could still be added, when a renewal was refused at a limit. */
    readonly maxMinutes?: number,
    /** Seconds until a rate-limited request may be tried again (the retry-after header). */
    readonly retryAfter?: number,
  ) {
    super(message);
  }

  /** The request field at fault, shown beside that field in the driver app. */
  field?: string;

  /** A 400-class refusal of one request field (`field` as the API names it: cardNumber, phone). */
  static onField(statusCode: number, code: string, message: string, field: string): PhoneError {
    const error = new PhoneError(statusCode, code, message);
    error.field = field;
    return error;
  }
}

export interface PhoneClock {
  /** Epoch milliseconds. */
  now(): number;
}

export type RenewOption = 'auto' | 'phone' | 'app';
export type AlertChannel = 'sms' | 'voice' | 'app';

export interface DriverView {
  id: number;
  accountNumber: string;
  name: string;
  phone: string;
  email: string;
  renewalPhone: string | null;
  renewalEmail: string | null;
  alertChannel: AlertChannel;
  leadMinutes: number;
  renewOption: RenewOption;
  autoMinutes: number;
  graceMinutes: number;
}

export interface CardView {
  id: number;
  last4: string;
  /** 1 debit, 2 credit, 3 prepaid as the card told a meter at its first tap; null until then. */
  cardType: number | null;
  cardTypeName: string | null;
  /** The card's scheme from its number ('visa', 'mastercard'), null for a closed-loop card. */
  scheme: string | null;
  schemeName: string | null;
  label: string;
  renewal: boolean;
  paysWith: number | null;
}

export interface SessionView {
  id: number;
  meterId: number;
  meterName: string;
  bayId: number;
  cardLast4: string;
  paidFrom: string;
  paidUntil: string;
  graceUntil: string;
  paidMinutes: number;
  status: 'active' | 'ended' | 'expired';
  endReason: string | null;
  pendingRenewal: string | null;
  currency: number;
  /** The vehicle's plate, for parking started from the app by the bay code. */
  plate: string | null;
}

export interface RenewalView {
  id: string;
  sessionId: number;
  meterId: number;
  bayId: number;
  minutes: number;
  charge: number;
  currency: number;
  chargeText: string;
  cardLast4: string;
  funding: 'direct' | 'realtime';
  authorisation: string;
  channel: string;
  status: 'sent' | 'applied' | 'refused' | 'voided';
  reason: string | null;
  requestedAt: string;
  validUntil: string;
  appliedAt: string | null;
  paidUntil: string | null;
  refunded: boolean;
}

export interface MessageView {
  id: number;
  channel: Channel;
  recipient: string;
  kind: string;
  body: string;
  status: string;
  attempts: number;
  createdAt: string;
  deliveredAt: string | null;
}

export interface PhoneEvents {
  paired: [{ sessionId: number; driverId: number; meterId: number; bayId: number }];
  'renewal-sent': [{ id: string; meterId: number }];
  'renewal-applied': [{ id: string; meterId: number; paidUntil: number }];
  'renewal-refused': [{ id: string; reason: string }];
  'renewal-voided': [{ id: string }];
  alert: [{ sessionId: number; kind: string }];
}

export interface PhoneOptions {
  db: Database;
  /** The country national phone numbers are read in (default GB). */
  country?: CountryCode;
  /** Ingest's meters and records, as far as pay by phone needs them. */
  meters: Pick<MeterDirectory, 'epochs' | 'names' | 'nextDownlink'> & Pick<RecordReader, 'recordsAfter'>;
  keystore: Keystore;
  brokerUrl: string;
  /** Keeps each sealed renewal for a handheld to carry (ingest's downlink outbox). */
  keepDownlink?: (downlink: KeptDownlink, body: Uint8Array) => Promise<void>;
  logger: Logger;
  clock?: PhoneClock;
  pricing: Pricing;
  /**
   * Charges debit cards on file and refunds them (platform-server/payments): StripeProvider, or the
   * PaymentSimulator in the demo and tests.
   */
  paymentProvider: PaymentProvider;
  /** The credit limit a credit account opens with on the ledger, minor units (default 100.00). */
  defaultCreditLimit?: number;
  adapters?: Partial<Record<Channel, ChannelAdapter>>;
  /** The tokenisation key (32 bytes); derived from the keystore when absent (see README). */
  tokenKey?: Uint8Array;
  crypto?: Crypto;
  /** How long the meter may still apply a renewal after it was requested, default 10 min. */
  renewalValidityMs?: number;
  /** A renewal not acknowledged is sent again after this long (and on every uplink of its meter). */
  resendAfterMs?: number;
  /** Lifetime of a login token, default 12 h. */
  tokenTtlMs?: number;
  passwordScrypt?: ScryptParams;
  /** Offset of the meters' local time from UTC for the times in messages, default 0. */
  utcOffsetMinutes?: number;
  /**
   * Records stored this long ago (database time) that pairing has not looked at are looked at by the
   * scheduler's sweep (default 60 s: the live path looks within milliseconds).
   */
  pairingSweepAfterMs?: number;
}

export const CARD_TYPE_NAMES: Record<number, string> = { 1: 'debit', 2: 'credit', 3: 'prepaid' };
/** card-validator's scheme ids as people write them. */
const SCHEME_NAMES: Record<string, string> = {
  visa: 'Visa',
  mastercard: 'Mastercard',
  'american-express': 'American Express',
  'diners-club': 'Diners Club',
  discover: 'Discover',
  jcb: 'JCB',
  unionpay: 'UnionPay',
  maestro: 'Maestro',
  mir: 'Mir',
  elo: 'Elo',
  hiper: 'Hiper',
  hipercard: 'Hipercard',
  verve: 'Verve',
};
/**
 * A card whose kind (debit, credit, prepaid) no meter has read yet is neither charged nor set up at
 * the payment provider: the first tap tells.
 */
export function cardTypeUnknown(): PhoneError {
  return new PhoneError(
    409,
    'card-type-unknown',
    'tap this card once at any ParkLink meter first: the meter reads whether it is debit, credit or prepaid',
  );
}

/** What cardToken accepts as a card number. */
export const CARD_NUMBER = /^[0-9]{8,19}$/;

/** A pairing failing for a reason other than a lost connection is tried this many times. */
export const MAX_PAIRING_ATTEMPTS = 5;
/** Records kept for a pairing retry at most (an outage longer than this many records loses pairings). */
export const MAX_PAIRING_BACKLOG = 100_000;
/** After its validity the platform waits this long more before voiding (clock skew allowance). */
export const VOID_MARGIN_MS = 60_000;

export type DriverRow = {
  id: number;
  account_number: string;
  name: string;
  phone: string;
  email: string;
  password_hash: string;
  renewal_phone: string | null;
  renewal_email: string | null;
  alert_channel: AlertChannel;
  lead_minutes: number;
  renew_option: RenewOption;
  auto_minutes: number;
  grace_minutes: number;
};

export type SessionRow = {
  id: number;
  driver_id: number;
  card_id: number;
  meter_id: number;
  bay_id: number;
  /** The first-payment transaction record; null for parking started from the app. */
  tx_seq: number | null;
  plate: string | null;
  paid_from: Date;
  paid_until: Date;
  paid_minutes: number;
  currency: number;
  status: 'active' | 'ended' | 'expired';
  end_reason: string | null;
  alerted_for: Date | null;
  grace_alerted_for: Date | null;
};

export type RenewalRow = {
  id: string;
  session_id: number;
  driver_id: number;
  meter_id: number;
  bay_id: number;
  minutes: number;
  charge: number;
  currency: number;
  card_id: number;
  funding: 'direct' | 'realtime';
  authorisation: string;
  channel: string;
  status: 'sent' | 'applied' | 'refused' | 'voided';
  reason: string | null;
  requested_at: Date;
  valid_until: Date;
  sent_at: Date | null;
  applied_at: Date | null;
  paid_until: Date | null;
  refunded_at: Date | null;
  payment_provider: string | null;
  ledger_entry: number | null;
  refund_id: string | null;
};

export type CardRow = {
  id: number;
  driver_id: number;
  token: string;
  last4: string;
  /** Null until the card's first tap at a meter, which reads it from the card (pairing.ts). */
  card_type: number | null;
  scheme: string | null;
  label: string;
  renewal: boolean;
  pays_with: number | null;
  /** Null while the card is a claim (another account held its token when it was registered). */
  verified_at: Date | null;
  /** The card on file at the payment provider (debit cards): its customer and saved payment method. */
  provider_customer: string | null;
  provider_payment_method: string | null;
};

export function cardView(c: CardRow): CardView {
  return {
    id: c.id,
    last4: c.last4,
    cardType: c.card_type,
    cardTypeName: c.card_type === null ? null : (CARD_TYPE_NAMES[c.card_type] ?? String(c.card_type)),
    scheme: c.scheme,
    schemeName: c.scheme === null ? null : (SCHEME_NAMES[c.scheme] ?? c.scheme),
    label: c.label,
    renewal: c.renewal,
    paysWith: c.pays_with,
  };
}

export function driverView(d: DriverRow): DriverView {
  return {
    id: d.id,
    accountNumber: d.account_number,
    name: d.name,
    phone: d.phone,
    email: d.email,
    renewalPhone: d.renewal_phone,
    renewalEmail: d.renewal_email,
    alertChannel: d.alert_channel,
    leadMinutes: d.lead_minutes,
    renewOption: d.renew_option,
    autoMinutes: d.auto_minutes,
    graceMinutes: d.grace_minutes,
  };
}

export function recipientOf(
  d: Pick<DriverRow, 'phone' | 'renewal_phone' | 'account_number'>,
  channel: Channel,
): string {
  return channel === 'app' ? d.account_number : (d.renewal_phone ?? d.phone);
}

/**
 * A phone number in E.164, read as people write it: international ("+44 7700 900123",
 * "0044 7700 900123") or national in the city's country ("07700 900123" in the UK), parsed by
 * libphonenumber-js and checked to be possible there (its length for the country: whether a range is
 * assigned changes faster than any copy of the numbering plan). A 400 in plain words otherwise.
 */
export function normalisePhone(
  raw: string,
  country: CountryCode = DEFAULT_PHONE_COUNTRY,
  field = 'phone',
): string {
  const phone = safePhone(raw, country);
  if (!phone)
    throw PhoneError.onField(
      400,
      'bad-phone',
      `"${raw.slice(0, 40)}" is not a phone number we can reach: write it as you would dial it in ${country}, or with its country code (+44 7700 900123)`,
      field,
    );
  return phone;
}

/** The E.164 form of a number, or null when it cannot be a phone number. */
export function safePhone(raw: string, country: CountryCode = DEFAULT_PHONE_COUNTRY): string | null {
  const parsed = parsePhoneNumberFromString(raw.trim().replace(/^00/, '+'), country);
  return parsed?.isPossible() ? parsed.number : null;
}

/** The city's country for national phone numbers (PARKLINK_PHONE_COUNTRY, ISO 3166 alpha-2). */
export const DEFAULT_PHONE_COUNTRY: CountryCode = 'GB';

/** A lost or refused database connection (pg, PostgreSQL's class 08 and 57P0x, sockets): worth retrying. */
export function isConnectionError(error: unknown): boolean {
  const e = error as { code?: unknown; message?: unknown } | undefined;
  const code = typeof e?.code === 'string' ? e.code : '';
  if (/^(08...|57P0[123]|ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND)$/.test(code))
    return true;
  const message = typeof e?.message === 'string' ? e.message : '';
  return /connection (terminated|ended|refused|reset)|terminating connection|Connection terminated|client has encountered a connection error|timeout exceeded when trying to connect|Client was closed|PGlite is closed/i.test(
    message,
  );
}

export function newRenewalId(): string {
  let id = '';
  for (const b of randomBytes(12)) id += (b % 36).toString(36);
  return id;
}

export function seconds(s: number): Date {
  return new Date(s * 1000);
}

export function capitalise(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/** The default card-token key (platform-server/keys/cardToken.ts); PARKLINK_TOKEN_KEY overrides it. */
export function deriveTokenKey(crypto: Crypto, keystore: Keystore): Uint8Array {
  return deriveCardTokenKey(crypto, keystore);
}
