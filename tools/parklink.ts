// The ParkLink command line: price a stay with the same tariff engine as the meter and the platform,
// and add operator accounts to the platform's database.
//
//   npx parklink quote --tariff FILE --bay ID --start ISO-8601 --minutes N [--paid-minutes P]
//   npx parklink quote --tariff FILE --bay ID --start ISO-8601 --amount M  [--paid-minutes P]
//   npx parklink check --tariff FILE
//   npx parklink state --tariff FILE --bay ID --start ISO-8601
//   npx parklink operator add USERNAME --role ROLE [--name "Display Name"] [--password-stdin]
//   npx parklink operator reset-mfa USERNAME
//   npx parklink broker passwd > /etc/mosquitto/parklink/passwd
//   npx parklink audit export --out FILE [--meter ID ...] [--from ISO --to ISO] [--sample N --seed S]
//   npx parklink audit verify (--bundle FILE | --database [selection]) --report FILE
//   npx parklink audit authorise --report FILE.json --meter ID --seq N --supervisor USER --reason TEXT
//
// audit (the remote audit unit 16, docs/audit.md): export writes a hashed bundle of stored records,
// chain links, kept record-set frames and the meters' public data; verify checks every chain link
// and every frame's MAC with its own key access (as broker passwd), from a bundle without the
// platform or from the database, and writes FILE.json and FILE.txt; authorise records a supervisor's
// special authorisation of one finding (password as for operator add). verify exits 0 when every
// record counts, 1 when a finding is not authorised; 2 usage; 4 unreadable bundle, keystore or
// database; authorise 1 when refused.
//
// `operator add` works on the database in DATABASE_URL (or the embedded one in PARKLINK_DATA_DIR),
// migrating it first, and asks for the password twice on a terminal, or reads the first line of
// standard input with --password-stdin. It answers the account as JSON; the audit log names the
// CLI and the local user as the creator. `operator reset-mfa` removes an operator's second factor
// (TOTP and recovery codes) and ends their sessions: the way back in for an admin who lost both,
// for whoever can reach the database.
//
// --start takes an offset (2026-03-29T00:30:00Z, …+01:00) or none: then it is read in the tariff's
// own time zone. The answer is JSON on stdout: the quote with its line-by-line breakdown and the
// amount also as "price" in the currency's own format ("£1.80"), or the
// refusal with its reason ({ "ok": false, "reason": "max-stay", "maxMinutes": 120, … }).
//
// Exit codes:
//   0  a price (or, with --amount, the time the amount buys); check: the file is valid
//   1  the purchase is refused: the JSON says why (reason: below-minimum, max-stay, restricted,
//      no-sale, non-cumulative, free, unknown-bay, bad-request)
//   2  usage: an unknown command or option, a missing or malformed value
//   3  the tariff file is not a valid tariff: stderr names the field (e.g. "timetable[2].rate")
//   4  the tariff file cannot be read or is not JSON
//
// broker passwd writes Mosquitto's password file on stdout: the platform's and every provisioned
// meter's MQTT password, derived from the master key (PARKLINK_MASTER_KEY, the keystore file or the
// HSM, as for the platform), hashed as mosquitto_passwd does. Run it again after provisioning
// meters and send Mosquitto SIGHUP to reload it (deploy/mosquitto/README.md). 0 written; 2 usage
// (no master key or database configured); 4 the database or the keystore cannot be opened.
//
// operator add: 0 created; 1 refused (the username is taken, or it or the password is not valid:
// stderr says why); 2 usage; 4 the database cannot be opened.
import { readFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { parseArgs } from 'node:util';
import { parseInstant, Tariff, TariffError, TimeZoneError } from '../protocol/tariff';
import { openPlatformDatabase } from './platformDatabase';
import { OperatorError, Operators, ROLES, type Role } from '../platform-server/operators/service';
import { BrokerCredentials, mosquittoPasswordFile } from '../platform-server/core/brokerAuth';
import { configFromEnv } from '../platform-server/config';
import { loadKeystore } from '../platform-server/keys/keystore';
import { currencyCode, formatMoney } from './money';
import { auditCommand } from './audit';
import { UsageError } from './usageError';

/** The quote with the amount also in the currency's own format ("price": "£1.80") beside it. */
function withPrice<Q extends object>(quote: Q): Q {
  const { amount, currency } = quote as { amount?: unknown; currency?: unknown };
  if (typeof amount !== 'number' || typeof currency !== 'number') return quote;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(quote)) {
    out[key] = value;
    if (key === 'amount') {
      out.price = formatMoney(amount, currency);
      const code = currencyCode(currency);
      if (code) out.currencyCode = code;
    }
  }
  return out as Q;
}

export const ExitCode = Object.freeze({ ok: 0, refused: 1, usage: 2, badTariff: 3, unreadable: 4 });

const USAGE = `usage:
  parklink quote --tariff FILE --bay ID --start ISO-8601 (--minutes N | --amount M) [--paid-minutes P]
  parklink check --tariff FILE
  parklink state --tariff FILE --bay ID --start ISO-8601
  parklink operator add USERNAME --role viewer|operator|supervisor|admin [--name NAME] [--password-stdin]
  parklink operator reset-mfa USERNAME
    (on DATABASE_URL, or PARKLINK_DATA_DIR for an embedded database)
  parklink broker passwd
    (Mosquitto's password file for the platform and every meter, from the master key)
  parklink audit export --out FILE [--meter ID ...] [--from ISO --to ISO] [--sample N --seed S]
  parklink audit verify (--bundle FILE | --database [--meter ID ...] [--from ISO --to ISO] [--sample N --seed S]) --report FILE
  parklink audit authorise --report FILE.json --meter ID --seq N --supervisor USER --reason TEXT [--password-stdin]
    (the remote audit unit: docs/audit.md)
exit codes: 0 answer, 1 refused (JSON says why), 2 usage, 3 invalid tariff (field named), 4 unreadable file`;

export interface Io {
  out(text: string): void;
  err(text: string): void;
  /** All of standard input (--password-stdin). */
  readStdin?(): Promise<string>;
  /** Asks on the terminal without echo; absent when there is no terminal. */
  promptHidden?(question: string): Promise<string>;
}

const stdio: Io = {
  out: (text) => process.stdout.write(`${text}\n`),
  err: (text) => process.stderr.write(`${text}\n`),
  async readStdin() {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  },
  promptHidden,
};

/** Reads a line from the terminal in raw mode, echoing nothing. */
async function promptHidden(question: string): Promise<string> {
  const { stdin, stderr } = process;
  if (!stdin.isTTY) throw new UsageError('no terminal to ask for the password: use --password-stdin');
  stderr.write(question);
  stdin.setRawMode(true);
  stdin.setEncoding('utf8');
  stdin.resume();
  return new Promise((resolve, reject) => {
    let value = '';
    const done = () => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      stderr.write('\n');
    };
    const onData = (chunk: string) => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n') {
          done();
          resolve(value);
          return;
        }
        if (ch === '\u0003' || ch === '\u0004') {
          done();
          reject(new UsageError('cancelled'));
          return;
        }
        value = ch === '\u007f' || ch === '\b' ? value.slice(0, -1) : value + ch;
      }
    };
    stdin.on('data', onData);
  });
}

function integer(value: string | undefined, name: string, min = 0): number | undefined {
  if (value === undefined) return undefined;
  if (!/^-?\d+$/.test(value) || Number(value) < min || !Number.isSafeInteger(Number(value)))
    throw new UsageError(
      `--${name} must be a whole number${min > 0 ? ` of at least ${min}` : ''}, not "${value}"`,
    );
  return Number(value);
}

async function loadTariff(file: string, io: Io): Promise<Tariff | number> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    io.err(`parklink: cannot read ${file}: ${(error as Error).message}`);
    return ExitCode.unreadable;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    io.err(`parklink: ${file} is not JSON: ${(error as Error).message}`);
    return ExitCode.unreadable;
  }
  try {
    return Tariff.from(json);
  } catch (error) {
    if (error instanceof TariffError) {
      io.err(`parklink: ${file}: invalid tariff: ${error.message}`);
      io.out(
        JSON.stringify({ ok: false, error: 'invalid-tariff', field: error.field, message: error.message }),
      );
      return ExitCode.badTariff;
    }
    throw error;
  }
}

async function operatorCommand(args: string[], io: Io, env: NodeJS.ProcessEnv): Promise<number> {
  const [verb, ...rest] = args;
  if (verb === 'reset-mfa') return resetMfaCommand(rest, io, env);
  if (verb !== 'add') throw new UsageError(`unknown operator command "${verb ?? ''}" (add, reset-mfa)`);
  const { values, positionals } = parseArgs({
    args: rest,
    strict: true,
    allowPositionals: true,
    options: {
      role: { type: 'string' },
      name: { type: 'string' },
      'password-stdin': { type: 'boolean' },
    },
  });
  if (positionals.length !== 1) throw new UsageError('give one USERNAME');
  const role = values.role as Role | undefined;
  if (!role || !ROLES.includes(role)) throw new UsageError(`--role must be one of ${ROLES.join(', ')}`);
  if (!env.DATABASE_URL && !env.PARKLINK_DATA_DIR)
    throw new UsageError('set DATABASE_URL (or PARKLINK_DATA_DIR) to the platform database');
  let password: string;
  if (values['password-stdin']) {
    if (!io.readStdin) throw new UsageError('no standard input to read');
    password = (await io.readStdin()).split(/\r?\n/)[0];
  } else {
    if (!io.promptHidden) throw new UsageError('no terminal to ask for the password: use --password-stdin');
    password = await io.promptHidden(`password for ${positionals[0]}: `);
    if ((await io.promptHidden('again: ')) !== password) {
      io.err('parklink: the passwords differ');
      return ExitCode.refused;
    }
  }
  const db = await openPlatformDatabase(env, io);
  if (!db) return ExitCode.unreadable;
  try {
    const operator = await new Operators(db).create(
      { username: positionals[0], role, password, displayName: values.name },
      { id: null, username: `cli:${userInfo().username}`.slice(0, 64) },
    );
    io.out(JSON.stringify({ ok: true, operator }, null, 2));
    return ExitCode.ok;
  } catch (error) {
    if (!(error instanceof OperatorError)) throw error;
    io.err(`parklink: ${error.message}`);
    io.out(JSON.stringify({ ok: false, error: error.code, message: error.message }));
    return ExitCode.refused;
  } finally {
    await db.close();
  }
}

async function resetMfaCommand(args: string[], io: Io, env: NodeJS.ProcessEnv): Promise<number> {
  const { positionals } = parseArgs({ args, strict: true, allowPositionals: true, options: {} });
  if (positionals.length !== 1) throw new UsageError('give one USERNAME');
  const db = await openPlatformDatabase(env, io);
  if (!db) return ExitCode.unreadable;
  try {
    await new Operators(db).resetTotp(positionals[0], {
      id: null,
      username: `cli:${userInfo().username}`.slice(0, 64),
    });
    io.out(JSON.stringify({ ok: true, username: positionals[0], mfa: false }));
    return ExitCode.ok;
  } catch (error) {
    if (!(error instanceof OperatorError)) throw error;
    io.err(`parklink: ${error.message}`);
    io.out(JSON.stringify({ ok: false, error: error.code, message: error.message }));
    return ExitCode.refused;
  } finally {
    await db.close();
  }
}

async function brokerCommand(args: string[], io: Io, env: NodeJS.ProcessEnv): Promise<number> {
  if (args.length !== 1 || args[0] !== 'passwd') throw new UsageError('broker takes one command: passwd');
  if (!env.DATABASE_URL && !env.PARKLINK_DATA_DIR)
    throw new UsageError('set DATABASE_URL (or PARKLINK_DATA_DIR) to the platform database');
  const config = configFromEnv(env);
  if (!config.hsm && !config.masterKey && !config.keystoreFile)
    throw new UsageError(
      'set the master key (PARKLINK_MASTER_KEY, PARKLINK_KEYSTORE_FILE or PARKLINK_HSM_MODULE)',
    );
  let keystore: Awaited<ReturnType<typeof loadKeystore>>;
  try {
    keystore = await loadKeystore(config);
  } catch (error) {
    io.err(`parklink: cannot open the keystore: ${(error as Error).message}`);
    return ExitCode.unreadable;
  }
  const db = await openPlatformDatabase(env, io);
  if (!db) {
    keystore.close();
    return ExitCode.unreadable;
  }
  const credentials = new BrokerCredentials(keystore);
  try {
    const meters = await db.query<{ id: string | number }>('SELECT id FROM meters ORDER BY id');
    io.out(
      mosquittoPasswordFile(
        credentials,
        meters.rows.map((row) => Number(row.id)),
      ).trimEnd(),
    );
    return ExitCode.ok;
  } finally {
    credentials.close();
    keystore.close();
    await db.close();
  }
}

/** Runs one command; returns the exit code. */
export async function main(
  argv: string[],
  io: Io = stdio,
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  try {
    const [command, ...rest] = argv;
    if (command === undefined || command === '--help' || command === '-h') {
      io.out(USAGE);
      return command === undefined ? ExitCode.usage : ExitCode.ok;
    }
    if (command === 'operator') return await operatorCommand(rest, io, env);
    if (command === 'broker') return await brokerCommand(rest, io, env);
    if (command === 'audit') return await auditCommand(rest, io, env);
    if (!['quote', 'check', 'state'].includes(command)) throw new UsageError(`unknown command "${command}"`);
    const { values } = parseArgs({
      args: rest,
      strict: true,
      options: {
        tariff: { type: 'string' },
        bay: { type: 'string' },
        start: { type: 'string' },
        minutes: { type: 'string' },
        amount: { type: 'string' },
        'paid-minutes': { type: 'string' },
      },
    });
    if (!values.tariff) throw new UsageError('--tariff FILE is required');
    const loaded = await loadTariff(values.tariff, io);
    if (typeof loaded === 'number') return loaded;
    const tariff = loaded;
    if (command === 'check') {
      io.out(JSON.stringify({ ok: true, id: tariff.id, version: tariff.version }));
      return ExitCode.ok;
    }
    const bay = integer(values.bay, 'bay');
    if (bay === undefined) throw new UsageError('--bay ID is required');
    if (!values.start) throw new UsageError('--start ISO-8601 is required');
    let start: number;
    try {
      start = parseInstant(values.start, tariff.tz);
    } catch (error) {
      if (error instanceof TimeZoneError) throw new UsageError(`--start: ${error.message}`);
      throw error;
    }
    if (command === 'state') {
      io.out(JSON.stringify({ bay, at: start, ...tariff.stateAt(bay, start) }, null, 2));
      return ExitCode.ok;
    }
    const minutes = integer(values.minutes, 'minutes', 1);
    const amount = integer(values.amount, 'amount');
    const paidMinutes = integer(values['paid-minutes'], 'paid-minutes') ?? 0;
    if ((minutes === undefined) === (amount === undefined))
      throw new UsageError('give one of --minutes N or --amount M');
    const quote =
      minutes !== undefined
        ? tariff.quoteDuration({ bay, start, minutes, paidMinutes })
        : tariff.quoteAmount({ bay, start, amount: amount as number, paidMinutes });
    io.out(JSON.stringify(withPrice(quote), null, 2));
    return quote.ok ? ExitCode.ok : ExitCode.refused;
  } catch (error) {
    if (error instanceof UsageError || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      io.err(`parklink: ${(error as Error).message}\n${USAGE}`);
      return ExitCode.usage;
    }
    throw error;
  }
}
