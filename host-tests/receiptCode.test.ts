// The receipt code's check (Crockford base32 of a record link's first 40 bits) and how a typed
// code is read back: known vectors worked by hand, and every way a typed code can be wrong.
import assert from 'node:assert/strict';
import { ProtocolError } from '../protocol/errors';
import { formatReceiptCode, parseReceiptCode, receiptCheck } from '../protocol/receiptCode';

const link = (...first: number[]) => Uint8Array.from([...first, ...new Array(32 - first.length).fill(0xaa)]);

describe('receipt code', () => {
  it('takes the first 40 bits of the link, 5 bits a character, in Crockford base32', () => {
    assert.equal(receiptCheck(link(0, 0, 0, 0, 0)), '00000000');
    assert.equal(receiptCheck(link(0xff, 0xff, 0xff, 0xff, 0xff)), 'ZZZZZZZZ');
    // 00001 00001 … : every 5-bit group is 1.
    assert.equal(receiptCheck(link(0x08, 0x42, 0x10, 0x84, 0x21)), '11111111');
    // 0x80 then zeros: 10000 = 16 = 'G' (Crockford skips I and L, so G is the 17th symbol).
    assert.equal(receiptCheck(link(0x80, 0, 0, 0, 0)), 'G0000000');
    // The last group is the low 5 bits of the fifth byte: 0x1f = 31 = 'Z'.
    assert.equal(receiptCheck(link(0, 0, 0, 0, 0x1f)), '0000000Z');
  });

  it('formats and reads back, forgiving case, spaces and the letters taken for digits', () => {
    const code = { meterId: 1001, seq: 42, check: '7KQ41M0D' };
    const text = formatReceiptCode(code);
    assert.equal(text, '1001-42-7KQ4-1M0D');
    assert.deepEqual(parseReceiptCode(text), code);
    assert.deepEqual(parseReceiptCode(' 1001 42 7kq4 lmod '), code);
    assert.deepEqual(parseReceiptCode('1001-42-7KQ41M0D'), code);
  });

  it('refuses a code that cannot be one, with a typed error saying why', () => {
    const refused = (text: string, why: RegExp) =>
      assert.throws(
        () => parseReceiptCode(text),
        (e: unknown) => e instanceof ProtocolError && e.code === 'bad-field' && why.test(e.message),
      );
    refused('1001-42', /meter, the number and the check/);
    refused('10x1-42-7KQ4-M2XD', /meter is a whole number/);
    refused('1001-0-7KQ4-M2XD', /starts at 1/);
    refused('99999999999-1-7KQ4-M2XD', /whole number/);
    refused('4294967296-1-7KQ4-M2XD', /too large/);
    refused('1001-42-7KQ4-M2XU', /not U/);
    refused('1001-42-7KQ4-M2X', /8 characters, not 7/);
  });
});
