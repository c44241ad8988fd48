// A SIMULATED payment provider, for the demo and tests only: no money moves. It approves every
// charge except cards listed in `declined` or `authenticate`, and records refunds. The platform
// refuses to start with it outside demo mode unless it is passed in explicitly (tests).
import { randomBytes } from 'node:crypto';
import type { ChargeRequest, ChargeResult, PaymentProvider, RefundRequest, RefundResult } from './provider';

export class PaymentSimulator implements PaymentProvider {
  readonly name = 'simulator';
  readonly simulated = true;
  /** Card tokens the simulated issuer declines. */
  readonly declined = new Set<string>();
  /** Card tokens for which the simulated issuer asks for authentication. */
  readonly authenticate = new Set<string>();
  /** Charge ids refunded, in order. */
  readonly refunds: string[] = [];
  readonly #byKey = new Map<string, ChargeResult>();
  readonly #refundsByKey = new Map<string, RefundResult>();

  async charge(request: ChargeRequest): Promise<ChargeResult> {
    const replay = this.#byKey.get(request.idempotencyKey);
    if (replay) return replay;
    let result: ChargeResult;
    if (this.declined.has(request.card.token))
      result = { outcome: 'declined', code: 'card_declined', message: 'declined by the card issuer' };
    else if (this.authenticate.has(request.card.token))
      result = {
        outcome: 'authentication-required',
        chargeId: null,
        message: 'the card issuer asks the cardholder to authenticate',
      };
    else result = { outcome: 'succeeded', chargeId: `R${randomBytes(5).toString('hex').toUpperCase()}` };
    this.#byKey.set(request.idempotencyKey, result);
    return result;
  }

  async refund(request: RefundRequest): Promise<RefundResult> {
    const replay = this.#refundsByKey.get(request.idempotencyKey);
    if (replay) return replay;
    this.refunds.push(request.chargeId);
    const result: RefundResult = {
      outcome: 'refunded',
      refundId: `F${randomBytes(5).toString('hex').toUpperCase()}`,
      status: 'succeeded',
    };
    this.#refundsByKey.set(request.idempotencyKey, result);
    return result;
  }
}
