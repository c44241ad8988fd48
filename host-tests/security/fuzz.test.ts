import assert from 'node:assert/strict';
import { fuzz } from './fuzzer';

describe('fuzzing the frame and APDU parsers', () => {
  it('refuses 6,000 random and mutated inputs with typed errors; none crashes, none is accepted', () => {
    const report = fuzz(6_000, 20260501);
    assert.equal(report.inputs, 6_000);
    assert.deepEqual(report.crashes, []);
    assert.equal(report.accepted, 0);
    assert.ok((report.refused['decrypt-failed'] ?? 0) > 100, JSON.stringify(report.refused));
  });
});
