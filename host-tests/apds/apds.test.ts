// The APDS API (/apds/) on both backends: every response of the implemented endpoints validated
// against the APDS OpenAPI document (host-tests/apds/spec/, parkingdata/spec); places with the bay
// sensors' occupancy, rates from a tariff document, sessions and rights from meter payments and a
// phone session with its renewal, the sensors' arrivals in the snapshot; API keys with scopes (403 in
// ResponseStatus without the scope, admins only, audited, kept hashed); quotes priced by the tariff
// engine; third-party sessions and rights, idempotent; signed webhooks retried until taken; the
// city snapshot.
import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TariffDocument } from '../../protocol/tariff/types';
import type { Accepted } from '../../platform-server/ingest/gate';
import type { Platform } from '../../platform-server/platform';
import {
  forEachBackend,
  type OperatorLogin,
  operatorLogin,
  randomMeterId,
  startPlatform,
} from '../../sim/fleet/platform';
import { until } from '../support/until';
import {
  apdsSpec,
  assertEventData,
  assertPlace,
  assertMatchesSpec,
  assertRequestMatchesSpec,
  assertResponseStatus,
} from './specValidator';

const TARIFF: TariffDocument = {
  id: 'high-street',
  version: 3,
  currency: 826,
  timeZone: 'GMT0BST,M3.5.0/1,M10.5.0',
  rates: {
    day: [
      { upTo: 60, flat: 150 },
      { upTo: 180, price: 50, per: 15 },
    ],
  },
  timetable: [
    {
      days: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat'],
      from: '08:00',
      to: '18:30',
      mode: 'charged',
      rate: 'day',
    },
  ],
  tax: { percent: 20, included: true, name: 'VAT' },
};

// biome-ignore lint/suspicious/noExplicitAny: response bodies, read field by field and validated against the APDS document
type Json = Record<string, any>;

forEachBackend('APDS API (/apds/)', (backend) => {
  let platform: Platform;
  let drop: () => Promise<void>;
  let admin: OperatorLogin;
  let operator: OperatorLogin;
  let viewer: OperatorLogin;
  const keys: Record<string, { id: number; key: string }> = {};
  const meterA = randomMeterId();
  let meterB = randomMeterId();
  while (meterB === meterA) meterB = randomMeterId();
  const at = (iso: string) => new Date(iso);

  const inject = (
    method: 'GET' | 'POST' | 'DELETE',
    url: string,
    headers: Record<string, string>,
    payload?: object,
  ) => platform.app.inject({ method, url, headers, ...(payload === undefined ? {} : { payload }) });
  const withKey = (name: string) => ({ 'x-api-key': keys[name].key });

  before(async () => {
    ({ platform, drop } = await startPlatform(backend, {
      apds: { retryDelayMs: () => 50, maxAttempts: 4, timeZone: 'Europe/London' },
    }));
    admin = await operatorLogin(platform.operators, 'admin');
    operator = await operatorLogin(platform.operators, 'operator');
    viewer = await operatorLogin(platform.operators, 'viewer');
    const db = platform.db;
    await platform.provisionMeter(meterA, 'High Street north');
    await platform.provisionMeter(meterB, 'High Street south');
    await db.query(`UPDATE meters SET area = 'High Street' WHERE id = ANY($1::bigint[])`, [[meterA, meterB]]);
    // The bay sensors' latest state and the arrivals and departures they reported.
    const bays: [number, number, boolean][] = [
      [meterA, 1, true],
      [meterA, 2, false],
      [meterB, 1, true],
    ];
    for (const [m, b, occupied] of bays)
      await db.query(
        'INSERT INTO bay_occupancy (meter_id, bay_id, occupied, since, paid, updated_at) VALUES ($1, $2, $3, $4, true, $4)',
        [m, b, occupied, at('2026-06-01T09:00:00Z')],
      );
    const events: [number, number, string, string][] = [
      [meterA, 1, 'bay-arrived', '2026-06-01T08:58:00Z'],
      [meterA, 2, 'bay-left', '2026-06-01T08:40:00Z'],
      [meterB, 1, 'bay-arrived', '2026-06-01T08:30:00Z'],
    ];
    let frame = 1;
    for (const [m, b, event, when] of events)
      await db.query(
        `INSERT INTO meter_events (meter_id, frame_seq, occurred_at, event, severity, active, bay_id, detail) VALUES ($1, $2, $3, $4, 'info', true, $5, '')`,
        [m, frame++, at(when), event, b],
      );
    // The tariff both meters acknowledged.
    await platform.tariffs.save(TARIFF);
    for (const m of [meterA, meterB])
      await db.query(
        `INSERT INTO meter_tariffs (meter_id, tariff_id, version, downlink_seq, acked_tariff_id, acked_version, acked_ok, acked_at)
         VALUES ($1, $2, $3, 1, $2, $3, true, now())`,
        [m, TARIFF.id, TARIFF.version],
      );
    await platform.tariffs.load();
    // A card payment at meter A bay 1, and a phone session at meter B bay 1 with one renewal.
    for (const [m, seq] of [
      [meterA, 1],
      [meterB, 1],
    ])
      await db.query(
        `INSERT INTO records (meter_id, seq, kind, recorded_at, bytes, link) VALUES ($1, $2, 1, $3, $4, $5)`,
        [m, seq, at('2026-06-01T08:59:00Z'), new Uint8Array([1]), new Uint8Array(32)],
      );
    for (const [m, minutes, charge] of [
      [meterA, 60, 150],
      [meterB, 30, 150],
    ])
      await db.query(
        `INSERT INTO transactions (meter_id, seq, transaction_number, card_token, card_last4, card_expiry, card_type, bay_id, minutes,
           paid_from, paid_until, charge, currency, remaining_value, recorded_at)
         VALUES ($1, 1, 1, $2, '4242', '2812', 1, 1, $3, $4, $5, $6, 826, 0, $4)`,
        [
          m,
          'ab'.repeat(16),
          minutes,
          at('2026-06-01T09:00:00Z'),
          new Date(Date.parse('2026-06-01T09:00:00Z') + minutes * 60_000),
          charge,
        ],
      );
    const driver = (
      await db.query<{ id: number }>(
        `INSERT INTO drivers (account_number, name, phone, email, password_hash) VALUES ('PL0000000001', 'Ada', '+441234567890', 'ada@example.org', 'x') RETURNING id`,
      )
    ).rows[0].id;
    const card = (
      await db.query<{ id: number }>(
        `INSERT INTO driver_cards (driver_id, token, last4, card_type) VALUES ($1, $2, '4242', 1) RETURNING id`,
        [driver, 'cd'.repeat(16)],
      )
    ).rows[0].id;
    const session = (
      await db.query<{ id: number }>(
        `INSERT INTO phone_sessions (driver_id, card_id, meter_id, bay_id, tx_seq, paid_from, paid_until, paid_minutes, first_charge, currency, created_at)
         VALUES ($1, $2, $3, 1, 1, $4, $5, 60, 150, 826, $4) RETURNING id`,
        [driver, card, meterB, at('2026-06-01T09:00:00Z'), at('2026-06-01T10:00:00Z')],
      )
    ).rows[0].id;
    await db.query(
      `INSERT INTO renewals (id, session_id, driver_id, meter_id, bay_id, minutes, charge, currency, card_id, funding, authorisation, channel, status,
         requested_at, valid_until, applied_at, paid_until)
       VALUES ('r1', $1, $2, $3, 1, 30, 150, 826, $4, 'direct', 'A1', 'app', 'applied', $5, $6, $5, $6)`,
      [session, driver, meterB, card, at('2026-06-01T09:25:00Z'), at('2026-06-01T10:00:00Z')],
    );
  });

  after(async () => {
    await platform?.close();
    await drop?.();
  });

  it('validates against the APDS document it was written for', () => {
    assert.match(apdsSpec.openapi, /^3\.0/);
    assert.equal(apdsSpec.info.title, 'APDS');
    assert.equal(apdsSpec.info.version, '1.0');
  });

  it('admins issue keys with scopes (audited, only a hash kept); an operator may not', async () => {
    for (const [name, scopes] of [
      ['reader', ['read']],
      ['app', ['read', 'write', 'webhooks']],
      ['city', ['export']],
    ] as const) {
      const res = await inject('POST', '/api/apds/keys', admin.headers, { consumer: name, scopes });
      assert.equal(res.statusCode, 201, res.body);
      keys[name] = res.json();
      assert.match(keys[name].key, /^plapds_/);
    }
    assert.equal(
      (await inject('POST', '/api/apds/keys', operator.headers, { consumer: 'x', scopes: ['read'] }))
        .statusCode,
      403,
    );
    assert.equal(
      (await inject('POST', '/api/apds/keys', admin.headers, { consumer: 'x', scopes: ['everything'] }))
        .statusCode,
      400,
    );
    const stored = await platform.db.query<{ key_hash: string }>(
      'SELECT key_hash FROM apds_keys WHERE id = $1',
      [keys.reader.id],
    );
    assert.equal(stored.rows[0].key_hash, createHash('sha256').update(keys.reader.key).digest('hex'));
    const listed = JSON.stringify((await inject('GET', '/api/apds/keys', admin.headers)).json());
    assert.ok(!listed.includes(keys.reader.key), 'the list never shows a key');
    const audit = await platform.operators.auditLog({ action: 'apds.key.create' });
    assert.equal(audit.entries.length, 3);
  });

  it('refuses a request without a key (401), a key without the scope (403), both as ResponseStatus', async () => {
    const none = await inject('GET', '/apds/places', {});
    assert.equal(none.statusCode, 401);
    assertResponseStatus(none.json());
    const unscoped = await inject('GET', '/apds/places', withKey('city'));
    assert.equal(unscoped.statusCode, 403);
    assertResponseStatus(unscoped.json());
    assert.deepEqual(Object.keys(unscoped.json()).sort(), ['code', 'message', 'status']);
    assert.equal(unscoped.json().status, 'error');
    const readerWrites = await inject('POST', '/apds/sessions', withKey('reader'), {});
    assert.equal(readerWrites.statusCode, 403);
    assertResponseStatus(readerWrites.json());
    const bearer = await inject('GET', '/apds/places', { authorization: `Bearer ${keys.reader.key}` });
    assert.equal(bearer.statusCode, 200, 'the key is taken as a bearer token too');
  });

  it('serves places: areas, meters and bays with the bay sensors’ occupancy (valid APDS)', async () => {
    for (const headers of [withKey('reader'), viewer.headers]) {
      const res = await inject('GET', '/apds/places', headers);
      assert.equal(res.statusCode, 200, res.body);
      assertMatchesSpec('/places', 'get', 200, res.json());
    }
    const { data, meta } = (await inject('GET', '/apds/places', withKey('reader'))).json();
    assert.equal(meta.total, 6);
    const byId = new Map<string, Json>(data.map((p: Json) => [p.id, p]));
    assert.equal(
      byId.get('area:High Street')?.occupancyLevel.occupancyIndicator.entryDefinedValue,
      '67',
      '2 of 3 bays occupied',
    );
    for (const place of data) assertPlace(place);
    assert.equal(byId.get(`meter:${meterA}`)?.occupancyLevel.occupancyIndicator.entryDefinedValue, '50');
    assert.equal(byId.get(`bay:${meterA}:2`)?.occupancyLevel.occupancyIndicator.entryDefinedValue, '0');
    assert.deepEqual(byId.get(`bay:${meterA}:1`)?.parentId, { id: `meter:${meterA}`, version: 1 });
    assert.deepEqual(byId.get(`meter:${meterA}`)?.rightSpecifications, [
      { id: 'tariff:high-street', version: 4 },
    ]);
    const one = await inject(
      'GET',
      `/apds/places/${encodeURIComponent(`bay:${meterB}:1`)}`,
      withKey('reader'),
    );
    assertMatchesSpec('/places/{id}', 'get', 200, one.json());
    assert.equal(one.json().occupancyLevel.occupancyIndicator.entryDefinedValue, '100');
    assertPlace(one.json());
    const second = await inject('GET', '/apds/places?page=2', withKey('reader'));
    assertMatchesSpec('/places', 'get', 200, second.json());
    assert.deepEqual(
      [
        second.json().meta.offset,
        second.json().meta.pageSize,
        second.json().meta.total,
        second.json().data.length,
      ],
      [100, 100, 6, 0],
      'pages of 100: the second is empty',
    );
    const missing = await inject('GET', '/apds/places/bay:1:99', withKey('reader'));
    assert.equal(missing.statusCode, 404);
    assertResponseStatus(missing.json());
  });

  it('serves rates translated from the tariff document (valid APDS)', async () => {
    const res = await inject('GET', '/apds/rates', withKey('reader'));
    assertMatchesSpec('/rates', 'get', 200, res.json());
    const [table] = res.json().data;
    assert.equal(table.id, 'tariff:high-street');
    assert.equal(table.version, 4);
    const [collection] = table.rateLineCollections;
    assert.equal(collection.applicableCurrency, 'GBP');
    assert.equal(collection.taxRate, 20);
    assert.equal(collection.taxIncluded, true);
    assert.deepEqual(
      collection.rateLines.map((l: Json) => [
        l.rateLineType,
        l.durationStart,
        l.durationEnd,
        l.incrementPeriod,
        l.value,
      ]),
      [
        ['flatRateTier', 'PT0M', 'PT60M', undefined, 1.5],
        ['incrementingRate', 'PT60M', 'PT180M', 'PT15M', 0.5],
      ],
    );
    assert.deepEqual(table.activeTimes, ['PT630M']);
    const one = await inject('GET', '/apds/rates/tariff:high-street', withKey('reader'));
    assertMatchesSpec('/rates/{id}', 'get', 200, one.json());
  });

  it('serves right specifications from the tariff timetable (valid APDS)', async () => {
    const res = (await inject('GET', '/apds/rights/specs', withKey('reader'))).json();
    assertMatchesSpec('/rights/specs', 'get', 200, res);
    const [spec] = res.data;
    assert.equal(spec.id, 'tariff:high-street');
    assert.deepEqual(
      spec.hierarchyElements.map((h: Json) => h.id).sort(),
      [`meter:${meterA}`, `meter:${meterB}`].sort(),
    );
    const [period] = spec.validity.validityTimeSpecification.validPeriods;
    assert.deepEqual(period.recurringDayWeekMonthPeriod[0].applicableDay, [
      'monday',
      'tuesday',
      'wednesday',
      'thursday',
      'friday',
      'saturday',
    ]);
    assert.deepEqual(period.recurringTimePeriodOfDay, [
      { startTimeOfPeriod: '08:00', endTimeOfPeriod: '18:30' },
    ]);
    assert.deepEqual(spec.rateEligibility[0].rateTable, { id: 'tariff:high-street', version: 4 });
    const one = await inject('GET', '/apds/rights/specs/tariff:high-street', withKey('reader'));
    assertMatchesSpec('/rights/specs/{id}', 'get', 200, one.json());
  });

  it('serves sessions and assigned rights from meter payments and phone sessions (valid APDS)', async () => {
    const sessions = (await inject('GET', '/apds/sessions', withKey('reader'))).json();
    assertMatchesSpec('/sessions', 'get', 200, sessions);
    const ids = sessions.data.map((s: Json) => s.id);
    assert.ok(ids.includes(`tx:${meterA}:1`));
    assert.ok(
      !ids.includes(`tx:${meterB}:1`),
      'the payment a phone session paired is shown once, as that session',
    );
    const phone = sessions.data.find((s: Json) => s.id.startsWith('phone:'));
    assert.equal(phone.segments.length, 2, 'first payment and one renewal');
    const one = await inject('GET', `/apds/sessions/${encodeURIComponent(phone.id)}`, withKey('reader'));
    assertMatchesSpec('/sessions/{id}', 'get', 200, one.json());
    const rights = (await inject('GET', '/apds/rights/assigned', withKey('reader'))).json();
    assertMatchesSpec('/rights/assigned', 'get', 200, rights);
    assert.equal(rights.meta.total, 3);
    const right = rights.data.find((r: Json) => r.id === `right:tx:${meterA}:1`);
    assert.deepEqual(right.totalRightValue, { currencyType: 'GBP', currencyValue: 1.5 });
    const oneRight = await inject(
      'GET',
      `/apds/rights/assigned/${encodeURIComponent(right.id)}`,
      withKey('reader'),
    );
    assertMatchesSpec('/rights/assigned/{id}', 'get', 200, oneRight.json());
  });

  it('prices a quote with the tariff the meter holds; the same request again gets the same quote', async () => {
    const request = {
      id: 'q-1',
      version: 1,
      requestTime: '2026-06-01T09:59:00Z',
      periodStart: '2026-06-01T10:00:00Z',
      periodEnd: '2026-06-01T11:30:00Z',
      referencedRightSpecifications: [
        {
          elementId: { id: `bay:${meterA}:1`, version: 1 },
          rightSpecificationId: { id: 'tariff:high-street', version: 4 },
        },
      ],
    };
    assertRequestMatchesSpec('/quotes', 'post', request);
    const res = await inject('POST', '/apds/quotes', withKey('app'), request);
    assert.equal(res.statusCode, 200, res.body);
    assertMatchesSpec('/quotes', 'post', 200, res.json());
    const [quote] = res.json().data;
    const engine = await platform.tariffs.quote({
      meterId: meterA,
      bay: 1,
      start: Date.parse(request.periodStart) / 1000,
      minutes: 90,
    });
    assert.ok(engine.ok);
    assert.equal(quote.options[0].financialQuote.value.currencyValue, engine.amount / 100);
    assert.equal(engine.amount, 250, '1.50 for the first hour, 2 × 0.50 for the next 30 minutes');
    const again = await inject('POST', '/apds/quotes', withKey('app'), request);
    assert.deepEqual(again.json().data, res.json().data);
    const otherVersion = await inject('POST', '/apds/quotes', withKey('app'), { ...request, version: 2 });
    assert.equal(
      otherVersion.statusCode,
      409,
      'an answered quote id is not priced again under another version',
    );
    assertResponseStatus(otherVersion.json());
    const otherConsumer = await platform.app.inject({
      method: 'POST',
      url: '/apds/quotes',
      headers: { 'x-api-key': (await platform.apds.createKey('other-app', ['write'], 'test')).key },
      payload: request,
    });
    assert.equal(otherConsumer.statusCode, 409, "another consumer does not get this consumer's quote");
    const forgedBearer = await inject('GET', '/apds/places', { authorization: 'Bearer not-a-session' });
    assert.equal(forgedBearer.statusCode, 401);
    const stored = await inject('GET', '/apds/quotes/q-1', withKey('reader'));
    assertMatchesSpec('/quotes/{id}', 'get', 200, stored.json());
    assertMatchesSpec('/quotes', 'get', 200, (await inject('GET', '/apds/quotes', withKey('reader'))).json());
    const noBay = await inject('POST', '/apds/quotes', withKey('app'), {
      ...request,
      id: 'q-2',
      referencedRightSpecifications: [],
    });
    assert.equal(noBay.statusCode, 400);
    assertResponseStatus(noBay.json());
  });

  it('takes sessions and rights from an app (idempotent, versioned) and sends signed webhooks, retried', async () => {
    const received: { body: string; signature: string; topic: string; delivery: number }[] = [];
    let refuseFirst = true;
    const server: Server = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        if (refuseFirst) {
          refuseFirst = false;
          res.writeHead(500).end();
          return;
        }
        received.push({
          body,
          signature: String(req.headers['x-parklink-signature']),
          topic: String(req.headers['x-parklink-event']),
          delivery: Number(req.headers['x-parklink-delivery']),
        });
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}/apds-events`;
      const subscription = { endpoint, topics: ['SessionCreated', 'SessionUpdated', 'AssignedRightCreated'] };
      // ajv-formats' `url` format refuses loopback addresses: the shape is checked with a public one.
      assertRequestMatchesSpec('/webhooks', 'post', {
        ...subscription,
        endpoint: 'https://receiver.example.org/apds-events',
      });
      const sub = await inject('POST', '/apds/webhooks', withKey('app'), subscription);
      assert.equal(sub.statusCode, 200, sub.body);
      assertMatchesSpec('/webhooks', 'post', 200, sub.json());
      const { id: subId, secret } = sub.json();
      assert.deepEqual((await inject('GET', `/apds/webhooks/${subId}`, withKey('app'))).json(), {
        endpoint,
        topics: subscription.topics,
      });
      assert.equal((await inject('POST', '/apds/webhooks', withKey('reader'), subscription)).statusCode, 403);

      const session = {
        id: 'app-session-1',
        version: 1,
        actualStart: '2026-06-01T10:00:00Z',
        initiator: { id: 'city-parking-app', version: 1 },
        identifiedCredentials: [
          {
            identifier: { className: 'UKNumberPlate', id: 'LA51ABC' },
            issuer: [{ language: 'en', string: 'DVLA' }],
          },
        ],
        hierachyElement: { id: `bay:${meterA}:2`, version: 1 },
        segments: [
          {
            id: 'app-session-1:1',
            version: 1,
            actualStart: '2026-06-01T10:00:00Z',
            assignedRight: { id: 'app-right-1', version: 1 },
            validationType: ['licensePlate'],
          },
        ],
      };
      const right = {
        id: 'app-right-1',
        version: 1,
        rightHolder: {},
        rightSpecification: { id: 'tariff:high-street', version: 4 },
        expiry: '2026-06-01T11:00:00Z',
      };
      assertRequestMatchesSpec('/sessions', 'post', session);
      assertRequestMatchesSpec('/rights/assigned', 'post', right);
      // A right holder nested past any real document is refused before it is stored.
      let holder: Record<string, unknown> = {};
      for (let i = 0; i < 200; i++) holder = { nested: holder };
      const deep = await inject('POST', '/apds/rights/assigned', withKey('app'), {
        ...right,
        id: 'deep-right',
        rightHolder: holder,
      });
      assert.equal(deep.statusCode, 400, deep.body);
      assert.match(deep.json().message, /nested more than 32 levels/);
      assertResponseStatus(deep.json());
      const created = await inject('POST', '/apds/sessions', withKey('app'), session);
      assert.equal(created.statusCode, 200, created.body);
      assertMatchesSpec('/sessions', 'post', 200, created.json());
      const repeat = await inject('POST', '/apds/sessions', withKey('app'), session);
      assert.equal(repeat.statusCode, 200);
      assert.match(repeat.json().message, /already held/);
      const stale = await inject('POST', '/apds/sessions', withKey('app'), {
        ...session,
        actualStart: '2026-06-01T10:05:00Z',
      });
      assert.equal(stale.statusCode, 409, 'other content at the same version');
      assertResponseStatus(stale.json());
      const backwards = await inject('POST', '/apds/sessions', withKey('app'), {
        ...session,
        version: 2,
        actualEnd: '2026-06-01T09:00:00Z',
      });
      assert.equal(backwards.statusCode, 400);
      assertResponseStatus(backwards.json());
      const ended = await inject('POST', '/apds/sessions', withKey('app'), {
        ...session,
        version: 2,
        actualEnd: '2026-06-01T10:40:00Z',
      });
      assert.equal(ended.statusCode, 200);
      assert.match(ended.json().message, /updated/);
      const rightRes = await inject('POST', '/apds/rights/assigned', withKey('app'), right);
      assert.equal(rightRes.statusCode, 201, rightRes.body);
      assertMatchesSpec('/rights/assigned', 'post', 201, rightRes.json());
      const { segments: _, ...noSegments } = session;
      const incomplete = await inject('POST', '/apds/sessions', withKey('app'), {
        ...noSegments,
        id: 'app-session-2',
      });
      assert.equal(incomplete.statusCode, 400, 'APDS requires segments');
      assertResponseStatus(incomplete.json());
      const bad = await inject('POST', '/apds/rights/assigned', withKey('app'), { id: 'x', version: 1 });
      assert.equal(bad.statusCode, 400);
      assertResponseStatus(bad.json());

      // A payment record a meter uploaded, as ingest announces a committed batch.
      // (Only the fields the APDS room reads.)
      const batch = [
        { ok: true, meterId: meterA, stored: [{ meterId: meterA, record: { kind: 1, seq: 1 } }] },
      ];
      platform.ingest.emit('committed', batch as unknown as Accepted[]);

      await until(async () => received.length === 5, 'five deliveries, one of them after a retry');
      // The receiver refused the first request it got, so that delivery came again later: in the
      // order raised, by delivery id.
      received.sort((a, b) => a.delivery - b.delivery);
      assert.deepEqual(
        received.map((r) => r.topic),
        [
          'SessionCreated',
          'SessionUpdated',
          'AssignedRightCreated',
          'AssignedRightCreated',
          'SessionCreated',
        ],
      );
      assert.equal(
        JSON.parse(received[4].body).data[0].id,
        `tx:${meterA}:1`,
        'the meter payment as a session',
      );
      assert.deepEqual(JSON.parse(received[3].body).data[0].rightSpecification, {
        id: 'tariff:high-street',
        version: 4,
      });
      for (const r of received) {
        const [, t, v1] = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(r.signature) ?? [];
        assert.ok(t, r.signature);
        const expected = createHmac('sha256', Buffer.from(secret, 'hex'))
          .update(`${t}.${r.body}`)
          .digest('hex');
        assert.equal(v1, expected, 'signed with the subscription secret');
        const event = JSON.parse(r.body);
        assertEventData(event);
        assert.equal(event.eventSubscriptionId, subId);
      }
      assert.equal(
        JSON.parse(received[1].body).data[0].actualEnd,
        '2026-06-01T10:40:00Z',
        'the end is an update carrying actualEnd',
      );
      // The platform records a delivery once the receiver's answer is in.
      await until(
        async () => (await platform.apds.deliveries(Number(subId))).every((d) => d.delivered_at !== null),
        'every delivery recorded',
      );
      const attempts = await platform.apds.deliveries(Number(subId));
      assert.deepEqual(
        attempts.map((d) => d.attempts).sort(),
        [1, 1, 1, 1, 2],
        'one delivery was refused once and retried',
      );
      assert.ok(attempts.every((d) => d.delivered_at !== null && d.failed_at === null));

      const sessions = (await inject('GET', '/apds/sessions', withKey('reader'))).json();
      assertMatchesSpec('/sessions', 'get', 200, sessions);
      assert.equal(sessions.data.find((s: Json) => s.id === 'app-session-1').version, 2);
      const deleted = await inject('DELETE', `/apds/webhooks/${subId}`, withKey('app'));
      assertMatchesSpec('/webhooks/{id}', 'delete', 200, deleted.json());
      assert.equal((await inject('GET', `/apds/webhooks/${subId}`, withKey('app'))).statusCode, 404);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('exports the whole city as one dated document', async () => {
    assert.equal((await inject('GET', '/apds/export', withKey('reader'))).statusCode, 403);
    const res = await inject('GET', '/apds/export', withKey('city'));
    assert.equal(res.statusCode, 200, res.body);
    assert.match(String(res.headers['content-disposition']), /parklink-apds-\d{4}-\d{2}-\d{2}\.json/);
    const snapshot = res.json();
    assert.ok(!Number.isNaN(Date.parse(snapshot.snapshotTime)));
    const lists: [string, string][] = [
      ['places', '/places'],
      ['rates', '/rates'],
      ['rightSpecifications', '/rights/specs'],
      ['sessions', '/sessions'],
      ['assignedRights', '/rights/assigned'],
    ];
    for (const [name, path] of lists) {
      const meta = {
        referenceInstant: 0,
        offset: 0,
        pageSize: snapshot[name].length,
        total: snapshot[name].length,
      };
      assertMatchesSpec(path, 'get', 200, { meta, data: snapshot[name] });
    }
    assert.equal(snapshot.places.length, 6);
    assert.equal(snapshot.sessions.length, 3);
    assert.deepEqual(
      snapshot.occupancyChanges[0],
      { place: { id: `bay:${meterB}:1`, version: 1 }, at: '2026-06-01T08:30:00.000Z', occupied: true },
      'the sensors’ changes, oldest first',
    );
    assert.equal(snapshot.occupancyChanges.length, 3);
  });

  it('a revoked key is refused', async () => {
    const revoked = await inject('DELETE', `/api/apds/keys/${keys.reader.id}`, admin.headers);
    assert.equal(revoked.statusCode, 200);
    const res = await inject('GET', '/apds/places', withKey('reader'));
    assert.equal(res.statusCode, 401);
    assertResponseStatus(res.json());
    assert.equal((await platform.operators.auditLog({ action: 'apds.key.revoke' })).entries.length, 1);
  });
});
