// SoftHSM2 for the key tests: a token initialised in a temporary directory (SOFTHSM2_CONF points
// there), never the machine's own /var/lib/softhsm. Missing SoftHSM2 fails under CI=true and skips
// with the reason otherwise.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { HsmConfig } from '../../platform-server/keys/hsm';

export const SOFTHSM_MODULE = process.env.PARKLINK_TEST_HSM_MODULE ?? '/usr/lib/softhsm/libsofthsm2.so';
export const CI = process.env.CI === 'true';

export const TOKEN_LABEL = 'parklink-test';
export const USER_PIN = '246810';
const SO_PIN = '13579111';

/** Why SoftHSM2 cannot be used here, or undefined when it can. */
export function softHsmMissing(): string | undefined {
  if (!existsSync(SOFTHSM_MODULE))
    return `SoftHSM2 module ${SOFTHSM_MODULE} is missing (apt-get install softhsm2)`;
  try {
    execFileSync('softhsm2-util', ['--version'], { stdio: 'ignore' });
  } catch {
    return 'softhsm2-util is not on the PATH (apt-get install softhsm2)';
  }
  return undefined;
}

/** In a mocha `before`: fails under CI=true, else skips the suite, when SoftHSM2 is missing. */
export function requireSoftHsm(context: Mocha.Context): void {
  const missing = softHsmMissing();
  if (!missing) return;
  if (CI) throw new Error(`CI=true and ${missing}`);
  console.log(`      skipped: ${missing} (set CI=true to make this a failure)`);
  context.skip();
}

export interface SoftHsmToken {
  dir: string;
  config: HsmConfig;
  /** Removes the token directory and restores SOFTHSM2_CONF. */
  remove(): void;
}

/**
 * A fresh token in a temporary directory, initialised with softhsm2-util. SoftHSM2 reads
 * SOFTHSM2_CONF at C_Initialize, so close every keystore of an earlier token before making another.
 */
export function createSoftHsmToken(keyLabel = 'parklink-master'): SoftHsmToken {
  const dir = mkdtempSync(join(tmpdir(), 'parklink-softhsm-'));
  const conf = join(dir, 'softhsm2.conf');
  const tokens = join(dir, 'tokens');
  mkdirSync(tokens);
  writeFileSync(conf, `directories.tokendir = ${tokens}\nobjectstore.backend = file\nlog.level = ERROR\n`);
  const previous = process.env.SOFTHSM2_CONF;
  process.env.SOFTHSM2_CONF = conf;
  execFileSync(
    'softhsm2-util',
    ['--init-token', '--free', '--label', TOKEN_LABEL, '--so-pin', SO_PIN, '--pin', USER_PIN],
    { env: { ...process.env, SOFTHSM2_CONF: conf }, stdio: 'ignore' },
  );
  return {
    dir,
    config: { module: SOFTHSM_MODULE, tokenLabel: TOKEN_LABEL, pin: USER_PIN, keyLabel },
    remove() {
      if (previous === undefined) delete process.env.SOFTHSM2_CONF;
      else process.env.SOFTHSM2_CONF = previous;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
