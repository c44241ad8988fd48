// Pay by phone's payments: how a renewal is paid and refunded. Debit cards go through the real-time
// path (step 712): an off-session charge of the card on file at the payment provider
// (platform-server/payments/provider.ts), while the driver waits. Credit and prepaid accounts are
// charged on the platform's ledger (step 711, platform-server/payments/ledger.ts). A voided or
// refused renewal is refunded for real: a provider refund, or a ledger reversal.
import type { Database } from '../core/db';
import type { Logger } from '../ingest/gate';
import { Ledger, LedgerError } from '../payments/ledger';
import type { ChargeResult, PaymentProvider } from '../payments/provider';
import { type CardRow, cardTypeUnknown, PhoneError, type RenewalRow } from './model';

export interface Payment {
  funding: 'direct' | 'realtime';
  /** The provider's charge id (realtime) or the ledger entry ("L" and its id, direct). */
  authorisation: string;
  provider: string | null;
  ledgerEntry: number | null;
}

export class Payments {
  readonly ledger: Ledger;

  constructor(
    readonly db: Database,
    readonly provider: PaymentProvider,
    readonly logger: Logger,
    options: { defaultCreditLimit?: number } = {},
  ) {
    this.ledger = new Ledger(db, options);
  }

  /**
   * Pays `amount` from `card` for renewal `reference`: 402 card-declined or
   * authentication-required when the provider refuses, 402 insufficient-funds past the account's
   * limit, 503 payment-unavailable when the provider did not answer (asked again later).
   */
  async pay(
    card: Pick<CardRow, 'id' | 'card_type' | 'token' | 'provider_customer' | 'provider_payment_method'>,
    charge: { amount: number; currency: number; reference: string; description: string },
  ): Promise<Payment> {
    // Nothing to take (a tariff's cap per period reached): no provider charge, no ledger entry.
    if (charge.amount === 0)
      return { funding: 'direct', authorisation: 'none', provider: null, ledgerEntry: null };
    if (card.card_type === null) throw cardTypeUnknown();
    if (card.card_type === 1) return this.#payByProvider(card, charge);
    // Step 711: credit and prepaid accounts are charged on the platform's ledger.
    const kind = card.card_type === 3 ? 'prepaid' : 'credit';
    try {
      const account = await this.ledger.accountFor({ id: card.id, kind }, charge.currency);
      const entry = await this.ledger.charge(account.id, charge.amount, charge.reference);
      return { funding: 'direct', authorisation: `L${entry}`, provider: null, ledgerEntry: entry };
    } catch (error) {
      if (error instanceof LedgerError && error.code === 'insufficient-funds')
        throw new PhoneError(
          402,
          'insufficient-funds',
          kind === 'prepaid'
            ? 'your prepaid account has not enough left: top it up or pay at the meter'
            : 'this renewal would take your account past its credit limit',
        );
      throw error;
    }
  }

  async #payByProvider(
    card: Pick<CardRow, 'token' | 'provider_customer' | 'provider_payment_method'>,
    charge: { amount: number; currency: number; reference: string; description: string },
  ): Promise<Payment> {
    const key = `renewal-${charge.reference}`;
    const name = this.provider.name;
    await this.db.query(
      `INSERT INTO provider_charges (idempotency_key, renewal_id, provider, amount, currency, status)
       VALUES ($1, $2, $3, $4, $5, 'pending')`,
      [key, charge.reference, name, charge.amount, charge.currency],
    );
    const request = {
      card: {
        token: card.token,
        onFile:
          card.provider_customer && card.provider_payment_method
            ? { customer: card.provider_customer, paymentMethod: card.provider_payment_method }
            : null,
      },
      amount: charge.amount,
      currency: charge.currency,
      idempotencyKey: key,
      description: charge.description,
      reference: charge.reference,
    };
    let result = await this.provider.charge(request);
    // No answer: asked once more at once with the same key (the provider answers a charge it made).
    if (result.outcome === 'unavailable') result = await this.provider.charge(request);
    await this.#record(key, result);
    switch (result.outcome) {
      case 'succeeded':
        return { funding: 'realtime', authorisation: result.chargeId, provider: name, ledgerEntry: null };
      case 'declined':
        throw new PhoneError(402, 'card-declined', `payment refused: ${result.message}`);
      case 'authentication-required':
        throw new PhoneError(
          402,
          'authentication-required',
          'your bank asks you to confirm this payment: renew in the app, or pay at the meter',
        );
      case 'unavailable':
        throw new PhoneError(
          503,
          'payment-unavailable',
          'the card payment could not be completed: try again shortly',
        );
    }
  }

  async #record(key: string, result: ChargeResult): Promise<void> {
    await this.db.query(
      'UPDATE provider_charges SET status = $2, charge_id = $3, detail = $4, updated_at = now() WHERE idempotency_key = $1',
      [
        key,
        result.outcome,
        result.outcome === 'succeeded' || result.outcome === 'authentication-required'
          ? result.chargeId
          : null,
        result.outcome === 'succeeded'
          ? null
          : result.outcome === 'declined'
            ? `${result.code}: ${result.message}`
            : result.message,
      ],
    );
  }

  /**
   * Refunds a renewal: the provider's refund (realtime) or the ledger's reversal (direct). Returns
   * the refund's id, or null when it could not be done now (the scheduler tries again).
   */
  async refund(
    r: Pick<RenewalRow, 'id' | 'funding' | 'authorisation' | 'charge' | 'currency' | 'ledger_entry'>,
  ): Promise<string | null> {
    if (r.charge === 0) return 'none'; // nothing was taken
    if (r.funding === 'direct') {
      if (r.ledger_entry === null) throw new Error(`renewal ${r.id} has no ledger entry to reverse`);
      return `L${await this.ledger.reverse(r.ledger_entry, `void-${r.id}`)}`;
    }
    const result = await this.provider.refund({
      chargeId: r.authorisation,
      amount: r.charge,
      currency: r.currency,
      idempotencyKey: `refund-${r.id}`,
      reference: r.id,
    });
    if (result.outcome === 'refunded') {
      await this.db.query(
        "UPDATE provider_charges SET status = 'refunded', updated_at = now() WHERE renewal_id = $1 AND status = 'succeeded'",
        [r.id],
      );
      return result.refundId;
    }
    this.logger.error({ renewal: r.id, result }, 'renewal refund not done: tried again on the next tick');
    return null;
  }
}
