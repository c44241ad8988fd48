// The frame every message travels in, over MQTT, Zigbee relay or a handheld alike:
//   version u8 | type u8 | meter id u32 | key epoch u32 | sequence u32 | AES-GCM(body) || tag[16]
// The 14-byte header is the additional authenticated data; the nonce is derived from it, so it is
// never sent and never repeats while the sender's sequence advances (see protocol/README.md).
import type { Crypto } from '../hal/crypto';
import { readUint32, writeUint32 } from './bytes';
import { ProtocolError } from './errors';

export const FRAME_VERSION = 1;
export const HEADER_LENGTH = 14;
export const TAG_LENGTH = 16;

/**
 * Frame types; the high bit marks the downlink direction (platform → meter). Reserved for the
 * work in progress, so two features never pick the same number: 0x02/0x82 storage and upload
 * control, 0x03/0x83 keys and security, 0x04/0x84 status, sensors and settings, 0x05/0x85 tariffs
 * and modes, 0x06/0x86 phone renewals and registration, 0x07/0x87 firmware update, 0x08/0x88 time
 * (the meter's request carrying its clock, the platform's answer: protocol/time.ts), 0x09/0x89
 * operating parameters, 0x0A/0x8A fleet blacklist (protocol/blacklist.ts: 0x8A deltas and full-list
 * pages, 0x0A the version held), 0x0B/0x8B reader files (protocol/readerFiles.ts: 0x8B offers and
 * chunks, 0x0B the meter's report), 0x0C/0x8C reports on demand (protocol/reports.ts: 0x8C a status
 * or records request, 0x0C the answer).
 */
export const FrameType = Object.freeze({
  Records: 0x01,
  Ack: 0x81,
} as const);
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

export interface FrameHeader {
  version: number;
  type: number;
  meterId: number;
  epoch: number;
  seq: number;
}

export function isDownlink(type: number): boolean {
  return (type & 0x80) !== 0;
}

export function encodeHeader(header: FrameHeader): Uint8Array {
  for (const [name, value] of [
    ['meterId', header.meterId],
    ['epoch', header.epoch],
    ['seq', header.seq],
  ] as const) {
    if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
      throw new ProtocolError('bad-field', `${name} ${value} is not a 32-bit unsigned integer`);
    }
  }
  const bytes = new Uint8Array(HEADER_LENGTH);
  bytes[0] = header.version;
  bytes[1] = header.type;
  writeUint32(bytes, 2, header.meterId);
  writeUint32(bytes, 6, header.epoch);
  writeUint32(bytes, 10, header.seq);
  return bytes;
}

export function decodeHeader(frame: Uint8Array): FrameHeader {
  if (frame.length < HEADER_LENGTH + TAG_LENGTH) {
    throw new ProtocolError('truncated', `frame of ${frame.length} bytes is shorter than header and tag`);
  }
  const header = {
    version: frame[0],
    type: frame[1],
    meterId: readUint32(frame, 2),
    epoch: readUint32(frame, 6),
    seq: readUint32(frame, 10),
  };
  if (header.version !== FRAME_VERSION)
    throw new ProtocolError('bad-version', `frame version ${header.version}`);
  return header;
}

/** 96-bit nonce: "PL", direction ('U' or 'D'), 0, key epoch, sequence. */
export function frameNonce(header: FrameHeader): Uint8Array {
  const nonce = new Uint8Array(12);
  nonce[0] = 0x50;
  nonce[1] = 0x4c;
  nonce[2] = isDownlink(header.type) ? 0x44 : 0x55;
  writeUint32(nonce, 4, header.epoch);
  writeUint32(nonce, 8, header.seq);
  return nonce;
}

export function sealFrame(
  crypto: Crypto,
  key: Uint8Array,
  header: FrameHeader,
  body: Uint8Array,
): Uint8Array {
  const head = encodeHeader(header);
  const sealed = crypto.aesGcmEncrypt(key, frameNonce(header), body, head);
  const frame = new Uint8Array(HEADER_LENGTH + sealed.length);
  frame.set(head, 0);
  frame.set(sealed, HEADER_LENGTH);
  return frame;
}

/** Authenticates and decrypts; any tampering with header or body is 'decrypt-failed'. */
export function openFrame(
  crypto: Crypto,
  key: Uint8Array,
  frame: Uint8Array,
): { header: FrameHeader; body: Uint8Array } {
  const header = decodeHeader(frame);
  try {
    const body = crypto.aesGcmDecrypt(
      key,
      frameNonce(header),
      frame.subarray(HEADER_LENGTH),
      frame.subarray(0, HEADER_LENGTH),
    );
    return { header, body };
  } catch {
    throw new ProtocolError('decrypt-failed', `frame ${header.meterId}/${header.seq} does not authenticate`);
  }
}
