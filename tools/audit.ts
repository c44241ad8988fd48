// `npx parklink audit …`: the remote audit unit (16). export and verify --database read the platform
// database (DATABASE_URL or PARKLINK_DATA_DIR); verify --bundle needs no platform at all, only the
// bundle and its own key access (PARKLINK_MASTER_KEY, PARKLINK_KEYSTORE_FILE or PARKLINK_HSM_MODULE).
import { readFile, writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { configFromEnv } from '../platform-server/config';
import {
  AuditFormatError,
  type AuditReport,
  auditBundle,
  BUNDLE_FORMAT,
  type Bundle,
  exportBundle,
  openDocument,
  REPORT_FORMAT,
  reportText,
  type Selection,
  sealDocument,
} from '../platform-server/audit/audit';
import { AuthorisationRefused, authoriseFinding } from '../platform-server/audit/authorisations';
import { nodeCrypto } from '../platform-server/core/nodeCrypto';
import { type Keystore, loadKeystore } from '../platform-server/keys/keystore';
import { OperatorError, Operators } from '../platform-server/operators/service';
import type { Io } from './parklink';
import { openPlatformDatabase } from './platformDatabase';
import { UsageError } from './usageError';

const OK = 0;
const REFUSED = 1;
const UNREADABLE = 4;

const SELECTION_OPTIONS = {
  meter: { type: 'string', multiple: true },
  from: { type: 'string' },
  to: { type: 'string' },
  sample: { type: 'string' },
  seed: { type: 'string' },
} as const;

function selectionOf(values: {
  meter?: string[];
  from?: string;
  to?: string;
  sample?: string;
  seed?: string;
}): Selection {
  const selection: Selection = {};
  if (values.meter) {
    selection.meters = values.meter.map((m) => {
      if (!/^\d+$/.test(m) || Number(m) > 0xffffffff)
        throw new UsageError(`--meter takes a meter id, not "${m}"`);
      return Number(m);
    });
  }
  for (const name of ['from', 'to'] as const) {
    const value = values[name];
    if (value === undefined) continue;
    const date = new Date(value);
    if (!/^\d{4}-\d{2}-\d{2}/.test(value) || Number.isNaN(date.getTime()))
      throw new UsageError(`--${name} takes an ISO-8601 date or instant, not "${value}"`);
    selection[name] = date;
  }
  if (values.sample !== undefined) {
    if (!/^\d+$/.test(values.sample) || Number(values.sample) < 1)
      throw new UsageError(`--sample takes a number of records, not "${values.sample}"`);
    // Without a seed, a fresh one: each scheduled run picks its own records (the report keeps it).
    selection.sample = { count: Number(values.sample), seed: values.seed ?? crypto.randomUUID() };
  } else if (values.seed !== undefined) throw new UsageError('--seed goes with --sample');
  return selection;
}

async function keystoreOf(env: NodeJS.ProcessEnv, io: Io): Promise<Keystore | undefined> {
  let config: ReturnType<typeof configFromEnv>;
  try {
    config = configFromEnv(env);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  if (!config.hsm && !config.masterKey && !config.keystoreFile)
    throw new UsageError(
      'the audit needs its own key access: PARKLINK_MASTER_KEY, PARKLINK_KEYSTORE_FILE or PARKLINK_HSM_MODULE',
    );
  try {
    return await loadKeystore(config);
  } catch (error) {
    io.err(`parklink: cannot open the keystore: ${(error as Error).message}`);
    return undefined;
  }
}

async function exportCommand(args: string[], io: Io, env: NodeJS.ProcessEnv): Promise<number> {
  const { values } = parseArgs({
    args,
    strict: true,
    options: { ...SELECTION_OPTIONS, out: { type: 'string' } },
  });
  if (!values.out) throw new UsageError('--out FILE is required');
  const selection = selectionOf(values);
  const db = await openPlatformDatabase(env, io);
  if (!db) return UNREADABLE;
  try {
    const bundle = await exportBundle(db, nodeCrypto, selection);
    const { text, sha256 } = sealDocument(nodeCrypto, bundle);
    await writeFile(values.out, text, { flag: 'wx', mode: 0o600 });
    io.out(
      JSON.stringify({
        ok: true,
        file: values.out,
        sha256,
        meters: bundle.meters.length,
        records: bundle.records.length,
        sets: bundle.sets.length,
      }),
    );
    return OK;
  } finally {
    await db.close();
  }
}

async function verifyCommand(args: string[], io: Io, env: NodeJS.ProcessEnv): Promise<number> {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      ...SELECTION_OPTIONS,
      bundle: { type: 'string' },
      database: { type: 'boolean' },
      report: { type: 'string' },
    },
  });
  if (!values.report) throw new UsageError('--report FILE is required (FILE.json and FILE.txt are written)');
  if (Boolean(values.bundle) === Boolean(values.database))
    throw new UsageError('give one of --bundle FILE or --database');
  const selection = selectionOf(values);
  if (values.bundle && Object.keys(selection).length > 0)
    throw new UsageError(
      'a bundle holds its own selection: --meter, --from, --to and --sample go with --database',
    );
  let bundle: Bundle;
  let source: AuditReport['source'];
  if (values.bundle) {
    let text: string;
    try {
      text = await readFile(values.bundle, 'utf8');
    } catch (error) {
      io.err(`parklink: cannot read ${values.bundle}: ${(error as Error).message}`);
      return UNREADABLE;
    }
    try {
      const opened = openDocument<Bundle>(nodeCrypto, text, BUNDLE_FORMAT);
      bundle = opened.document;
      source = { kind: 'bundle', sha256: opened.sha256 };
    } catch (error) {
      if (!(error instanceof AuditFormatError)) throw error;
      io.err(`parklink: ${values.bundle}: ${error.message}`);
      return UNREADABLE;
    }
  } else {
    const db = await openPlatformDatabase(env, io);
    if (!db) return UNREADABLE;
    try {
      bundle = await exportBundle(db, nodeCrypto, selection);
    } finally {
      await db.close();
    }
    source = { kind: 'database', selection: bundle.selection };
  }
  const keystore = await keystoreOf(env, io);
  if (!keystore) return UNREADABLE;
  let report: AuditReport;
  try {
    report = auditBundle(bundle, { keystore, crypto: nodeCrypto, source });
  } catch (error) {
    if (!(error instanceof AuditFormatError)) throw error;
    io.err(`parklink: ${values.bundle ?? 'the database'}: ${error.message}`);
    return UNREADABLE;
  } finally {
    keystore.close();
  }
  const { text, sha256 } = sealDocument(nodeCrypto, report);
  const summary = reportText(report);
  await writeFile(`${values.report}.json`, text, { flag: 'wx' });
  await writeFile(`${values.report}.txt`, `${summary}report sha256: ${sha256}\n`, { flag: 'wx' });
  io.out(summary.trimEnd());
  return report.totals.outstanding === 0 ? OK : REFUSED;
}

async function authoriseCommand(args: string[], io: Io, env: NodeJS.ProcessEnv): Promise<number> {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      report: { type: 'string' },
      meter: { type: 'string' },
      seq: { type: 'string' },
      supervisor: { type: 'string' },
      reason: { type: 'string' },
      'password-stdin': { type: 'boolean' },
    },
  });
  for (const name of ['report', 'meter', 'seq', 'supervisor', 'reason'] as const)
    if (!values[name]) throw new UsageError(`--${name} is required`);
  const meterId = Number(values.meter);
  const seq = Number(values.seq);
  if (!/^\d+$/.test(values.meter as string) || !/^\d+$/.test(values.seq as string) || seq < 1)
    throw new UsageError('--meter and --seq take whole numbers');
  let opened: { document: AuditReport; sha256: string };
  try {
    opened = openDocument<AuditReport>(
      nodeCrypto,
      await readFile(values.report as string, 'utf8'),
      REPORT_FORMAT,
    );
  } catch (error) {
    io.err(`parklink: ${values.report}: ${(error as Error).message}`);
    return UNREADABLE;
  }
  let password: string;
  if (values['password-stdin']) {
    if (!io.readStdin) throw new UsageError('no standard input to read');
    password = (await io.readStdin()).split(/\r?\n/)[0];
  } else {
    if (!io.promptHidden) throw new UsageError('no terminal to ask for the password: use --password-stdin');
    password = await io.promptHidden(`password for ${values.supervisor}: `);
  }
  const db = await openPlatformDatabase(env, io);
  if (!db) return UNREADABLE;
  try {
    // The supervisor signs in as on the API (failed attempts counted and audited); the session
    // opened for it is closed at once.
    const operators = new Operators(db);
    const { token } = await operators.login(values.supervisor as string, password, { ip: 'cli' });
    const identity = await operators.authenticate(token);
    if (!identity) throw new OperatorError(401, 'bad-credentials', 'the session did not open');
    try {
      const authorisation = await authoriseFinding(db, nodeCrypto, identity, {
        report: opened.document,
        reportSha256: opened.sha256,
        meterId,
        seq,
        reason: values.reason as string,
      });
      io.out(JSON.stringify({ ok: true, authorisation }, null, 2));
      return OK;
    } finally {
      await operators.revoke(identity);
    }
  } catch (error) {
    if (!(error instanceof AuthorisationRefused) && !(error instanceof OperatorError)) throw error;
    io.err(`parklink: ${error.message}`);
    io.out(JSON.stringify({ ok: false, error: error.code, message: error.message }));
    return REFUSED;
  } finally {
    await db.close();
  }
}

export async function auditCommand(args: string[], io: Io, env: NodeJS.ProcessEnv): Promise<number> {
  const [verb, ...rest] = args;
  if (verb === 'export') return exportCommand(rest, io, env);
  if (verb === 'verify') return verifyCommand(rest, io, env);
  if (verb === 'authorise') return authoriseCommand(rest, io, env);
  throw new UsageError(`unknown audit command "${verb ?? ''}" (export, verify, authorise)`);
}
