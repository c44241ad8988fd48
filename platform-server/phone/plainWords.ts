// The drivers' API says what is wrong with a form field the way the app shows it, beside the field:
// "Enter an e-mail address like name@example.com", not a JSON-schema pattern. The field itself
// still travels in the error's `field` (core/http.ts), from Fastify's validation result.
import type { FastifySchemaValidationError } from 'fastify';
import { validationField } from '../core/errors';

/** What each driver-facing field takes, in the words the app shows under it. */
const FIELD_WORDS: Readonly<Record<string, string>> = Object.freeze({
  name: 'Enter your name (up to 100 characters).',
  phone: 'Enter your mobile number as you would dial it, such as 07700 900123 or +44 7700 900123.',
  renewalPhone: 'Enter the mobile number for renewals, such as 07700 900123, or leave it empty.',
  email: 'Enter an e-mail address such as name@example.com.',
  renewalEmail: 'Enter an e-mail address such as name@example.com, or leave it empty.',
  password: 'Choose a password of at least 10 characters.',
  login: 'Enter your mobile number, e-mail address or account number.',
  cardNumber: 'Enter the long number on the front of your card.',
  label: 'A card name has at most 40 characters.',
  minutes: 'Choose how many minutes to add.',
  code: 'Enter the bay code printed on the meter, such as 1001-2.',
  plate: "Enter the vehicle's number plate.",
  leadMinutes: 'Alert me between 1 and 240 minutes before my parking ends.',
  autoMinutes: 'An automatic renewal adds between 1 and 1440 minutes.',
  graceMinutes: 'Grace after expiry is between 0 and 120 minutes.',
  alertChannel: 'Choose how we alert you: text message, voice call or the app.',
  renewOption: 'Choose how your parking is renewed: automatically, by phone or in the app.',
  paysWith: 'Choose one of your own cards to pay with.',
  renewal: 'Say yes or no.',
});

/**
 * The formatter for the drivers' routes: plain words for a known field (`overrides` first: login's
 * password is one already chosen, so asking for 10 characters there would mislead), Fastify's own
 * message otherwise.
 */
export function plainWords(overrides: Readonly<Record<string, string>> = {}) {
  return (errors: FastifySchemaValidationError[], dataVar: string): Error => {
    const field = validationField(errors);
    const name = field?.split('.').pop();
    const words = name === undefined ? undefined : (overrides[name] ?? FIELD_WORDS[name]);
    if (words) return new Error(words);
    return new Error(
      errors.map((e) => `${dataVar}${e.instancePath} ${e.message ?? 'is not valid'}`).join(', '),
    );
  };
}
