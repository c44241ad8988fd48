// The virtual secure parts' memory on the host build, kept in one file so that keys installed at
// personalisation (and rotated or wiped later) survive a restart as they do in the chips' EEPROM.
// Format: "PLSS", version 1, then length-prefixed fields; written to a temporary file and renamed.
import { File } from 'file';
import type { Atecc608State } from '../../mock/secure/atecc608';
import type { SamBank, SamState } from '../../mock/secure/sam';

const MAGIC = [0x50, 0x4c, 0x53, 0x53]; // "PLSS"
const VERSION = 1;

export interface SecureState {
  element: Atecc608State;
  sam: SamState;
}

export class SecureStateError extends Error {
  override readonly name = 'SecureStateError';
}

class Writer {
  readonly bytes: number[] = [];
  u8(value: number): void {
    this.bytes.push(value & 0xff);
  }
  u32(value: number): void {
    this.bytes.push((value >>> 24) & 0xff, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff);
  }
  field(value: Uint8Array | undefined): void {
    if (value === undefined) {
      this.u8(0);
      return;
    }
    this.u8(1);
    this.u32(value.length);
    for (const byte of value) this.bytes.push(byte);
  }
}

class Reader {
  #at = 0;
  constructor(readonly bytes: Uint8Array) {}
  u8(): number {
    if (this.#at >= this.bytes.length) throw new SecureStateError('secure parts state truncated');
    return this.bytes[this.#at++];
  }
  u32(): number {
    return ((this.u8() << 24) | (this.u8() << 16) | (this.u8() << 8) | this.u8()) >>> 0;
  }
  field(): Uint8Array | undefined {
    if (this.u8() === 0) return undefined;
    const length = this.u32();
    if (this.#at + length > this.bytes.length) throw new SecureStateError('secure parts state truncated');
    const value = this.bytes.slice(this.#at, this.#at + length);
    this.#at += length;
    return value;
  }
  get done(): boolean {
    return this.#at === this.bytes.length;
  }
}

export function encodeSecureState(state: SecureState): Uint8Array {
  const out = new Writer();
  for (const byte of MAGIC) out.u8(byte);
  out.u8(VERSION);
  out.u8(state.element.slots.length);
  state.element.slots.forEach((slot, i) => {
    out.field(slot);
    out.u8(state.element.secret[i] ? 1 : 0);
  });
  out.u32(state.sam.meterId);
  out.u8(state.sam.wiped ? 1 : 0);
  out.field(state.sam.cardMaster);
  for (const bank of state.sam.banks) {
    out.u8(bank ? 1 : 0);
    if (bank) {
      out.u32(bank.epoch);
      out.field(bank.a);
      out.field(bank.m);
    }
  }
  return Uint8Array.from(out.bytes);
}

export function decodeSecureState(bytes: Uint8Array): SecureState {
  const input = new Reader(bytes);
  for (const byte of MAGIC)
    if (input.u8() !== byte) throw new SecureStateError('not a secure parts state file');
  if (input.u8() !== VERSION) throw new SecureStateError('secure parts state of another version');
  const slotCount = input.u8();
  const slots: Uint8Array[] = [];
  const secret: boolean[] = [];
  for (let i = 0; i < slotCount; i++) {
    slots.push(input.field() ?? new Uint8Array(32));
    secret.push(input.u8() === 1);
  }
  const meterId = input.u32();
  const wiped = input.u8() === 1;
  const cardMaster = input.field();
  const banks: [SamBank | undefined, SamBank | undefined] = [undefined, undefined];
  for (let i = 0; i < 2; i++) {
    if (input.u8() === 0) continue;
    const epoch = input.u32();
    const a = input.field();
    const m = input.field();
    if (!a || !m) throw new SecureStateError('SAM bank without its keys');
    banks[i] = { epoch, a, m };
  }
  if (!input.done) throw new SecureStateError('secure parts state has trailing bytes');
  return { element: { slots, secret }, sam: { meterId, banks, cardMaster, wiped } };
}

/** The state kept at `path`, or undefined when there is none yet (a board fresh from the factory). */
export function loadSecureState(path: string): SecureState | undefined {
  if (!File.exists(path)) return undefined;
  const file = new File(path);
  try {
    return decodeSecureState(new Uint8Array(file.read(ArrayBuffer)));
  } finally {
    file.close();
  }
}

function same(a: Uint8Array | undefined, b: Uint8Array): boolean {
  if (!a || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Writes the state to `path` unless it equals `previous` (what was last written); returns what is
 * now on file. Without a path it only encodes (to remember what was loaded).
 */
export function saveSecureState(
  path: string | undefined,
  state: SecureState,
  previous?: Uint8Array,
): Uint8Array {
  const bytes = encodeSecureState(state);
  if (path === undefined || same(previous, bytes)) return bytes;
  const temporary = `${path}.new`;
  if (File.exists(temporary)) File.delete(temporary);
  const file = new File(temporary, true);
  try {
    file.write(bytes.buffer as ArrayBuffer);
  } finally {
    file.close();
  }
  File.rename(temporary, path.slice(path.lastIndexOf('/') + 1));
  return bytes;
}
