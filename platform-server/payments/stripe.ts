// The Stripe adapter, through Stripe's official Node library: an off-session PaymentIntent
// (`off_session: true, confirm: true`) on the customer's saved payment method, with an
// Idempotency-Key; refunds through the Refunds API. Stripe's errors are mapped to the interface's
// outcomes: card_error → declined (authentication_required → authentication-required), connection
// errors, timeouts, 5xx and rate limits → unavailable. Configuration errors (bad key, bad request)
// are thrown: they are the platform's fault, not the driver's.
import Stripe from 'stripe';
import {
  type ChargeRequest,
  type ChargeResult,
  currencyCode,
  type PaymentProvider,
  type RefundRequest,
  type RefundResult,
} from './provider';

export interface StripeOptions {
  /** The secret key (sk_live_… or sk_test_…; PARKLINK_STRIPE_SECRET_KEY). */
  secretKey: string;
  /** Where the API is (tests point it at a local server); api.stripe.com over HTTPS when absent. */
  host?: string;
  port?: number;
  protocol?: 'http' | 'https';
  /** Per request, milliseconds (default 15 000: a driver is waiting). */
  timeoutMs?: number;
  /** Retries the library makes itself, with the same idempotency key (default 1). */
  maxNetworkRetries?: number;
}

export class StripeProvider implements PaymentProvider {
  readonly name = 'stripe';
  readonly simulated = false;
  readonly #stripe: Stripe;

  constructor(options: StripeOptions) {
    if (!/^(sk|rk)_(live|test)_[A-Za-z0-9]+$/.test(options.secretKey))
      throw new TypeError('a Stripe secret key looks like sk_live_… or sk_test_…');
    this.#stripe = new Stripe(options.secretKey, {
      ...(options.host ? { host: options.host } : {}),
      ...(options.port ? { port: options.port } : {}),
      ...(options.protocol ? { protocol: options.protocol } : {}),
      timeout: options.timeoutMs ?? 15_000,
      maxNetworkRetries: options.maxNetworkRetries ?? 1,
      telemetry: false,
      appInfo: { name: 'ParkLink' },
    });
  }

  async charge(request: ChargeRequest): Promise<ChargeResult> {
    const onFile = request.card.onFile;
    if (!onFile)
      return {
        outcome: 'declined',
        code: 'no_card_on_file',
        message: 'this card has not been saved with the payment provider',
      };
    try {
      const intent = await this.#stripe.paymentIntents.create(
        {
          amount: request.amount,
          currency: currencyCode(request.currency),
          customer: onFile.customer,
          payment_method: onFile.paymentMethod,
          off_session: true,
          confirm: true,
          description: request.description,
          metadata: { renewal: request.reference },
        },
        { idempotencyKey: request.idempotencyKey },
      );
      if (intent.status === 'succeeded' || intent.status === 'processing')
        return { outcome: 'succeeded', chargeId: intent.id };
      if (intent.status === 'requires_action')
        return {
          outcome: 'authentication-required',
          chargeId: intent.id,
          message: 'the card issuer asks the cardholder to authenticate',
        };
      return {
        outcome: 'declined',
        code: intent.last_payment_error?.code ?? intent.status,
        message: intent.last_payment_error?.message ?? `payment ${intent.status}`,
      };
    } catch (error) {
      return chargeFailure(error);
    }
  }

  async refund(request: RefundRequest): Promise<RefundResult> {
    try {
      const refund = await this.#stripe.refunds.create(
        {
          payment_intent: request.chargeId,
          amount: request.amount,
          metadata: { renewal: request.reference },
        },
        { idempotencyKey: request.idempotencyKey },
      );
      if (refund.status === 'failed' || refund.status === 'canceled')
        return {
          outcome: 'failed',
          code: refund.failure_reason ?? refund.status,
          message: `refund ${refund.status}`,
        };
      return { outcome: 'refunded', refundId: refund.id, status: refund.status ?? 'pending' };
    } catch (error) {
      if (isUnavailable(error)) return { outcome: 'unavailable', message: (error as Error).message };
      if (error instanceof Stripe.errors.StripeInvalidRequestError)
        return { outcome: 'failed', code: error.code ?? 'invalid_request', message: error.message };
      throw error;
    }
  }
}

function chargeFailure(error: unknown): ChargeResult {
  if (error instanceof Stripe.errors.StripeCardError) {
    const intent = error.payment_intent as { id?: string } | undefined;
    if (error.code === 'authentication_required')
      return { outcome: 'authentication-required', chargeId: intent?.id ?? null, message: error.message };
    return {
      outcome: 'declined',
      code: error.decline_code ?? error.code ?? 'card_declined',
      message: error.message,
    };
  }
  if (isUnavailable(error)) return { outcome: 'unavailable', message: (error as Error).message };
  throw error;
}

/** No usable answer: the request may have been carried out, so it is retried with the same key. */
function isUnavailable(error: unknown): boolean {
  return (
    error instanceof Stripe.errors.StripeConnectionError ||
    error instanceof Stripe.errors.StripeAPIError ||
    error instanceof Stripe.errors.StripeRateLimitError
  );
}
