import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { nobleCrypto as crypto } from '../hal/nobleCrypto';
import { crc32, fromHex, toHex, utf8 } from '../protocol/bytes';
import { chainLink, genesisHash, verifyChain } from '../protocol/chain';
import { ProtocolError } from '../protocol/errors';
import { FrameType, HEADER_LENGTH, openFrame, sealFrame } from '../protocol/frame';
import { hkdf, deriveMeterKeys } from '../protocol/keys';
import {
  decodeAckMessage,
  decodeRecordsMessage,
  encodeAckMessage,
  encodeRecordsMessage,
} from '../protocol/messages';
import { decodeRecord, encodeRecord, type MeterRecord, RecordKind } from '../protocol/records';
import { meterIdOfTopic, uplinkTopic } from '../protocol/topics';

const tx: MeterRecord = {
  kind: RecordKind.Transaction,
  seq: 7,
  time: 1_767_600_000,
  meterId: 1001,
  data: {
    transactionNumber: 3,
    card: { token: new Uint8Array(16).fill(0x17), last4: '0017' },
    cardExpiry: '2812',
    cardType: 1,
    bayId: 2,
    minutes: 60,
    paidFrom: 1_767_600_000,
    paidUntil: 1_767_603_600,
    charge: 240,
    currency: 826,
    remainingValue: 1760,
  },
};

function throwsCode(fn: () => unknown, code: string) {
  assert.throws(fn, (e: unknown) => e instanceof ProtocolError && e.code === code);
}

describe('protocol', () => {
  describe('bytes', () => {
    it('computes CRC-32 as zlib does', () => {
      assert.equal(crc32(utf8('123456789')), 0xcbf43926);
    });
    it('encodes UTF-8 like TextEncoder', () => {
      for (const s of ['', 'abc', 'café', '€', '🚗 bay 3'])
        assert.deepEqual(utf8(s), new TextEncoder().encode(s));
    });
    it('round-trips hex and refuses non-hex', () => {
      assert.equal(toHex(fromHex('00ff10')), '00ff10');
      assert.throws(() => fromHex('0g'), RangeError);
    });
  });

  describe('records', () => {
    it('round-trips each kind', () => {
      const op: MeterRecord = {
        kind: RecordKind.Operation,
        seq: 8,
        time: 1,
        meterId: 1001,
        data: {
          code: 'card-blacklisted',
          detail: 'stolen',
          card: { token: new Uint8Array(16).fill(0x25), last4: '0025' },
        },
      };
      const mt: MeterRecord = {
        kind: RecordKind.Maintenance,
        seq: 9,
        time: 2,
        meterId: 1001,
        data: { code: 'x', detail: 'y' },
      };
      for (const r of [tx, op, mt]) assert.deepEqual(decodeRecord(encodeRecord(r)), r);
    });
    it('refuses malformed records with a typed error', () => {
      throwsCode(() => decodeRecord(fromHex('ff')), 'bad-cbor');
      throwsCode(() => decodeRecord(fromHex('80')), 'bad-field');
      const wrongFormat = encodeRecord(tx).slice();
      wrongFormat[1] = 0x03; // first array element: format 3
      throwsCode(() => decodeRecord(wrongFormat), 'bad-version');
      const legacy = encodeRecord(tx).slice();
      legacy[1] = 0x01; // format 1 carried a card number: read only by legacyRecordToCurrent
      throwsCode(() => decodeRecord(legacy), 'bad-version');
      const negative = { ...tx, data: { ...tx.data, charge: -1 } } as MeterRecord;
      throwsCode(() => decodeRecord(encodeRecord(negative)), 'bad-field');
      const shortToken = { ...tx, data: { ...tx.data, card: { token: new Uint8Array(8), last4: '0017' } } };
      throwsCode(() => decodeRecord(encodeRecord(shortToken as MeterRecord)), 'bad-field');
      const badLast4 = { ...tx, data: { ...tx.data, card: { token: new Uint8Array(16), last4: '62x8' } } };
      throwsCode(() => decodeRecord(encodeRecord(badLast4 as MeterRecord)), 'bad-field');
    });
  });

  describe('hash chain', () => {
    it('links with SHA-256 over previous link and record bytes', () => {
      const genesis = genesisHash(crypto, 1001);
      const expected = createHash('sha256')
        .update(Buffer.concat([Buffer.from('ParkLink chain v1'), Buffer.from([0, 0, 0x03, 0xe9])]))
        .digest();
      assert.deepEqual(genesis, new Uint8Array(expected));
      const bytes = encodeRecord(tx);
      const link = chainLink(crypto, genesis, bytes);
      assert.equal(toHex(link), createHash('sha256').update(genesis).update(bytes).digest('hex'));
    });
    it('detects an altered record', () => {
      const genesis = genesisHash(crypto, 1);
      const records = [utf8('a'), utf8('b'), utf8('c')];
      const links = verifyChain(crypto, genesis, records);
      const altered = [utf8('a'), utf8('B'), utf8('c')];
      throwsCode(() => verifyChain(crypto, genesis, altered, links), 'chain-broken');
    });
  });

  describe('frame', () => {
    const key = fromHex('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f');
    const header = { version: 1, type: FrameType.Records, meterId: 1001, epoch: 1, seq: 42 };

    it('seals and opens', () => {
      const body = utf8('hello meter');
      const frame = sealFrame(crypto, key, header, body);
      assert.equal(frame.length, HEADER_LENGTH + body.length + 16);
      const opened = openFrame(crypto, key, frame);
      assert.deepEqual(opened.header, header);
      assert.deepEqual(opened.body, body);
    });
    it('refuses a tampered header, body, or wrong key', () => {
      const frame = sealFrame(crypto, key, header, utf8('x'));
      for (const index of [5, 13, HEADER_LENGTH]) {
        const bad = frame.slice();
        bad[index] ^= 1;
        throwsCode(() => openFrame(crypto, key, bad), 'decrypt-failed');
      }
      throwsCode(() => openFrame(crypto, new Uint8Array(32), frame), 'decrypt-failed');
    });
    it('refuses truncated frames and unknown versions', () => {
      throwsCode(() => openFrame(crypto, key, new Uint8Array(20)), 'truncated');
      const frame = sealFrame(crypto, key, header, utf8('x'));
      frame[0] = 9;
      throwsCode(() => openFrame(crypto, key, frame), 'bad-version');
    });
    it('refuses out-of-range header fields', () => {
      throwsCode(() => sealFrame(crypto, key, { ...header, seq: 2 ** 32 }, utf8('x')), 'bad-field');
    });
  });

  describe('messages', () => {
    it('round-trips records and acks, refusing bad shapes', () => {
      const previous = new Uint8Array(32).fill(7);
      const records = [encodeRecord(tx)];
      assert.deepEqual(decodeRecordsMessage(encodeRecordsMessage({ previous, records })), {
        previous,
        records,
      });
      assert.deepEqual(decodeAckMessage(encodeAckMessage({ seq: 5, hash: previous })), {
        seq: 5,
        hash: previous,
      });
      throwsCode(() => decodeRecordsMessage(encodeAckMessage({ seq: 5, hash: previous })), 'bad-field');
      throwsCode(
        () => decodeAckMessage(encodeRecordsMessage({ previous: new Uint8Array(31), records })),
        'bad-field',
      );
    });
  });

  describe('keys', () => {
    it('matches RFC 5869 test case 1', () => {
      const okm = hkdf(
        crypto,
        fromHex('0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b'),
        fromHex('000102030405060708090a0b0c'),
        fromHex('f0f1f2f3f4f5f6f7f8f9'),
        42,
      );
      assert.equal(
        toHex(okm),
        '3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865',
      );
    });
    it('derives distinct keys per direction, meter and epoch', () => {
      const master = new Uint8Array(32).fill(1);
      const a = deriveMeterKeys(crypto, master, 1, 1);
      const b = deriveMeterKeys(crypto, master, 2, 1);
      const c = deriveMeterKeys(crypto, master, 1, 2);
      const all = [a.uplink, a.downlink, b.uplink, b.downlink, c.uplink, c.downlink].map(toHex);
      assert.equal(new Set(all).size, 6);
    });
  });

  describe('topics', () => {
    it('parses our topics only', () => {
      assert.equal(meterIdOfTopic(uplinkTopic(1001)), 1001);
      assert.equal(meterIdOfTopic('parklink/v1/meters/abc/up'), undefined);
      assert.equal(meterIdOfTopic('parklink/v1/meters/99999999999/up'), undefined);
    });
  });
});
