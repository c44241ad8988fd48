// No full card number at rest: the meter records a card as its keyed token and last four digits,
// the blacklist matches tokens, the platform stores and shows no more, pay by phone recognises a
// card again by its token, and what was stored before card tokens (meter blacklist, platform rows,
// format 1 records) is converted.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SlotStore } from '../../firmware/units/slotStore';
import { Meter } from '../../firmware/meter';
import { provisionBoard } from '../../firmware/units/security';
import { purseCard } from '../../hal/mock/cards';
import { VirtualBoard } from '../../hal/mock/board';
import { VirtualClock } from '../../hal/mock/clock';
import { VirtualBroker } from '../../hal/mock/mqtt';
import { nobleCrypto } from '../../hal/nobleCrypto';
import { openDatabase, type Queryable } from '../../platform-server/core/db';
import { loadMigrations, migrate } from '../../platform-server/core/migrations';
import { CardTokens } from '../../platform-server/keys/cardToken';
import { createPlatform, type Platform } from '../../platform-server/platform';
import { fromHex, toHex } from '../../protocol/bytes';
import { cardRef, cardToken, deriveCardTokenKey } from '../../protocol/cardToken';
import { encodeCbor } from '../../protocol/cbor';
import { chainLink } from '../../protocol/chain';
import { ProtocolError } from '../../protocol/errors';
import { deriveMeterKeys } from '../../protocol/keys';
import { decodeRecord, legacyRecordToCurrent, RecordKind } from '../../protocol/records';
import { uplinkTopic } from '../../protocol/topics';
import {
  CapturingLogger,
  forEachBackend,
  operatorLogin,
  randomMeterId,
  TestMeter,
} from '../../sim/fleet/platform';
import { SCENARIO_METER_ID, TapScenario } from '../../sim/fleet/tapScenario';
import { VirtualPlatform } from '../../sim/fleet/virtualPlatform';
import { apiOf, bootMeter, card, tapBay2, until } from '../phone/support';

const PAN = '6280123400030019';

/** The card number as ASCII digits and as the purse's BCD: neither may be found at rest. */
function forms(pan: string): Buffer[] {
  return [Buffer.from(pan, 'latin1'), Buffer.from(pan, 'hex')];
}

function holds(bytes: Uint8Array, pan: string): boolean {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return forms(pan).some((f) => b.includes(f));
}

/** Every byte a virtual meter keeps: its flash partitions and its preferences. */
function meterAtRest(board: VirtualBoard): Uint8Array[] {
  const { flash, preferences } = board.state;
  const kept: Uint8Array[] = Object.values(flash);
  for (const [key, value] of preferences) {
    kept.push(Buffer.from(key));
    if (value instanceof ArrayBuffer) kept.push(new Uint8Array(value));
    else kept.push(Buffer.from(JSON.stringify(value)));
  }
  return kept;
}

describe('card tokens on the meter', () => {
  it('a tap records the token and last four: no record, flash byte, preference or bus event holds the number', () => {
    const s = new TapScenario();
    const events: unknown[] = [];
    s.meter.bus.on('payment-accepted', (e) => events.push(e));
    s.meter.bus.on('payment-refused', (e) => events.push(e));
    for (let i = 0; i < 5; i++) s.tap(i); // a sale with each card; the stolen and the expired one refused
    const numbers = [0, 1, 2, 3, 4].map((i) => s.cardNumber(i));
    const records = s.meter.log.read(1);
    assert.ok(records.length >= 6);
    for (const pan of numbers) {
      for (const r of records) assert.equal(holds(r.bytes, pan), false, `record ${r.seq} holds ${pan}`);
      for (const bytes of meterAtRest(s.board)) assert.equal(holds(bytes, pan), false, `flash holds ${pan}`);
      assert.equal(JSON.stringify(events).includes(pan), false);
    }
    const sales = s.platform
      .records(SCENARIO_METER_ID)
      .flatMap((r) => (r.record.kind === RecordKind.Transaction ? [r.record] : []));
    assert.equal(sales.length, 3);
    for (const sale of sales) {
      const pan = numbers.find((n) => n.endsWith(sale.data.card.last4)) as string;
      assert.deepEqual(sale.data.card, { token: s.token(pan), last4: pan.slice(-4) });
    }
    assert.deepEqual(
      events.map((e) => (e as { cardLast4: string }).cardLast4),
      numbers.map((n) => n.slice(-4)),
    );
  });

  it('refuses a card blacklisted by its token, and tokenises a list stored as card numbers at boot', () => {
    const s = new TapScenario();
    assert.match(s.tap(0).display, /PAID/);
    s.meter.blacklist.replace([{ token: s.token(s.cardNumber(0)), reason: 'bad debt' }]);
    assert.match(s.tap(0).display, /Card blocked/);
    const refused = s.meter.log.read(1).at(-1);
    const op = refused && decodeRecord(refused.bytes);
    assert.equal(op?.kind, RecordKind.Operation);
    if (op?.kind !== RecordKind.Operation) return;
    assert.equal(op.data.code, 'card-blacklisted');
    assert.deepEqual(op.data.card, { token: s.token(s.cardNumber(0)), last4: s.cardNumber(0).slice(-4) });

    // A meter whose blacklist partition still holds the list as card numbers (before card tokens).
    s.meter.stop();
    const state = s.board.state;
    const old = new VirtualBoard({ clock: s.clock, mqtt: s.broker.link(), state });
    old.partitions.blacklist.cells.fill(0xff); // only the former one-sector format on it
    const list = new SlotStore(old.partitions.blacklist, 0x504c4231);
    list.save([[s.cardNumber(1), 'stolen']]);
    assert.equal(holds(old.partitions.blacklist.cells, s.cardNumber(1)), true);
    const meter = new Meter(old.hardware, s.meter.config);
    assert.equal(meter.blacklist.check(s.token(s.cardNumber(1))), 'stolen');
    assert.equal(holds(old.partitions.blacklist.cells, s.cardNumber(1)), false, 'the number left the flash');
  });

  it('a meter without the card-token key sells to no card and records nothing of it', () => {
    const clock = new VirtualClock('2026-03-02T07:30:00Z');
    const broker = new VirtualBroker(clock);
    const board = new VirtualBoard({ mqtt: broker.link(), clock });
    const keys = deriveMeterKeys(nobleCrypto, new Uint8Array(32).fill(9), 77, 1);
    new VirtualPlatform(broker, nobleCrypto).register(77, keys);
    provisionBoard(board.hardware, keys, 77); // no cardTokenKey
    const meter = new Meter(board.hardware, {
      meterId: 77,
      bays: [1],
      rate: { currency: 826, perHour: 240, minMinutes: 15, maxMinutes: 240, stepMinutes: 15 },
    });
    meter.start();
    board.press('ok');
    board.press('ok');
    const { card: c } = purseCard([0x04, 1, 2, 3], {
      cardNumber: PAN,
      expiry: { year: 2030, month: 1 },
      cardType: 1,
      balance: 5000,
      limit: 0,
      counter: 0,
      currency: 826,
    });
    board.field.add(c);
    clock.advance(300);
    assert.match(board.display.text, /Card payments\s+unavailable/);
    const last = decodeRecord(meter.log.read(1).at(-1)?.bytes as Uint8Array);
    assert.equal(last.kind === RecordKind.Operation && last.data.code, 'cards-unavailable');
    for (const bytes of meterAtRest(board)) assert.equal(holds(bytes, PAN), false);
  });

  it('format 1 records (card number inside) decode only through legacyRecordToCurrent, tokenised', () => {
    const key = new Uint8Array(32).fill(7);
    const legacy = encodeCbor([
      1,
      1,
      5,
      1_772_440_200,
      1001,
      [9, PAN, '2812', 1, 2, 60, 1, 2, 240, 826, 100],
    ]);
    assert.throws(
      () => decodeRecord(legacy),
      (e: unknown) => e instanceof ProtocolError && e.code === 'bad-version',
    );
    const record = legacyRecordToCurrent(legacy, (n) => cardRef(nobleCrypto, key, n));
    assert.equal(record.kind, RecordKind.Transaction);
    if (record.kind !== RecordKind.Transaction) return;
    assert.deepEqual(record.data.card, { token: cardToken(nobleCrypto, key, PAN), last4: '0019' });
    assert.equal(record.data.charge, 240);
    const badNumber = encodeCbor([1, 2, 6, 1, 1001, ['card-blacklisted', 'x', '62x0']]);
    assert.throws(
      () => legacyRecordToCurrent(badNumber, (n) => cardRef(nobleCrypto, key, n)),
      (e: unknown) => e instanceof ProtocolError && e.code === 'bad-field',
    );
  });

  it("the platform's OpenSSL tokens are protocol/cardToken.ts's", () => {
    const key = Uint8Array.from({ length: 32 }, (_, i) => i);
    const tokens = new CardTokens(key);
    for (const pan of [PAN, '12345678', '1234567890123456789'])
      assert.equal(tokens.tokenHex(pan), toHex(cardToken(nobleCrypto, key, pan)));
    assert.throws(() => tokens.token('1234 5678'), ProtocolError);
    assert.equal(JSON.stringify(tokens), '{}');
  });
});

/** Every row of every table, as JSON text (bytea as \x hex). */
async function everyRow(db: Queryable): Promise<string[]> {
  const tables = await db.query<{ name: string }>(
    `SELECT table_name AS name FROM information_schema.tables
      WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'`,
  );
  const rows: string[] = [];
  for (const { name } of tables.rows) {
    const all = await db.query<{ j: string }>(`SELECT row_to_json(t)::text AS j FROM "${name}" t`);
    rows.push(...all.rows.map((r) => `${name}: ${r.j}`));
  }
  return rows;
}

function rowsHold(rows: readonly string[], pan: string): string | undefined {
  const hex = Buffer.from(pan, 'latin1').toString('hex');
  return rows.find(
    (r) => r.includes(pan) || r.includes(hex) || r.includes(Buffer.from(pan, 'hex').toString('hex')),
  );
}

forEachBackend('card tokens on the platform', (backend) => {
  const MASTER = '00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff';

  it('a tap: no record, row, log line or API answer holds the number; the second tap matches the token', async () => {
    const fresh = await backend.fresh();
    const clock = new VirtualClock('2026-06-01T09:00:00Z');
    const logger = new CapturingLogger();
    const platform = await createPlatform({
      ...fresh.config,
      masterKey: MASTER,
      httpLogger: false,
      logger,
      phone: { ...fresh.config.phone, clock, passwordScrypt: { logN: 12, r: 8, p: 1 } },
    });
    const meterId = randomMeterId();
    const m = await bootMeter(platform, meterId, clock);
    try {
      const reg = await apiOf(platform)('POST', '/api/driver/register', {
        name: 'Card Holder',
        phone: `+4477008${String(meterId).slice(-5)}`,
        email: `holder${meterId}@example.org`,
        password: 'correct horse battery',
      });
      assert.equal(reg.status, 201);
      const api = apiOf(platform, reg.json.token);
      const added = await api('POST', '/api/driver/cards', {
        cardNumber: '6280 1234 0003 0019',
      });
      assert.equal(added.status, 201);

      tapBay2(m, clock, card(PAN));
      await until(
        async () => (await api('GET', '/api/driver/sessions?state=active')).json.sessions.length === 1,
        'the first tap paired',
      );
      clock.advance(120_000); // past the receipt window: OK starts a new sale
      tapBay2(m, clock, card(PAN));
      await until(
        async () =>
          (await api('GET', '/api/driver/sessions?state=active')).json.sessions[0]?.paidUntil ===
          '2026-06-01T10:00:00.000Z',
        'the second tap continued the session',
      );
      const sessions = (await api('GET', '/api/driver/sessions?state=all')).json.sessions;
      assert.equal(sessions.length, 1, 'one session: the second tap matched the same card');

      const sales = await platform.db.query<{ card_token: string; card_last4: string }>(
        'SELECT card_token, card_last4 FROM transactions WHERE meter_id = $1 ORDER BY seq',
        [meterId],
      );
      const token = platform.phone.service.tokenOf(PAN);
      assert.deepEqual(sales.rows, [
        { card_token: token, card_last4: '0019' },
        { card_token: token, card_last4: '0019' },
      ]);

      // At rest and on the way out: the meter, every row, every log line, every answer.
      for (const r of m.meter.log.read(1)) assert.equal(holds(r.bytes, PAN), false);
      for (const bytes of meterAtRest(m.board)) assert.equal(holds(bytes, PAN), false);
      assert.equal(rowsHold(await everyRow(platform.db), PAN), undefined);
      assert.equal(JSON.stringify(logger.entries).includes(PAN), false);
      const operator = await operatorLogin(platform.operators);
      const answers = [
        await api('GET', '/api/driver/cards'),
        await api('GET', '/api/driver/sessions?state=all'),
        await api('GET', '/api/driver/messages'),
        await platform.app.inject({ url: `/api/meters/${meterId}/transactions`, headers: operator.headers }),
      ];
      const texts = answers.map((a) => ('body' in a ? a.body : JSON.stringify(a.json)));
      assert.ok(texts[3].includes('**** 0019'), 'operators see the last four');
      for (const text of texts) assert.equal(text.includes(PAN), false, text);
    } finally {
      m.meter.stop();
      await platform.close();
      await fresh.drop();
    }
  });

  it('migrations 015 and 016 convert a database seeded with card numbers; resent format 1 records are duplicates', async () => {
    const fresh = await backend.fresh();
    const dataDir = fresh.config.databaseUrl ? undefined : await mkdtemp(join(tmpdir(), 'parklink-cards-'));
    const url = fresh.config.databaseUrl;
    const meterId = randomMeterId();
    const cardTokenKey = deriveCardTokenKey(nobleCrypto, fromHex(MASTER));
    const keys = { ...deriveMeterKeys(nobleCrypto, fromHex(MASTER), meterId, 1), cardTokenKey };
    const meter = new TestMeter(meterId, keys);
    const stolen = '6280999900030041';
    // What a meter sent before card tokens: a sale and a refusal, format 1.
    const legacy = [
      encodeCbor([
        1,
        1,
        1,
        1_780_304_400,
        meterId,
        [1, PAN, '2812', 2, 2, 30, 1_780_304_400, 1_780_306_200, 120, 826, -120],
      ]),
      encodeCbor([1, 2, 2, 1_780_304_460, meterId, ['card-blacklisted', 'stolen', stolen]]),
    ];
    for (const bytes of legacy) {
      meter.links.push(chainLink(nobleCrypto, meter.link(meter.records.length), bytes));
      meter.records.push(bytes);
    }
    try {
      const db = await openDatabase({ url, dataDir });
      try {
        const before = (await loadMigrations()).filter((x) => x.version < 15);
        await migrate(db, before);
        await db.query('INSERT INTO meters (id, name) VALUES ($1, $2)', [meterId, 'old rows']);
        for (let i = 0; i < legacy.length; i++) {
          await db.query(
            'INSERT INTO records (meter_id, seq, kind, recorded_at, bytes, link) VALUES ($1, $2, $3, now(), $4, $5)',
            [meterId, i + 1, i + 1, Buffer.from(legacy[i]), Buffer.from(meter.link(i + 1))],
          );
        }
        await db.query(
          `INSERT INTO transactions (meter_id, seq, transaction_number, card_number, card_expiry, card_type, bay_id,
             minutes, paid_from, paid_until, charge, currency, remaining_value)
           VALUES ($1, 1, 1, $2, '2812', 2, 2, 30, to_timestamp(1780304400), to_timestamp(1780306200), 120, 826, -120)`,
          [meterId, PAN],
        );
        await db.query(
          `INSERT INTO operations (meter_id, seq, code, detail, card_number) VALUES ($1, 2, 'card-blacklisted', 'stolen', $2)`,
          [meterId, stolen],
        );
        // A registered card as pay by phone kept it: the whole HMAC-SHA-256, 64 hex digits.
        const driver = await db.query<{ id: number }>(
          `INSERT INTO drivers (account_number, name, phone, email, password_hash)
           VALUES ('PL0000000001', 'Old Driver', '+447700900001', 'old@example.org', 'x') RETURNING id`,
        );
        const { createHmac } = await import('node:crypto');
        const full = createHmac('sha256', cardTokenKey).update(PAN).digest('hex');
        await db.query(
          `INSERT INTO driver_cards (driver_id, token, last4, card_type, label, renewal) VALUES ($1, $2, '0019', 2, '', false)`,
          [driver.rows[0].id, full],
        );
        assert.ok(rowsHold(await everyRow(db), PAN), 'the seeded rows hold the number');
      } finally {
        await db.close();
      }

      const logger = new CapturingLogger();
      const platform: Platform = await createPlatform({
        ...fresh.config,
        dataDir,
        masterKey: MASTER,
        httpLogger: false,
        logger,
      });
      try {
        const rows = await everyRow(platform.db);
        assert.equal(rowsHold(rows, PAN), undefined, 'no row holds the number');
        assert.equal(rowsHold(rows, stolen), undefined);
        const tokens = new CardTokens(cardTokenKey);
        const tx = await platform.db.query(
          'SELECT card_token, card_last4 FROM transactions WHERE meter_id = $1',
          [meterId],
        );
        assert.deepEqual(tx.rows, [{ card_token: tokens.tokenHex(PAN), card_last4: '0019' }]);
        const op = await platform.db.query(
          'SELECT card_token, card_last4 FROM operations WHERE meter_id = $1',
          [meterId],
        );
        assert.deepEqual(op.rows, [{ card_token: tokens.tokenHex(stolen), card_last4: '0041' }]);
        const column = await platform.db.query(
          `SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() AND column_name = 'card_number'`,
        );
        assert.equal(column.rows.length, 0, 'card_number dropped');
        const held = await platform.db.query<{ bytes: Uint8Array; redacted: boolean }>(
          'SELECT bytes, redacted FROM records WHERE meter_id = $1 ORDER BY seq',
          [meterId],
        );
        assert.deepEqual(
          held.rows.map((r) => r.redacted),
          [true, true],
        );
        const first = decodeRecord(held.rows[0].bytes);
        assert.deepEqual(first.kind === RecordKind.Transaction && first.data.card, tokens.ref(PAN));
        const card = await platform.db.query('SELECT token FROM driver_cards');
        assert.deepEqual(card.rows, [{ token: tokens.tokenHex(PAN) }], 'the registered card keeps matching');

        // The meter did not hear the ack: it sends the format 1 set again, then a new sale in format 2.
        const again = await platform.ingest.handleUplink(uplinkTopic(meterId), meter.frame(1, 2));
        assert.equal(again.ok, true, again.ok ? '' : again.detail);
        meter.transaction({ cardNumber: PAN });
        const next = await platform.ingest.handleUplink(uplinkTopic(meterId), meter.frame(3, 3));
        assert.equal(next.ok, true, next.ok ? '' : next.detail);
        const sales = await platform.db.query(
          'SELECT card_token FROM transactions WHERE meter_id = $1 ORDER BY seq',
          [meterId],
        );
        assert.deepEqual(sales.rows, [
          { card_token: tokens.tokenHex(PAN) },
          { card_token: tokens.tokenHex(PAN) },
        ]);
        assert.equal(JSON.stringify(logger.entries).includes(PAN), false);
      } finally {
        await platform.close();
      }
    } finally {
      await fresh.drop();
      if (dataDir) await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('ingest tokenises a format 1 record on arrival and keeps its chain link', async () => {
    const fresh = await backend.fresh();
    const platform = await createPlatform({
      ...fresh.config,
      masterKey: MASTER,
      httpLogger: false,
      logger: new CapturingLogger(),
    });
    try {
      const meterId = randomMeterId();
      const meter = new TestMeter(meterId, await platform.provisionMeter(meterId, 'updated late'));
      const bytes = encodeCbor([
        1,
        1,
        1,
        1_780_304_400,
        meterId,
        [1, PAN, '2812', 2, 2, 30, 1, 2, 120, 826, -120],
      ]);
      meter.links.push(chainLink(nobleCrypto, meter.link(0), bytes));
      meter.records.push(bytes);
      meter.transaction({ cardNumber: PAN });
      const outcome = await platform.ingest.handleUplink(uplinkTopic(meterId), meter.frame(1, 2));
      assert.equal(outcome.ok, true, outcome.ok ? '' : outcome.detail);
      assert.equal(
        outcome.ok && !('routed' in outcome) && toHex(outcome.ack.hash),
        toHex(meter.link(2)),
        'acked with the chain as sent',
      );
      const held = await platform.db.query<{ bytes: Uint8Array; link: Uint8Array; redacted: boolean }>(
        'SELECT bytes, link, redacted FROM records WHERE meter_id = $1 ORDER BY seq',
        [meterId],
      );
      assert.equal(holds(held.rows[0].bytes, PAN), false);
      assert.deepEqual(
        held.rows.map((r) => [r.redacted, toHex(r.link)]),
        [
          [true, toHex(meter.link(1))],
          [false, toHex(meter.link(2))],
        ],
      );
      assert.equal(rowsHold(await everyRow(platform.db), PAN), undefined);
    } finally {
      await platform.close();
      await fresh.drop();
    }
  });
});
