// The tariff document: the hand validator (meter, platform, CLI) names the bad field, and the JSON
// schema published for editors agrees with it on good and bad documents.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { flatTariff, type TariffDocument, TariffError, validateTariff } from '../../protocol/tariff';

const schema = JSON.parse(
  readFileSync(new URL('../../protocol/tariff/tariff.schema.json', import.meta.url), 'utf8'),
);
const ajv = new Ajv2020({ allErrors: true, strict: false });
const schemaValid = ajv.compile(schema);

const good: TariffDocument = {
  id: 'good',
  version: 4,
  currency: 978,
  timeZone: 'CET-1CEST,M3.5.0,M10.5.0/3',
  groups: { market: [10, 11] },
  holidays: ['2026-05-01'],
  rates: {
    a: [
      { upTo: 60, flat: 100 },
      { price: 5, per: 3 },
    ],
    evening: [{ flat: 300, validUntil: '07:00' }],
  },
  timetable: [
    { bays: 'market', days: ['sat'], from: '07:00', to: '13:00', mode: 'no-parking' },
    {
      days: ['mon', 'fri'],
      from: '22:00',
      to: '06:00',
      mode: 'charged',
      rate: 'a',
      maxStayMinutes: 480,
      nonTransferable: false,
      dates: { from: '04-01', to: '09-30' },
      eligible: { methods: ['card', 'phone'], classes: ['resident'] },
    },
  ],
  maxStayMinutes: 600,
  minimum: { minutes: 10, amount: 20 },
  graceMinutes: 10,
  nonCumulative: true,
  nonTransferable: true,
  rounding: { stepMinutes: 5, money: 'nearest', moneyUnit: 10, units: 'purchase' },
  bandsAfterFree: 'continue',
  sellsAhead: false,
  fee: { amount: 20, name: 'booking fee' },
  tax: { percent: 20, included: true, name: 'VAT' },
  maxPrice: { amount: 1000, resetAt: '02:00' },
  noReturnMinutes: 120,
};

// biome-ignore lint/suspicious/noExplicitAny: the mutations reach into any field of the document
type Loose = any;

/** A copy of `good` with one change made by `mutate`. */
function bad(mutate: (d: Loose) => void): unknown {
  const d = structuredClone(good) as Loose;
  mutate(d);
  return d;
}

const cases: [string, unknown, boolean][] = [
  ['id', bad((d) => delete d.id), true],
  ['version', bad((d) => (d.version = -1)), true],
  ['currency', bad((d) => (d.currency = 'EUR')), true],
  ['timeZone', bad((d) => (d.timeZone = 'Europe/Paris')), false],
  ['groups.market[1]', bad((d) => (d.groups.market[1] = 'x')), true],
  ['holidays[0]', bad((d) => (d.holidays[0] = '2026-13-01')), true],
  ['rates.a[1].per', bad((d) => delete d.rates.a[1].per), true],
  ['rates.a[0].upTo', bad((d) => delete d.rates.a[0].upTo), false],
  ['rates.a[1].price', bad((d) => (d.rates.a[1].price = 0.5)), true],
  ['timetable[1].rate', bad((d) => (d.timetable[1].rate = 'b')), false],
  ['timetable[0].bays', bad((d) => (d.timetable[0].bays = 'station')), false],
  ['timetable[1].from', bad((d) => (d.timetable[1].from = '25:00')), true],
  ['timetable[0].days[0]', bad((d) => (d.timetable[0].days[0] = 'saturday')), true],
  ['timetable[1].mode', bad((d) => (d.timetable[1].mode = 'paid')), true],
  ['timetable[0].rate', bad((d) => (d.timetable[0].rate = 'a')), true],
  ['timetable[1].colour', bad((d) => (d.timetable[1].colour = 'red')), true],
  ['minimum.minutes', bad((d) => (d.minimum.minutes = 700)), false],
  ['rounding.money', bad((d) => (d.rounding.money = 'bankers')), true],
  ['nonCumulative', bad((d) => (d.nonCumulative = 'yes')), true],
  ['nonTransferable', bad((d) => (d.nonTransferable = 1)), true],
  ['timetable[1].nonTransferable', bad((d) => (d.timetable[1].nonTransferable = 'no')), true],
  ['surcharge', bad((d) => (d.surcharge = 5)), true],
  ['rounding.units', bad((d) => (d.rounding.units = 'day')), true],
  ['bandsAfterFree', bad((d) => (d.bandsAfterFree = 'sometimes')), true],
  ['timetable[1].dates.to', bad((d) => (d.timetable[1].dates.to = '2026-09-30')), false],
  ['timetable[1].dates.from', bad((d) => (d.timetable[1].dates.from = '13-01')), true],
  [
    'timetable[1].dates.to',
    bad((d) => (d.timetable[1].dates = { from: '2026-09-30', to: '2026-04-01' })),
    false,
  ],
  ['fee.amount', bad((d) => (d.fee.amount = -5)), true],
  ['tax.percent', bad((d) => (d.tax.percent = 20.1255)), true],
  ['tax.included', bad((d) => delete d.tax.included), true],
  ['sellsAhead', bad((d) => (d.sellsAhead = 'no')), true],
  ['timetable[1].eligible.methods[0]', bad((d) => (d.timetable[1].eligible.methods[0] = 'cash')), true],
  ['timetable[1].eligible.classes', bad((d) => (d.timetable[1].eligible.classes = [])), true],
  ['timetable[1].eligible', bad((d) => (d.timetable[1].eligible = {})), true],
  ['maxPrice.amount', bad((d) => (d.maxPrice.amount = 0)), true],
  ['maxPrice.resetAt', bad((d) => (d.maxPrice.resetAt = '24:00')), true],
  ['maxPrice.resetAt', bad((d) => delete d.maxPrice.resetAt), true],
  ['noReturnMinutes', bad((d) => (d.noReturnMinutes = 0)), true],
  ['rates.evening[0].validUntil', bad((d) => (d.rates.evening[0].validUntil = '7am')), true],
  ['rates.evening[0].upTo', bad((d) => (d.rates.evening[0].upTo = 60)), true],
  ['rates.evening[0].validUntil', bad((d) => d.rates.evening.push({ price: 1, per: 1 })), false],
];

describe('tariff document validation', () => {
  it('accepts a good document, and the flat-rate helper makes one', () => {
    assert.deepEqual(validateTariff(structuredClone(good)), good);
    assert.equal(schemaValid(good), true, JSON.stringify(schemaValid.errors));
    const flat = flatTariff({
      currency: 826,
      perHour: 240,
      minMinutes: 15,
      maxMinutes: 240,
      stepMinutes: 15,
    });
    validateTariff(flat);
    assert.equal(schemaValid(flat), true);
  });

  for (const [field, doc, schemaSees] of cases) {
    it(`names ${field} when it is wrong${schemaSees ? ', as the schema does' : ' (a rule the schema cannot state)'}`, () => {
      assert.throws(
        () => validateTariff(doc),
        (error: unknown) => error instanceof TariffError && error.field === field,
      );
      if (schemaSees) assert.equal(schemaValid(doc), false, `the schema accepts a bad ${field}`);
      else
        assert.equal(
          schemaValid(doc),
          true,
          `the schema should pass ${field}: ${JSON.stringify(schemaValid.errors)}`,
        );
    });
  }

  it('refuses what is not an object at all', () => {
    for (const v of [null, 3, 'tariff', []]) assert.throws(() => validateTariff(v), TariffError);
  });
});
