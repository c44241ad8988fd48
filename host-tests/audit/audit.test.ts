// The remote audit unit (16) on both backends: records ingested as meters send them, a bundle
// exported and checked again with the audit's own key access (not the platform's keystore object);
// rows altered behind the platform's back (UPDATE on records) are found, a clean run finds nothing,
// and a finding counts again only with a supervisor's recorded authorisation.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fromHex, toHex } from '../../protocol/bytes';
import { chainLink } from '../../protocol/chain';
import { uplinkTopic } from '../../protocol/topics';
import {
  type AuditReport,
  auditBundle,
  BUNDLE_FORMAT,
  type Bundle,
  exportBundle,
  openDocument,
  REPORT_FORMAT,
  sealDocument,
} from '../../platform-server/audit/audit';
import { AuthorisationRefused, authoriseFinding } from '../../platform-server/audit/authorisations';
import { nodeCrypto } from '../../platform-server/core/nodeCrypto';
import { importMasterToHsm } from '../../platform-server/keys/hsm';
import { createKeystoreFile, keystoreFromHex } from '../../platform-server/keys/keystore';
import { createSoftHsmToken, requireSoftHsm } from '../keys/softhsm';
import { createPlatform, type Platform } from '../../platform-server/platform';
import {
  crypto,
  forEachBackend,
  operatorLogin,
  quietLogger,
  randomMeterId,
  TestMeter,
} from '../../sim/fleet/platform';
import type * as Cli from '../../tools/parklink';

// By URL with its extension: '../../tools/parklink' would load the bin shim tools/parklink.js.
const { main }: typeof Cli = await import(new URL('../../tools/parklink.ts', import.meta.url).href);

const MASTER = toHex(randomBytes(32));

/** The audit as the tool runs it: the bundle through its sealed file text, keys of its own. */
function audit(bundle: Bundle): AuditReport {
  const { text, sha256 } = sealDocument(nodeCrypto, bundle);
  const opened = openDocument<Bundle>(nodeCrypto, text, BUNDLE_FORMAT);
  const keystore = keystoreFromHex(MASTER);
  try {
    return auditBundle(opened.document, { keystore, crypto: nodeCrypto, source: { kind: 'bundle', sha256 } });
  } finally {
    keystore.close();
  }
}

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { out: (t: string) => out.push(t), err: (t: string) => err.push(t) } };
}

forEachBackend('remote audit', (backend) => {
  let platform: Platform;
  let drop: () => Promise<void>;
  let dir: string;
  let databaseUrl: string | undefined;
  const meters: TestMeter[] = [];

  before(async function () {
    this.timeout(60_000);
    const fresh = await backend.fresh();
    drop = fresh.drop;
    databaseUrl = fresh.config.databaseUrl;
    platform = await createPlatform({
      ...fresh.config,
      httpLogger: false,
      logger: quietLogger,
      masterKey: MASTER,
      operators: { scrypt: { logN: 10, r: 8, p: 1 } },
    });
    dir = await mkdtemp(path.join(tmpdir(), 'parklink-audit-'));
    for (let m = 0; m < 2; m++) {
      const id = randomMeterId();
      const meter = new TestMeter(id, await platform.provisionMeter(id, `audit meter ${m}`));
      meter.transactions(6);
      meter.operation();
      meter.transactions(3);
      // Two sets per meter: records 1-5 and 6-10.
      for (const [from, to] of [
        [1, 5],
        [6, 10],
      ]) {
        const outcome = await platform.ingest.handleUplink(uplinkTopic(id), meter.frame(from, to));
        assert.equal(outcome.ok, true, JSON.stringify(outcome));
      }
      meters.push(meter);
    }
  });

  after(async () => {
    await platform?.close();
    await drop?.();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const selection = () => ({ meters: meters.map((m) => m.id) });

  it('keeps every record-set frame that brought new records, with its range and epoch', async () => {
    const sets = await platform.db.query<{ meter_id: number; first_seq: number; last_seq: number }>(
      'SELECT meter_id, first_seq, last_seq FROM record_sets WHERE meter_id = ANY($1::bigint[]) ORDER BY meter_id, first_seq',
      [meters.map((m) => m.id)],
    );
    assert.deepEqual(
      sets.rows.map((r) => [Number(r.meter_id), Number(r.first_seq), Number(r.last_seq)]),
      [...meters]
        .sort((a, b) => a.id - b.id)
        .flatMap((m) => [
          [m.id, 1, 5],
          [m.id, 6, 10],
        ]),
    );
  });

  it('a clean run checks every record and set and finds nothing', async () => {
    const report = audit(await exportBundle(platform.db, crypto, selection()));
    assert.equal(report.totals.meters, 2);
    assert.equal(report.totals.records, 20);
    assert.equal(report.totals.setsChecked, 4);
    assert.deepEqual(report.findings, []);
    assert.equal(report.totals.outstanding, 0);
    assert.equal(report.keystore.keyCheckValue, platform.keystore.keyCheckValue());
  });

  it('checks a bundle disconnected from the platform through the CLI, and refuses an altered bundle', async () => {
    const bundleFile = path.join(dir, 'clean.bundle.json');
    await writeFile(
      bundleFile,
      sealDocument(nodeCrypto, await exportBundle(platform.db, crypto, selection())).text,
    );
    const clean = capture();
    const env = { PARKLINK_MASTER_KEY: MASTER };
    const code = await main(
      ['audit', 'verify', '--bundle', bundleFile, '--report', path.join(dir, 'clean')],
      clean.io,
      env,
    );
    assert.equal(code, 0, clean.err.join('\n'));
    assert.match(clean.out.join('\n'), /records checked: 20 .*\n.*chain breaks: 0 +MAC failures: 0/);
    const written = openDocument<AuditReport>(
      nodeCrypto,
      await readFile(path.join(dir, 'clean.json'), 'utf8'),
      REPORT_FORMAT,
    ).document;
    assert.equal(written.totals.records, 20);
    assert.match(await readFile(path.join(dir, 'clean.txt'), 'utf8'), /result: every record counts/);

    // One hex digit of a record changed in the file: its hash no longer matches.
    const text = await readFile(bundleFile, 'utf8');
    const altered = text.replace(/"bytes":"(.)/, (_, c: string) => `"bytes":"${c === '8' ? '9' : '8'}`);
    assert.notEqual(altered, text);
    const alteredFile = path.join(dir, 'altered.bundle.json');
    await writeFile(alteredFile, altered);
    const refused = capture();
    const refusedCode = await main(
      ['audit', 'verify', '--bundle', alteredFile, '--report', path.join(dir, 'altered')],
      refused.io,
      env,
    );
    assert.equal(refusedCode, 4);
    assert.match(refused.err.join('\n'), /sha256 does not match/);

    // Usage: no report named; no key access of its own; both sources at once.
    for (const [args, message, keys] of [
      [['--bundle', bundleFile], /--report FILE is required/, env],
      [['--bundle', bundleFile, '--report', path.join(dir, 'nokeys')], /its own key access/, {}],
      [['--bundle', bundleFile, '--database', '--report', path.join(dir, 'both')], /one of --bundle/, env],
    ] as const) {
      const usage = capture();
      assert.equal(await main(['audit', 'verify', ...args], usage.io, keys), 2);
      assert.match(usage.err.join('\n'), message);
    }

    // Hashed as it should be but not a bundle's shape: refused, naming the field.
    const bundle = await exportBundle(platform.db, crypto, selection());
    const malformedFile = path.join(dir, 'malformed.bundle.json');
    const broken = { ...bundle, records: [{ ...bundle.records[0], link: 'not hex' }] };
    await writeFile(malformedFile, sealDocument(nodeCrypto, broken).text);
    const malformed = capture();
    assert.equal(
      await main(
        ['audit', 'verify', '--bundle', malformedFile, '--report', path.join(dir, 'malformed')],
        malformed.io,
        env,
      ),
      4,
    );
    assert.match(malformed.err.join('\n'), /records\[0\]\.link is not lower-case hex/);
  });

  it('checks with its own key access from a keystore file or an HSM (SoftHSM2), as the platform would', async function () {
    this.timeout(60_000);
    const bundleFile = path.join(dir, `keys-${randomBytes(4).toString('hex')}.bundle.json`);
    await writeFile(
      bundleFile,
      sealDocument(nodeCrypto, await exportBundle(platform.db, crypto, selection())).text,
    );
    const keystoreFile = path.join(dir, `keystore-${randomBytes(4).toString('hex')}.json`);
    const file = await createKeystoreFile(keystoreFile, 'audit passphrase', {
      master: fromHex(MASTER),
      scrypt: { logN: 10, r: 8, p: 1 },
    });
    file.close();
    const viaFile = capture();
    const fileEnv = {
      PARKLINK_KEYSTORE_FILE: keystoreFile,
      PARKLINK_KEYSTORE_PASSPHRASE: 'audit passphrase',
    };
    assert.equal(
      await main(
        ['audit', 'verify', '--bundle', bundleFile, '--report', `${keystoreFile}.report`],
        viaFile.io,
        fileEnv,
      ),
      0,
      viaFile.err.join('\n'),
    );
    assert.match(viaFile.out.join('\n'), /keys: file keystore.*\n.*records checked: 20/);

    requireSoftHsm(this);
    const token = createSoftHsmToken();
    try {
      importMasterToHsm(token.config, fromHex(MASTER));
      const viaHsm = capture();
      const hsmEnv = {
        PARKLINK_HSM_MODULE: token.config.module,
        PARKLINK_HSM_PIN: token.config.pin,
        PARKLINK_HSM_TOKEN: token.config.tokenLabel,
        SOFTHSM2_CONF: process.env.SOFTHSM2_CONF,
      };
      assert.equal(
        await main(
          ['audit', 'verify', '--bundle', bundleFile, '--report', path.join(token.dir, 'report')],
          viaHsm.io,
          hsmEnv,
        ),
        0,
        viaHsm.err.join('\n'),
      );
      assert.match(
        viaHsm.out.join('\n'),
        /keys: hsm keystore.*\n.*records checked: 20 .*\n.*chain breaks: 0 +MAC failures: 0/,
      );
    } finally {
      token.remove();
    }
  });

  it('finds a record whose bytes were changed by an UPDATE on the records table', async () => {
    const [meter] = meters;
    await platform.db.query(
      `UPDATE records SET bytes = set_byte(bytes, length(bytes) - 1, get_byte(bytes, length(bytes) - 1) # 1)
        WHERE meter_id = $1 AND seq = 3`,
      [meter.id],
    );
    const report = audit(await exportBundle(platform.db, crypto, selection()));
    assert.equal(report.totals.chainBreaks, 1);
    assert.equal(report.totals.notInSet, 1);
    assert.deepEqual(
      report.findings.map((f) => [f.meterId, f.seq, f.finding]),
      [[meter.id, 3, 'chain-break']],
    );
    assert.equal(report.totals.outstanding, 1);
  });

  it('finds a record rewritten with its chain recomputed: only the MAC over its set catches it', async () => {
    const meter = meters[1];
    // A new charge at record 7, then every link from 7 on recomputed as a careful forger would.
    const rows = await platform.db.query<{ seq: number; bytes: Uint8Array; link: Uint8Array }>(
      'SELECT seq, bytes, link FROM records WHERE meter_id = $1 ORDER BY seq',
      [meter.id],
    );
    let previous = rows.rows[5].link;
    for (const row of rows.rows.slice(6)) {
      const bytes = Uint8Array.from(row.bytes);
      if (Number(row.seq) === 7) bytes[bytes.length - 1] ^= 1;
      const link = chainLink(crypto, previous, bytes);
      await platform.db.query('UPDATE records SET bytes = $3, link = $4 WHERE meter_id = $1 AND seq = $2', [
        meter.id,
        Number(row.seq),
        bytes,
        link,
      ]);
      previous = link;
    }
    const report = audit(await exportBundle(platform.db, crypto, { meters: [meter.id] }));
    assert.equal(report.totals.chainBreaks, 0);
    // Record 7 carries other bytes than its set; 8-10 carry other links than their set.
    assert.deepEqual(
      report.findings.map((f) => [f.seq, f.finding]),
      [
        [7, 'not-in-set'],
        [8, 'not-in-set'],
        [9, 'not-in-set'],
        [10, 'not-in-set'],
      ],
    );
  });

  it('a finding counts again only with a supervisor’s authorisation, recorded and audited', async () => {
    const [meter] = meters;
    const bundle = await exportBundle(platform.db, crypto, { meters: [meter.id] });
    const report = audit(bundle);
    const reportSha256 = sealDocument(nodeCrypto, report).sha256;
    const request = { report, reportSha256, meterId: meter.id, seq: 3, reason: 'paper receipt 4411 matches' };
    await platform.operators.create(
      { username: 'audit-operator', role: 'operator', password: 'an operator password' },
      { id: null, username: 'test-setup' },
    );
    await platform.operators.create(
      { username: 'audit-supervisor', role: 'supervisor', password: 'a supervisor password' },
      { id: null, username: 'test-setup' },
    );
    const ids = await platform.db.query<{ id: number; username: string }>(
      "SELECT id, username FROM operators WHERE username LIKE 'audit-%'",
    );
    const idOf = (name: string) => Number(ids.rows.find((r) => r.username === name)?.id);
    await assert.rejects(
      authoriseFinding(
        platform.db,
        nodeCrypto,
        { id: idOf('audit-operator'), username: 'audit-operator', role: 'operator' },
        request,
      ),
      (error) => error instanceof AuthorisationRefused && error.code === 'not-supervisor',
    );
    const supervisor = {
      id: idOf('audit-supervisor'),
      username: 'audit-supervisor',
      role: 'supervisor' as const,
    };
    await assert.rejects(
      authoriseFinding(platform.db, nodeCrypto, supervisor, { ...request, seq: 4 }),
      (error) => error instanceof AuthorisationRefused && error.code === 'no-finding',
    );
    await assert.rejects(
      authoriseFinding(platform.db, nodeCrypto, supervisor, { ...request, reason: 'ok' }),
      (error) => error instanceof AuthorisationRefused && error.code === 'bad-reason',
    );
    const given = await authoriseFinding(platform.db, nodeCrypto, supervisor, request);
    assert.equal(given.username, 'audit-supervisor');
    assert.equal(given.finding, 'chain-break');

    const audited = await platform.db.query<{
      action: string;
      target: string;
      detail: { reportSha256: string };
    }>(
      "SELECT action, target, detail FROM operator_audit WHERE action = 'audit.authorise' AND meter_id = $1",
      [meter.id],
    );
    assert.equal(audited.rows.length, 1);
    assert.equal(audited.rows[0].target, 'record 3');
    assert.equal(audited.rows[0].detail.reportSha256, reportSha256);

    const again = audit(await exportBundle(platform.db, crypto, { meters: [meter.id] }));
    assert.equal(again.totals.authorised, 1);
    assert.equal(again.totals.outstanding, 0);
    assert.equal(again.findings[0].authorisation?.username, 'audit-supervisor');

    // Changed again after the authorisation: it no longer covers the record.
    await platform.db.query(
      `UPDATE records SET bytes = set_byte(bytes, length(bytes) - 1, get_byte(bytes, length(bytes) - 1) # 2)
        WHERE meter_id = $1 AND seq = 3`,
      [meter.id],
    );
    const changed = audit(await exportBundle(platform.db, crypto, { meters: [meter.id] }));
    assert.equal(changed.totals.authorised, 0);
    assert.equal(changed.totals.outstanding, 1);
    await assert.rejects(
      authoriseFinding(platform.db, nodeCrypto, supervisor, request),
      (error) => error instanceof AuthorisationRefused && error.code === 'changed',
    );
  });

  it('reports the records the platform never received as gaps', async () => {
    const id = randomMeterId();
    const meter = new TestMeter(id, await platform.provisionMeter(id, 'audit meter with a gap'));
    meter.transactions(8);
    for (const [from, to] of [
      [1, 3],
      [6, 8],
    ]) {
      const outcome = await platform.ingest.handleUplink(uplinkTopic(id), meter.frame(from, to));
      assert.equal(outcome.ok, true, JSON.stringify(outcome));
    }
    const report = audit(await exportBundle(platform.db, crypto, { meters: [id] }));
    assert.equal(report.totals.records, 6);
    assert.equal(report.totals.gaps, 1);
    assert.deepEqual(report.meters[0].gaps, [{ from: 4, to: 5 }]);
    assert.deepEqual(report.findings, []);
  });

  it('a reproducible random sample checks each picked record against its predecessor and its set', async () => {
    const meter = meters[0];
    const sample = { count: 4, seed: 'audit seed 1' };
    const first = await exportBundle(platform.db, crypto, { meters: [meter.id], sample });
    const second = await exportBundle(platform.db, crypto, { meters: [meter.id], sample });
    assert.deepEqual(
      first.records.map((r) => r.seq),
      second.records.map((r) => r.seq),
    );
    assert.equal(first.records.length, 4);
    const report = audit(first);
    assert.equal(report.totals.records, 4);
    // Every sampled record but 3 (altered above) passes: checked against the held link before it.
    assert.deepEqual(
      report.findings.map((f) => f.seq),
      first.records.filter((r) => r.seq === 3).map((r) => r.seq),
    );
  });

  it('exports a sealed bundle over the API to an admin only, audited', async () => {
    const admin = await operatorLogin(platform.operators, 'admin');
    const supervisor = await operatorLogin(platform.operators, 'supervisor');
    const meter = meters[1];
    const url = `/api/audit/bundle?meter=${meter.id}&sample=3&seed=api`;
    const refused = await platform.app.inject({ method: 'GET', url, headers: supervisor.headers });
    assert.equal(refused.statusCode, 403);
    const response = await platform.app.inject({ method: 'GET', url, headers: admin.headers });
    assert.equal(response.statusCode, 200, response.body);
    const { document, sha256 } = openDocument<Bundle>(nodeCrypto, response.body, BUNDLE_FORMAT);
    assert.equal(document.records.length, 3);
    assert.ok(document.records.every((r) => r.meterId === meter.id));
    assert.equal(audit(document).totals.records, 3);
    const audited = await platform.db.query<{ detail: { sha256: string } }>(
      "SELECT detail FROM operator_audit WHERE action = 'audit.export' AND username = $1",
      [admin.username],
    );
    assert.equal(audited.rows[0]?.detail.sha256, sha256);
    const bad = await platform.app.inject({
      method: 'GET',
      url: '/api/audit/bundle?seed=x',
      headers: admin.headers,
    });
    assert.equal(bad.statusCode, 400);
  });

  it('exports, audits straight from the database and records an authorisation through the CLI', async function () {
    // The embedded backend's database lives inside this process: only the real one has a URL.
    if (!databaseUrl) this.skip();
    const meter = meters[0];
    const env = { DATABASE_URL: databaseUrl, PARKLINK_MASTER_KEY: MASTER };
    const exported = capture();
    const bundleFile = path.join(dir, 'cli.bundle.json');
    assert.equal(
      await main(['audit', 'export', '--out', bundleFile, '--meter', String(meter.id)], exported.io, env),
      0,
    );
    assert.equal(JSON.parse(exported.out[0]).records, 10);

    const verified = capture();
    const reportBase = path.join(dir, 'cli-db');
    const code = await main(
      ['audit', 'verify', '--database', '--meter', String(meter.id), '--report', reportBase],
      verified.io,
      env,
    );
    assert.equal(code, 1, verified.err.join('\n'));
    assert.match(verified.out.join('\n'), /chain-break meter \d+ record 3: .*OUTSTANDING/);

    const authorised = capture();
    const authoriseCode = await main(
      [
        'audit',
        'authorise',
        '--report',
        `${reportBase}.json`,
        '--meter',
        String(meter.id),
        '--seq',
        '3',
        '--supervisor',
        'audit-supervisor',
        '--reason',
        'checked against the paper roll',
        '--password-stdin',
      ],
      { ...authorised.io, readStdin: async () => 'a supervisor password\n' },
      env,
    );
    assert.equal(authoriseCode, 0, authorised.err.join('\n'));
    assert.equal(JSON.parse(authorised.out.join('\n')).authorisation.username, 'audit-supervisor');

    const after = capture();
    const afterCode = await main(
      ['audit', 'verify', '--database', '--meter', String(meter.id), '--report', path.join(dir, 'cli-after')],
      after.io,
      env,
    );
    assert.equal(afterCode, 0, after.out.join('\n'));
    assert.match(after.out.join('\n'), /authorised by audit-supervisor/);
  });
});
