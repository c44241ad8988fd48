// Non-transferable time in the tariff: the document's flag, a timetable entry's own flag winning
// for a bay vacated during that entry, and the default (transferable) when neither says.
import assert from 'node:assert/strict';
import { Tariff, type TariffDocument, validateTariff } from '../../protocol/tariff';

const doc: TariffDocument = {
  id: 'market-town',
  version: 1,
  currency: 826,
  timeZone: 'GMT0BST,M3.5.0/1,M10.5.0',
  groups: { market: [3, 4] },
  rates: { day: [{ price: 60, per: 15 }] },
  timetable: [
    // Market bays on Saturdays: time stays with the bay (a trader's van comes and goes).
    {
      bays: 'market',
      days: ['sat'],
      from: '08:00',
      to: '18:00',
      mode: 'charged',
      rate: 'day',
      nonTransferable: false,
    },
    {
      days: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat'],
      from: '08:00',
      to: '18:00',
      mode: 'charged',
      rate: 'day',
    },
  ],
  nonTransferable: true,
};

/** Epoch seconds of a UTC instant (March 2026 is GMT). */
const at = (iso: string) => Date.parse(iso) / 1000;

describe('tariff: non-transferable time', () => {
  it('the document flag holds where no entry sets its own; an entry flag wins during that entry', () => {
    const tariff = new Tariff(validateTariff(structuredClone(doc)));
    const saturday = at('2026-03-07T10:00:00Z');
    const monday = at('2026-03-02T10:00:00Z');
    assert.equal(tariff.nonTransferableAt(1, saturday), true, 'bay 1: the document flag');
    assert.equal(tariff.nonTransferableAt(3, saturday), false, 'market bay on Saturday: the entry flag');
    assert.equal(tariff.nonTransferableAt(3, monday), true, 'market bay on Monday: the document flag');
    assert.equal(tariff.nonTransferableAt(3, at('2026-03-07T20:00:00Z')), true, 'free evening: the document');
  });

  it('neither flag: time is transferable', () => {
    const plain = structuredClone(doc) as TariffDocument;
    delete plain.nonTransferable;
    const tariff = new Tariff(validateTariff(plain));
    assert.equal(tariff.nonTransferableAt(1, at('2026-03-02T10:00:00Z')), false);
    assert.equal(tariff.nonTransferableAt(3, at('2026-03-07T10:00:00Z')), false);
  });
});
