// The card reader's own firmware, on reader modules that carry a processor of their own and take
// new firmware over their host interface (management service 414d: reader firmware upgrades). The
// meter streams a verified image to it; the module checks and switches to it on finish. Boards
// whose reader has no firmware to update (the bare MFRC522) fit none, and the meter refuses reader
// firmware offers as 'unsupported'.
export interface ReaderFirmwarePort {
  /** The version the reader runs (0: not known). */
  running(): number;
  /** Starts an install of `length` bytes, version `version`; an install under way is abandoned. */
  begin(version: number, length: number): void;
  /** Bytes of the image from `offset`, in order. */
  write(offset: number, bytes: Uint8Array): void;
  /** Ends the install; the reader runs the new image after it. Throws when the reader refuses it. */
  finish(): void;
}
