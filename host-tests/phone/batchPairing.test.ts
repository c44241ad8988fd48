// Ingest hands pay by phone a whole batch of stored records at once ('committed'). One query finds
// the records that concern it; only those take a transaction each, and the order within the batch
// still holds: a registered card's first tap pairs, a later stranger's tap at that bay ends it.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { nobleCrypto } from '../../hal/nobleCrypto';
import { ProtocolError } from '../../protocol/errors';
import { toHex } from '../../protocol/bytes';
import { cardToken } from '../../protocol/cardToken';
import { deriveCardTokenKey } from '../../platform-server/keys/cardToken';
import { VirtualClock } from '../../hal/mock/clock';
import { type Database, openDatabase } from '../../platform-server/core/db';
import { migrate } from '../../platform-server/core/migrations';
import type { StoredRecord } from '../../platform-server/ingest/gate';
import { keystoreFromHex } from '../../platform-server/keys/keystore';
import type { PhoneService } from '../../platform-server/phone/service';
import type { TransactionData } from '../../protocol/records';
import { forEachBackend, randomMeterId, TestMeter } from '../../sim/fleet/platform';
import { standalonePhoneService } from './support';

const REGISTERED = '6280123400020077';

/** The database, counting the transactions opened through it. */
function counting(db: Database): Database & { transactions: number } {
  const wrapper = Object.create(db) as Database & { transactions: number };
  wrapper.transactions = 0;
  wrapper.transaction = (fn) => {
    wrapper.transactions++;
    return db.transaction(fn);
  };
  return wrapper;
}

forEachBackend('pay by phone pairing, a batch at a time', (backend) => {
  const clock = new VirtualClock('2026-06-01T09:00:00Z');
  const keystore = keystoreFromHex('23'.repeat(32));
  let drop: () => Promise<void>;
  let inner: Database;
  let db: Database & { transactions: number };
  let service: PhoneService;
  let driverId: number;

  before(async () => {
    const fresh = await backend.fresh();
    drop = fresh.drop;
    inner = await openDatabase({ url: fresh.config.databaseUrl });
    await migrate(inner);
    db = counting(inner);
    service = standalonePhoneService(db, keystore, { clock });
    const { driver } = await service.register({
      name: 'Batch Driver',
      phone: '+447700900777',
      email: 'batch@example.org',
      password: 'correct horse battery',
    });
    driverId = driver.id;
    await service.addCard(driverId, { cardNumber: REGISTERED });
  });

  after(async () => {
    await service?.close();
    await inner?.close();
    await drop?.();
  });

  async function newMeter(): Promise<TestMeter> {
    const id = randomMeterId();
    await inner.query('INSERT INTO meters (id, name, key_epoch) VALUES ($1, $2, 1)', [id, 'batch']);
    return new TestMeter(id, {
      ...keystore.meterKeys(id, 1),
      cardTokenKey: deriveCardTokenKey(nobleCrypto, keystore),
    });
  }

  function sale(meter: TestMeter, data: Partial<TransactionData> & { cardNumber?: string }): StoredRecord {
    const record = meter.transaction({ minutes: 30, ...data }, Math.floor(clock.now() / 1000));
    return { meterId: meter.id, record, bytes: meter.bytes(record.seq), link: meter.link(record.seq) };
  }

  it('tokens cards as protocol/cardToken.ts cardToken does, and refuses what is not a card number', () => {
    const tokenKey = new Uint8Array(32).fill(0x42);
    const tokens = standalonePhoneService(db, keystore, { tokenKey });
    fc.assert(
      fc.property(fc.stringMatching(/^[0-9]{8,19}$/), (card) => {
        assert.equal(tokens.tokenOf(card), toHex(cardToken(nobleCrypto, tokenKey, card)));
      }),
      { numRuns: 300 },
    );
    for (const bad of ['', '1234567', '12345678901234567890', '6280 1234 0003 0050', '62801234000000５0']) {
      assert.throws(() => tokens.tokenOf(bad), ProtocolError);
      assert.throws(() => cardToken(nobleCrypto, tokenKey, bad), ProtocolError);
    }
  });

  it('opens a transaction only for the records that concern it, in batch order', async () => {
    const meter = await newMeter();
    const before = db.transactions;
    service.onStoredBatch([
      sale(meter, { bayId: 1, cardNumber: '6280999900010001' }),
      sale(meter, { bayId: 2, cardNumber: REGISTERED }),
      sale(meter, { bayId: 3, cardNumber: '6280999900090003' }),
      sale(meter, { bayId: 2, cardNumber: '6280999900000002' }),
      sale(meter, { bayId: 4, cardNumber: '6280999900080004' }),
    ]);
    await service.settled();
    assert.equal(db.transactions - before, 2, 'the registered tap and the later tap at its bay');
    const sessions = (await service.sessions(driverId, 'all')).filter((s) => s.meterId === meter.id);
    assert.equal(sessions.length, 1);
    assert.equal(sessions[0].bayId, 2);
    assert.equal(sessions[0].status, 'ended');
    assert.equal(sessions[0].endReason, 'next-user');
  });

  it('finds the registered card among records of other kinds and other meters, by its place in the batch', async () => {
    const [first, second] = [await newMeter(), await newMeter()];
    const refusal = (meter: TestMeter): StoredRecord => {
      const record = meter.operation(
        'card-refused',
        'blacklisted',
        '6280999900070007',
        Math.floor(clock.now() / 1000),
      );
      return { meterId: meter.id, record, bytes: meter.bytes(record.seq), link: meter.link(record.seq) };
    };
    const before = db.transactions;
    service.onStoredBatch([
      refusal(first),
      sale(first, { bayId: 1, cardNumber: '6280999900060001' }),
      refusal(second),
      refusal(second),
      sale(second, { bayId: 5, cardNumber: REGISTERED }),
      sale(first, { bayId: 5, cardNumber: '6280999900060005' }),
    ]);
    await service.settled();
    assert.equal(
      db.transactions - before,
      1,
      'the registered tap alone: bay 5 of the first meter is another bay',
    );
    const sessions = (await service.sessions(driverId, 'active')).filter((s) =>
      [first.id, second.id].includes(s.meterId),
    );
    assert.deepEqual(
      sessions.map((s) => [s.meterId, s.bayId]),
      [[second.id, 5]],
    );
  });

  it('sees a session paired by an earlier batch, and leaves strangers at other bays alone', async () => {
    const meter = await newMeter();
    service.onStoredBatch([sale(meter, { bayId: 7, cardNumber: REGISTERED })]);
    await service.settled();
    let sessions = (await service.sessions(driverId, 'active')).filter((s) => s.meterId === meter.id);
    assert.equal(sessions.length, 1);

    const before = db.transactions;
    service.onStoredBatch([
      sale(meter, { bayId: 8, cardNumber: '6280999900040008' }),
      sale(meter, { bayId: 7, cardNumber: '6280999900050007' }),
    ]);
    await service.settled();
    assert.equal(db.transactions - before, 1, 'only the tap at the paired bay');
    sessions = (await service.sessions(driverId, 'all')).filter((s) => s.meterId === meter.id);
    assert.equal(sessions[0].status, 'ended');
    assert.equal(sessions[0].endReason, 'next-user');
  });

  describe('after an instance stopped between the commit and pairing', () => {
    /** The records table row ingest would have written. */
    const store = (s: StoredRecord) =>
      inner.query(
        'INSERT INTO records (meter_id, seq, kind, recorded_at, bytes, link) VALUES ($1, $2, $3, $4, $5, $6)',
        [s.meterId, s.record.seq, s.record.kind, new Date(s.record.time * 1000), s.bytes, s.link],
      );
    const mark = async (meterId: number) =>
      (
        await inner.query<{ last_seq: number }>(
          'SELECT last_seq FROM phone_pairing_marks WHERE meter_id = $1',
          [meterId],
        )
      ).rows[0]?.last_seq;

    it('the sweep looks at the records pairing never saw, in order, and then at nothing more', async () => {
      const sweeper = standalonePhoneService(inner, keystore, { clock, pairingSweepAfterMs: 0 });
      const meter = await newMeter();
      const first = sale(meter, { bayId: 4, cardNumber: '6280999900030041' });
      const lost = sale(meter, { bayId: 5, cardNumber: REGISTERED });
      const third = sale(meter, { bayId: 6, cardNumber: '6280999900080061' });
      for (const s of [first, lost, third]) await store(s);

      service.onStoredBatch([first]);
      await service.settled();
      assert.equal(await mark(meter.id), 1, 'a first batch sets the mark');
      // The batch with record 2 never reached pairing; record 3 did, after the hole.
      service.onStoredBatch([third]);
      await service.settled();
      assert.equal(await mark(meter.id), 1, 'not advanced over the hole');
      assert.equal(
        (await service.sessions(driverId, 'active')).filter((x) => x.meterId === meter.id).length,
        0,
      );

      assert.equal(await sweeper.sweepPairings(), 2, 'records 2 and 3');
      const sessions = (await service.sessions(driverId, 'active')).filter((x) => x.meterId === meter.id);
      assert.equal(sessions.length, 1);
      assert.equal(sessions[0].bayId, 5);
      assert.equal(await mark(meter.id), 3);
      assert.equal(await sweeper.sweepPairings(), 0);
      assert.equal((await service.sessions(driverId, 'all')).filter((x) => x.meterId === meter.id).length, 1);
      await sweeper.close();
    });

    it('leaves records younger than pairingSweepAfterMs to the live path', async () => {
      const meter = await newMeter();
      const first = sale(meter, { bayId: 1, cardNumber: '6280999900090011' });
      await store(first);
      service.onStoredBatch([first]);
      await service.settled();
      await store(sale(meter, { bayId: 2, cardNumber: REGISTERED })); // not handed yet
      assert.equal(await service.sweepPairings(), 0, 'default: a minute old at least');
      assert.equal(await mark(meter.id), 1);
    });
  });
});
