// The receipt code a meter shows when the driver asks for a receipt: the meter id, the record's
// sequence number and a check of 8 Crockford base32 characters (40 bits) taken from the record's
// chain link, e.g. "1001-42-7KQ4-M2XD". The platform finds the record by meter and sequence and
// gives the receipt only when the check matches the link it holds: the numbers alone, which anyone
// can count through, open nothing. The link is SHA-256 over the record and the chain before it, so
// its first 40 bits are unpredictable without the record itself.
import { ProtocolError } from './errors';

/** Crockford's base32: no I, L, O or U, so a code read off a display is typed back right. */
const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
export const CHECK_LENGTH = 8;
const MAX_U32 = 0xffffffff;

export interface ReceiptCode {
  meterId: number;
  seq: number;
  /** The 8 check characters, upper case, without the separator. */
  check: string;
}

/** The check of a record: its link's first 5 bytes as 8 base32 characters. */
export function receiptCheck(link: Uint8Array): string {
  if (link.length < 5) throw new ProtocolError('bad-field', 'a chain link has at least 5 bytes');
  // 40 bits fit a double exactly; 5 bits a character, most significant first.
  const value = link[0] * 2 ** 32 + link[1] * 2 ** 24 + link[2] * 2 ** 16 + link[3] * 2 ** 8 + link[4];
  let out = '';
  for (let i = 0; i < CHECK_LENGTH; i++) out += ALPHABET[Math.floor(value / 2 ** (35 - 5 * i)) % 32];
  return out;
}

/** "1001-42-7KQ4-M2XD": the code as the display and the receipt page show it. */
export function formatReceiptCode(code: ReceiptCode): string {
  return `${code.meterId}-${code.seq}-${code.check.slice(0, 4)}-${code.check.slice(4)}`;
}

export function receiptCodeOf(meterId: number, seq: number, link: Uint8Array): ReceiptCode {
  return { meterId, seq, check: receiptCheck(link) };
}

/**
 * A code as a driver types it: separators are dashes or spaces, letters any case, and the letters
 * people mistake for digits (O, I, L) read as the digits. Throws ProtocolError 'bad-field'.
 */
export function parseReceiptCode(text: string): ReceiptCode {
  const parts = text
    .trim()
    .split(/[\s-]+/)
    .filter((p) => p !== '');
  if (parts.length < 3)
    throw new ProtocolError(
      'bad-field',
      'a receipt code is the meter, the number and the check: 1001-42-7KQ4-M2XD',
    );
  const [meterText, seqText] = parts;
  const meterId = wholeNumber(meterText, 'meter');
  const seq = wholeNumber(seqText, 'number');
  if (seq < 1) throw new ProtocolError('bad-field', 'the receipt number starts at 1');
  let check = '';
  for (const c of parts.slice(2).join('').toUpperCase()) {
    const mapped = c === 'O' ? '0' : c === 'I' || c === 'L' ? '1' : c;
    if (!ALPHABET.includes(mapped))
      throw new ProtocolError('bad-field', `the check holds letters and digits only, not ${c}`);
    check += mapped;
  }
  if (check.length !== CHECK_LENGTH)
    throw new ProtocolError('bad-field', `the check has ${CHECK_LENGTH} characters, not ${check.length}`);
  return { meterId, seq, check };
}

function wholeNumber(text: string, what: string): number {
  if (!/^\d{1,10}$/.test(text))
    throw new ProtocolError('bad-field', `the ${what} is a whole number, not ${text}`);
  const value = Number(text);
  if (value > MAX_U32) throw new ProtocolError('bad-field', `the ${what} ${text} is too large`);
  return value;
}
