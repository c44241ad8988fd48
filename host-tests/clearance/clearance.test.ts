// One business day through the clearance unit: three meters' card sales (stored through ingest) and
// phone renewals → settlement batches per card type, each file hashed and Ed25519-signed → delivered
// over SFTP to a real OpenSSH server on loopback (configured by this test) → an acquirer simulator
// answers one batch with a missing item, an amount mismatch, a duplicate and a reference of its own
// → the response is fetched over SFTP and reconciled → the exceptions, with their chain proofs, are
// worked by a supervisor. Bad response files are refused whole and lose nothing.
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { ed25519 } from '@noble/curves/ed25519';
import type { Platform } from '../../platform-server/platform';
import { uplinkTopic } from '../../protocol/topics';
import {
  forEachBackend,
  type OperatorLogin,
  operatorLogin,
  randomMeterId,
  startPlatform,
  TestMeter,
} from '../../sim/fleet/platform';
import { CI } from '../../sim/fleet/platform';
import { freePort, portOpen } from '../../sim/fleet/processes';
import { storeAppliedRenewal } from '../support/phoneRenewal';
import { requireTools } from '../support/tlsCa';
import { until } from '../support/until';

const SSHD = '/usr/sbin/sshd';
const at = (iso: string) => Math.floor(Date.parse(iso) / 1000);

/** OpenSSH on loopback with a configuration, host key and authorised client key this test writes. */
async function startSshd(
  dir: string,
): Promise<{ port: number; hostKey: string; clientKey: string; stop(): Promise<void> }> {
  const keygen = (file: string) => execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', file]);
  keygen(join(dir, 'host'));
  keygen(join(dir, 'client'));
  writeFileSync(join(dir, 'authorized_keys'), readFileSync(join(dir, 'client.pub')));
  // Privilege separation wants this folder to exist.
  if (!existsSync('/run/sshd')) mkdirSync('/run/sshd', { recursive: true });
  const port = await freePort();
  writeFileSync(
    join(dir, 'sshd_config'),
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${join(dir, 'host')}`,
      `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PubkeyAuthentication yes',
      'PermitRootLogin prohibit-password',
      'StrictModes no',
      'UsePAM no',
      'PidFile none',
      'Subsystem sftp internal-sftp',
      '',
    ].join('\n'),
  );
  const sshd: ChildProcess = spawn(SSHD, ['-D', '-e', '-f', join(dir, 'sshd_config')], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  sshd.stderr?.on('data', (d) => (log += d));
  await until(async () => {
    if (sshd.exitCode !== null) throw new Error(`sshd exited: ${log}`);
    return portOpen(port);
  }, 'sshd to listen');
  const publicHostKey = readFileSync(join(dir, 'host.pub'), 'utf8').split(' ')[1];
  return {
    port,
    hostKey: `SHA256:${createHash('sha256').update(Buffer.from(publicHostKey, 'base64')).digest('base64').replace(/=+$/, '')}`,
    clientKey: readFileSync(join(dir, 'client'), 'utf8'),
    async stop() {
      if (sshd.exitCode !== null) return;
      const exited = new Promise((resolve) => sshd.once('exit', resolve));
      sshd.kill('SIGTERM');
      await exited;
    },
  };
}

/**
 * The acquirer, simulated: answers a settlement file with ACCEPTED for each line, except what
 * `tamper` changes (drop, change the amount, repeat, add its own line).
 */
function acquirerSimulator(
  settlement: string,
  tamper: { drop?: string; amount?: [string, number]; repeat?: string; extra?: [string, number] } = {},
): string {
  const lines = settlement.trim().split('\n');
  const batchId = lines[0].split('|')[3];
  const out: string[] = [];
  for (const line of lines.filter((l) => l.startsWith('D|'))) {
    const f = line.split('|');
    const reference = f[1];
    if (reference === tamper.drop) continue;
    const amount = tamper.amount?.[0] === reference ? tamper.amount[1] : Number(f[5]);
    out.push(`R|${reference}|ACCEPTED|${amount}|`);
    if (reference === tamper.repeat) out.push(`R|${reference}|ACCEPTED|${amount}|`);
  }
  if (tamper.extra) out.push(`R|${tamper.extra[0]}|ACCEPTED|${tamper.extra[1]}|`);
  return `H|PLRESP|1|${batchId}\n${out.join('\n')}\nT|${out.length}\n`;
}

forEachBackend('clearance: settlement, SFTP delivery, reconciliation, exceptions', (backend) => {
  let dir: string;
  let sshd: Awaited<ReturnType<typeof startSshd>> | undefined;
  let platform: Platform;
  let drop: () => Promise<void>;
  let admin: OperatorLogin;
  let supervisor: OperatorLogin;
  let operator: OperatorLogin;
  const ids = [randomMeterId()];
  ids.push(ids[0] + 1, ids[0] + 2);
  const meters: TestMeter[] = [];
  const call = (
    method: 'GET' | 'POST',
    url: string,
    who: OperatorLogin,
    payload?: unknown,
    contentType?: string,
  ) =>
    platform.app.inject({
      method,
      url,
      headers: { ...who.headers, ...(contentType ? { 'content-type': contentType } : {}) },
      payload: payload as string | object | undefined,
    });

  before(async function () {
    this.timeout(120_000);
    if (!existsSync(SSHD)) {
      if (CI) throw new Error(`CI=true and ${SSHD} is missing (apt-get install -y openssh-server)`);
      console.log(`      skipped: ${SSHD} is missing (set CI=true to make this a failure)`);
      this.skip();
    }
    requireTools(this, 'ssh-keygen');
    dir = mkdtempSync(join(tmpdir(), 'parklink-sftp-'));
    for (const folder of ['outbox', 'inbox']) mkdirSync(join(dir, folder));
    sshd = await startSshd(dir);
    ({ platform, drop } = await startPlatform(backend, {
      apds: { timeZone: 'Europe/London' },
      clearance: {
        acquirer: 'acme',
        sftp: {
          host: '127.0.0.1',
          port: sshd.port,
          username: userInfo().username,
          privateKey: sshd.clientKey,
          hostKeySha256: sshd.hostKey,
          outbox: join(dir, 'outbox'),
          inbox: join(dir, 'inbox'),
        },
      },
    }));
    admin = await operatorLogin(platform.operators, 'admin');
    supervisor = await operatorLogin(platform.operators, 'supervisor');
    operator = await operatorLogin(platform.operators, 'operator');
    // The day: card sales at three meters (debit, credit, prepaid), stored through ingest.
    for (const [i, id] of ids.entries()) {
      const meter = new TestMeter(id, await platform.provisionMeter(id, `meter ${id}`));
      meter.transaction({ cardType: 1, charge: 120 + i, minutes: 60 }, at('2026-06-01T09:00:00Z') + i * 60);
      meter.transaction({ cardType: 2, charge: 200 + i, minutes: 100 }, at('2026-06-01T12:00:00Z') + i * 60);
      meter.transaction({ cardType: 3, charge: 300 + i, minutes: 150 }, at('2026-06-01T15:00:00Z') + i * 60);
      await platform.ingest.handleUplink(uplinkTopic(id), meter.frame(1, 3));
      meters.push(meter);
    }
    // Renewals paid by phone that day, one with a credit card and one with a debit card.
    await storeAppliedRenewal(platform.db, {
      id: 'clr1',
      meterId: ids[0],
      bayId: 1,
      minutes: 30,
      charge: 60,
      cardType: 2,
      channel: 'app',
      appliedAt: '2026-06-01T13:00:00Z',
    });
    await storeAppliedRenewal(platform.db, {
      id: 'clr2',
      meterId: ids[1],
      bayId: 2,
      minutes: 15,
      charge: 30,
      cardType: 1,
      channel: 'sms',
      appliedAt: '2026-06-01T16:00:00Z',
    });
  });

  after(async () => {
    await platform?.close();
    await drop?.();
    await sshd?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('settles the day into signed batches per card type, delivers them over SFTP, and reconciles the answer', async function () {
    this.timeout(120_000);
    const settled = await call('POST', '/api/clearance/settlements', admin, { businessDay: '2026-06-01' });
    assert.equal(settled.statusCode, 201, settled.body);
    const batches = settled.json().batches as {
      id: number;
      cardType: string;
      items: number;
      total: number;
      fileName: string;
      sha256: string;
      signature: string;
    }[];
    const byType = new Map(batches.map((b) => [b.cardType, b]));
    assert.deepEqual([...byType.keys()].sort(), ['credit', 'debit', 'prepaid']);
    assert.deepEqual([byType.get('debit')!.items, byType.get('debit')!.total], [4, 120 + 121 + 122 + 30]);
    assert.deepEqual([byType.get('credit')!.items, byType.get('credit')!.total], [4, 200 + 201 + 202 + 60]);
    assert.deepEqual([byType.get('prepaid')!.items, byType.get('prepaid')!.total], [3, 300 + 301 + 302]);
    // Settling the day again adds nothing: every item is in exactly one batch.
    const again = await call('POST', '/api/clearance/settlements', admin, { businessDay: '2026-06-01' });
    assert.deepEqual(again.json().batches, []);

    const { publicKey } = (await call('GET', '/api/clearance/public-key', operator)).json();
    for (const batch of batches) {
      const delivered = await call('POST', `/api/clearance/batches/${batch.id}/delivery`, admin);
      assert.equal(delivered.statusCode, 200, delivered.body);
      const file = readFileSync(join(dir, 'outbox', batch.fileName));
      assert.equal(createHash('sha256').update(file).digest('hex'), batch.sha256);
      assert.equal(
        readFileSync(join(dir, 'outbox', `${batch.fileName}.sha256`), 'utf8'),
        `${batch.sha256}  ${batch.fileName}\n`,
      );
      const signature = readFileSync(join(dir, 'outbox', `${batch.fileName}.sig`), 'utf8').trim();
      assert.ok(
        ed25519.verify(Buffer.from(signature, 'hex'), file, Buffer.from(publicKey, 'hex')),
        'the signature verifies',
      );
      assert.equal(
        file
          .toString()
          .split('\n')
          .filter((l) => l.startsWith('D|')).length,
        batch.items,
      );
    }
    assert.equal(readdirSync(join(dir, 'outbox')).filter((f) => f.endsWith('.part')).length, 0);

    // The acquirer answers every batch; the credit batch with a missing item, a changed amount, a
    // duplicate line and a reference of its own.
    const credit = byType.get('credit')!;
    const creditFile = readFileSync(join(dir, 'outbox', credit.fileName), 'utf8');
    const references = creditFile
      .split('\n')
      .filter((l) => l.startsWith('D|'))
      .map((l) => l.split('|')[1]);
    for (const batch of batches) {
      const content = readFileSync(join(dir, 'outbox', batch.fileName), 'utf8');
      const answer =
        batch === credit
          ? acquirerSimulator(content, {
              drop: references[0],
              amount: [references[1], 999],
              repeat: references[2],
              extra: ['M999-1', 50],
            })
          : acquirerSimulator(content);
      writeFileSync(join(dir, 'inbox', `${batch.fileName}.resp`), answer);
    }
    const fetched = await call('POST', '/api/clearance/responses/fetch', supervisor);
    assert.equal(fetched.statusCode, 200, fetched.body);
    const results = fetched.json().imported as {
      batchId: number;
      matched: number;
      exceptions: Record<string, number>;
    }[];
    assert.equal(results.length, 3);
    const creditResult = results.find((r) => r.batchId === credit.id)!;
    assert.equal(creditResult.matched, 1);
    assert.deepEqual(creditResult.exceptions, {
      'missing-theirs': 1,
      'amount-mismatch': 1,
      duplicate: 1,
      'missing-ours': 1,
    });
    for (const r of results.filter((x) => x.batchId !== credit.id)) assert.deepEqual(r.exceptions, {});
    // Fetching again imports nothing twice.
    const refetched = (await call('POST', '/api/clearance/responses/fetch', supervisor)).json();
    assert.equal(refetched.imported.length, 0);
    assert.deepEqual(
      refetched.skipped.map((s: { reason: string }) => s.reason),
      ['already-imported', 'already-imported', 'already-imported'],
    );

    const queue = (await call('GET', '/api/clearance/exceptions', operator)).json().exceptions as {
      id: number;
      reference: string;
      kind: string;
      ourAmount: number | null;
      theirAmount: number | null;
      evidence: { found: boolean; record?: string; link?: string; previousLink?: string; renewalId?: string };
    }[];
    assert.equal(queue.length, 4);
    const mismatch = queue.find((e) => e.kind === 'amount-mismatch')!;
    assert.equal(mismatch.theirAmount, 999);
    // A sale's evidence proves itself: link = SHA-256(previous link || record).
    for (const e of queue.filter((x) => x.reference.startsWith('M') && x.kind !== 'missing-ours')) {
      assert.ok(e.evidence.found);
      const link = createHash('sha256')
        .update(
          Buffer.concat([
            Buffer.from(e.evidence.previousLink!, 'hex'),
            Buffer.from(e.evidence.record!, 'hex'),
          ]),
        )
        .digest('hex');
      assert.equal(link, e.evidence.link, `${e.reference}: the chain proof holds`);
    }
    const phone = queue.find((e) => e.reference.startsWith('P'));
    if (phone) assert.equal(phone.evidence.renewalId, phone.reference.slice(1));
    assert.equal(queue.find((e) => e.kind === 'missing-ours')!.evidence.found, false);

    // The queue is a supervisor's: an operator is refused; each exception is resolved once.
    assert.equal(
      (
        await call('POST', `/api/clearance/exceptions/${mismatch.id}/resolution`, operator, {
          outcome: 'accepted',
          note: 'x',
        })
      ).statusCode,
      403,
    );
    for (const e of queue) {
      const resolved = await call('POST', `/api/clearance/exceptions/${e.id}/resolution`, supervisor, {
        outcome: e.kind === 'missing-theirs' ? 'resubmit' : 'accepted',
        note: `checked ${e.reference}`,
      });
      assert.equal(resolved.statusCode, 204, resolved.body);
    }
    const twice = await call('POST', `/api/clearance/exceptions/${mismatch.id}/resolution`, supervisor, {
      outcome: 'accepted',
      note: 'again',
    });
    assert.equal(twice.json().code, 'already-resolved');
    assert.equal((await call('GET', '/api/clearance/exceptions', operator)).json().exceptions.length, 0);
    const audit = await platform.db.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM operator_audit WHERE action = 'clearance.resolve'",
    );
    assert.equal(audit.rows[0].n, 4);
    // The settlement summary among the reports.
    const summary = (
      await call('GET', '/api/reporting/settlement?from=2026-06-01&to=2026-06-02', operator)
    ).json();
    assert.deepEqual(
      summary.rows.map((r: Record<string, unknown>) => [
        r.cardType,
        r.items,
        r.amount,
        r.delivered,
        r.reconciled,
        r.openExceptions,
      ]),
      [
        ['credit', 4, 663, 1, 1, 0],
        ['debit', 4, 393, 1, 1, 0],
        ['prepaid', 3, 903, 1, 1, 0],
      ],
    );
    assert.equal(summary.totals.amount, 1959);
    console.log(
      `      one day: ${batches.reduce((n, b) => n + b.items, 0)} items in ${batches.length} batches, ` +
        `${batches.reduce((n, b) => n + b.total, 0)} settled; delivered over SFTP, answers fetched; ` +
        `credit batch: ${creditResult.matched} matched, exceptions ${JSON.stringify(creditResult.exceptions)}; all resolved`,
    );
  });

  it('puts a sale recorded late into the next batch, never twice', async () => {
    const late = meters[2];
    late.transaction({ cardType: 1, charge: 75, minutes: 30 }, at('2026-06-01T20:00:00Z'));
    await platform.ingest.handleUplink(uplinkTopic(late.id), late.frame(4, 4));
    const next = (
      await call('POST', '/api/clearance/settlements', admin, { businessDay: '2026-06-02' })
    ).json().batches;
    assert.deepEqual(
      next.map((b: { cardType: string; items: number; total: number }) => [b.cardType, b.items, b.total]),
      [['debit', 1, 75]],
    );
  });

  it('refuses bad response files whole, with their reason, and loses nothing', async () => {
    const batch = (await call('GET', '/api/clearance/batches', operator)).json().batches.at(-1) as {
      id: number;
    };
    const before = await platform.db.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM clearing_exceptions',
    );
    const upload = (text: string) =>
      call('POST', '/api/clearance/responses?name=test.resp', supervisor, text, 'text/plain');
    const refused = async (text: string, status: number, code: string, message?: RegExp) => {
      const response = await upload(text);
      assert.equal(response.statusCode, status, response.body);
      assert.equal(response.json().code, code);
      if (message) assert.match(response.json().message, message);
    };
    await refused(`H|PLRESP|1|${batch.id}\nR|M1-1|ACCEPTED|5|\nT|1`, 400, 'bad-response-file', /cut short/);
    await refused(
      `H|PLRESP|1|${batch.id}\nR|M1-1|ACCEPTED|5|\nT|2\n`,
      400,
      'bad-response-file',
      /trailer counts 2/,
    );
    await refused(`H|PLRESP|1|${batch.id}\nR|M1-1|MAYBE|5|\nT|1\n`, 400, 'bad-response-file', /line 2/);
    await refused(`H|PLRESP|2|${batch.id}\nT|0\n`, 400, 'bad-response-file', /version 2/);
    await refused('H|PLRESP|1|987654321\nT|0\n', 404, 'unknown-batch');
    const after = await platform.db.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM clearing_exceptions',
    );
    assert.equal(after.rows[0].n, before.rows[0].n);
    // An operator may not import.
    assert.equal(
      (await call('POST', '/api/clearance/responses', operator, 'x', 'text/plain')).statusCode,
      403,
    );
  });

  it('refuses an SFTP server whose host key is not the pinned one, and records the attempt', async () => {
    const pinned = await startPlatform(backend, {
      clearance: {
        acquirer: 'acme',
        sftp: {
          host: '127.0.0.1',
          port: sshd!.port,
          username: userInfo().username,
          privateKey: sshd!.clientKey,
          hostKeySha256: 'SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
          outbox: join(dir, 'outbox'),
          inbox: join(dir, 'inbox'),
        },
      },
    });
    try {
      const root = await operatorLogin(pinned.platform.operators, 'admin');
      const meter = new TestMeter(ids[0] + 10, await pinned.platform.provisionMeter(ids[0] + 10, 'pinned'));
      meter.transaction({ cardType: 1, charge: 10 }, at('2026-06-01T10:00:00Z'));
      await pinned.platform.ingest.handleUplink(uplinkTopic(meter.id), meter.frame(1, 1));
      const [batch] = (
        await pinned.platform.app.inject({
          method: 'POST',
          url: '/api/clearance/settlements',
          headers: root.headers,
          payload: { businessDay: '2026-06-01' },
        })
      ).json().batches;
      const delivery = await pinned.platform.app.inject({
        method: 'POST',
        url: `/api/clearance/batches/${batch.id}/delivery`,
        headers: root.headers,
      });
      assert.equal(delivery.statusCode, 502, delivery.body);
      assert.match(delivery.json().message, /host key SHA256:\S+ is not the pinned/);
      const row = await pinned.platform.db.query<{ delivery_attempts: number; delivered_at: Date | null }>(
        'SELECT delivery_attempts, delivered_at FROM settlement_batches WHERE id = $1',
        [batch.id],
      );
      assert.deepEqual([row.rows[0].delivery_attempts, row.rows[0].delivered_at], [1, null]);
    } finally {
      await pinned.platform.close();
      await pinned.drop();
    }
  });
});
