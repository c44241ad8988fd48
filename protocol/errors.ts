// Every way a frame, record or message can be refused, as one typed error with a stable code.

export type ProtocolErrorCode =
  | 'truncated'
  | 'bad-version'
  | 'bad-type'
  | 'bad-field'
  | 'bad-cbor'
  | 'unknown-meter'
  | 'stale-epoch'
  | 'decrypt-failed'
  | 'replay'
  | 'chain-broken'
  | 'duplicate-conflict';

export class ProtocolError extends Error {
  override readonly name: string = 'ProtocolError';
  readonly code: ProtocolErrorCode;

  constructor(code: ProtocolErrorCode, message: string) {
    super(`${code}: ${message}`);
    this.code = code;
  }
}
