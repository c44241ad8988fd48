// The tariff downlink at the meter (0x85 'tariff'): a tariff names itself, so the meter applies
// another tariff whatever its version (a meter moved to another zone) and the same tariff only in a
// newer version, keeps what the platform pushed across a restart, and names the tariff it holds in
// its acknowledgement (0x05), so the platform cannot take one tariff's version for another's.
import assert from 'node:assert/strict';
import { EventBus } from '../../firmware/bus';
import type { MeterEvents } from '../../firmware/events';
import { ChargingUnit } from '../../firmware/units/charging';
import { MemoryPreferences } from '../../hal/mock/preferences';
import { encodeCbor } from '../../protocol/cbor';
import { ProtocolError } from '../../protocol/errors';
import {
  decodeTariffAck,
  encodeTariffAck,
  encodeTariffPush,
  flatTariff,
  TARIFF_ACK_UPLINK,
  type TariffAck,
  type TariffDocument,
} from '../../protocol/tariff';

// As the platform sends a stored document: JSON, so no key is left undefined.
const tariff = (id: string, version: number, perHour: number): TariffDocument =>
  JSON.parse(
    JSON.stringify({
      ...flatTariff({
        currency: 826,
        perHour,
        minMinutes: 15,
        maxMinutes: 240,
        stepMinutes: 15,
        timeZone: 'UTC0',
      }),
      id,
      version,
    }),
  );

function meter(provisioned: TariffDocument, preferences = new MemoryPreferences()) {
  const acks: TariffAck[] = [];
  const applied: string[] = [];
  const bus = new EventBus<MeterEvents>();
  bus.on('tariff-applied', ({ id, version }) => applied.push(`${id}@${version}`));
  const unit = new ChargingUnit({
    tariff: provisioned,
    preferences,
    bus,
    send: (type, body) => {
      assert.equal(type, TARIFF_ACK_UPLINK);
      acks.push(decodeTariffAck(body));
      return true;
    },
  });
  const push = (doc: TariffDocument) =>
    unit.applyDownlink(encodeTariffPush({ kind: 'tariff', version: doc.version, tariff: doc }));
  return { unit, acks, applied, push, preferences };
}

describe('meter: the tariff downlink names its tariff', () => {
  it('applies another tariff in a lower version, and acknowledges it by name', () => {
    const m = meter(tariff('zone-a', 3, 200));
    assert.deepEqual(m.push(tariff('zone-b', 2, 350)), {
      kind: 'tariff',
      version: 2,
      tariff: 'zone-b',
      ok: true,
    });
    assert.deepEqual(m.acks, [{ kind: 'tariff', version: 2, tariff: 'zone-b', ok: true }]);
    assert.equal(m.unit.tariff.doc.id, 'zone-b');
    assert.deepEqual(m.applied, ['zone-b@2']);
  });

  it('takes the same tariff only in a newer version, answering with what it holds', () => {
    const m = meter(tariff('zone-a', 3, 200));
    m.push(tariff('zone-b', 2, 350));
    assert.deepEqual(m.push(tariff('zone-b', 2, 350)), {
      kind: 'tariff',
      version: 2,
      tariff: 'zone-b',
      ok: true,
    });
    assert.deepEqual(m.push(tariff('zone-b', 1, 100)), {
      kind: 'tariff',
      version: 2,
      tariff: 'zone-b',
      ok: true,
    });
    assert.equal(m.unit.tariff.doc.version, 2);
    assert.deepEqual(m.push(tariff('zone-b', 4, 400)), {
      kind: 'tariff',
      version: 4,
      tariff: 'zone-b',
      ok: true,
    });
    assert.deepEqual(m.applied, ['zone-b@2', 'zone-b@4']);
  });

  it('keeps the pushed tariff across a restart, unless the firmware carries a newer version of it', () => {
    const first = meter(tariff('zone-a', 3, 200));
    first.push(tariff('zone-b', 2, 350));
    assert.equal(meter(tariff('zone-a', 3, 200), first.preferences).unit.tariff.doc.id, 'zone-b');
    const newer = meter(tariff('zone-b', 5, 500), first.preferences).unit.tariff.doc;
    assert.deepEqual([newer.id, newer.version], ['zone-b', 5]);
  });

  it('refuses a document without a usable id, names nothing, and keeps its tariff', () => {
    const m = meter(tariff('zone-a', 3, 200));
    const broken = { ...tariff('zone-b', 4, 350), id: '' };
    const ack = m.push(broken);
    assert.equal(ack.ok, false);
    assert.equal(ack.tariff, undefined);
    assert.match(ack.why ?? '', /id/);
    assert.equal(m.unit.tariff.doc.id, 'zone-a');
  });

  it('decodes an acknowledgement with or without the tariff named; a bad name is a typed error', () => {
    const named: TariffAck = { kind: 'tariff', version: 7, tariff: 'zone-c', ok: true };
    assert.deepEqual(decodeTariffAck(encodeTariffAck(named)), named);
    assert.deepEqual(decodeTariffAck(encodeTariffAck({ kind: 'tariff', version: 7, ok: true })), {
      kind: 'tariff',
      version: 7,
      ok: true,
    });
    for (const t of [5, '', ['zone-c']])
      assert.throws(() => decodeTariffAck(encodeCbor({ k: 'tariff', v: 7, ok: true, t })), ProtocolError);
  });
});
