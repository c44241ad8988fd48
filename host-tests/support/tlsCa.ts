// Test support: a self-signed CA and a server certificate it issued for localhost and 127.0.0.1,
// made with the openssl command line (node:crypto cannot issue X.509 certificates), and the
// Mosquitto binaries. Missing tools skip the test, or fail it under CI=true.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CI } from '../../sim/fleet/platform';

export interface TestCa {
  dir: string;
  /** PEM: the CA certificate clients verify against. */
  ca: string;
  /** PEM: the server certificate (CN localhost, SAN localhost and 127.0.0.1) and its key. */
  cert: string;
  key: string;
  caFile: string;
  certFile: string;
  keyFile: string;
}

/** Whether `tool` is on PATH. */
export function have(tool: string): boolean {
  try {
    execFileSync('which', [tool], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Skips the running test (or suite hook) when a tool is missing, or throws under CI=true. */
export function requireTools(context: Mocha.Context, ...tools: string[]): void {
  const missing = tools.filter((tool) => !have(tool));
  if (missing.length === 0) return;
  const reason = `${missing.join(', ')} not installed`;
  if (CI) throw new Error(`CI=true and ${reason}`);
  console.log(`      skipped: ${reason} (set CI=true to make this a failure)`);
  context.skip();
}

export function makeTestCa(): TestCa {
  const dir = mkdtempSync(join(tmpdir(), 'parklink-ca-'));
  const at = (name: string) => join(dir, name);
  const openssl = (...args: string[]) =>
    execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(
    'req',
    '-x509',
    ...ec,
    '-keyout',
    at('ca.key'),
    '-out',
    at('ca.crt'),
    '-days',
    '2',
    '-subj',
    '/CN=ParkLink test CA',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  );
  openssl('req', ...ec, '-keyout', at('server.key'), '-out', at('server.csr'), '-subj', '/CN=localhost');
  writeFileSync(
    at('server.ext'),
    'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n',
  );
  openssl(
    'x509',
    '-req',
    '-in',
    at('server.csr'),
    '-CA',
    at('ca.crt'),
    '-CAkey',
    at('ca.key'),
    '-CAcreateserial',
    '-out',
    at('server.crt'),
    '-days',
    '2',
    '-extfile',
    at('server.ext'),
  );
  return {
    dir,
    ca: readFileSync(at('ca.crt'), 'utf8'),
    cert: readFileSync(at('server.crt'), 'utf8'),
    key: readFileSync(at('server.key'), 'utf8'),
    caFile: at('ca.crt'),
    certFile: at('server.crt'),
    keyFile: at('server.key'),
  };
}
