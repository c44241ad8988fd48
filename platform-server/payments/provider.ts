// The payment-provider interface for remote renewals paid by card (seed claim 19j, the real-time
// path of step 712): a card kept on file at the provider is charged off-session, with an
// idempotency key so a retry after a timeout never charges twice, and refunded when the renewal is
// voided or refused. Adapters: StripeProvider (stripe.ts, the real one) and PaymentSimulator
// (simulator.ts, demo and tests only, never a production default).

/** A card the provider keeps for the driver: its customer and the saved payment method. */
export interface CardOnFile {
  customer: string;
  paymentMethod: string;
}

export interface ChargeRequest {
  /** The platform's card token (HMAC of the PAN) and, once saved at the provider, the card on file. */
  card: { token: string; onFile: CardOnFile | null };
  /** Minor units. */
  amount: number;
  /** ISO 4217 numeric (826). */
  currency: number;
  /** The same key for every attempt at one payment: the provider answers a retry with the first result. */
  idempotencyKey: string;
  description: string;
  /** The renewal's id, kept at the provider for reconciliation. */
  reference: string;
}

export type ChargeResult =
  | { outcome: 'succeeded'; chargeId: string }
  /** The issuer or the provider refused: `code` is the provider's (card_declined, expired_card, …). */
  | { outcome: 'declined'; code: string; message: string }
  /** The issuer asks the cardholder to authenticate (SCA); an off-session charge cannot go on. */
  | { outcome: 'authentication-required'; chargeId: string | null; message: string }
  /** No answer (timeout, connection, provider error): it may or may not have been charged. */
  | { outcome: 'unavailable'; message: string };

export interface RefundRequest {
  chargeId: string;
  amount: number;
  currency: number;
  idempotencyKey: string;
  reference: string;
}

export type RefundResult =
  | { outcome: 'refunded'; refundId: string; status: string }
  | { outcome: 'failed'; code: string; message: string }
  | { outcome: 'unavailable'; message: string };

export interface PaymentProvider {
  /** Short name kept with each payment ("stripe", "simulator"). */
  readonly name: string;
  /** True only for the simulator: the platform refuses it outside demo mode and tests. */
  readonly simulated: boolean;
  charge(request: ChargeRequest): Promise<ChargeResult>;
  refund(request: RefundRequest): Promise<RefundResult>;
}

const ALPHA: Readonly<Record<number, string>> = Object.freeze({ 826: 'gbp', 978: 'eur', 840: 'usd' });

/** ISO 4217 numeric → the lower-case alphabetic code card providers take; a clear error otherwise. */
export function currencyCode(numeric: number): string {
  const code = ALPHA[numeric];
  if (!code) throw new RangeError(`currency ${numeric} is not one the payment provider is set up for`);
  return code;
}
