// The platform's master key in an HSM through PKCS#11 (pkcs11js; SoftHSM2 in CI and development).
//
// protocol/keys.ts derives each meter's keys with HKDF-SHA-256: PRK = HMAC(salt, master) (Extract),
// then HMAC(PRK, info‖counter) (Expand). PKCS#11 2.40 HMACs *with* a key object, never over a key
// object's value as the message: SoftHSM2 offers no CKM_HKDF_DERIVE, no concatenate or SHA-256 key
// derivation. Its C_DigestKey would hash a sensitive key, but HMAC(salt, master) built from it hands
// the host the inner hash, which is as good as PRK, on every start, and would let anyone holding the
// PIN carry PRK away. So the token holds the master in its extracted form, PRK, as a sensitive,
// never-extractable generic secret whose only use is CKM_SHA256_HMAC signing: the Extract runs once,
// on the ceremony host when the master is imported (where it is in clear anyway to make its backup
// shares); every Expand runs inside the token; neither the master nor PRK can be read from it. The
// salt the Extract used is kept in the object's CKA_ID, so a change of protocol/keys.ts's salt is an
// error, not a silent wrong key.
//
// Meter keys are computed by calling protocol/keys.ts's own deriveMeterKeys with a Crypto whose
// HMAC answers from the token: the master is an opaque stand-in, the Extract of that stand-in under
// the recorded salt yields a stand-in for PRK, and any HMAC keyed with that stand-in is C_Sign in the
// HSM. Whatever info strings and lengths keys.ts uses, the HSM follows them; a derivation of another
// shape (anything but HKDF over the master) is refused with an HsmError.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Crypto } from '../../hal/crypto';
import { nodeCrypto } from '../core/nodeCrypto';
import { deriveMeterKeys, type MeterKeys, wipeMeterKeys } from '../../protocol/keys';
import { type Keystore, MASTER_KEY_LENGTH, keyCheckValue } from './keystore';

type Pkcs11Module = typeof import('pkcs11js');
type Handle = Buffer;

const require = createRequire(import.meta.url);
let binding: Pkcs11Module | undefined;
function pkcs11js(): Pkcs11Module {
  binding ??= require('pkcs11js') as Pkcs11Module;
  return binding;
}

export const DEFAULT_HSM_KEY_LABEL = 'parklink-master';

export interface HsmConfig {
  /** Path of the PKCS#11 module (PARKLINK_HSM_MODULE), e.g. /usr/lib/softhsm/libsofthsm2.so. */
  module: string;
  /** Token label (PARKLINK_HSM_TOKEN); used when no slot is given. */
  tokenLabel?: string;
  /** Slot id as the module numbers it (PARKLINK_HSM_SLOT). */
  slot?: number | string;
  /** User PIN (PARKLINK_HSM_PIN). Never logged, never part of an error message. */
  pin: string;
  /** Label of the master key object (PARKLINK_HSM_KEY_LABEL), default "parklink-master". */
  keyLabel?: string;
}

/** An HSM failure; the message names the PKCS#11 return value and never holds a PIN or key. */
export class HsmError extends Error {
  override readonly name: string = 'HsmError';
  constructor(
    message: string,
    readonly code?: string,
  ) {
    super(message);
  }
}

function ckr(error: unknown): string | undefined {
  const message = (error as Error)?.message ?? '';
  return /^(CKR_[A-Z0-9_]+)/.exec(message)?.[1];
}

/** Runs a PKCS#11 call, turning the binding's error into an HsmError naming the step and CKR code. */
function call<T>(step: string, fn: () => T): T {
  try {
    return fn();
  } catch (error) {
    if (error instanceof HsmError) throw error;
    const code = ckr(error);
    throw new HsmError(`HSM ${step} failed${code ? ` (${code})` : ''}`, code);
  }
}

// ---- Modules and tokens: one C_Initialize per module per process, one login per token --------------

interface LoadedModule {
  pkcs11: InstanceType<Pkcs11Module['PKCS11']>;
  users: number;
  /** False when something else in the process had initialised the module: we never finalise it. */
  ownsInit: boolean;
}

interface TokenLogin {
  sessions: number;
  /** HMAC of the PIN that logged in, under a per-process random key: later opens must match it. */
  pinTag: Buffer;
}

const modules = new Map<string, LoadedModule>();
const logins = new Map<string, TokenLogin>();
const pinKey = randomBytes(32);
const pinTag = (pin: string) => createHmac('sha256', pinKey).update(pin, 'utf8').digest();

function acquireModule(path: string): LoadedModule {
  const loaded = modules.get(path);
  if (loaded) {
    loaded.users++;
    return loaded;
  }
  if (!existsSync(path)) throw new HsmError(`PKCS#11 module ${path} does not exist`);
  const p = pkcs11js();
  const pkcs11 = new p.PKCS11();
  call('load of the PKCS#11 module', () => pkcs11.load(path));
  let ownsInit = true;
  try {
    pkcs11.C_Initialize();
  } catch (error) {
    if (ckr(error) !== 'CKR_CRYPTOKI_ALREADY_INITIALIZED') {
      pkcs11.close();
      const code = ckr(error);
      throw new HsmError(`HSM C_Initialize failed${code ? ` (${code})` : ''}`, code);
    }
    ownsInit = false;
  }
  const entry = { pkcs11, users: 1, ownsInit };
  modules.set(path, entry);
  return entry;
}

function releaseModule(path: string): void {
  const loaded = modules.get(path);
  if (!loaded || --loaded.users > 0) return;
  modules.delete(path);
  try {
    if (loaded.ownsInit) loaded.pkcs11.C_Finalize();
  } finally {
    loaded.pkcs11.close();
  }
}

function slotNumber(handle: Handle): bigint {
  return handle.length >= 8 ? handle.readBigUInt64LE(0) : BigInt(handle.readUInt32LE(0));
}

function findSlot(pkcs11: LoadedModule['pkcs11'], config: HsmConfig): { slot: Handle; id: string } {
  const slots = call('C_GetSlotList', () => pkcs11.C_GetSlotList(true));
  if (config.slot !== undefined && config.slot !== '') {
    const wanted = BigInt(config.slot);
    const slot = slots.find((s) => slotNumber(s) === wanted);
    if (!slot) throw new HsmError(`HSM slot ${config.slot} has no token`);
    return { slot, id: wanted.toString() };
  }
  if (config.tokenLabel) {
    for (const slot of slots) {
      const info = call('C_GetTokenInfo', () => pkcs11.C_GetTokenInfo(slot));
      if (info.label.trimEnd() === config.tokenLabel) return { slot, id: slotNumber(slot).toString() };
    }
    throw new HsmError(`no HSM token labelled "${config.tokenLabel}"`);
  }
  if (slots.length === 1) return { slot: slots[0], id: slotNumber(slots[0]).toString() };
  throw new HsmError(`${slots.length} HSM tokens present: choose one with a token label or slot id`);
}

/** A logged-in R/W session on the configured token; close() logs out with the last session. */
class TokenSession {
  readonly pkcs11: LoadedModule['pkcs11'];
  readonly handle: Handle;
  readonly #module: string;
  readonly #loginKey: string;
  #open = true;

  constructor(config: HsmConfig) {
    if (!config.pin) throw new HsmError('HSM PIN is empty');
    const p = pkcs11js();
    this.#module = config.module;
    const loaded = acquireModule(config.module);
    this.pkcs11 = loaded.pkcs11;
    let handle: Handle | undefined;
    try {
      const { slot, id } = findSlot(this.pkcs11, config);
      this.#loginKey = `${config.module}#${id}`;
      handle = call('C_OpenSession', () =>
        this.pkcs11.C_OpenSession(slot, p.CKF_SERIAL_SESSION | p.CKF_RW_SESSION),
      );
      const tag = pinTag(config.pin);
      const login = logins.get(this.#loginKey);
      if (login) {
        // The token is logged in for this process already; the PIN must be the one that did it.
        if (!timingSafeEqual(login.pinTag, tag))
          throw new HsmError('HSM refused the PIN', 'CKR_PIN_INCORRECT');
        login.sessions++;
      } else {
        const opened = handle;
        call('login', () => this.pkcs11.C_Login(opened, p.CKU_USER, config.pin));
        logins.set(this.#loginKey, { sessions: 1, pinTag: tag });
      }
      this.handle = handle;
    } catch (error) {
      if (handle) this.pkcs11.C_CloseSession(handle);
      releaseModule(config.module);
      if (error instanceof HsmError && error.code === 'CKR_PIN_INCORRECT') {
        throw new HsmError('HSM refused the PIN', error.code);
      }
      throw error;
    }
  }

  close(): void {
    if (!this.#open) return;
    this.#open = false;
    const login = logins.get(this.#loginKey);
    try {
      if (login && --login.sessions === 0) {
        logins.delete(this.#loginKey);
        try {
          this.pkcs11.C_Logout(this.handle);
        } catch {
          // Closing the last session logs out as well.
        }
      }
      this.pkcs11.C_CloseSession(this.handle);
    } finally {
      releaseModule(this.#module);
    }
  }

  findSecretKeys(label: string): Handle[] {
    const p = pkcs11js();
    const template = [
      { type: p.CKA_CLASS, value: p.CKO_SECRET_KEY },
      { type: p.CKA_LABEL, value: label },
    ];
    call('C_FindObjectsInit', () => this.pkcs11.C_FindObjectsInit(this.handle, template));
    try {
      return call('C_FindObjects', () => this.pkcs11.C_FindObjects(this.handle, 16));
    } finally {
      this.pkcs11.C_FindObjectsFinal(this.handle);
    }
  }
}

// ---- The Extract as protocol/keys.ts runs it -------------------------------------------------------

/**
 * Runs protocol/keys.ts's deriveMeterKeys over `master` and catches its HKDF-Extract: the HMAC
 * whose message is the master. Returns that HMAC's key (the salt) and output (PRK).
 */
function extractAsKeysDoes(master: Uint8Array): { salt: Uint8Array; prk: Uint8Array } {
  let caught: { salt: Uint8Array; prk: Uint8Array } | undefined;
  const recorder: Crypto = {
    ...nodeCrypto,
    hmacSha256(key, data) {
      const out = nodeCrypto.hmacSha256(key, data);
      if (data === master && !caught) caught = { salt: Uint8Array.from(key), prk: Uint8Array.from(out) };
      return out;
    },
  };
  wipeMeterKeys(deriveMeterKeys(recorder, master, 0, 0));
  if (!caught) {
    throw new HsmError('protocol/keys.ts no longer starts with an HKDF-Extract of the master');
  }
  return caught;
}

/** Options of the imported key object: only HMAC signing, never readable, kept on the token. */
function masterTemplate(label: string, salt: Uint8Array, prk: Buffer) {
  const p = pkcs11js();
  return [
    { type: p.CKA_CLASS, value: p.CKO_SECRET_KEY },
    { type: p.CKA_KEY_TYPE, value: p.CKK_GENERIC_SECRET },
    { type: p.CKA_TOKEN, value: true },
    { type: p.CKA_PRIVATE, value: true },
    { type: p.CKA_SENSITIVE, value: true },
    { type: p.CKA_EXTRACTABLE, value: false },
    { type: p.CKA_MODIFIABLE, value: false },
    { type: p.CKA_SIGN, value: true },
    { type: p.CKA_VERIFY, value: false },
    { type: p.CKA_ENCRYPT, value: false },
    { type: p.CKA_DECRYPT, value: false },
    { type: p.CKA_WRAP, value: false },
    { type: p.CKA_UNWRAP, value: false },
    { type: p.CKA_DERIVE, value: false },
    { type: p.CKA_LABEL, value: label },
    { type: p.CKA_ID, value: Buffer.from(salt) },
    { type: p.CKA_VALUE, value: prk },
  ];
}

/**
 * Imports a master key into the token under `keyLabel` (in its extracted form, see the top of this
 * file); refuses when the label is taken. Returns the key check value. The caller wipes `master`.
 */
export function importMasterToHsm(config: HsmConfig, master: Uint8Array): string {
  if (master.length !== MASTER_KEY_LENGTH)
    throw new HsmError(`master key must be ${MASTER_KEY_LENGTH} bytes`);
  const label = config.keyLabel ?? DEFAULT_HSM_KEY_LABEL;
  const session = new TokenSession(config);
  const { salt, prk } = extractAsKeysDoes(master);
  try {
    if (session.findSecretKeys(label).length > 0) {
      throw new HsmError(`the HSM token already holds a key labelled "${label}"`);
    }
    const value = Buffer.from(prk);
    try {
      const template = masterTemplate(label, salt, value);
      call('C_CreateObject', () => session.pkcs11.C_CreateObject(session.handle, template));
    } finally {
      value.fill(0);
    }
  } finally {
    prk.fill(0);
    session.close();
  }
  const keystore = openHsmKeystore(config);
  try {
    return keystore.keyCheckValue();
  } finally {
    keystore.close();
  }
}

/** Random bytes from the token's generator (C_GenerateRandom). */
export function hsmRandom(config: HsmConfig, length: number): Uint8Array {
  const session = new TokenSession(config);
  try {
    const buffer = Buffer.alloc(length);
    call('C_GenerateRandom', () => session.pkcs11.C_GenerateRandom(session.handle, buffer));
    return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.length);
  } finally {
    session.close();
  }
}

/** Removes the master key labelled `keyLabel` from the token (a key ceremony's retirement step). */
export function destroyHsmMaster(config: HsmConfig): number {
  const session = new TokenSession(config);
  try {
    const found = session.findSecretKeys(config.keyLabel ?? DEFAULT_HSM_KEY_LABEL);
    for (const key of found)
      call('C_DestroyObject', () => session.pkcs11.C_DestroyObject(session.handle, key));
    return found.length;
  } finally {
    session.close();
  }
}

// ---- The keystore ----------------------------------------------------------------------------------

class HsmKeystore implements Keystore {
  readonly source = 'hsm' as const;
  #session: TokenSession | undefined;
  readonly #key: Handle;
  readonly #salt: Uint8Array;
  /** Stand-ins for the master and its PRK inside deriveMeterKeys; they hold no key bytes. */
  readonly #masterStandIn = new Uint8Array(MASTER_KEY_LENGTH);
  readonly #prkStandIn = new Uint8Array(32);
  readonly #crypto: Crypto;

  constructor(config: HsmConfig) {
    const label = config.keyLabel ?? DEFAULT_HSM_KEY_LABEL;
    const session = new TokenSession(config);
    try {
      const found = session.findSecretKeys(label);
      if (found.length === 0) throw new HsmError(`the HSM token holds no key labelled "${label}"`);
      if (found.length > 1)
        throw new HsmError(`the HSM token holds ${found.length} keys labelled "${label}"`);
      this.#key = found[0];
      const p = pkcs11js();
      const [id] = call('C_GetAttributeValue', () =>
        session.pkcs11.C_GetAttributeValue(session.handle, this.#key, [{ type: p.CKA_ID }]),
      );
      this.#salt = Uint8Array.from((id.value as Buffer | undefined) ?? []);
    } catch (error) {
      session.close();
      throw error;
    }
    this.#session = session;
    this.#crypto = {
      sha256: () => {
        throw new HsmError('the HSM keystore only derives keys');
      },
      aesGcmEncrypt: () => {
        throw new HsmError('the HSM keystore only derives keys');
      },
      aesGcmDecrypt: () => {
        throw new HsmError('the HSM keystore only derives keys');
      },
      hmacSha256: (key, data) => this.#hmac(key, data),
    };
  }

  #hmac(key: Uint8Array, data: Uint8Array): Uint8Array {
    if (data === this.#masterStandIn) {
      // HKDF-Extract: done at import; the salt must be the one it was done with.
      if (key.length !== this.#salt.length || !timingSafeEqual(key, this.#salt)) {
        throw new HsmError('the HSM master was imported for another derivation salt: import it again');
      }
      return this.#prkStandIn;
    }
    if (key === this.#prkStandIn) return this.#sign(data);
    throw new HsmError('derivation step outside HKDF over the HSM master');
  }

  #sign(data: Uint8Array): Uint8Array {
    const session = this.#session;
    if (!session) throw new HsmError('keystore is closed');
    const p = pkcs11js();
    call('C_SignInit', () =>
      session.pkcs11.C_SignInit(session.handle, { mechanism: p.CKM_SHA256_HMAC }, this.#key),
    );
    const out = call('C_Sign', () =>
      session.pkcs11.C_Sign(session.handle, Buffer.from(data), Buffer.alloc(32)),
    );
    return Uint8Array.from(out);
  }

  meterKeys(meterId: number, epoch: number): MeterKeys {
    if (!this.#session) throw new HsmError('keystore is closed');
    return deriveMeterKeys(this.#crypto, this.#masterStandIn, meterId, epoch);
  }

  keyCheckValue(): string {
    if (!this.#session) throw new HsmError('keystore is closed');
    return keyCheckValue(this.#crypto, this.#masterStandIn);
  }

  close(): void {
    this.#session?.close();
    this.#session = undefined;
  }

  toJSON() {
    return { source: this.source };
  }

  [Symbol.for('nodejs.util.inspect.custom')]() {
    return `HsmKeystore { source: 'hsm' }`;
  }
}

/** Opens the master key on the configured token; a wrong PIN or a missing key is an HsmError. */
export function openHsmKeystore(config: HsmConfig): Keystore {
  return new HsmKeystore(config);
}
