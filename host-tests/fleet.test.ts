// npm start (tools/fleet.ts) as a newcomer meets it: what it prints at start, and a demo that
// PARKLINK_DATA_DIR keeps across a restart (the meters carry on their chains, the platform opens
// their frames with the master key it kept).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

async function start(dataDir: string): Promise<string> {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    PORT: '0',
    PARKLINK_DATA_DIR: dataDir,
  };
  const { stdout } = await run(
    process.execPath,
    [
      '--import',
      './tools/ts-register.js',
      '--no-warnings=ExperimentalWarning',
      'tools/fleet.ts',
      '--meters',
      '1',
      '--seconds',
      '5',
      '--tap-every',
      '60',
    ],
    { env, timeout: 90_000 },
  );
  return stdout;
}

/** Sequence numbers of meter 1001's boot records in the output. */
function boots(output: string): number[] {
  return [...output.matchAll(/meter 1001 {2}# *(\d+) {2}operation: boot/g)].map((m) => Number(m[1]));
}

describe('npm start', function () {
  this.timeout(200_000);
  let dataDir: string;
  before(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'parklink-fleet-'));
  });
  after(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  it('says what is simulated, where the app is and how to call the API; PARKLINK_DATA_DIR keeps the demo', async () => {
    const first = await start(dataDir);
    assert.match(first, /Simulated: the meter runs the real firmware on simulated hardware/);
    assert.match(first, /Driver app \(pay by phone\): http:\/\/127\.0\.0\.1:\d+\/app\//);
    assert.match(first, /Demo mode: the SMS and voice gateway .* is OPEN, taking unsigned posts/);
    assert.match(first, /database PGlite in /);
    assert.match(first, /curl -s -X POST http:\/\/127\.0\.0\.1:\d+\/api\/operators\/login/);
    assert.match(first, /curl -H "Authorization: Bearer \$TOKEN" http:\/\/127\.0\.0\.1:\d+\/api\/meters\n/);
    assert.match(first, /\/api\/meters\/1001\/transactions/);
    assert.deepEqual(boots(first), [1]);

    const second = await start(dataDir);
    const [boot] = boots(second);
    assert.ok(boot > 1, `the restarted meter carries on its chain (boot record #${boot})`);
    assert.match(second, /planned restart/);
    assert.match(second, /log in with an existing operator account/);
  });
});
