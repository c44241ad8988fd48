// The database goes away while ingest hands a stored transaction to pay by phone: the pairing fails
// without an unhandled rejection, is logged, kept and done on the next tick once the database is
// back; nothing is paired twice. Embedded: PGlite behind a wrapper that fails as pg does when the
// connection drops. Real: PostgreSQL through a TCP proxy that drops every connection.
import assert from 'node:assert/strict';
import sinon from 'sinon';
import { VirtualClock } from '../../hal/mock/clock';
import { type Database, openDatabase } from '../../platform-server/core/db';
import { migrate } from '../../platform-server/core/migrations';
import type { StoredRecord } from '../../platform-server/ingest/gate';
import { keystoreFromHex } from '../../platform-server/keys/keystore';
import { deriveCardTokenKey } from '../../platform-server/keys/cardToken';
import { nobleCrypto } from '../../hal/nobleCrypto';
import { isConnectionError, type PhoneService } from '../../platform-server/phone/service';
import { forEachBackend, randomMeterId, TestMeter } from '../../sim/fleet/platform';
import { OutageProxy } from '../support/outageProxy';
import { standalonePhoneService } from './support';

/** PGlite failing as pg does when PostgreSQL goes away, while `down`. */
function flaky(db: Database): Database & { down: boolean } {
  const lost = () => Object.assign(new Error('Connection terminated unexpectedly'), { code: undefined });
  const wrapper = {
    kind: db.kind,
    down: false,
    async query(sql: string, params?: readonly unknown[]) {
      if (wrapper.down) throw lost();
      return db.query(sql, params as never);
    },
    async exec(sql: string) {
      if (wrapper.down) throw lost();
      return db.exec(sql);
    },
    async copyIn(rows: Parameters<Database['copyIn']>[0]) {
      if (wrapper.down) throw lost();
      return db.copyIn(rows);
    },
    async transaction<T>(fn: Parameters<Database['transaction']>[0]) {
      if (wrapper.down) throw lost();
      return db.transaction(fn) as Promise<T>;
    },
    close: () => db.close(),
  };
  return wrapper as unknown as Database & { down: boolean };
}

describe('isConnectionError', () => {
  it('tells a lost connection from other errors', () => {
    assert.equal(isConnectionError(new Error('Connection terminated unexpectedly')), true);
    assert.equal(isConnectionError(Object.assign(new Error('x'), { code: 'ECONNREFUSED' })), true);
    assert.equal(isConnectionError(Object.assign(new Error('x'), { code: '57P01' })), true);
    assert.equal(isConnectionError(Object.assign(new Error('x'), { code: '08006' })), true);
    assert.equal(isConnectionError(Object.assign(new Error('dup'), { code: '23505' })), false);
    assert.equal(isConnectionError(new TypeError('x is undefined')), false);
  });
});

forEachBackend('pay by phone pairing through a database outage', (backend) => {
  const clock = new VirtualClock('2026-06-01T09:00:00Z');
  const meterId = randomMeterId();
  const keystore = keystoreFromHex('22'.repeat(32));
  const logger = { info: sinon.spy(), warn: sinon.spy(), error: sinon.spy() };
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  let drop: () => Promise<void>;
  let db: Database;
  let proxy: OutageProxy | undefined;
  let setDown: (down: boolean) => void;
  let service: PhoneService;
  let driverId: number;

  before(async () => {
    process.on('unhandledRejection', onUnhandled);
    const fresh = await backend.fresh();
    drop = fresh.drop;
    if (fresh.config.databaseUrl) {
      const url = new URL(fresh.config.databaseUrl);
      proxy = new OutageProxy(url.hostname, Number(url.port || 5432));
      await proxy.start();
      url.host = `127.0.0.1:${proxy.port}`;
      db = await openDatabase({ url: url.toString() });
      const p = proxy;
      setDown = (down) => (down ? p.down() : p.up());
    } else {
      const wrapped = flaky(await openDatabase());
      db = wrapped;
      setDown = (down) => {
        wrapped.down = down;
      };
    }
    await migrate(db);
    await db.query('INSERT INTO meters (id, name, key_epoch) VALUES ($1, $2, 1)', [meterId, 'outage']);
    service = standalonePhoneService(db, keystore, { logger, clock });
    const { driver } = await service.register({
      name: 'Outage Driver',
      phone: '+447700900555',
      email: 'outage@example.org',
      password: 'correct horse battery',
    });
    driverId = driver.id;
    await service.addCard(driverId, { cardNumber: '6280123400030050' });
  });

  after(async () => {
    process.off('unhandledRejection', onUnhandled);
    setDown?.(false);
    await service?.close();
    await db?.close();
    await proxy?.close();
    await drop?.();
  });

  it('keeps the pairing of a record stored while the database went away, and does it once it is back', async () => {
    const meter = new TestMeter(meterId, {
      ...keystore.meterKeys(meterId, 1),
      cardTokenKey: deriveCardTokenKey(nobleCrypto, keystore),
    });
    const time = Math.floor(clock.now() / 1000);
    const record = meter.transaction(
      { cardNumber: '6280123400030050', cardType: 2, bayId: 3, minutes: 30 },
      time,
    );
    const stored: StoredRecord = {
      meterId,
      record,
      bytes: meter.bytes(record.seq),
      link: meter.link(record.seq),
    };

    setDown(true);
    service.onStored(stored);
    await service.settled();
    assert.equal(service.pairingBacklog, 1, 'kept for a retry');
    assert.ok(
      logger.warn.calledWithMatch(
        { meterId, seq: record.seq },
        'pairing failed; will retry on the next tick',
      ),
    );
    assert.equal(logger.error.callCount, 0);

    // A tick while the database is still away fails (the scheduler logs it) and keeps the record.
    await assert.rejects(service.tick());
    await service.settled();
    assert.equal(service.pairingBacklog, 1);

    setDown(false);
    await service.tick();
    assert.equal(service.pairingBacklog, 0);
    const sessions = await service.sessions(driverId, 'active');
    assert.equal(sessions.length, 1);
    assert.equal(sessions[0].bayId, 3);
    assert.equal(sessions[0].paidUntil, new Date((time + 30 * 60) * 1000).toISOString());
    const receipts = (await service.messages(driverId)).filter((m) => m.kind === 'receipt');
    assert.equal(receipts.length, 1);

    // Handed again (a redelivery), it changes nothing.
    service.onStored(stored);
    await service.tick();
    assert.equal((await service.sessions(driverId, 'all')).length, 1);
    assert.deepEqual(unhandled, [], 'no unhandled rejection');
  });
});
