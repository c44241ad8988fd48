// GET /apds/observations: the bay sensors' vehicle presences as APDS ObservationElements, and the
// tariff rules that need the payer's history in APDS rates (a cap per period, a flat amount valid
// until a time), every answer validated against the APDS OpenAPI document (host-tests/apds/spec/).
import assert from 'node:assert/strict';
import {
  observationElement,
  observations,
  sensorObservations,
} from '../../platform-server/apds/observations';
import type { Platform } from '../../platform-server/platform';
import type { TariffDocument } from '../../protocol/tariff/types';
import { forEachBackend, operatorLogin, randomMeterId, startPlatform } from '../../sim/fleet/platform';
import { assertMatchesPointer, assertMatchesSpec } from './specValidator';

const EVERY = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const;

/** The rules that use the payer's history: 2.00 an hour at most 10.00 a day from 02:00, an evening at 3.00 until 07:00. */
const CAPPED: TariffDocument = {
  id: 'capped-evening',
  version: 1,
  currency: 826,
  timeZone: 'GMT0BST,M3.5.0/1,M10.5.0',
  rates: {
    day: [{ price: 200, per: 60, prorata: true }],
    evening: [{ flat: 300, validUntil: '07:00' }],
  },
  timetable: [
    { days: [...EVERY], from: '07:00', to: '18:00', mode: 'charged', rate: 'day' },
    { days: [...EVERY], from: '18:00', to: '07:00', mode: 'charged', rate: 'evening' },
  ],
  maxPrice: { amount: 1000, resetAt: '02:00' },
  noReturnMinutes: 120,
};

// biome-ignore lint/suspicious/noExplicitAny: response bodies, read field by field and validated against the APDS document
type Json = Record<string, any>;

forEachBackend('APDS observations and history rules (/apds/)', (backend) => {
  let platform: Platform;
  let drop: () => Promise<void>;
  let key = '';
  const located = randomMeterId();
  let unlocated = randomMeterId();
  while (unlocated === located) unlocated = randomMeterId();
  const at = (iso: string) => new Date(iso);
  const get = (url: string) => platform.app.inject({ method: 'GET', url, headers: { 'x-api-key': key } });

  before(async () => {
    ({ platform, drop } = await startPlatform(backend, { apds: { timeZone: 'Europe/London' } }));
    const admin = await operatorLogin(platform.operators, 'admin');
    const issued = await platform.app.inject({
      method: 'POST',
      url: '/api/apds/keys',
      headers: admin.headers,
      payload: { consumer: 'city-observer', scopes: ['read'] },
    });
    assert.equal(issued.statusCode, 201, issued.body);
    key = issued.json().key;
    const db = platform.db;
    await platform.provisionMeter(located, 'Market Square');
    await platform.provisionMeter(unlocated, 'Back Lane');
    await db.query('UPDATE meters SET latitude = $2, longitude = $3 WHERE id = $1', [
      located,
      51.5072,
      -0.1276,
    ]);
    const events: [number, number, string, string][] = [
      [located, 1, 'bay-left', '2026-06-01T07:50:00Z'], // the sensor's history begins with the bay taken
      [located, 1, 'bay-arrived', '2026-06-01T08:00:00Z'],
      [located, 1, 'bay-left', '2026-06-01T09:15:00Z'],
      [located, 2, 'bay-arrived', '2026-06-01T08:30:00Z'],
      [located, 1, 'bay-arrived', '2026-06-01T10:00:00Z'],
      [unlocated, 1, 'bay-arrived', '2026-06-01T08:10:00Z'],
    ];
    let frame = 1;
    for (const [m, b, event, when] of events)
      await db.query(
        `INSERT INTO meter_events (meter_id, frame_seq, occurred_at, event, severity, active, bay_id, detail, received_at)
         VALUES ($1, $2, $3, $4, 'info', true, $5, '', $3)`,
        [m, frame++, at(when), event, b],
      );
    await platform.tariffs.save(CAPPED);
  });

  after(async () => {
    await platform?.close();
    await drop?.();
  });

  it('serves each vehicle presence a bay sensor saw as an ObservationElement, valid against the document', async () => {
    const res = await get('/apds/observations');
    assert.equal(res.statusCode, 200, res.body);
    const body = res.json();
    assertMatchesSpec('/observations', 'get', 200, body);
    const mine = body.data.filter((o: Json) => o.id.startsWith(`sensor:${located}:`));
    assert.deepEqual(
      mine.map((o: Json) => [o.id, o.version, o.observationStartTime, o.observationEndTime ?? null]),
      [
        [`sensor:${located}:1:2`, 2, '2026-06-01T08:00:00.000Z', '2026-06-01T09:15:00.000Z'],
        [`sensor:${located}:2:4`, 1, '2026-06-01T08:30:00.000Z', null],
        [`sensor:${located}:1:5`, 1, '2026-06-01T10:00:00.000Z', null],
      ],
    );
    const first = mine[0];
    assert.equal(first.method, 'scanner');
    assert.deepEqual(first.location.observerLocation, {
      pointCoordinates: { epsgCode: 'EPSG:4326', x: -0.1276, y: 51.5072 },
    });
    assert.deepEqual(first.elementIds, { id: `bay:${located}:1`, version: 1 });
    assert.equal(
      body.data.some((o: Json) => o.id.startsWith(`sensor:${unlocated}:`)),
      false,
      'a meter without coordinates has no observer location: no observation',
    );
    const one = await get(`/apds/observations/${encodeURIComponent(first.id)}`);
    assert.equal(one.statusCode, 200);
    assertMatchesSpec('/observations/{id}', 'get', 200, one.json());
    assert.equal((await get('/apds/observations/sensor:0:0:0')).statusCode, 404);
    assert.equal(
      (await platform.app.inject({ method: 'GET', url: '/apds/observations' })).statusCode,
      401,
      'a key is needed',
    );
  });

  it("serves an enforcement officer's penalty notice as a visual observation with the plate", async () => {
    const officer = await operatorLogin(platform.operators, 'enforcement');
    const issued = await platform.app.inject({
      method: 'POST',
      url: '/api/enforcement/notices',
      headers: officer.headers,
      payload: {
        id: 'apds-notice-0001',
        meterId: located,
        bayId: 2,
        observedAt: '2026-06-01T11:00:00Z',
        plate: 'AB12CDE',
        latitude: 51.5073,
        longitude: -0.1275,
      },
    });
    assert.equal(issued.statusCode, 201, issued.body);
    const body = (await get('/apds/observations')).json();
    assertMatchesSpec('/observations', 'get', 200, body);
    const notice = body.data.find((o: Json) => o.id === 'notice:apds-notice-0001');
    assert.ok(notice, 'the notice is an observation');
    assert.equal(notice.method, 'visual');
    assert.deepEqual([notice.type, notice.observedCredentialId], ['licensePlate', 'AB12CDE']);
    assert.equal(notice.observationStartTime, '2026-06-01T11:00:00.000Z');
    assert.deepEqual(notice.location.observerLocation.pointCoordinates, {
      epsgCode: 'EPSG:4326',
      x: -0.1275,
      y: 51.5073,
    });
    assert.deepEqual(notice.elementIds, { id: `bay:${located}:2`, version: 1 });
    const one = await get('/apds/observations/notice%3Aapds-notice-0001');
    assert.equal(one.statusCode, 200, one.body);
    assertMatchesSpec('/observations/{id}', 'get', 200, one.json());
  });

  it('puts the observations in the city export too', async () => {
    const viewer = await operatorLogin(platform.operators, 'viewer');
    const res = await platform.app.inject({ method: 'GET', url: '/apds/export', headers: viewer.headers });
    assert.equal(res.statusCode, 200);
    const { observations: listed } = res.json();
    assertMatchesSpec('/observations', 'get', 200, {
      meta: { referenceInstant: 0, offset: 0, pageSize: listed.length, total: listed.length },
      data: listed,
    });
    assert.ok(listed.some((o: Json) => o.id === `sensor:${located}:1:2`));
  });

  it('takes an enforcement source as one more function, in the same shape', async () => {
    const sighting = async () => [
      observationElement({
        id: 'enforcement:1',
        version: 1,
        method: 'anpr',
        observer: 'officer 12',
        start: at('2026-06-01T09:00:00Z'),
        created: at('2026-06-01T09:00:05Z'),
        observer_location: { latitude: 51.5073, longitude: -0.1275 },
        observed_text: `bay 1 of meter ${located}`,
        place: `bay:${located}:1`,
        credential: { type: 'licensePlate', id: 'AB12CDE' },
        description: 'plate read by the handheld camera',
      }),
    ];
    const all = await observations(platform.db, [sensorObservations, sighting]);
    const ours = all.filter((o) => String(o.id).startsWith(`sensor:${located}:`) || o.id === 'enforcement:1');
    assert.deepEqual(
      ours.map((o) => o.id),
      [`sensor:${located}:1:2`, `sensor:${located}:2:4`, 'enforcement:1', `sensor:${located}:1:5`],
      'oldest first across the sources',
    );
    assertMatchesSpec('/observations', 'get', 200, {
      meta: { referenceInstant: 0, offset: 0, pageSize: 100, total: ours.length },
      data: ours,
    });
  });

  it('translates a cap per period and a flat amount valid until a time into the rate table', async () => {
    const res = await get(`/apds/rates/${encodeURIComponent(`tariff:${CAPPED.id}`)}`);
    assert.equal(res.statusCode, 200, res.body);
    const table = res.json();
    assertMatchesSpec('/rates/{id}', 'get', 200, table);
    const [day, evening] = table.rateLineCollections;
    assert.equal(day.maxValueCollection, 10);
    assert.equal(day.resetTime, '02:00');
    assert.equal(day.relativeTimes, true);
    assert.equal(evening.resetTime, '07:00');
    assert.equal(evening.relativeTimes, false);
    assert.deepEqual(
      { type: evening.rateLines[0].rateLineType, value: evening.rateLines[0].value },
      { type: 'flatRate', value: 3 },
    );
    assertMatchesPointer(
      '/paths/~1rates/post/requestBody/content/application~1json/schema',
      table,
      'the rate table as a request body too',
    );
  });
});
