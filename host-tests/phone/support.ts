// Shared by the pay-by-phone tests: a platform on a virtual clock, virtual meters on the real
// broker, a registered driver, taps, and waits.
import assert from 'node:assert/strict';
import { Meter } from '../../firmware/meter';
import { provisionBoard } from '../../firmware/units/security';
import { VirtualBoard } from '../../hal/mock/board';
import { purseCard } from '../../hal/mock/cards';
import type { VirtualClock } from '../../hal/mock/clock';
import { meterClientId, NodeMqttLink } from '../../hal/mock/mqtt.node';
import type { Database } from '../../platform-server/core/db';
import { MeterTables } from '../../platform-server/ingest/meters';
import type { Keystore } from '../../platform-server/keys/keystore';
import { DEFAULT_TARIFF, type PhoneConfig } from '../../platform-server/phone';
import { PaymentSimulator } from '../../platform-server/payments/simulator';
import { TariffPricing } from '../../platform-server/phone/pricing';
import { type PhoneOptions, PhoneService } from '../../platform-server/phone/service';
import { Tariff } from '../../protocol/tariff';
import { downlinkTopic } from '../../protocol/topics';
import { signGatewayRequest } from '../../platform-server/phone/gatewaySignature';
import { quietLogger, TEST_GATEWAY_SECRET } from '../../sim/fleet/platform';
import { createPlatform, type Platform } from '../../platform-server/platform';
import type { PlatformConfig } from '../../platform-server/config';

export { quietLogger as silent } from '../../sim/fleet/platform';
import { until } from '../support/until';

export { until };

/**
 * A PhoneService on a database alone: never connected to a broker (no downlink sent), pricing with
 * the default tariff, quick scrypt; `options` on top.
 */
export function standalonePhoneService(
  db: Database,
  keystore: Keystore,
  options: Partial<PhoneOptions> = {},
): PhoneService {
  return new PhoneService({
    db,
    meters: new MeterTables(db),
    keystore,
    brokerUrl: 'mqtt://127.0.0.1:1',
    logger: quietLogger,
    pricing: new TariffPricing(() => undefined, Tariff.from(DEFAULT_TARIFF)),
    passwordScrypt: { logN: 12, r: 8, p: 1 },
    paymentProvider: new PaymentSimulator(),
    ...options,
  });
}

export async function phonePlatform(
  config: PlatformConfig,
  clock: VirtualClock,
  phone: PhoneConfig = {},
): Promise<Platform> {
  return createPlatform({
    ...config,
    httpLogger: false,
    logger: quietLogger,
    phone: {
      clock,
      passwordScrypt: { logN: 12, r: 8, p: 1 },
      gatewaySecret: TEST_GATEWAY_SECRET,
      paymentProvider: new PaymentSimulator(),
      ...phone,
    },
  });
}

export const RATE = { currency: 826, perHour: 240, minMinutes: 15, maxMinutes: 120, stepMinutes: 15 };

export interface BootedMeter {
  meter: Meter;
  board: VirtualBoard;
  link: NodeMqttLink;
}

export async function bootMeter(
  platform: Platform,
  meterId: number,
  clock: VirtualClock,
  state?: VirtualBoard['state'],
): Promise<BootedMeter> {
  const link = new NodeMqttLink({
    url: platform.brokerUrl,
    clientId: meterClientId(meterId),
    ...platform.meterMqttCredentials(meterId),
  });
  const board = new VirtualBoard({ mqtt: link, clock, state });
  if (!state)
    provisionBoard(board.hardware, await platform.provisionMeter(meterId, `Meter ${meterId}`), meterId);
  const meter = new Meter(board.hardware, { meterId, bays: [1, 2], rate: RATE });
  meter.start();
  // Connected is not enough: a downlink (a tariff push) sent before the broker grants the meter's
  // subscription reaches no session.
  await until(() => link.subscribed(downlinkTopic(meterId)), 'the meter to subscribe to its downlink');
  return { meter, board, link };
}

export function card(cardNumber: string, cardType: 1 | 2 | 3 = 2) {
  return purseCard([0x04, 9, 8, Number(cardNumber.slice(-2))], {
    cardNumber,
    expiry: { year: 2030, month: 1 },
    cardType,
    balance: cardType === 2 ? 0 : 50_000,
    limit: cardType === 1 ? 0 : 50_000,
    counter: 0,
    currency: 826,
  }).card;
}

/** At the meter: bay 2 (second), 30 minutes (one step up from 15), then the card held to the reader. */
export function tapBay2(m: BootedMeter, clock: VirtualClock, c: ReturnType<typeof card>): void {
  m.board.press('ok');
  m.board.press('bay');
  m.board.press('up');
  m.board.press('ok');
  m.board.field.add(c);
  clock.advance(300);
  m.board.field.remove(c);
  assert.match(m.board.display.text, /PAID bay 2/);
}

export type Api = (
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE',
  url: string,
  body?: unknown,
) => Promise<{
  status: number;
  // biome-ignore lint/suspicious/noExplicitAny: JSON answers of many shapes, read field by field in tests
  json: any;
}>;

export function apiOf(platform: Platform, token?: string): Api {
  return async (method, url, body) => {
    const response = await platform.app.inject({
      method,
      url,
      payload: body as object | undefined,
      headers: token ? { authorization: `Bearer ${token}` } : {},
    });
    return { status: response.statusCode, json: response.body ? response.json() : undefined };
  };
}

/**
 * The SMS and voice gateway: posts JSON signed with `secret` at `now()` (the platform's clock) for
 * http://parklink.test + url, as a provider signs its webhooks.
 */
export function gatewayOf(
  platform: Platform,
  now: () => number,
  secret = TEST_GATEWAY_SECRET,
): (method: 'POST', url: string, body: unknown) => ReturnType<Api> {
  return async (method, url, body) => {
    const payload = JSON.stringify(body);
    const response = await platform.app.inject({
      method,
      url,
      payload,
      headers: {
        host: 'parklink.test',
        'content-type': 'application/json',
        ...signGatewayRequest(secret, `http://parklink.test${url}`, payload, now()),
      },
    });
    return { status: response.statusCode, json: response.body ? response.json() : undefined };
  };
}
