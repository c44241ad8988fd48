// Every command-line entry point answers --help with its usage on stdout and exits 0, without
// starting anything (npm start's --help opens no database, broker or port).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);
const NODE = ['--import', './tools/ts-register.js', '--no-warnings=ExperimentalWarning'];

const CLIS: [string, string[], RegExp][] = [
  ['parklink', ['tools/parklink.js', '--help'], /parklink quote --tariff FILE/],
  [
    'parklink (audit)',
    ['tools/parklink.js', '--help'],
    /parklink audit verify \(--bundle FILE \| --database/,
  ],
  ['keys', [...NODE, 'tools/keys.ts', '--help'], /generate --threshold K/],
  ['flash', [...NODE, 'tools/flash.ts', '--help'], /--dry-run/],
  ['powercut', [...NODE, 'tools/powercut.ts', '--help'], /--seed N/],
  ['bench', [...NODE, 'tools/bench.ts', '--help'], /available: .*audit.*ingest/],
  ['fleet (npm start)', [...NODE, 'tools/fleet.ts', '--help'], /PARKLINK_DATA_DIR/],
];

describe('command-line --help', function () {
  this.timeout(60_000);
  // Every command started at once (each is a Node process loading TypeScript), then checked in turn.
  const helps = new Map<string, Promise<{ stdout: string }>>();
  let malformed: Promise<unknown>;
  before(() => {
    for (const [name, args] of CLIS) {
      const answer = run(process.execPath, args, { env: { ...process.env, PORT: '1' } });
      answer.catch(() => {}); // checked by its test
      helps.set(name, answer);
    }
    malformed = run(process.execPath, [...NODE, 'tools/fleet.ts', '--meters', 'many']);
    malformed.catch(() => {});
  });

  for (const [name, , usage] of CLIS) {
    it(`${name} prints its usage and exits 0`, async () => {
      const { stdout } = await (helps.get(name) as Promise<{ stdout: string }>);
      assert.match(stdout, /usage/);
      assert.match(stdout, usage);
    });
  }

  it('npm start refuses a malformed option with its usage and exit code 2', async () => {
    await assert.rejects(malformed, (error) => {
      const { code, stderr } = error as { code: number; stderr: string };
      assert.equal(code, 2);
      assert.match(stderr, /--meters takes 1 to 500/);
      return true;
    });
  });
});
