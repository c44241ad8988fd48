import assert from 'node:assert/strict';
import { dayLength, formatLocal, parseInstant, parseTimeZone, TimeZoneError } from '../../protocol/tariff';
import { daysFromCivil, nextTransition, offsetAt, toLocal } from '../../protocol/tariff/tz';

const UK = parseTimeZone('GMT0BST,M3.5.0/1,M10.5.0');

describe('POSIX TZ local time', () => {
  it('parses names, offsets and rules, with POSIX signs (positive west)', () => {
    const ny = parseTimeZone('EST5EDT,M3.2.0,M11.1.0');
    assert.equal(ny.stdOffset, -5 * 3600);
    assert.equal(ny.dstOffset, -4 * 3600);
    const lh = parseTimeZone('<+1030>-10:30<+11>-11,M10.1.0,M4.1.0');
    assert.equal(lh.stdName, '+1030');
    assert.equal(lh.stdOffset, 10.5 * 3600);
    assert.equal(lh.dstOffset, 11 * 3600);
    const j = parseTimeZone('XXX3YYY,J60/2,300/25');
    assert.equal(j.start?.kind, 'J');
    assert.equal(j.end?.time, 25 * 3600);
    assert.equal(parseTimeZone('UTC0').dstName, undefined);
  });

  it('refuses malformed strings with the position of the fault', () => {
    for (const bad of [
      '',
      'GM0',
      'GMT',
      'GMT0BST,M3.5.0',
      'GMT0BST,M13.5.0,M10.5.0',
      'GMT0BST,M3.6.0,M10.5.0',
      '<+1>1',
      ':Europe/London',
      'GMT0 ',
    ]) {
      assert.throws(() => parseTimeZone(bad), TimeZoneError, bad);
    }
  });

  it('changes the UK clocks at 01:00 UTC on the last Sundays of March and October', () => {
    const spring = parseInstant('2026-03-29T01:00:00Z');
    assert.equal(offsetAt(UK, spring - 1), 0);
    assert.equal(offsetAt(UK, spring), 3600);
    assert.equal(nextTransition(UK, spring - 100), spring);
    const autumn = parseInstant('2026-10-25T01:00:00Z');
    assert.equal(offsetAt(UK, autumn - 1), 3600);
    assert.equal(offsetAt(UK, autumn), 0);
    assert.equal(formatLocal(UK, autumn - 60), '2026-10-25T01:59+01:00');
    assert.equal(formatLocal(UK, autumn), '2026-10-25T01:00+00:00');
  });

  it('has a 23-hour and a 25-hour day, north and south', () => {
    assert.equal(dayLength(UK, daysFromCivil(2026, 3, 29)), 23 * 3600);
    assert.equal(dayLength(UK, daysFromCivil(2026, 10, 25)), 25 * 3600);
    assert.equal(dayLength(UK, daysFromCivil(2026, 7, 1)), 24 * 3600);
    const sydney = parseTimeZone('AEST-10AEDT,M10.1.0,M4.1.0/3');
    assert.equal(dayLength(sydney, daysFromCivil(2026, 10, 4)), 23 * 3600);
    assert.equal(dayLength(sydney, daysFromCivil(2026, 4, 5)), 25 * 3600);
    // Southern summer spans new year: January is daylight time.
    assert.equal(offsetAt(sydney, parseInstant('2026-01-01T00:00:00Z')), 11 * 3600);
  });

  it('reads local times without an offset in the zone; in the skipped hour, as the later reading', () => {
    assert.equal(parseInstant('2026-07-01T12:00', UK), parseInstant('2026-07-01T11:00:00Z'));
    assert.equal(parseInstant('2026-03-29T01:30', UK), parseInstant('2026-03-29T01:30:00Z'));
    assert.equal(
      parseInstant('2026-10-25T01:30', UK),
      parseInstant('2026-10-25T00:30:00Z'),
      'first of the two',
    );
    assert.equal(toLocal(UK, parseInstant('2026-12-31T23:59:59Z')).day, 31);
    assert.throws(() => parseInstant('2026-02-30T10:00Z'), TimeZoneError);
    assert.throws(() => parseInstant('yesterday'), TimeZoneError);
  });
});
