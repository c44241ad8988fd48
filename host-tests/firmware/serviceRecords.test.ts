// The operation records of claim 10b that say when no payment was due or a part was out of service:
// service-free for each free period of the tariff's timetable once it has ended (worked out from the
// tariff, so a meter that slept or was off meanwhile still records it), and downtime for a module
// the monitor had given up on until it answered again.
import assert from 'node:assert/strict';
import { Meter } from '../../firmware/meter';
import { provisionBoard } from '../../firmware/units/security';
import { VirtualBoard } from '../../hal/mock/board';
import { VirtualClock } from '../../hal/mock/clock';
import { VirtualBroker } from '../../hal/mock/mqtt';
import { nobleCrypto } from '../../hal/nobleCrypto';
import { deriveCardTokenKey } from '../../protocol/cardToken';
import { deriveMeterKeys } from '../../protocol/keys';
import { decodeRecord, type OperationData, OperationCode, RecordKind } from '../../protocol/records';
import { MON_TO_SAT, oneRate } from '../tariff/fixtures';

const METER = 2101;
const MASTER = Uint8Array.from({ length: 32 }, (_, i) => i * 7);
const at = (iso: string) => Date.parse(iso) / 1000;

// Charged 08:00-18:00 Monday to Saturday; free otherwise (UTC, so the times read as they are).
const weekdays = oneRate('weekdays', [{ price: 30, per: 10 }], {
  days: MON_TO_SAT,
  from: '08:00',
  to: '18:00',
});

function boot(clock: VirtualClock, state?: VirtualBoard['state']) {
  const broker = new VirtualBroker(clock);
  const board = new VirtualBoard({ mqtt: broker.link(), clock, ...(state ? { state } : {}) });
  if (!state)
    provisionBoard(
      board.hardware,
      {
        ...deriveMeterKeys(nobleCrypto, MASTER, METER, 1),
        cardTokenKey: deriveCardTokenKey(nobleCrypto, MASTER),
      },
      METER,
    );
  const meter = new Meter(board.hardware, { meterId: METER, bays: [1, 2], tariff: weekdays });
  meter.start();
  return { meter, board };
}

function operations(meter: Meter, code: string): OperationData[] {
  return meter.log
    .read(1)
    .map((r) => decodeRecord(r.bytes))
    .flatMap((r) => (r.kind === RecordKind.Operation && r.data.code === code ? [r.data] : []));
}

describe('service-free and downtime operation records', () => {
  it('records each free period of the timetable once it has ended, and nothing for charged time', () => {
    const clock = new VirtualClock('2026-03-04T09:00:00Z'); // a Wednesday
    const { meter } = boot(clock);
    clock.advance(8 * 3_600_000); // 17:00: charged all along
    assert.deepEqual(operations(meter, OperationCode.ServiceFree), []);
    clock.advance(17 * 3_600_000); // Thursday 10:00
    const free = operations(meter, OperationCode.ServiceFree);
    assert.equal(free.length, 1, 'Wednesday night, recorded once');
    assert.deepEqual(free[0].period, { from: at('2026-03-04T18:00:00Z'), to: at('2026-03-05T08:00:00Z') });
    // Saturday 18:00 to Monday 08:00 is one free period (Sunday is free all day).
    clock.advance((4 * 24 + 1) * 3_600_000); // Monday 11:00
    const later = operations(meter, OperationCode.ServiceFree);
    assert.deepEqual(later.at(-1)?.period, {
      from: at('2026-03-07T18:00:00Z'),
      to: at('2026-03-09T08:00:00Z'),
    });
    assert.equal(later.length, 4, 'Wednesday, Thursday and Friday nights, and the weekend');
    meter.stop();
  });

  it('records a free period that ended while the meter was off', () => {
    const clock = new VirtualClock('2026-03-04T19:30:00Z'); // Wednesday evening, free
    const first = boot(clock);
    clock.advance(3_600_000); // 20:30: the free period is under way
    first.meter.stop();
    // Off overnight; back on Thursday at 11:00.
    const later = new VirtualClock('2026-03-05T11:00:00Z');
    const { meter } = boot(later, first.board.state);
    const free = operations(meter, OperationCode.ServiceFree);
    assert.equal(free.length, 1);
    assert.deepEqual(
      free[0].period,
      { from: at('2026-03-04T19:30:00Z'), to: at('2026-03-05T08:00:00Z') },
      'from when the meter first saw it free to when charges began',
    );
    meter.stop();
  });
});
