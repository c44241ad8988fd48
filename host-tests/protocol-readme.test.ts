// protocol/README.md's worked example, recomputed from the code: every hex block must match.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { nobleCrypto as crypto } from '../hal/nobleCrypto';
import { fromHex, toHex } from '../protocol/bytes';
import { chainLink, genesisHash } from '../protocol/chain';
import { encodeHeader, FrameType, frameNonce, openFrame, sealFrame } from '../protocol/frame';
import { cardToken, deriveCardTokenKey } from '../protocol/cardToken';
import { combineDownlinkKey, deriveMeterKeys } from '../protocol/keys';
import {
  decodeAckMessage,
  decodeRecordsMessage,
  encodeAckMessage,
  encodeRecordsMessage,
} from '../protocol/messages';
import { decodeRecord, encodeRecord, type MeterRecord, RecordKind } from '../protocol/records';

function readmeBlocks(): Map<string, Uint8Array> {
  const text = readFileSync(new URL('../protocol/README.md', import.meta.url), 'utf8');
  const blocks = new Map<string, Uint8Array>();
  for (const match of text.matchAll(/```\n# (\w+)\n([0-9a-f\s]+?)```/g))
    blocks.set(match[1], fromHex(match[2]));
  return blocks;
}

describe('protocol/README.md worked example', () => {
  const blocks = readmeBlocks();
  const block = (name: string): Uint8Array => {
    const bytes = blocks.get(name);
    assert.ok(bytes, `README has no "${name}" block`);
    return bytes;
  };

  const CARD_NUMBER = '6280000000000017';
  const record: MeterRecord = {
    kind: RecordKind.Transaction,
    seq: 1,
    time: Date.parse('2026-03-02T08:30:00Z') / 1000,
    meterId: 1001,
    data: {
      transactionNumber: 1,
      card: { token: block('card_token'), last4: CARD_NUMBER.slice(-4) },
      cardExpiry: '2812',
      cardType: 1,
      bayId: 2,
      minutes: 60,
      paidFrom: Date.parse('2026-03-02T08:30:00Z') / 1000,
      paidUntil: Date.parse('2026-03-02T09:30:00Z') / 1000,
      charge: 240,
      currency: 826,
      remainingValue: 19760,
    },
  };
  const header = { version: 1, type: FrameType.Records, meterId: 1001, epoch: 1, seq: 1 };

  it('has all sixteen blocks', () => {
    assert.equal(blocks.size, 16, [...blocks.keys()].join(', '));
  });

  it("derives the card-token key and the card's token shown", () => {
    const key = deriveCardTokenKey(crypto, block('master_key'));
    assert.equal(toHex(key), toHex(block('card_token_key')));
    assert.equal(toHex(cardToken(crypto, key, CARD_NUMBER)), toHex(block('card_token')));
  });

  it('carries no card number in the record', () => {
    assert.equal(Buffer.from(block('record')).includes(Buffer.from(CARD_NUMBER)), false);
  });

  it('derives the keys shown', () => {
    const keys = deriveMeterKeys(crypto, block('master_key'), 1001, 1);
    assert.equal(toHex(keys.uplink), toHex(block('uplink_key')));
    assert.equal(toHex(keys.downlink), toHex(block('downlink_key')));
    assert.equal(toHex(keys.secrets?.a ?? new Uint8Array(0)), toHex(block('key_a')));
    assert.equal(toHex(keys.secrets?.b ?? new Uint8Array(0)), toHex(block('key_b')));
    assert.equal(
      toHex(combineDownlinkKey(crypto, block('key_a'), block('key_b'), 1001, 1)),
      toHex(block('downlink_key')),
    );
  });

  it('encodes the record shown, and decodes it back', () => {
    assert.equal(toHex(encodeRecord(record)), toHex(block('record')));
    assert.deepEqual(decodeRecord(block('record')), record);
  });

  it('chains as shown', () => {
    const genesis = genesisHash(crypto, 1001);
    assert.equal(toHex(genesis), toHex(block('genesis')));
    assert.equal(toHex(chainLink(crypto, genesis, block('record'))), toHex(block('link')));
  });

  it('builds the records body, header, nonce and frame shown', () => {
    const body = encodeRecordsMessage({ previous: block('genesis'), records: [block('record')] });
    assert.equal(toHex(body), toHex(block('records_body')));
    assert.equal(toHex(encodeHeader(header)), toHex(block('header')));
    assert.equal(toHex(frameNonce(header)), toHex(block('nonce')));
    assert.equal(toHex(sealFrame(crypto, block('uplink_key'), header, body)), toHex(block('frame')));
  });

  it('opens the frame shown and the ack shown with the keys shown', () => {
    const up = openFrame(crypto, block('uplink_key'), block('frame'));
    assert.deepEqual(decodeRecordsMessage(up.body).records, [block('record')]);
    const ackBody = encodeAckMessage({ seq: 1, hash: block('link') });
    assert.equal(toHex(ackBody), toHex(block('ack_body')));
    const down = openFrame(crypto, block('downlink_key'), block('ack_frame'));
    assert.deepEqual(down.header, { version: 1, type: FrameType.Ack, meterId: 1001, epoch: 1, seq: 1 });
    assert.deepEqual(decodeAckMessage(down.body), { seq: 1, hash: block('link') });
  });
});
