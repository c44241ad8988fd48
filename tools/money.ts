// Money for people: minor units in an ISO 4217 currency, given by its numeric code as the tariffs,
// records and purse cards carry it, printed in that currency's own format (826, 180 → "£1.80").

/** ISO 4217 numeric → alphabetic codes of the currencies a meter is likely to take. */
const ALPHA: Readonly<Record<number, string>> = Object.freeze({
  36: 'AUD',
  124: 'CAD',
  203: 'CZK',
  208: 'DKK',
  348: 'HUF',
  392: 'JPY',
  578: 'NOK',
  752: 'SEK',
  756: 'CHF',
  826: 'GBP',
  840: 'USD',
  946: 'RON',
  978: 'EUR',
  985: 'PLN',
});

/** The alphabetic code of an ISO 4217 numeric one, or undefined when this table lacks it. */
export function currencyCode(numeric: number): string | undefined {
  return ALPHA[numeric];
}

/**
 * `minor` units as the currency writes them (Intl.NumberFormat, en-GB): 180 in 826 → "£1.80",
 * 500 in 392 → "JP¥500". An unknown currency prints the minor units and the numeric code.
 */
export function formatMoney(minor: number, numeric: number, locale = 'en-GB'): string {
  const code = currencyCode(numeric);
  if (!code) return `${minor} (currency ${numeric})`;
  const format = new Intl.NumberFormat(locale, { style: 'currency', currency: code });
  const digits = format.resolvedOptions().maximumFractionDigits ?? 2;
  return format.format(minor / 10 ** digits);
}
