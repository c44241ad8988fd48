// Pay by phone's payments: how a renewal is paid and refunded. Debit cards go through the real-time
// path (an acquirer authorises while the driver waits); credit and prepaid accounts are updated
// directly on the platform, and a refund of those is the refunded_at mark on the renewal.
import { randomBytes } from 'node:crypto';
import { type CardRow, PhoneError, type RenewalRow } from './model';

export type AuthorisationResult =
  | { approved: true; authorisation: string }
  | { approved: false; reason: string };

/** The real-time path for debit cards (step 712): an acquirer that authorises while the driver waits. */
export interface RealtimeAuthoriser {
  authorise(request: {
    cardToken: string;
    amount: number;
    currency: number;
    reference: string;
  }): Promise<AuthorisationResult>;
  refund(request: { authorisation: string; amount: number; currency: number }): Promise<void>;
}

/** The embedded default acquirer: approves, except tokens listed in `declined`. */
export class SimulatedAcquirer implements RealtimeAuthoriser {
  readonly declined = new Set<string>();
  readonly refunds: string[] = [];
  async authorise(request: { cardToken: string }): Promise<AuthorisationResult> {
    if (this.declined.has(request.cardToken))
      return { approved: false, reason: 'declined by the card issuer' };
    return { approved: true, authorisation: `R${randomBytes(5).toString('hex').toUpperCase()}` };
  }
  async refund(request: { authorisation: string }): Promise<void> {
    this.refunds.push(request.authorisation);
  }
}

export class Payments {
  constructor(readonly acquirer: RealtimeAuthoriser = new SimulatedAcquirer()) {}

  /** Pays `amount` from `card`: 402 card-declined when the acquirer refuses. */
  async pay(
    card: Pick<CardRow, 'card_type' | 'token'>,
    charge: { amount: number; currency: number; reference: string },
  ): Promise<{ funding: 'direct' | 'realtime'; authorisation: string }> {
    if (card.card_type === 1) {
      // Step 712: a debit card is charged in real time, while the driver waits.
      const result = await this.acquirer.authorise({ cardToken: card.token, ...charge });
      if (!result.approved) throw new PhoneError(402, 'card-declined', `payment refused: ${result.reason}`);
      return { funding: 'realtime', authorisation: result.authorisation };
    }
    // Step 711: credit and prepaid accounts are updated directly on the platform.
    return { funding: 'direct', authorisation: `D${randomBytes(5).toString('hex').toUpperCase()}` };
  }

  async refund(r: Pick<RenewalRow, 'funding' | 'authorisation' | 'charge' | 'currency'>): Promise<void> {
    if (r.funding === 'realtime')
      await this.acquirer.refund({ authorisation: r.authorisation, amount: r.charge, currency: r.currency });
    // Direct (credit, prepaid): the charge was posted on the platform; refunded_at reverses it.
  }
}
