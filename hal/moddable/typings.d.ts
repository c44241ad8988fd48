// Ambient declarations for what the Moddable SDK's own typings ($MODDABLE/typings, 8.2) leave out.
// Each block names the SDK source it mirrors; only the members ParkLink uses are declared, with the
// argument kinds the native code accepts. They add to the SDK's declarations, never repeat them.

// modules/crypt/digest/crypt.js (natives in modules/crypt/digest/modCrypt.c). The SDK's typings
// declare Digest with write/close/reset; process() and buffer views (xsmcGetBufferReadable) are
// added here by declaration merging, and the block cipher classes they omit are declared.
declare module 'crypt' {
  export interface Digest {
    write(data: ArrayBuffer | ArrayBufferView | string): void;
    process(...items: (ArrayBuffer | ArrayBufferView | string)[]): ArrayBuffer;
  }
  /** The key must be an ArrayBuffer (xsmcToArrayBuffer); AES keys are 16, 24 or 32 bytes. */
  export class BlockCipher {
    constructor(cipher: 'AES' | 'DES' | 'TDES', key: ArrayBuffer);
    encrypt(data: ArrayBuffer, result?: ArrayBuffer): ArrayBuffer;
    decrypt(data: ArrayBuffer, result?: ArrayBuffer): ArrayBuffer;
    readonly keySize: number;
    readonly blockSize: number;
  }
  export class Mode {
    constructor(mode: 'ECB' | 'CTR' | 'CBC', cipher: BlockCipher, iv?: ArrayBuffer, padding?: boolean);
    encrypt(data: ArrayBuffer | ArrayBufferView, result?: ArrayBuffer): ArrayBuffer;
    decrypt(data: ArrayBuffer | ArrayBufferView, result?: ArrayBuffer): ArrayBuffer;
    setIV(iv: ArrayBuffer): void;
  }
}

// modules/crypt/etc/gcm.js: GCM over a BlockCipher ("gcm" in modules/crypt/tls_common.json)
declare module 'gcm' {
  import type { BlockCipher } from 'crypt';
  export default class GCM {
    constructor(cipher: BlockCipher, tagLength?: number);
    /** iv and aad must be ArrayBuffers (iv.concat, xsmcToArrayBuffer). */
    init(iv: ArrayBuffer, aad?: ArrayBuffer): void;
    encrypt(data: ArrayBuffer | ArrayBufferView, buf?: ArrayBuffer): ArrayBuffer;
    decrypt(data: ArrayBuffer | ArrayBufferView, buf?: ArrayBuffer): ArrayBuffer;
    /** The full 16-byte tag. */
    close(): ArrayBuffer;
  }
}

// modules/crypt/etc/hmac.js: HMAC over a Digest instance ("hmac" in modules/crypt/tls_common.json)
declare module 'hmac' {
  import type { Digest } from 'crypt';
  export default class HMAC {
    constructor(digest: Digest, key: ArrayBuffer | ArrayBufferView, bitlen?: number);
    process(...items: (ArrayBuffer | ArrayBufferView)[]): ArrayBuffer;
  }
}

// modules/network/mqtt/mqtt.js: the SDK's MQTT 3.1.1 client over a socket.
declare module 'mqtt' {
  export interface ClientOptions {
    host: string;
    port?: number;
    id?: string;
    user?: string;
    password?: string | ArrayBuffer;
    /** Keep-alive in milliseconds (sent rounded up to seconds); 0 disables. */
    timeout?: number;
    will?: { topic: string; message: string | ArrayBuffer; quality?: 0 | 1 | 2; retain?: boolean };
    /** The socket class instead of "socket" (SecureSocket for mqtts), given `secure` as options. */
    Socket?: unknown;
    /**
     * SecureSocket's TLS options (modules/crypt/ssl/ssl_cert.js): `certificate` registers a trusted
     * CA (DER); the server name is the host.
     */
    secure?: { protocolVersion?: number; certificate?: ArrayBuffer; verify?: boolean };
  }
  export interface PublishFlags {
    quality?: 0 | 1 | 2;
    retain?: boolean;
    duplicate?: boolean;
  }
  export default class Client {
    constructor(options: ClientOptions);
    onReady?: () => void;
    onMessage?: (topic: string, body: ArrayBuffer) => void;
    onClose?: () => void;
    /** Throws "connection closed" before CONNACK. */
    publish(topic: string, data: ArrayBuffer | string, flags?: PublishFlags): void;
    subscribe(topic: string): void;
    unsubscribe(topic: string): void;
    close(immediate?: boolean): void;
  }
}

// xs/includes/xs.d.ts: a host function by its C name, bound when the module is linked (the SDK's
// ECMA-419 IO modules call their natives this way, e.g. modules/io/pwm/esp32/_pwm.js).
declare function native(name: string): (...args: unknown[]) => unknown;
