// The ParkLink command line: price a stay with the same tariff engine as the meter and the platform.
//
//   npx parklink quote --tariff FILE --bay ID --start ISO-8601 --minutes N [--paid-minutes P]
//   npx parklink quote --tariff FILE --bay ID --start ISO-8601 --amount M  [--paid-minutes P]
//   npx parklink check --tariff FILE
//   npx parklink state --tariff FILE --bay ID --start ISO-8601
//
// --start takes an offset (2026-03-29T00:30:00Z, …+01:00) or none: then it is read in the tariff's
// own time zone. The answer is JSON on stdout: the quote with its line-by-line breakdown, or the
// refusal with its reason ({ "ok": false, "reason": "max-stay", "maxMinutes": 120, … }).
//
// Exit codes:
//   0  a price (or, with --amount, the time the amount buys); check: the file is valid
//   1  the purchase is refused: the JSON says why (reason: below-minimum, max-stay, restricted,
//      no-sale, non-cumulative, free, unknown-bay, bad-request)
//   2  usage: an unknown command or option, a missing or malformed value
//   3  the tariff file is not a valid tariff: stderr names the field (e.g. "timetable[2].rate")
//   4  the tariff file cannot be read or is not JSON
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { parseInstant, Tariff, TariffError, TimeZoneError } from '../protocol/tariff';

export const ExitCode = Object.freeze({ ok: 0, refused: 1, usage: 2, badTariff: 3, unreadable: 4 });

const USAGE = `usage:
  parklink quote --tariff FILE --bay ID --start ISO-8601 (--minutes N | --amount M) [--paid-minutes P]
  parklink check --tariff FILE
  parklink state --tariff FILE --bay ID --start ISO-8601
exit codes: 0 answer, 1 refused (JSON says why), 2 usage, 3 invalid tariff (field named), 4 unreadable file`;

export interface Io {
  out(text: string): void;
  err(text: string): void;
}

const stdio: Io = {
  out: (text) => process.stdout.write(`${text}\n`),
  err: (text) => process.stderr.write(`${text}\n`),
};

class UsageError extends Error {}

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

/** Runs one command; returns the exit code. */
export async function main(argv: string[], io: Io = stdio): Promise<number> {
  try {
    const [command, ...rest] = argv;
    if (command === undefined || command === '--help' || command === '-h') {
      io.out(USAGE);
      return command === undefined ? ExitCode.usage : ExitCode.ok;
    }
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
    io.out(JSON.stringify(quote, null, 2));
    return quote.ok ? ExitCode.ok : ExitCode.refused;
  } catch (error) {
    if (error instanceof UsageError || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      io.err(`parklink: ${(error as Error).message}\n${USAGE}`);
      return ExitCode.usage;
    }
    throw error;
  }
}
