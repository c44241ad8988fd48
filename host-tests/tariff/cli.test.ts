// The parklink CLI: the JSON answer, the field named for a bad file, the documented exit codes.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { formatMoney } from '../../tools/money';
import type * as Cli from '../../tools/parklink';

// By URL with its extension: '../../tools/parklink' would load the bin shim tools/parklink.js.
const { ExitCode, main }: typeof Cli = await import(new URL('../../tools/parklink.ts', import.meta.url).href);

const example = 'tools/tariffs/town-centre.json';

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(args, { out: (t) => (out += `${t}\n`), err: (t) => (err += `${t}\n`) });
  return { code, out, err };
}

describe('parklink CLI', () => {
  it('quotes a duration with the breakdown (exit 0)', async () => {
    const r = await run([
      'quote',
      '--tariff',
      example,
      '--bay',
      '7',
      '--start',
      '2026-03-04T09:00:00Z',
      '--minutes',
      '45',
    ]);
    assert.equal(r.code, ExitCode.ok);
    const q = JSON.parse(r.out);
    assert.equal(q.amount, 150);
    assert.equal(q.lines[0].units, 5);
    assert.equal(q.price, '£1.50');
    assert.equal(q.currencyCode, 'GBP');
  });

  it('prints money in the currency format for the ISO 4217 numeric code', () => {
    assert.equal(formatMoney(180, 826), '£1.80');
    assert.equal(formatMoney(-120, 826), '-£1.20');
    assert.equal(formatMoney(1999, 978), '€19.99');
    assert.equal(formatMoney(500, 392), 'JP¥500'); // no minor unit in yen
    assert.equal(formatMoney(180, 999), '180 (currency 999)');
  });

  it('reads a start without an offset in the tariff time zone, and answers the amount direction', async () => {
    const r = await run([
      'quote',
      '--tariff',
      example,
      '--bay',
      '7',
      '--start',
      '2026-07-01T10:00',
      '--amount',
      '200',
    ]);
    assert.equal(r.code, ExitCode.ok);
    const q = JSON.parse(r.out);
    assert.equal(q.startLocal, '2026-07-01T10:00+01:00');
    assert.deepEqual([q.minutes, q.amount, q.unused], [60, 180, 20]);
  });

  it('prints the refusal with its reason and exits 1', async () => {
    const r = await run([
      'quote',
      '--tariff',
      example,
      '--bay',
      '7',
      '--start',
      '2026-03-07T17:20:00Z',
      '--minutes',
      '60',
    ]);
    assert.equal(r.code, ExitCode.refused);
    const q = JSON.parse(r.out);
    assert.deepEqual([q.ok, q.reason, q.maxMinutes], [false, 'non-cumulative', 40]);
  });

  it('names the bad field of an invalid tariff file and exits 3; unreadable or non-JSON exits 4', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'parklink-'));
    const bad = path.join(dir, 'bad.json');
    await writeFile(
      bad,
      JSON.stringify({
        id: 'x',
        version: 1,
        currency: 826,
        timeZone: 'UTC0',
        rates: { a: [{ price: 5 }] },
        timetable: [],
      }),
    );
    const r = await run(['check', '--tariff', bad]);
    assert.equal(r.code, ExitCode.badTariff);
    assert.match(r.err, /rates\.a\[0\]\.per/);
    assert.equal(JSON.parse(r.out).field, 'rates.a[0].per');
    const notJson = path.join(dir, 'x.json');
    await writeFile(notJson, '{ nope');
    assert.equal((await run(['check', '--tariff', notJson])).code, ExitCode.unreadable);
    assert.equal(
      (await run(['check', '--tariff', path.join(dir, 'missing.json')])).code,
      ExitCode.unreadable,
    );
  });

  it('exits 2 on usage errors', async () => {
    for (const args of [
      [],
      ['price'],
      ['quote', '--bay', '1'],
      ['quote', '--tariff', example, '--bay', '7', '--start', '2026-03-04T09:00:00Z'],
      ['quote', '--tariff', example, '--bay', '7', '--start', 'noon', '--minutes', '5'],
      ['quote', '--tariff', example, '--bay', '7', '--start', '2026-03-04T09:00:00Z', '--minutes', '1.5'],
      ['quote', '--tariff', example, '--colour', 'red'],
    ]) {
      assert.equal((await run(args)).code, ExitCode.usage, args.join(' '));
    }
  });

  it('runs as npx parklink through the bin shim', async function () {
    this.timeout(20_000);
    const { stdout } = await promisify(execFile)(
      process.execPath,
      [
        'tools/parklink.js',
        'quote',
        '--tariff',
        example,
        '--bay',
        '7',
        '--start',
        '2026-03-04T09:00:00Z',
        '--minutes',
        '20',
      ],
      { cwd: path.resolve(import.meta.dirname ?? '.', '../..') },
    );
    assert.equal(JSON.parse(stdout).amount, 60);
  });
});
