// Card numbers for virtual drivers: a driver's registration refuses a number whose Luhn check digit
// is wrong (platform-server/phone/cardNumbers.ts), as a card terminal would.

/** `digits` with its Luhn check digit appended. */
export function withCheckDigit(digits: string): string {
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = Number(digits[digits.length - 1 - i]);
    if (i % 2 === 0) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return digits + String((10 - (sum % 10)) % 10);
}
