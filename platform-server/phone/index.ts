// Pay by phone wired into the platform: listens to ingest (stored records pair sessions; any
// accepted uplink means the meter is reachable; 0x06 frames are renewal acks), registers the HTTP
// routes and the web app, runs the scheduler on real time unless a clock is injected (tests tick it).
import { type CountryCode, isSupportedCountry } from 'libphonenumber-js';
import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { fromHex } from '../../protocol/bytes';
import { RENEWAL_ACK_FRAME } from '../../protocol/renewal';
import { flatTariff, Tariff, type TariffDocument } from '../../protocol/tariff';
import type { Database } from '../core/db';
import type { Accepted, Ingest, Logger } from '../ingest/gate';
import type { Keystore } from '../keys/keystore';
import { ConfigError } from '../core/errors';
import { type Channel, type ChannelAdapter, WebhookAdapter } from './channels';
import { GatewayVerifier, MIN_SECRET_LENGTH } from './gatewaySignature';
import { type Pricing, type TariffLike, TariffPricing } from './pricing';
import { defaultRateLimits, type RateLimits, phoneRoutes } from './routes';
import type { ScryptParams } from './security';
import type { PaymentProvider } from '../payments/provider';
import { PaymentSimulator } from '../payments/simulator';
import { StripeProvider } from '../payments/stripe';
import { type PhoneClock, type PhoneOptions, PhoneService } from './service';

export interface PhoneConfig {
  /** The city's country: national phone numbers are read in it (PARKLINK_PHONE_COUNTRY, default GB). */
  country?: CountryCode;
  /** The scheduler's and the renewals' clock; real time when absent. */
  clock?: PhoneClock;
  /** Scheduler period; default 15 s on real time, none (tests call tick()) with an injected clock. */
  tickMs?: number;
  /** Replaces the tariff engine's pricing altogether (tests, tools). */
  pricing?: Pricing;
  /**
   * Prices renewals at meters that have applied no tariff (PARKLINK_PHONE_DEFAULT_TARIFF: a tariff
   * JSON file); DEFAULT_TARIFF when absent.
   */
  defaultTariff?: TariffDocument;
  /**
   * Charges and refunds debit renewals (platform-server/payments): StripeProvider from
   * PARKLINK_STRIPE_SECRET_KEY. Without one the platform refuses to start, unless in demo mode, where
   * payments are simulated (PaymentSimulator) and it says so.
   */
  paymentProvider?: PaymentProvider;
  /** The credit limit a credit account opens with on the ledger, minor units (PARKLINK_CREDIT_LIMIT). */
  defaultCreditLimit?: number;
  adapters?: Partial<Record<Channel, ChannelAdapter>>;
  /** 64 hex digits or 32 bytes (PARKLINK_TOKEN_KEY). */
  tokenKey?: string | Uint8Array;
  /** SMS and voice gateway webhook (PARKLINK_PHONE_WEBHOOK_URL, _SECRET). */
  webhookUrl?: string;
  webhookSecret?: string;
  /**
   * The secret incoming SMS and voice gateway posts are signed with (PARKLINK_GATEWAY_SECRET, at
   * least 16 characters; see gatewaySignature.ts). Without it the platform refuses to start, unless
   * the gateway is off or the platform runs in demo mode.
   */
  gatewaySecret?: string;
  /** Serve /api/phone/sms and /api/phone/voice (default true; PARKLINK_PHONE_GATEWAY=0 turns them off). */
  gateway?: boolean;
  /** The public URL the gateway posts to, up to the path, behind a rewriting proxy (PARKLINK_GATEWAY_URL). */
  gatewayBaseUrl?: string;
  rateLimits?: RateLimits;
  renewalValidityMs?: number;
  resendAfterMs?: number;
  passwordScrypt?: ScryptParams;
  utcOffsetMinutes?: number;
}

/** The default tariff for renewals at meters with none applied: GBP 2.40 an hour, 4 h stay, 5 min least. */
export const DEFAULT_TARIFF: TariffDocument = flatTariff(
  { currency: 826, perHour: 240, minMinutes: 5, maxMinutes: 240, stepMinutes: 5 },
  'phone-default',
  1,
);

export function phoneConfigFromEnv(env: NodeJS.ProcessEnv = process.env): PhoneConfig {
  const config: PhoneConfig = {};
  if (env.PARKLINK_TOKEN_KEY) config.tokenKey = env.PARKLINK_TOKEN_KEY;
  if (env.PARKLINK_PHONE_COUNTRY) {
    const country = env.PARKLINK_PHONE_COUNTRY.toUpperCase();
    if (!isSupportedCountry(country))
      throw new ConfigError(
        `PARKLINK_PHONE_COUNTRY ${env.PARKLINK_PHONE_COUNTRY} is not a country code (ISO 3166 alpha-2, like GB)`,
      );
    config.country = country;
  }
  if (env.PARKLINK_PHONE_WEBHOOK_URL) config.webhookUrl = env.PARKLINK_PHONE_WEBHOOK_URL;
  if (env.PARKLINK_PHONE_WEBHOOK_SECRET) config.webhookSecret = env.PARKLINK_PHONE_WEBHOOK_SECRET;
  if (env.PARKLINK_GATEWAY_SECRET) config.gatewaySecret = env.PARKLINK_GATEWAY_SECRET;
  if (env.PARKLINK_PHONE_GATEWAY === '0' || env.PARKLINK_PHONE_GATEWAY === 'false') config.gateway = false;
  if (env.PARKLINK_GATEWAY_URL) config.gatewayBaseUrl = env.PARKLINK_GATEWAY_URL;
  if (env.PARKLINK_STRIPE_SECRET_KEY)
    config.paymentProvider = new StripeProvider({ secretKey: env.PARKLINK_STRIPE_SECRET_KEY });
  if (env.PARKLINK_CREDIT_LIMIT) {
    const limit = Number(env.PARKLINK_CREDIT_LIMIT);
    if (!Number.isSafeInteger(limit) || limit < 0)
      throw new ConfigError('PARKLINK_CREDIT_LIMIT is a whole number of minor units, at least 0');
    config.defaultCreditLimit = limit;
  }
  if (env.PARKLINK_PHONE_DEFAULT_TARIFF)
    config.defaultTariff = JSON.parse(readFileSync(env.PARKLINK_PHONE_DEFAULT_TARIFF, 'utf8'));
  return config;
}

/**
 * How the gateway's posts will be taken: signed with the secret, open (demo mode and no secret) or
 * not served. Anything else is refused here, before anything is started.
 */
export function gatewayCheck(config: PhoneConfig, demo: boolean): string | 'open' | false {
  if (config.gateway === false) return false;
  const secret = config.gatewaySecret;
  if (secret === undefined || secret === '') {
    if (demo) return 'open';
    throw new ConfigError(
      'the SMS and voice gateway is enabled and PARKLINK_GATEWAY_SECRET is not set: anyone could post ' +
        "as any driver's phone. Set the secret the gateway signs with, PARKLINK_PHONE_GATEWAY=0 to " +
        'serve no gateway, or PARKLINK_DEMO=1 for a demo with an open gateway',
    );
  }
  if (secret.length < MIN_SECRET_LENGTH)
    throw new ConfigError(`PARKLINK_GATEWAY_SECRET must have at least ${MIN_SECRET_LENGTH} characters`);
  return secret;
}

/** Shown when the demo runs on simulated payments. */
export const SIMULATED_PAYMENTS_NOTICE =
  'PAYMENTS ARE SIMULATED: demo mode, no payment provider configured. No card is charged and no money ' +
  'moves; set PARKLINK_STRIPE_SECRET_KEY for real payments.';

/**
 * The payment provider renewals are charged through: the configured one; in demo mode without one,
 * the simulator. A platform outside demo mode without a provider is refused here, before anything is
 * started, so a simulator never becomes a deployment's default.
 */
export function paymentsCheck(config: PhoneConfig, demo: boolean): PaymentProvider {
  if (config.paymentProvider) return config.paymentProvider;
  if (demo) return new PaymentSimulator();
  throw new ConfigError(
    'no payment provider is configured: debit renewals could not be charged. Set ' +
      'PARKLINK_STRIPE_SECRET_KEY, or PARKLINK_DEMO=1 for a demo with simulated payments',
  );
}

export interface Phone {
  readonly service: PhoneService;
  tick(): Promise<void>;
  close(): Promise<void>;
}

export async function startPhone(deps: {
  db: Database;
  meters: PhoneOptions['meters'];
  app: FastifyInstance;
  ingest: Ingest;
  keystore: Keystore;
  brokerUrl: string;
  logger: Logger;
  /** The tariffs meters have applied (TariffService); renewals are priced with them. */
  tariffs?: { tariffOf(meterId: number): TariffLike | undefined; zoneOf?(meterId: number): number[] };
  config?: PhoneConfig;
  /** Demo mode (`npm start`): the gateway may run without a secret, taking unsigned posts. */
  demo?: boolean;
}): Promise<Phone> {
  const config = { ...phoneConfigFromEnv(), ...deps.config };
  const gateway = gatewayCheck(config, deps.demo ?? false);
  const paymentProvider = paymentsCheck(config, deps.demo ?? false);
  if (paymentProvider.simulated)
    deps.logger.warn({ provider: paymentProvider.name }, SIMULATED_PAYMENTS_NOTICE);
  let tokenKey: Uint8Array | undefined;
  if (typeof config.tokenKey === 'string') {
    if (!/^[0-9a-fA-F]{64}$/.test(config.tokenKey))
      throw new Error('PARKLINK_TOKEN_KEY must be 64 hex digits');
    tokenKey = fromHex(config.tokenKey);
  } else tokenKey = config.tokenKey;
  // Validated (Tariff.from) here, so a bad default tariff stops the platform at start, naming the field.
  const fallback = Tariff.from(config.defaultTariff ?? DEFAULT_TARIFF);
  const tariffs = deps.tariffs;
  const pricing =
    config.pricing ??
    new TariffPricing(
      (meterId) => tariffs?.tariffOf(meterId),
      fallback,
      tariffs?.zoneOf && ((meterId) => tariffs.zoneOf?.(meterId) ?? [meterId]),
    );
  const adapters: Partial<Record<Channel, ChannelAdapter>> = {};
  if (config.webhookUrl) {
    const webhook = new WebhookAdapter({ url: config.webhookUrl, secret: config.webhookSecret });
    adapters.sms = webhook;
    adapters.voice = webhook;
  }
  const service = new PhoneService({
    db: deps.db,
    country: config.country,
    meters: deps.meters,
    keystore: deps.keystore,
    brokerUrl: deps.brokerUrl,
    keepDownlink: (downlink, body) => deps.ingest.outbox.keep(downlink, body),
    logger: deps.logger,
    clock: config.clock,
    pricing,
    paymentProvider,
    defaultCreditLimit: config.defaultCreditLimit,
    adapters: { ...adapters, ...config.adapters },
    tokenKey,
    renewalValidityMs: config.renewalValidityMs,
    resendAfterMs: config.resendAfterMs,
    passwordScrypt: config.passwordScrypt,
    utcOffsetMinutes: config.utcOffsetMinutes,
  });
  await service.start();
  // A batch at a time: one query per batch finds what concerns pay by phone.
  const onCommitted = (accepted: Accepted[]) => {
    service.onStoredBatch(accepted.flatMap((a) => a.stored));
    service.onMetersSeen(accepted.map((a) => a.meterId));
  };
  deps.ingest.on('committed', onCommitted);
  deps.ingest.route(RENEWAL_ACK_FRAME, service.onRenewalAck);
  await deps.app.register(phoneRoutes, {
    phone: service,
    limits: config.rateLimits ?? defaultRateLimits(),
    gateway:
      gateway === 'open' || gateway === false
        ? gateway
        : new GatewayVerifier({ secret: gateway, now: config.clock ? () => config.clock!.now() : Date.now }),
    gatewayBaseUrl: config.gatewayBaseUrl,
  });

  let ticking: Promise<void> | undefined;
  const tick = () => {
    ticking ??= service.tick().finally(() => {
      ticking = undefined;
    });
    return ticking;
  };
  const period = config.tickMs ?? (config.clock ? undefined : 15_000);
  const timer =
    period === undefined
      ? undefined
      : setInterval(() => {
          tick().catch((error) => deps.logger.error({ err: error }, 'phone scheduler failed'));
        }, period);
  timer?.unref();

  let closing: Promise<void> | undefined;
  return {
    service,
    tick,
    close() {
      closing ??= (async () => {
        if (timer) clearInterval(timer);
        deps.ingest.off('committed', onCommitted);
        await ticking?.catch(() => {});
        await service.close();
      })();
      return closing;
    },
  };
}
