// The platform's fleet blacklist on PGlite, with meters played by the firmware's blacklist unit
// whose 0x0A answers go through ingest's gate: the API (roles, audit, no card number stored,
// sealed holder contacts), deltas and full resynchronisation, acknowledgements and the stale list,
// and the cloned-card review queue fed by a meter's operation record.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import Fastify from 'fastify';
import { EventBus } from '../../firmware/bus';
import type { MeterEvents } from '../../firmware/events';
import { BlacklistUnit } from '../../firmware/units/blacklist';
import { VirtualNorFlash } from '../../hal/mock/flash';
import {
  BLACKLIST_ACK_UPLINK,
  BLACKLIST_DOWNLINK,
  type BlacklistPush,
  decodeBlacklistPush,
  encodeBlacklistAck,
} from '../../protocol/blacklist';
import { toHex } from '../../protocol/bytes';
import { uplinkTopic } from '../../protocol/topics';
import { type BlacklistService, startBlacklist } from '../../platform-server/blacklist';
import { type Database, openDatabase } from '../../platform-server/core/db';
import { Ingest } from '../../platform-server/ingest/gate';
import { CardTokens } from '../../platform-server/keys/cardToken';
import { keystoreFromHex } from '../../platform-server/keys/keystore';
import { Operators } from '../../platform-server/operators/service';
import { type OperatorLogin, operatorLogin, quietLogger, TestMeter } from '../../sim/fleet/platform';

const keystore = keystoreFromHex('22'.repeat(32));
const cardTokenKey = randomBytes(32);
const tokens = new CardTokens(cardTokenKey);
const STOLEN = '6280000000000017';

interface Sent {
  meterId: number;
  type: number;
  push: BlacklistPush;
  body: Uint8Array;
}

describe('platform blacklist (PGlite)', () => {
  let db: Database;
  const app = Fastify({ logger: false });
  let ingest: Ingest;
  let service: BlacklistService;
  const sent: Sent[] = [];
  let viewer: OperatorLogin;
  let operator: OperatorLogin;
  let supervisor: OperatorLogin;
  let nextMeterId = 7100;

  /** A meter: the firmware's blacklist unit, its 0x0A answers sealed and handed to ingest. */
  class PlayedMeter {
    readonly test: TestMeter;
    unit: BlacklistUnit;
    bus = new EventBus<MeterEvents>();
    readonly uplinks: Uint8Array[] = [];
    constructor(readonly id: number) {
      this.test = new TestMeter(id, { ...keystore.meterKeys(id, 1), cardTokenKey });
      this.unit = this.#unit();
    }

    #unit(): BlacklistUnit {
      return new BlacklistUnit(new VirtualNorFlash({ byteLength: 2 * 4096, sectorSize: 4096 }), undefined, {
        bus: this.bus,
        send: (type, body) => {
          this.uplinks.push(this.test.frame(0, 0, { type, body }));
          return true;
        },
      });
    }

    /** A new, empty blacklist partition (the unit on a new bus, so the old one hears nothing). */
    replaceFlash(): void {
      this.bus = new EventBus<MeterEvents>();
      this.unit = this.#unit();
    }

    /** Hands the meter what was sent to it and the platform what it answered, until both are quiet. */
    async sync(): Promise<Sent[]> {
      const delivered: Sent[] = [];
      for (;;) {
        await service.settled();
        const mine = sent.filter((s) => s.meterId === this.id);
        for (const s of mine) sent.splice(sent.indexOf(s), 1);
        for (const s of mine) this.bus.emit('downlink', { type: s.type, seq: 0, body: s.body });
        delivered.push(...mine);
        const frames = this.uplinks.splice(0);
        for (const frame of frames) {
          const outcome = await ingest.handleUplink(uplinkTopic(this.id), frame);
          assert.equal(outcome.ok, true, JSON.stringify(outcome));
        }
        if (mine.length === 0 && frames.length === 0) return delivered;
      }
    }

    /** Sends a 0x0A as the meter would (to play a meter that says something else). */
    async report(version: number, ok = true, why?: string): Promise<void> {
      const body = encodeBlacklistAck(why === undefined ? { version, ok } : { version, ok, why });
      await ingest.handleUplink(
        uplinkTopic(this.id),
        this.test.frame(0, 0, { type: BLACKLIST_ACK_UPLINK, body }),
      );
    }
  }

  async function newMeter(online = true): Promise<PlayedMeter> {
    const id = nextMeterId++;
    await db.query(
      `INSERT INTO meters (id, name, key_epoch, last_seen_at) VALUES ($1, 'test', 1, ${online ? 'now()' : 'NULL'})`,
      [id],
    );
    return new PlayedMeter(id);
  }

  async function add(login: OperatorLogin, payload: Record<string, unknown>) {
    return app.inject({ method: 'POST', url: '/api/blacklist', headers: login.headers, payload });
  }

  before(async function () {
    this.timeout(60_000); // a new PGlite cluster, every migration and three operators' password hashes
    db = await openDatabase();
    const { migrate } = await import('../../platform-server/core/migrations');
    await migrate(db);
    const operators = new Operators(db);
    operators.install(app);
    viewer = await operatorLogin(operators, 'viewer');
    operator = await operatorLogin(operators, 'operator');
    supervisor = await operatorLogin(operators, 'supervisor');
    ingest = new Ingest({ db, keystore, logger: quietLogger, cardTokens: tokens });
    service = await startBlacklist(app, {
      db,
      keystore,
      cardTokens: tokens,
      ingest,
      guard: operators,
      keepChanges: 5,
      async sendDownlink(meterId, type, body) {
        sent.push({ meterId, type, body, push: decodeBlacklistPush(body) });
        return sent.length;
      },
    });
  });
  after(async () => {
    await service?.settled();
    await ingest.close();
    await app.close();
    await db.close();
  });

  it('lists a card by number (tokenised, the number stored nowhere) and refuses bad requests', async () => {
    const meter = await newMeter();
    await meter.report(0); // the meter's report at start: it holds version 0
    assert.equal((await add(viewer, { cardNumber: STOLEN, reason: 'stolen' })).statusCode, 403);
    const bad = await add(operator, { cardNumber: STOLEN, reason: 'lost' });
    assert.equal(bad.statusCode, 400);
    assert.equal((await add(operator, { cardNumber: '12ab', reason: 'stolen' })).statusCode, 400);
    const added = await add(operator, {
      cardNumber: STOLEN,
      reason: 'stolen',
      contact: { name: 'A. Holder', email: 'holder@example.org' },
    });
    assert.equal(added.statusCode, 201, added.body);
    assert.deepEqual(added.json(), {
      token: tokens.tokenHex(STOLEN),
      last4: '0017',
      reason: 'stolen',
      version: 1,
      changed: true,
    });
    // No table holds the number or the contact in clear.
    const dump = await db.query<{ t: string }>(
      `SELECT row_to_json(x)::text AS t FROM (
         SELECT card_token, card_last4, reason, added_by, encode(holder_contact, 'escape') AS c FROM blacklist_cards
         UNION ALL SELECT action, target, detail::text, username, '' FROM operator_audit) x`,
    );
    const all = dump.rows.map((r) => r.t).join('\n');
    assert.ok(all.includes(tokens.tokenHex(STOLEN)));
    assert.ok(!all.includes(STOLEN), 'the card number is stored nowhere');
    assert.ok(!all.includes('holder@example.org'), 'the contact is sealed');
    assert.ok(all.includes('blacklist.add'), 'the change is audited');

    // The online meter got the change as a delta on top of version 0 and acknowledged it.
    const delivered = await meter.sync();
    assert.deepEqual(
      delivered.map((s) => [s.type, s.push.kind]),
      [[BLACKLIST_DOWNLINK, 'delta']],
    );
    assert.equal(meter.unit.check(tokens.token(STOLEN)), 'stolen');
    assert.equal(meter.unit.version, 1);
  });

  it('shows the holder contacts to supervisors only, and audits every read', async () => {
    const token = tokens.tokenHex(STOLEN);
    const list = await app.inject({ method: 'GET', url: '/api/blacklist', headers: viewer.headers });
    assert.equal(list.statusCode, 200);
    const card = (list.json() as Record<string, unknown>[]).find((c) => c.token === token);
    assert.equal(card?.hasContact, true);
    assert.equal(JSON.stringify(list.json()).includes('holder@example.org'), false);
    const url = `/api/blacklist/${token}/contact`;
    assert.equal((await app.inject({ method: 'GET', url, headers: operator.headers })).statusCode, 403);
    const read = await app.inject({ method: 'GET', url, headers: supervisor.headers });
    assert.equal(read.statusCode, 200);
    assert.deepEqual(read.json(), { name: 'A. Holder', email: 'holder@example.org' });
    const audit = await db.query<{ username: string }>(
      `SELECT username FROM operator_audit WHERE action = 'blacklist.contact.read' AND target = $1`,
      [token],
    );
    assert.deepEqual(
      audit.rows.map((r) => r.username),
      [supervisor.username],
    );
  });

  it('lists a card by the token of a transaction the fleet holds, not by an unknown token', async () => {
    const meter = await newMeter();
    const number = '6280000000000991';
    meter.test.transaction({ cardNumber: number });
    const stored = await ingest.handleUplink(uplinkTopic(meter.id), meter.test.frame(1, 1));
    assert.equal(stored.ok, true);
    const unknown = await add(operator, { token: 'ab'.repeat(16), reason: 'bad-debt' });
    assert.equal(unknown.statusCode, 404);
    const added = await add(operator, { token: tokens.tokenHex(number), reason: 'bad-debt' });
    assert.equal(added.statusCode, 201, added.body);
    assert.equal(added.json().last4, '0991');
    // This meter's first report comes now: behind, it gets the full list (it acknowledged nothing).
    await meter.report(0);
    await meter.sync();
    assert.equal(meter.unit.check(tokens.token(number)), 'bad-debt');
    assert.equal(meter.unit.check(tokens.token(STOLEN)), 'stolen');
  });

  it('lists the meters behind the current version, and catches one up on its next contact', async () => {
    const offline = await newMeter(false);
    await offline.report(0);
    await offline.sync(); // its own report: caught up now
    const current = await service.currentVersion();
    assert.equal(offline.unit.version, current);
    await db.query('UPDATE meters SET last_seen_at = NULL WHERE id = $1', [offline.id]);
    const number = '6280000000000322';
    assert.equal((await add(operator, { cardNumber: number, reason: 'expired' })).statusCode, 201);
    await service.settled();
    assert.equal(
      sent.some((s) => s.meterId === offline.id),
      false,
      'an offline meter is not pushed to',
    );
    const stale = await app.inject({ method: 'GET', url: '/api/blacklist/stale', headers: viewer.headers });
    assert.equal(stale.statusCode, 200);
    const behind = (stale.json() as { version: number; meters: { meterId: number; ackedVersion: number }[] })
      .meters;
    assert.deepEqual(
      behind.find((m) => m.meterId === offline.id),
      {
        meterId: offline.id,
        ackedVersion: current,
        pushedVersion: current,
        lastSeenAt: null,
        online: false,
      },
    );
    // Its next contact (a record set): caught up with a delta, and off the stale list.
    offline.test.operation('boot', 'planned restart', null);
    await ingest.handleUplink(uplinkTopic(offline.id), offline.test.frame(1, 1));
    await new Promise((resolve) => setImmediate(resolve));
    await until(() => sent.some((s) => s.meterId === offline.id));
    const delivered = await offline.sync();
    assert.deepEqual(
      delivered.map((s) => s.push.kind),
      ['delta'],
    );
    assert.equal(offline.unit.check(tokens.token(number)), 'expired');
    const after = await service.stale();
    assert.equal(
      after.meters.some((m) => m.meterId === offline.id),
      false,
    );
  });

  it('resynchronises in full a meter too far behind, or holding a version the platform does not know', async () => {
    const behind = await newMeter();
    await behind.report(0);
    await behind.sync();
    // Six more changes than kept (keepChanges 5): version 0's successors are pruned.
    await db.query('UPDATE meters SET last_seen_at = NULL WHERE id = $1', [behind.id]);
    for (let i = 0; i < 6; i++)
      assert.equal(
        (await add(operator, { cardNumber: `62800000000100${10 + i}`, reason: 'stolen' })).statusCode,
        201,
      );
    await service.settled();
    const removed = await app.inject({
      method: 'DELETE',
      url: `/api/blacklist/${tokens.tokenHex('6280000000010010')}`,
      headers: operator.headers,
    });
    assert.equal(removed.statusCode, 200);
    const version = removed.json().version;
    await service.settled();
    await behind.report(behind.unit.version);
    const delivered = await behind.sync();
    assert.ok(delivered.length > 0 && delivered.every((s) => s.push.kind === 'page'));
    assert.equal(behind.unit.version, version);
    assert.equal(behind.unit.check(tokens.token('6280000000010010')), undefined, 'removed');
    assert.equal(behind.unit.check(tokens.token('6280000000010015')), 'stolen');
    assert.equal(behind.unit.size, (await service.list()).length);

    // A version from another platform (ahead of this one): full list.
    await behind.report(version + 40);
    const again = await behind.sync();
    assert.ok(again.length > 0 && again.every((s) => s.push.kind === 'page'));
    assert.equal(behind.unit.version, version);
  });

  it('sends a large list in pages that each fit a frame, and the meter holds all of it', async () => {
    for (let i = 0; i < 60; i++)
      await service.add({ cardNumber: `62800000000200${10 + i}`, reason: 'bad-debt' }, 'test');
    await service.settled();
    const fresh = await newMeter();
    await fresh.report(0);
    const delivered = await fresh.sync();
    const pages = delivered.filter((s) => s.push.kind === 'page');
    assert.ok(pages.length >= 2, `${pages.length} pages`);
    for (const page of pages) assert.ok(page.body.length <= 1024);
    assert.equal(fresh.unit.size, (await service.list()).length);
    assert.equal(fresh.unit.version, await service.currentVersion());
  });

  it('answers a delta refused for its base (a meter whose list was lost) with the full list', async () => {
    const meter = await newMeter();
    await meter.report(0);
    await meter.sync();
    assert.equal(meter.unit.version, await service.currentVersion());
    meter.replaceFlash(); // its blacklist partition erased: it holds version 0, the platform does not know
    assert.equal((await add(operator, { cardNumber: '6280000000000555', reason: 'stolen' })).statusCode, 201);
    const delivered = await meter.sync();
    // The delta on top of the version acknowledged is refused (base-mismatch); the full list follows.
    assert.equal(delivered[0].push.kind, 'delta');
    assert.ok(delivered.length > 1 && delivered.slice(1).every((s) => s.push.kind === 'page'));
    assert.equal(meter.unit.version, await service.currentVersion());
    assert.equal(meter.unit.size, (await service.list()).length);
  });

  it("puts a meter's cloned-card refusal in the review queue; a confirmation lists the card as cloned", async () => {
    const meter = await newMeter();
    await meter.report(0);
    await meter.sync();
    // As transactions.ts records it: no card token (the clone never authenticated), the UID in the detail.
    meter.test.operation('card-cloned', 'cloned card? UID 04090909: AUTH 1 proof does not verify', null);
    meter.test.operation('card-cloned', 'cloned card? UID 04a0a0a0: AUTH 1 proof does not verify', null);
    assert.equal((await ingest.handleUplink(uplinkTopic(meter.id), meter.test.frame(1, 2))).ok, true);
    await until(
      async () => (await service.reviews('pending')).filter((r) => r.meterId === meter.id).length === 2,
    );
    const queue = (
      await app.inject({
        method: 'GET',
        url: '/api/blacklist/reviews?status=pending',
        headers: operator.headers,
      })
    ).json() as { id: number; meterId: number; cardUid: string }[];
    const [first, second] = queue.filter((r) => r.meterId === meter.id);
    assert.deepEqual([first.cardUid, second.cardUid], ['04090909', '04a0a0a0']);
    const url = (id: number, what: string) => `/api/blacklist/reviews/${id}/${what}`;
    const noCard = await app.inject({
      method: 'POST',
      url: url(first.id, 'confirm'),
      headers: operator.headers,
      payload: {},
    });
    assert.equal(noCard.statusCode, 400, 'a UID-only report needs the genuine card named');
    const genuine = '6280000000000444';
    const confirmed = await app.inject({
      method: 'POST',
      url: url(first.id, 'confirm'),
      headers: operator.headers,
      payload: { cardNumber: genuine },
    });
    assert.equal(confirmed.statusCode, 200, confirmed.body);
    assert.equal(confirmed.json().status, 'confirmed');
    const dismissed = await app.inject({
      method: 'POST',
      url: url(second.id, 'dismiss'),
      headers: operator.headers,
    });
    assert.equal(dismissed.json().status, 'dismissed');
    const twice = await app.inject({
      method: 'POST',
      url: url(second.id, 'dismiss'),
      headers: operator.headers,
    });
    assert.equal(twice.statusCode, 409);
    const listed = (await service.list()).find((c) => c.token === tokens.tokenHex(genuine));
    assert.equal(listed?.reason, 'cloned');
    await meter.sync();
    assert.equal(meter.unit.check(tokens.token(genuine)), 'cloned');
    assert.equal(toHex(tokens.token(genuine)), tokens.tokenHex(genuine));
  });
});

async function until(condition: () => boolean | Promise<boolean>): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (await condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error('timed out');
}
