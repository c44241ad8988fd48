// Alarm forwarding, on both backends: rules by severity and area to e-mail (through a real SMTP
// server, Debian's python3-aiosmtpd), a webhook (a local HTTP server) and SMS (the named simulator);
// deliveries written with the alarm, retried with a growing delay, given up visibly, tried again.
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { FRAME_VERSION, sealFrame } from '../../protocol/frame';
import { encodeSecurityEvent, KeyFrame } from '../../protocol/keys';
import { encodeStatusMessage, STATUS_FRAME, type StatusEvent } from '../../protocol/status';
import { uplinkTopic } from '../../protocol/topics';
import { startSmtpServer } from '../support/smtp';
import { until } from '../support/until';
import { SmtpMailSender } from '../../platform-server/alarms';
import { SimulatedSmsSender } from '../../platform-server/fleet/callIn';
import type { Platform } from '../../platform-server/platform';
import {
  crypto,
  forEachBackend,
  type OperatorLogin,
  operatorLogin,
  randomMeterId,
  startPlatform,
  TestMeter,
} from '../../sim/fleet/platform';

const T0 = 1_772_440_200;
const SECRET = 'a webhook secret for the tests';

forEachBackend('alarm forwarding', (backend) => {
  let platform: Platform;
  let drop: () => Promise<void>;
  let smtp: Awaited<ReturnType<typeof startSmtpServer>>;
  let mail: SmtpMailSender;
  let hooks: Server;
  let hookUrl = '';
  let hookStatus = 200;
  const hookCalls: { auth?: string; body: { action: string; alarm: { kind: string; id: number } } }[] = [];
  const sms = new SimulatedSmsSender();
  let nowMs = Date.now();
  let centre: TestMeter;
  let harbour: TestMeter;
  let admin: OperatorLogin;
  let supervisor: OperatorLogin;

  const send = async (m: TestMeter, type: number, body: Uint8Array) => {
    const frame = sealFrame(
      crypto,
      m.keys.uplink,
      { version: FRAME_VERSION, type, meterId: m.id, epoch: 1, seq: ++m.frameSeq },
      body,
    );
    assert.equal((await platform.ingest.handleUplink(uplinkTopic(m.id), frame)).ok, true);
    await platform.alarmForwarding.idle();
  };
  const tamper = (m: TestMeter, detail: string) =>
    send(
      m,
      KeyFrame.SECURITY,
      encodeSecurityEvent({ ev: 'tamper', epoch: 1, kcv: new Uint8Array(0), at: T0, detail }),
    );
  const statusEvent = (m: TestMeter, e: Omit<StatusEvent, 'kind' | 'at'>) =>
    send(m, STATUS_FRAME, encodeStatusMessage({ kind: 'event', at: T0, ...e }));
  const inject = (login: OperatorLogin, method: 'GET' | 'POST' | 'DELETE', url: string, payload?: object) =>
    platform.app.inject({ method, url, headers: login.headers, ...(payload ? { payload } : {}) });
  const deliveriesOf = async (alarmId: number) =>
    (await inject(supervisor, 'GET', `/api/alarm-deliveries?alarmId=${alarmId}`)).json().deliveries as {
      id: number;
      channel: string;
      state: string;
      attempts: number;
      lastError: string | null;
      nextAttemptAt: string | null;
    }[];
  const alarmId = async (m: TestMeter, kind: string) => {
    const alarms = (await inject(supervisor, 'GET', `/api/alarms?meterId=${m.id}`)).json().alarms;
    const found = alarms.find((a: { kind: string }) => a.kind === kind);
    assert.ok(found, `no ${kind} alarm`);
    return found.id as number;
  };

  before(async function () {
    this.timeout(60_000); // a Python start and a fresh database on a busy machine
    smtp = await startSmtpServer();
    mail = new SmtpMailSender(`smtp://127.0.0.1:${smtp.port}`, 'alarms@parklink.test');
    hooks = createServer((request: IncomingMessage, response) => {
      let text = '';
      request.on('data', (chunk) => {
        text += chunk;
      });
      request.on('end', () => {
        if (hookStatus === 200)
          hookCalls.push({ auth: request.headers.authorization, body: JSON.parse(text) });
        response.statusCode = hookStatus;
        response.end();
      });
    });
    await new Promise<void>((resolve) => hooks.listen(0, '127.0.0.1', resolve));
    hookUrl = `http://127.0.0.1:${(hooks.address() as AddressInfo).port}/alarms`;
    ({ platform, drop } = await startPlatform(backend, {
      smsSender: sms,
      alarms: { now: () => nowMs, sweepSeconds: 0 },
      alarmForwarding: { mail, now: () => nowMs, maxAttempts: 3, retrySeconds: 30, pollSeconds: 0 },
    }));
    admin = await operatorLogin(platform.operators, 'admin');
    supervisor = await operatorLogin(platform.operators, 'supervisor');
    const id = randomMeterId();
    centre = new TestMeter(id, await platform.provisionMeter(id, 'Market Square'));
    harbour = new TestMeter(id + 1, await platform.provisionMeter(id + 1, 'Harbour Road'));
    await platform.db.query("UPDATE meters SET area = 'centre' WHERE id = $1", [centre.id]);
    await platform.db.query("UPDATE meters SET area = 'harbour' WHERE id = $1", [harbour.id]);
  });

  after(async () => {
    await platform?.close();
    await drop?.();
    mail?.close();
    smtp?.stop();
    await new Promise<void>((resolve) => (hooks ? hooks.close(() => resolve()) : resolve()));
  });

  it('creates rules (admin only), checking each destination', async () => {
    const rule = {
      name: 'centre security by mail',
      channel: 'email',
      destination: 'parking-team@city.example',
      minSeverity: 'security',
      area: 'centre',
    };
    assert.equal((await inject(supervisor, 'POST', '/api/alarm-rules', rule)).statusCode, 403);
    const created = await inject(admin, 'POST', '/api/alarm-rules', rule);
    assert.equal(created.statusCode, 201, created.body);
    assert.equal(created.json().createdBy, admin.username);
    const hook = await inject(admin, 'POST', '/api/alarm-rules', {
      name: 'faults to the maintenance contractor',
      channel: 'webhook',
      destination: hookUrl,
      minSeverity: 'partial-fault',
      secret: SECRET,
    });
    assert.equal(hook.statusCode, 201, hook.body);
    assert.equal(hook.json().hasSecret, true);
    assert.equal(hook.json().secret, undefined);
    const text = await inject(admin, 'POST', '/api/alarm-rules', {
      name: 'on call',
      channel: 'sms',
      destination: '+447700900123',
      minSeverity: 'total-fault',
    });
    assert.equal(text.statusCode, 201, text.body);

    for (const [bad, field] of [
      [{ ...rule, destination: 'not an address' }, 'destination'],
      [{ ...rule, channel: 'sms', destination: '07700 900123' }, 'destination'],
      [{ ...rule, channel: 'webhook', destination: 'ftp://example.org/x' }, 'destination'],
      [{ ...rule, channel: 'webhook', destination: 'https://user:pw@example.org/x' }, 'destination'],
      [{ ...rule, secret: 'a secret for a mail rule' }, 'secret'],
      [{ ...rule, minSeverity: 'critical' }, 'minSeverity'],
    ] as const) {
      const res = await inject(admin, 'POST', '/api/alarm-rules', bad);
      assert.equal(res.statusCode, 400, `${JSON.stringify(bad)}: ${res.body}`);
      assert.equal(res.json().field, field);
    }
    const rules = (await inject(supervisor, 'GET', '/api/alarm-rules')).json().rules;
    assert.equal(rules.length, 3);
  });

  it('a tamper in the centre goes out by e-mail (a real SMTP server), webhook and SMS', async () => {
    await tamper(centre, 'cover opened without a maintenance session; keys wiped');
    const id = await alarmId(centre, 'tamper');
    const deliveries = await deliveriesOf(id);
    assert.deepEqual(deliveries.map((d) => [d.channel, d.state, d.attempts]).sort(), [
      ['email', 'sent', 1],
      ['sms', 'sent', 1],
      ['webhook', 'sent', 1],
    ]);
    const subject = `[ParkLink security] meter ${centre.id} Market Square (centre): tamper`;
    // Sent means the server took it; the whole message may still be on its way to our pipe.
    await until(() => smtp.messageWith(`Subject: ${subject}`) !== undefined, 'the e-mail printed');
    const message = smtp.messageWith(`Subject: ${subject}`) ?? '';
    assert.ok(message.includes('parking-team@city.example'), message);
    assert.ok(message.includes('keys wiped'), message);
    assert.equal(hookCalls.length, 1);
    assert.equal(hookCalls[0].auth, `Bearer ${SECRET}`);
    assert.equal(hookCalls[0].body.action, 'raised');
    assert.equal(hookCalls[0].body.alarm.id, id);
    assert.deepEqual(sms.sent, [
      { to: '+447700900123', text: `${subject}: cover opened without a maintenance session; keys wiped` },
    ]);
    const history = (await inject(supervisor, 'GET', `/api/alarms/${id}`)).json().history;
    assert.equal(history.filter((h: { action: string }) => h.action === 'forwarded').length, 3);
    // A repeat while open counts on the alarm and sends nothing more.
    await tamper(centre, 'again');
    assert.equal((await deliveriesOf(id)).length, 3);
  });

  it('forwards by severity and area: a warning, and security in another area, go to the rules that match', async () => {
    hookCalls.length = 0;
    await statusEvent(harbour, {
      event: 'battery-low',
      severity: 'warning',
      active: true,
      detail: 'main pack at 9 %',
    });
    assert.deepEqual(await deliveriesOf(await alarmId(harbour, 'battery-low')), []);
    await tamper(harbour, 'harbour cover');
    const channels = (await deliveriesOf(await alarmId(harbour, 'tamper'))).map((d) => d.channel).sort();
    assert.deepEqual(channels, ['sms', 'webhook'], 'the e-mail rule is for the centre only');
  });

  it('a failing webhook is retried with a growing delay, then given up visibly, and tried again by an admin', async () => {
    hookStatus = 500;
    hookCalls.length = 0;
    await statusEvent(centre, {
      event: 'escalation',
      severity: 'fault',
      active: true,
      detail: 'radio/link: no automatic repair',
    });
    const id = await alarmId(centre, 'module-failed');
    let [hook] = (await deliveriesOf(id)).filter((d) => d.channel === 'webhook');
    assert.equal(hook.state, 'pending');
    assert.equal(hook.attempts, 1);
    assert.equal(hook.lastError, 'alarm webhook answered 500');
    assert.equal(hook.nextAttemptAt, new Date(nowMs + 30_000).toISOString());
    const pending = (await inject(supervisor, 'GET', '/api/alarm-deliveries?state=pending')).json()
      .deliveries;
    assert.ok(
      pending.some((d: { id: number }) => d.id === hook.id),
      'listed while pending',
    );

    assert.deepEqual(await platform.alarmForwarding.deliverDue(), { sent: 0, failed: 0 }, 'not due yet');
    nowMs += 30_000;
    await platform.alarmForwarding.deliverDue();
    [hook] = (await deliveriesOf(id)).filter((d) => d.channel === 'webhook');
    assert.equal(hook.attempts, 2);
    assert.equal(hook.nextAttemptAt, new Date(nowMs + 60_000).toISOString(), 'the delay doubles');
    nowMs += 60_000;
    await platform.alarmForwarding.deliverDue();
    [hook] = (await deliveriesOf(id)).filter((d) => d.channel === 'webhook');
    assert.equal(hook.state, 'failed');
    assert.equal(hook.attempts, 3);
    assert.equal(hook.nextAttemptAt, null);
    const failed = (await inject(supervisor, 'GET', '/api/alarm-deliveries?state=failed')).json().deliveries;
    assert.deepEqual(
      failed.map((d: { id: number }) => d.id),
      [hook.id],
    );
    let history = (await inject(supervisor, 'GET', `/api/alarms/${id}`)).json().history;
    assert.ok(
      history.some(
        (h: { action: string; note: string }) => h.action === 'forward-failed' && h.note.includes('500'),
      ),
    );
    assert.equal(hookCalls.length, 0);

    hookStatus = 200;
    assert.equal(
      (await inject(supervisor, 'POST', `/api/alarm-deliveries/${hook.id}/retry`)).statusCode,
      403,
    );
    const retried = await inject(admin, 'POST', `/api/alarm-deliveries/${hook.id}/retry`);
    assert.equal(retried.statusCode, 200, retried.body);
    await platform.alarmForwarding.idle();
    [hook] = (await deliveriesOf(id)).filter((d) => d.channel === 'webhook');
    assert.equal(hook.state, 'sent');
    assert.equal(hookCalls.length, 1);
    const again = await inject(admin, 'POST', `/api/alarm-deliveries/${hook.id}/retry`);
    assert.equal(again.statusCode, 409);
    assert.equal(again.json().code, 'not-failed');
    history = (await inject(supervisor, 'GET', `/api/alarms/${id}`)).json().history;
    assert.ok(history.some((h: { action: string }) => h.action === 'forwarded'));
  });

  it('an unreachable phone number fails visibly; a disabled rule sends nothing more', async () => {
    sms.unreachable.add('+447700900123');
    await statusEvent(centre, {
      event: 'escalation',
      severity: 'fault',
      active: true,
      detail: 'reader/nfc: no answer',
    });
    const id = await alarmId(centre, 'module-failed');
    const text = (await deliveriesOf(id)).find((d) => d.channel === 'sms' && d.state !== 'sent');
    assert.ok(text, 'an SMS delivery that did not go');
    assert.match(text.lastError ?? '', /not reachable/);
    const rules = (await inject(supervisor, 'GET', '/api/alarm-rules')).json().rules;
    const smsRule = rules.find((r: { channel: string }) => r.channel === 'sms');
    const disabled = await inject(admin, 'DELETE', `/api/alarm-rules/${smsRule.id}`);
    assert.equal(disabled.statusCode, 200, disabled.body);
    assert.equal(disabled.json().enabled, false);
    const after = (await deliveriesOf(id)).find((d) => d.id === text.id);
    assert.equal(after?.state, 'failed');
    assert.equal(after?.lastError, 'rule disabled');
    await tamper(harbour, 'unused');
    const before = sms.sent.length;
    await statusEvent(harbour, {
      event: 'escalation',
      severity: 'fault',
      active: true,
      detail: 'power/gauge: no answer',
    });
    const channels = (await deliveriesOf(await alarmId(harbour, 'module-failed'))).map((d) => d.channel);
    assert.deepEqual(channels, ['webhook']);
    assert.equal(sms.sent.length, before);
    const audit = await platform.operators.auditLog({ operator: admin.username });
    assert.deepEqual([...new Set(audit.entries.map((e) => e.action))].filter((a) => a !== 'login').sort(), [
      'alarm-delivery.retry',
      'alarm-rule.create',
      'alarm-rule.disable',
      'refused',
    ]);
  });
});
