// What a driver types as a card number, read the way a card terminal would: separators dropped,
// 12 to 19 digits (ISO/IEC 7812), the Luhn check digit right, and the card's scheme (Visa,
// Mastercard, Maestro, …) from its issuer identification number through Braintree's
// card-validator, which keeps the schemes' IIN ranges and lengths. A number no public scheme claims
// (a city's own closed-loop card) is taken on its Luhn digit alone.
//
// Whether a card is debit, credit or prepaid is not in its number: the meter reads it from the card
// at the first tap (pairing.ts), so the driver is never asked.
import cardValidator from 'card-validator';
import { PhoneError } from './model';

export interface CardNumber {
  digits: string;
  /** card-validator's scheme id ('visa', 'mastercard', 'maestro', …), null for a closed-loop card. */
  scheme: string | null;
  /** The scheme as people write it ('Visa'), null for a closed-loop card. */
  schemeName: string | null;
}

/** True when the last digit of `digits` is the Luhn check digit of the others. */
export function luhnValid(digits: string): boolean {
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = digits.charCodeAt(digits.length - 1 - i) - 48;
    if (i % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return sum % 10 === 0;
}

/** `raw` as a card number, or a 400 bad-card in plain words on the cardNumber field. */
export function readCardNumber(raw: string): CardNumber {
  const digits = raw.replace(/[\s-]/g, '');
  const refuse = (message: string) => PhoneError.onField(400, 'bad-card', message, 'cardNumber');
  if (!/^[0-9]*$/.test(digits)) throw refuse('A card number has only digits (spaces are fine).');
  if (digits.length < 12 || digits.length > 19)
    throw refuse(`A card number has 12 to 19 digits; this one has ${digits.length}.`);
  if (!luhnValid(digits))
    throw refuse('This card number has a typing error: please check the digits on your card.');
  const known = cardValidator.number(digits, { maxLength: 19 });
  if (known.card && !known.card.lengths.includes(digits.length))
    throw refuse(
      `A ${known.card.niceType} card number has ${known.card.lengths.join(' or ')} digits; this one has ${digits.length}.`,
    );
  return {
    digits,
    scheme: known.card?.type ?? null,
    schemeName: known.card?.niceType ?? null,
  };
}
