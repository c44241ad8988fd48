// The handheld service's transport: messages (CBOR maps, or a sealed frame the meter hands over as
// is) cut into chunks that fit one BLE write or notification (ATT MTU − 3 bytes), each with a
// one-byte header; the Wi-Fi port sends the same chunks, each behind a 2-byte length. See
// docs/handheld.md for the GATT service and the messages.
//
//   chunk  = header u8 | data[1 .. MTU − 4]
//   header = FINAL (0x80, last chunk of the message) | FIRST (0x40, first chunk) | counter (6 bits)
// The counter starts at 0 with each message and counts chunks modulo 64; a chunk out of order, a
// message without its FIRST chunk or longer than MAX_MESSAGE_BYTES is a HandheldChunkError, and
// the receiver drops what it had gathered of that message.
export const CHUNK_FINAL = 0x80;
export const CHUNK_FIRST = 0x40;
const COUNTER = 0x3f;
/** Bytes a write or notification loses to the ATT header (opcode u8, handle u16). */
export const ATT_OVERHEAD = 3;
/** Largest message either side accepts: a full upload set (2 KiB of records) sealed, with room. */
export const MAX_MESSAGE_BYTES = 8192;

export class HandheldChunkError extends Error {
  override readonly name: string = 'HandheldChunkError';
  constructor(detail: string) {
    super(`bad chunk: ${detail}`);
  }
}

/** Cuts `message` into chunks of at most `chunkBytes` bytes (header included). */
export function chunkMessage(message: Uint8Array, chunkBytes: number): Uint8Array[] {
  if (!Number.isInteger(chunkBytes) || chunkBytes < 2)
    throw new RangeError(`a chunk of ${chunkBytes} bytes has no room for data`);
  if (message.length === 0 || message.length > MAX_MESSAGE_BYTES)
    throw new RangeError(`a message is 1 to ${MAX_MESSAGE_BYTES} bytes, not ${message.length}`);
  const room = chunkBytes - 1;
  const chunks: Uint8Array[] = [];
  for (let at = 0, n = 0; at < message.length; at += room, n++) {
    const data = message.subarray(at, Math.min(at + room, message.length));
    const chunk = new Uint8Array(1 + data.length);
    chunk[0] = (n & COUNTER) | (n === 0 ? CHUNK_FIRST : 0) | (at + room >= message.length ? CHUNK_FINAL : 0);
    chunk.set(data, 1);
    chunks.push(chunk);
  }
  return chunks;
}

/** Gathers chunks back into messages, one message at a time. */
export class ChunkAssembler {
  #parts: Uint8Array[] = [];
  #length = 0;
  #next = -1;

  /** Adds a chunk; returns the message it completes, or undefined while more are to come. */
  push(chunk: Uint8Array): Uint8Array | undefined {
    if (chunk.length < 2) return this.#fail(`chunk of ${chunk.length} bytes`);
    const header = chunk[0];
    const counter = header & COUNTER;
    if (header & CHUNK_FIRST) {
      if (counter !== 0) return this.#fail(`first chunk with counter ${counter}`);
      this.reset();
    } else if (this.#next < 0) {
      return this.#fail('chunk without the first of its message');
    } else if (counter !== this.#next) {
      return this.#fail(`chunk ${counter} where ${this.#next} was due`);
    }
    if (this.#length + chunk.length - 1 > MAX_MESSAGE_BYTES)
      return this.#fail(`message longer than ${MAX_MESSAGE_BYTES} bytes`);
    this.#parts.push(chunk.slice(1));
    this.#length += chunk.length - 1;
    this.#next = (counter + 1) & COUNTER;
    if (!(header & CHUNK_FINAL)) return undefined;
    const message = new Uint8Array(this.#length);
    let at = 0;
    for (const part of this.#parts) {
      message.set(part, at);
      at += part.length;
    }
    this.reset();
    return message;
  }

  /** Whether part of a message is waiting for its other chunks. */
  get pending(): boolean {
    return this.#next >= 0;
  }

  reset(): void {
    this.#parts = [];
    this.#length = 0;
    this.#next = -1;
  }

  #fail(detail: string): never {
    this.reset();
    throw new HandheldChunkError(detail);
  }
}
