// Platform key storage behind one interface, Keystore: the software keystore (the embedded default)
// and the HSM through PKCS#11 (hsm.ts). The software master key comes from
// PARKLINK_MASTER_KEY (64 hex digits), from a passphrase-protected keystore file (scrypt + AES-GCM),
// or is generated in memory for `npm start` and tests; the HSM is chosen with PARKLINK_HSM_MODULE.
// Per-meter keys are derived by the protocol's deriveMeterKeys, exactly as the factory provisions
// them. Key bytes stay in #private fields, so neither util.inspect nor JSON.stringify shows them.
import { existsSync } from 'node:fs';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { gcm } from '@noble/ciphers/aes';
import { randomBytes } from '@noble/ciphers/webcrypto';
import { scryptAsync } from '@noble/hashes/scrypt';
import { sha256 } from '@noble/hashes/sha2';
import type { Crypto } from '../../hal/crypto';
import { nodeCrypto } from '../core/nodeCrypto';
import { fromHex, toHex, utf8 } from '../../protocol/bytes';
import { deriveMeterKeys, type MeterKeys, wipeMeterKeys } from '../../protocol/keys';
import type { HsmConfig } from './hsm';

export const MASTER_KEY_LENGTH = 32;

export type KeystoreSource = 'env' | 'file' | 'generated' | 'hsm';

export interface Keystore {
  readonly source: KeystoreSource;
  /** The keys of one meter for one epoch: C (uplink) and D (downlink). */
  meterKeys(meterId: number, epoch: number): MeterKeys;
  /**
   * Six hex digits that identify the master key without revealing it, to check that a keystore, an
   * HSM and a set of backup shares hold the same master.
   */
  keyCheckValue(): string;
  /** Forgets the master key (software) or closes the HSM session; unusable afterwards. */
  close(): void;
}

/**
 * The key check value: SHA-256 of the uplink key that deriveMeterKeys gives a meter id and epoch no
 * meter uses (both 2^32 - 1), cut to 3 bytes.
 */
/**
 * The two keys frames need, C (uplink) and D (downlink), for a meter and epoch: the key parts A, B
 * and M the derivation also yields are wiped before this returns. The caller wipes C and D after use.
 */
export function frameKeys(keystore: Keystore, meterId: number, epoch: number): MeterKeys {
  const keys = keystore.meterKeys(meterId, epoch);
  const secrets = keys.secrets;
  if (secrets) for (const part of [secrets.a, secrets.b, secrets.m]) part.fill(0);
  return { epoch: keys.epoch, uplink: keys.uplink, downlink: keys.downlink };
}

/** Key D alone of a meter's epoch (key C, derived with it, wiped): the caller wipes it. */
export function downlinkKey(keystore: Keystore, meterId: number, epoch: number): Uint8Array {
  const keys = frameKeys(keystore, meterId, epoch);
  keys.uplink.fill(0);
  return keys.downlink;
}

export function keyCheckValue(crypto: Crypto, master: Uint8Array): string {
  const keys = deriveMeterKeys(crypto, master, 0xffffffff, 0xffffffff);
  const check = toHex(sha256(keys.uplink).subarray(0, 3));
  wipeMeterKeys(keys);
  return check;
}

class SoftwareKeystore implements Keystore {
  #master: Uint8Array | undefined;
  readonly #crypto: Crypto;

  constructor(
    readonly source: KeystoreSource,
    master: Uint8Array,
    crypto: Crypto,
  ) {
    if (master.length !== MASTER_KEY_LENGTH) throw new Error(`master key must be ${MASTER_KEY_LENGTH} bytes`);
    this.#master = Uint8Array.from(master);
    this.#crypto = crypto;
  }

  meterKeys(meterId: number, epoch: number): MeterKeys {
    if (!this.#master) throw new Error('keystore is closed');
    return deriveMeterKeys(this.#crypto, this.#master, meterId, epoch);
  }

  keyCheckValue(): string {
    if (!this.#master) throw new Error('keystore is closed');
    return keyCheckValue(this.#crypto, this.#master);
  }

  close(): void {
    this.#master?.fill(0);
    this.#master = undefined;
  }

  toJSON() {
    return { source: this.source };
  }

  [Symbol.for('nodejs.util.inspect.custom')]() {
    return `SoftwareKeystore { source: '${this.source}' }`;
  }
}

/** From 64 hex digits (PARKLINK_MASTER_KEY). */
export function keystoreFromHex(hex: string, crypto: Crypto = nodeCrypto): Keystore {
  if (!/^[0-9a-fA-F]{64}$/.test(hex.trim())) {
    throw new Error('PARKLINK_MASTER_KEY must be 64 hexadecimal digits (32 bytes)');
  }
  return new SoftwareKeystore('env', fromHex(hex.trim()), crypto);
}

/** A fresh random master key that lives only as long as the process (npm start, tests). */
export function generatedKeystore(crypto: Crypto = nodeCrypto): Keystore {
  return new SoftwareKeystore('generated', randomBytes(MASTER_KEY_LENGTH), crypto);
}

// ---- Keystore file -----------------------------------------------------------------------------

/** scrypt cost: N = 2^17, r = 8, p = 1 (OWASP's recommendation for scrypt). */
export const DEFAULT_SCRYPT = Object.freeze({ logN: 17, r: 8, p: 1 });

interface KeystoreFile {
  format: 'parklink-keystore';
  version: 1;
  kdf: { name: 'scrypt'; logN: number; r: number; p: number; salt: string };
  cipher: { name: 'aes-256-gcm'; nonce: string };
  /** The master key sealed with AES-GCM; the tag is appended. */
  sealed: string;
}

/** Additional data binding the sealed key to the file's format and KDF parameters. */
function fileAad(file: Pick<KeystoreFile, 'format' | 'version' | 'kdf'>): Uint8Array {
  const { logN, r, p, salt } = file.kdf;
  return utf8(`${file.format}/${file.version}/scrypt/${logN}/${r}/${p}/${salt}`);
}

async function fileKey(passphrase: string, kdf: KeystoreFile['kdf']): Promise<Uint8Array> {
  if (!Number.isInteger(kdf.logN) || kdf.logN < 10 || kdf.logN > 22) throw new Error('bad scrypt cost');
  return scryptAsync(utf8(passphrase.normalize('NFKC')), fromHex(kdf.salt), {
    N: 2 ** kdf.logN,
    r: kdf.r,
    p: kdf.p,
    dkLen: 32,
    maxmem: 2 ** 31,
  });
}

/**
 * Writes a new keystore file holding `master` (a fresh random key when absent), sealed under the
 * passphrase; refuses to overwrite an existing file. Returns the keystore.
 */
export async function createKeystoreFile(
  path: string,
  passphrase: string,
  options: { master?: Uint8Array; scrypt?: { logN: number; r: number; p: number }; crypto?: Crypto } = {},
): Promise<Keystore> {
  if (!passphrase) throw new Error('keystore passphrase is empty');
  if (existsSync(path)) throw new Error(`keystore file ${path} already exists`);
  const master = options.master ?? randomBytes(MASTER_KEY_LENGTH);
  const cost = options.scrypt ?? DEFAULT_SCRYPT;
  const head = {
    format: 'parklink-keystore' as const,
    version: 1 as const,
    kdf: { name: 'scrypt' as const, ...cost, salt: toHex(randomBytes(16)) },
  };
  const nonce = randomBytes(12);
  const key = await fileKey(passphrase, head.kdf);
  const sealed = gcm(key, nonce, fileAad(head)).encrypt(master);
  key.fill(0);
  const file: KeystoreFile = {
    ...head,
    cipher: { name: 'aes-256-gcm', nonce: toHex(nonce) },
    sealed: toHex(sealed),
  };
  const temp = `${path}.${process.pid}.tmp`;
  await writeFile(temp, `${JSON.stringify(file, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
  await rename(temp, path);
  return new SoftwareKeystore('file', master, options.crypto ?? nodeCrypto);
}

/** Opens a keystore file; a wrong passphrase or an altered file is an error, never a wrong key. */
export async function openKeystoreFile(
  path: string,
  passphrase: string,
  crypto: Crypto = nodeCrypto,
): Promise<Keystore> {
  const file = JSON.parse(await readFile(path, 'utf8')) as KeystoreFile;
  if (file.format !== 'parklink-keystore' || file.version !== 1 || file.kdf?.name !== 'scrypt') {
    throw new Error(`${path} is not a ParkLink keystore file (version 1, scrypt)`);
  }
  const key = await fileKey(passphrase, file.kdf);
  let master: Uint8Array;
  try {
    master = gcm(key, fromHex(file.cipher.nonce), fileAad(file)).decrypt(fromHex(file.sealed));
  } catch {
    throw new Error(`keystore ${path}: wrong passphrase or damaged file`);
  } finally {
    key.fill(0);
  }
  const keystore = new SoftwareKeystore('file', master, crypto);
  master.fill(0);
  return keystore;
}

export interface KeystoreConfig {
  /** The master key in an HSM through PKCS#11; takes precedence over everything below. */
  hsm?: HsmConfig;
  /** 64 hex digits, or the 32 bytes. */
  masterKey?: string | Uint8Array;
  keystoreFile?: string;
  keystorePassphrase?: string;
  /** Create the keystore file with a new master key when it does not exist. */
  createKeystoreFile?: boolean;
  crypto?: Crypto;
}

/** The HSM when configured, else explicit bytes or hex, else the keystore file, else generated. */
export async function loadKeystore(config: KeystoreConfig): Promise<Keystore> {
  if (config.hsm) {
    // Loaded only when asked for: the embedded default never needs the native PKCS#11 binding.
    const { openHsmKeystore } = await import('./hsm');
    return openHsmKeystore(config.hsm);
  }
  const crypto = config.crypto ?? nodeCrypto;
  if (config.masterKey instanceof Uint8Array) return new SoftwareKeystore('env', config.masterKey, crypto);
  if (config.masterKey) return keystoreFromHex(config.masterKey, crypto);
  if (config.keystoreFile) {
    if (!config.keystorePassphrase) throw new Error('a keystore file needs a passphrase');
    if (!existsSync(config.keystoreFile)) {
      if (!config.createKeystoreFile) throw new Error(`keystore file ${config.keystoreFile} does not exist`);
      return createKeystoreFile(config.keystoreFile, config.keystorePassphrase, { crypto });
    }
    return openKeystoreFile(config.keystoreFile, config.keystorePassphrase, crypto);
  }
  return generatedKeystore(crypto);
}
