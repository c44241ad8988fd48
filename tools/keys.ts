// Key ceremony: generate the platform's master key, back it up as k-of-n secret shares (the seed
// puts them on five SAM cards), restore it from any k of them, import it into the HSM (PKCS#11) or a
// new passphrase-protected keystore file, and print key check values to compare copies.
//
//   npm run keys -- generate --threshold 3 [--shares 5] --out DIR (--hsm | --keystore FILE)
//   npm run keys -- restore SHARE... (--hsm | --keystore FILE | --verify)
//   npm run keys -- check (--hsm | --keystore FILE)
//
// The HSM is the one PARKLINK_HSM_MODULE / _TOKEN or _SLOT / _PIN / _KEY_LABEL name (as for the
// platform); a keystore file takes its passphrase from PARKLINK_KEYSTORE_PASSPHRASE. Nothing here
// prints or throws key or share bytes: only file names, share numbers and key check values.
//
// Shares: Shamir's scheme over GF(2^8) from shamir-secret-sharing (audited, no dependencies), each
// wrapped in a 72-byte envelope: "PLS" 1, k, n, share number, an 8-byte set id, a 16-byte tag (HMAC
// of the set's header under the master: it proves a restore rebuilt the right key), the library's
// share (33 bytes), and a SHA-256 checksum (8 bytes) that catches a damaged share before combining.
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { combine, split } from 'shamir-secret-sharing';
import { fromHex, toHex } from '../protocol/bytes';
import type { HsmConfig } from '../platform-server/keys/hsm';
import {
  createKeystoreFile,
  DEFAULT_SCRYPT,
  keyCheckValue,
  MASTER_KEY_LENGTH,
  openKeystoreFile,
} from '../platform-server/keys/keystore';
import { nobleCrypto } from '../hal/nobleCrypto';
import { configFromEnv } from '../platform-server/config';

const MAGIC = [0x50, 0x4c, 0x53, 0x01]; // "PLS", version 1
const HEADER = 15; // magic 4, k, n, number, set id 8
const TAG = 16;
const CHECKSUM = 8;
const SHARE_BODY = MASTER_KEY_LENGTH + 1; // the library appends the x coordinate
export const SHARE_LENGTH = HEADER + TAG + SHARE_BODY + CHECKSUM;
const LINE_PREFIX = 'PLS1:';

/** A share that is damaged, from another set, missing, or a set that does not rebuild its key. */
export class ShareError extends Error {
  override readonly name: string = 'ShareError';
  constructor(message: string) {
    super(message);
  }
}

export interface Share {
  threshold: number;
  total: number;
  /** 1…total, the number written on the card. */
  number: number;
  setId: string;
  /** The whole envelope. */
  bytes: Uint8Array;
}

function checksum(bytes: Uint8Array): Buffer {
  return createHash('sha256').update(bytes).digest().subarray(0, CHECKSUM);
}

function setTag(master: Uint8Array, header: Uint8Array): Buffer {
  // Over the header without the share number: every share of a set carries the same tag.
  const bound = Uint8Array.from(header);
  bound[6] = 0;
  return createHmac('sha256', master).update('ParkLink share set v1').update(bound).digest().subarray(0, TAG);
}

/** Splits a master key into `total` shares of which any `threshold` rebuild it. */
export async function splitMaster(master: Uint8Array, threshold: number, total = 5): Promise<Share[]> {
  if (master.length !== MASTER_KEY_LENGTH)
    throw new ShareError(`master key must be ${MASTER_KEY_LENGTH} bytes`);
  if (!Number.isInteger(total) || total < 2 || total > 255) throw new ShareError('shares must be 2…255');
  if (!Number.isInteger(threshold) || threshold < 2 || threshold > total) {
    throw new ShareError(`threshold must be 2…${total} (the number of shares)`);
  }
  const setId = randomBytes(8);
  const parts = await split(master, total, threshold);
  const shares = parts.map((part, i) => {
    const bytes = new Uint8Array(SHARE_LENGTH);
    bytes.set(MAGIC, 0);
    bytes[4] = threshold;
    bytes[5] = total;
    bytes[6] = i + 1;
    bytes.set(setId, 7);
    bytes.set(setTag(master, bytes.subarray(0, HEADER)), HEADER);
    bytes.set(part, HEADER + TAG);
    part.fill(0);
    bytes.set(checksum(bytes.subarray(0, SHARE_LENGTH - CHECKSUM)), SHARE_LENGTH - CHECKSUM);
    return { threshold, total, number: i + 1, setId: toHex(setId), bytes };
  });
  return shares;
}

/** The share as a line of text, as written to a file or a card's label. */
export function encodeShare(share: Share): string {
  return `${LINE_PREFIX}${toHex(share.bytes)}`;
}

/** Reads a share from its text (comment lines starting with # are ignored); `name` names it in errors. */
export function decodeShare(text: string, name = 'share'): Share {
  const line = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .find((l) => l.startsWith(LINE_PREFIX));
  const hex = line?.slice(LINE_PREFIX.length) ?? '';
  if (!/^[0-9a-fA-F]*$/.test(hex) || hex.length !== SHARE_LENGTH * 2) {
    throw new ShareError(
      `${name} is not a ParkLink key share (${LINE_PREFIX} line of ${SHARE_LENGTH} bytes)`,
    );
  }
  const bytes = fromHex(hex);
  const expected = checksum(bytes.subarray(0, SHARE_LENGTH - CHECKSUM));
  if (!timingSafeEqual(expected, bytes.subarray(SHARE_LENGTH - CHECKSUM))) {
    throw new ShareError(`${name} is damaged: its checksum does not match`);
  }
  if (MAGIC.some((b, i) => bytes[i] !== b))
    throw new ShareError(`${name} is not a version 1 ParkLink key share`);
  const [threshold, total, number] = [bytes[4], bytes[5], bytes[6]];
  if (threshold < 2 || threshold > total || number < 1 || number > total) {
    throw new ShareError(`${name} has impossible numbers (${number} of ${total}, threshold ${threshold})`);
  }
  return { threshold, total, number, setId: toHex(bytes.subarray(7, 15)), bytes };
}

function* subsets<T>(items: T[], size: number, start = 0, chosen: T[] = []): Generator<T[]> {
  if (chosen.length === size) {
    yield chosen.slice();
    return;
  }
  for (let i = start; i <= items.length - (size - chosen.length); i++) {
    chosen.push(items[i]);
    yield* subsets(items, size, i + 1, chosen);
    chosen.pop();
  }
}

async function tryCombine(shares: Share[]): Promise<Uint8Array | undefined> {
  const parts = shares.map((s) => s.bytes.slice(HEADER + TAG, HEADER + TAG + SHARE_BODY));
  try {
    const master = await combine(parts);
    const tag = setTag(master, shares[0].bytes.subarray(0, HEADER));
    if (timingSafeEqual(tag, shares[0].bytes.subarray(HEADER, HEADER + TAG))) return master;
    master.fill(0);
    return undefined;
  } catch {
    return undefined; // e.g. two shares claiming one x coordinate
  } finally {
    for (const part of parts) part.fill(0);
  }
}

export interface Restored {
  master: Uint8Array;
  setId: string;
  threshold: number;
  total: number;
  /** The share numbers that rebuilt the key. */
  used: number[];
  /** Share numbers that do not fit the others (altered). */
  rejected: number[];
}

/**
 * Rebuilds the master from shares of one set. Fewer than the threshold, shares of different sets,
 * a damaged share or a set that does not rebuild the key the shares were made from are errors.
 * With more shares than needed, an altered one is set aside and reported.
 */
export async function restoreMaster(shares: Share[]): Promise<Restored> {
  if (shares.length === 0) throw new ShareError('no shares given');
  const first = shares[0];
  const byNumber = new Map<number, Share>();
  for (const share of shares) {
    if (
      share.setId !== first.setId ||
      share.threshold !== first.threshold ||
      share.total !== first.total ||
      !timingSafeEqual(share.bytes.subarray(HEADER, HEADER + TAG), first.bytes.subarray(HEADER, HEADER + TAG))
    ) {
      throw new ShareError(
        `the shares come from different backups (share ${share.number} is not of set ${first.setId})`,
      );
    }
    const seen = byNumber.get(share.number);
    if (seen && !timingSafeEqual(seen.bytes, share.bytes)) {
      throw new ShareError(`two different shares claim number ${share.number} of set ${first.setId}`);
    }
    byNumber.set(share.number, share);
  }
  const distinct = [...byNumber.values()].sort((a, b) => a.number - b.number);
  const { threshold, total, setId } = first;
  if (distinct.length < threshold) {
    throw new ShareError(
      `set ${setId} needs ${threshold} of its ${total} shares to restore the key; ${distinct.length} given`,
    );
  }
  for (const subset of subsets(distinct, threshold)) {
    const master = await tryCombine(subset);
    if (!master) continue;
    const used = subset.map((s) => s.number);
    const rejected: number[] = [];
    for (const other of distinct.filter((s) => !used.includes(s.number))) {
      const check = await tryCombine([...subset, other]);
      if (check && timingSafeEqual(check, master)) used.push(other.number);
      else rejected.push(other.number);
      check?.fill(0);
    }
    return { master, setId, threshold, total, used: used.sort((a, b) => a - b), rejected };
  }
  throw new ShareError(
    `the shares of set ${setId} do not rebuild the key they were made from: at least one is altered`,
  );
}

// ---- The command line ------------------------------------------------------------------------------

export interface Output {
  log(line: string): void;
  error(line: string): void;
}

interface Options {
  command: string;
  files: string[];
  threshold?: number;
  shares: number;
  out?: string;
  hsm: boolean;
  keystore?: string;
  verify: boolean;
  scryptLogN: number;
}

const USAGE = `usage: npm run keys -- <command>
  generate --threshold K [--shares N] --out DIR (--hsm | --keystore FILE) [--scrypt-logn 17]
      a new master key, its backup as K-of-N shares in DIR, imported into the HSM or a new keystore
  restore SHARE_FILE... (--hsm | --keystore FILE | --verify)
      the master key from any K shares, imported (or only checked with --verify)
  check (--hsm | --keystore FILE)
      the key check value of the master key in the HSM or the keystore
HSM: PARKLINK_HSM_MODULE, PARKLINK_HSM_TOKEN or PARKLINK_HSM_SLOT, PARKLINK_HSM_PIN, PARKLINK_HSM_KEY_LABEL
keystore file: PARKLINK_KEYSTORE_PASSPHRASE`;

class UsageError extends Error {}

function integer(value: string | undefined, name: string): number {
  const n = Number(value);
  if (!value || !Number.isInteger(n)) throw new UsageError(`${name} needs a whole number`);
  return n;
}

export function parseArguments(argv: readonly string[]): Options {
  const [command, ...rest] = argv;
  if (!command || !['generate', 'restore', 'check'].includes(command)) throw new UsageError('no command');
  const options: Options = {
    command,
    files: [],
    shares: 5,
    hsm: false,
    verify: false,
    scryptLogN: DEFAULT_SCRYPT.logN,
  };
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i];
    if (arg === '--threshold') options.threshold = integer(rest[++i], arg);
    else if (arg === '--shares') options.shares = integer(rest[++i], arg);
    else if (arg === '--scrypt-logn') options.scryptLogN = integer(rest[++i], arg);
    else if (arg === '--out') options.out = rest[++i];
    else if (arg === '--keystore') options.keystore = rest[++i];
    else if (arg === '--hsm') options.hsm = true;
    else if (arg === '--verify') options.verify = true;
    else if (arg.startsWith('--')) throw new UsageError(`unknown option ${arg}`);
    else options.files.push(arg);
  }
  const targets = [options.hsm, !!options.keystore, options.verify].filter(Boolean).length;
  if (targets !== 1 || (options.verify && command !== 'restore')) {
    throw new UsageError(
      command === 'restore' ? 'choose --hsm, --keystore FILE or --verify' : 'choose --hsm or --keystore FILE',
    );
  }
  if (command === 'generate' && (options.threshold === undefined || !options.out)) {
    throw new UsageError('generate needs --threshold K and --out DIR');
  }
  if (command === 'restore' && options.files.length === 0) throw new UsageError('restore needs share files');
  return options;
}

function hsmConfig(env: NodeJS.ProcessEnv): HsmConfig {
  const { hsm } = configFromEnv({
    PARKLINK_HSM_MODULE: env.PARKLINK_HSM_MODULE,
    PARKLINK_HSM_TOKEN: env.PARKLINK_HSM_TOKEN,
    PARKLINK_HSM_SLOT: env.PARKLINK_HSM_SLOT,
    PARKLINK_HSM_PIN: env.PARKLINK_HSM_PIN,
    PARKLINK_HSM_KEY_LABEL: env.PARKLINK_HSM_KEY_LABEL,
  });
  if (!hsm) throw new UsageError('--hsm needs PARKLINK_HSM_MODULE and PARKLINK_HSM_PIN');
  return hsm;
}

function passphrase(env: NodeJS.ProcessEnv): string {
  const value = env.PARKLINK_KEYSTORE_PASSPHRASE;
  if (!value) throw new UsageError('--keystore needs PARKLINK_KEYSTORE_PASSPHRASE');
  return value;
}

/** Puts the master where the options say; returns its key check value. */
async function importMaster(options: Options, env: NodeJS.ProcessEnv, master: Uint8Array): Promise<string> {
  if (options.hsm) {
    const { importMasterToHsm } = await import('../platform-server/keys/hsm');
    return importMasterToHsm(hsmConfig(env), master);
  }
  const keystore = await createKeystoreFile(options.keystore!, passphrase(env), {
    master,
    scrypt: { ...DEFAULT_SCRYPT, logN: options.scryptLogN },
  });
  try {
    return keystore.keyCheckValue();
  } finally {
    keystore.close();
  }
}

async function generate(options: Options, env: NodeJS.ProcessEnv, out: Output): Promise<void> {
  const threshold = options.threshold!;
  // Check the target before any key exists: the PIN opens the token and the label is free, or the
  // passphrase is set and the keystore file is new.
  if (options.hsm) {
    const { openHsmKeystore } = await import('../platform-server/keys/hsm');
    let taken = false;
    try {
      openHsmKeystore(hsmConfig(env)).close();
      taken = true;
    } catch (error) {
      if (!/holds no key labelled/.test((error as Error).message)) throw error;
    }
    if (taken) throw new Error('the HSM token already holds a master key under this label');
  } else {
    passphrase(env);
    if (existsSync(options.keystore!)) throw new Error(`keystore file ${options.keystore} already exists`);
  }
  let master: Uint8Array;
  if (options.hsm) {
    // The token's generator mixed with the OS's: the key is as good as the better of the two.
    const { hsmRandom } = await import('../platform-server/keys/hsm');
    master = hsmRandom(hsmConfig(env), MASTER_KEY_LENGTH);
    const os = randomBytes(MASTER_KEY_LENGTH);
    for (let i = 0; i < master.length; i++) master[i] ^= os[i];
    os.fill(0);
  } else {
    master = Uint8Array.from(randomBytes(MASTER_KEY_LENGTH));
  }
  try {
    const shares = await splitMaster(master, threshold, options.shares);
    // Prove the backup before relying on it: the first and the last k shares each rebuild the key.
    for (const subset of [shares.slice(0, threshold), shares.slice(-threshold)]) {
      const restored = await restoreMaster(subset);
      const same = timingSafeEqual(restored.master, master);
      restored.master.fill(0);
      if (!same) throw new ShareError('the shares just made do not rebuild the key: nothing was written');
    }
    const kcv = keyCheckValue(nobleCrypto, master);
    mkdirSync(options.out!, { recursive: true, mode: 0o700 });
    const written: string[] = [];
    for (const share of shares) {
      const file = path.join(options.out!, `share-${share.number}-of-${share.total}.txt`);
      const text = [
        `# ParkLink master key backup: share ${share.number} of ${share.total}; any ${threshold} restore the key`,
        `# set ${share.setId}, key check value ${kcv}`,
        encodeShare(share),
        '',
      ].join('\n');
      writeFileSync(file, text, { mode: 0o600, flag: 'wx' });
      written.push(file);
    }
    out.log(`set ${shares[0].setId}: ${shares.length} shares, any ${threshold} restore the key`);
    for (const file of written) out.log(`  wrote ${file}`);
    const imported = await importMaster(options, env, master);
    out.log(
      `master key imported into ${options.hsm ? 'the HSM' : options.keystore}; key check value ${imported}`,
    );
    out.log('copy each share to its own card and remove the files from this machine');
  } finally {
    master.fill(0);
  }
}

async function restore(options: Options, env: NodeJS.ProcessEnv, out: Output): Promise<void> {
  const shares = options.files.map((file) => decodeShare(readFileSync(file, 'utf8'), file));
  const restored = await restoreMaster(shares);
  try {
    out.log(
      `set ${restored.setId}: key rebuilt from shares ${restored.used.join(', ')} (threshold ${restored.threshold} of ${restored.total})`,
    );
    if (restored.rejected.length > 0) {
      out.error(`warning: share(s) ${restored.rejected.join(', ')} do not fit the others: they were altered`);
    }
    if (options.verify) {
      out.log(`key check value ${keyCheckValue(nobleCrypto, restored.master)}`);
      return;
    }
    const kcv = await importMaster(options, env, restored.master);
    out.log(`master key imported into ${options.hsm ? 'the HSM' : options.keystore}; key check value ${kcv}`);
  } finally {
    restored.master.fill(0);
  }
}

async function check(options: Options, env: NodeJS.ProcessEnv, out: Output): Promise<void> {
  let keystore: { keyCheckValue(): string; close(): void };
  if (options.hsm) {
    const { openHsmKeystore } = await import('../platform-server/keys/hsm');
    keystore = openHsmKeystore(hsmConfig(env));
  } else {
    keystore = await openKeystoreFile(options.keystore!, passphrase(env));
  }
  try {
    out.log(`key check value ${keystore.keyCheckValue()}`);
  } finally {
    keystore.close();
  }
}

/** Runs one command; returns the exit code. Errors are reported by their message alone. */
export async function run(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  out: Output = console,
): Promise<number> {
  if (argv[0] === '--help' || argv[0] === '-h') {
    out.log(USAGE);
    return 0;
  }
  try {
    const options = parseArguments(argv);
    if (options.command === 'generate') await generate(options, env, out);
    else if (options.command === 'restore') await restore(options, env, out);
    else await check(options, env, out);
    return 0;
  } catch (error) {
    if (error instanceof UsageError) {
      out.error(`keys: ${error.message}\n${USAGE}`);
      return 2;
    }
    out.error(`keys: ${(error as Error).message}`);
    return 1;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  process.exitCode = await run(process.argv.slice(2), process.env);
}
