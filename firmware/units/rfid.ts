// RFID reading & writing (49): the card applications the meter accepts, whatever reader sits
// underneath. Debit cards may not overdraw; credit cards spend within their limit; prepaid cards
// may overdraw within their overdraft limit.

export const CardKind = Object.freeze({ Debit: 1, Credit: 2, Prepaid: 3 } as const);

export interface CardData {
  cardNumber: string;
  expiry: { year: number; month: number };
  cardType: number;
  /** Minor units; negative within an overdraft or credit line. */
  balance: number;
  limit: number;
  counter: number;
  currency: number;
}

/** One card held in the field and selected, ready for its application's commands. */
export interface CardSession {
  readonly card: CardData;
  /** Debits the card; returns the new balance and counter, or throws (the value is then unchanged). */
  debit(amount: number): { balance: number; counter: number };
  end(): void;
}

export interface CardReaderPort {
  /** A card session when a supported card is in the field, undefined when none is. */
  detect(): CardSession | undefined;
  antenna(on: boolean): void;
}

export class UnsupportedCardError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnsupportedCardError';
  }
}

/** The lowest balance a card may reach after a debit. */
export function balanceFloor(card: CardData): number {
  switch (card.cardType) {
    case CardKind.Debit:
      return 0;
    case CardKind.Credit:
    case CardKind.Prepaid:
      return -card.limit;
    default:
      throw new UnsupportedCardError(`card type ${card.cardType}`);
  }
}

export function canPay(card: CardData, amount: number): boolean {
  return card.balance - amount >= balanceFloor(card);
}

/** True when the card's expiry month (YY/MM, valid to the month's end) is before `now`. */
export function isExpired(card: CardData, nowMs: number): boolean {
  const endOfMonth = Date.UTC(2000 + card.expiry.year, card.expiry.month, 1); // month index is 0-based: this is the 1st of the next month
  return nowMs >= endOfMonth;
}
