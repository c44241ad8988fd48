import assert from 'node:assert/strict';
import { ReaderFilesStore, StaleReaderFileError } from '../../firmware/units/readerFiles';
import { PowerLoss, VirtualNorFlash } from '../../hal/mock/flash';

const profile = Uint8Array.of(0xf0, 0x50, 0x4b, 0x4c, 0x4e, 0x4b, 0x01);

describe('reader files store (the fourth store)', () => {
  it('keeps named, versioned files across a restart and refuses older versions', () => {
    const flash = new VirtualNorFlash({ byteLength: 2 * 4096 });
    const store = new ReaderFilesStore(flash);
    store.put('card-profile', 1, profile);
    store.put('reader-params', 3, Uint8Array.of(4));
    assert.throws(() => store.put('card-profile', 1, profile), StaleReaderFileError);
    store.put('card-profile', 2, Uint8Array.of(1, 2));
    const again = new ReaderFilesStore(new VirtualNorFlash({ cells: flash.cells }));
    assert.deepEqual(again.list(), [
      { name: 'card-profile', kind: 'document', version: 2 },
      { name: 'reader-params', kind: 'document', version: 3 },
    ]);
    assert.deepEqual(again.get('card-profile'), { version: 2, bytes: Uint8Array.of(1, 2), kind: 'document' });
    again.remove('reader-params');
    assert.equal(
      new ReaderFilesStore(new VirtualNorFlash({ cells: flash.cells })).get('reader-params'),
      undefined,
    );
  });

  it('refuses bad names, versions and files too large for a slot, storing nothing', () => {
    const store = new ReaderFilesStore(new VirtualNorFlash({ byteLength: 2 * 4096 }));
    assert.throws(() => store.put('../etc', 1, profile), RangeError);
    assert.throws(() => store.put('x', 0, profile), RangeError);
    assert.throws(() => store.put('big', 1, new Uint8Array(5000)), RangeError);
    assert.deepEqual(store.list(), []);
  });

  it('leaves the old set or the new one after a power cut at any byte of an update', () => {
    const flash = new VirtualNorFlash({ byteLength: 2 * 4096 });
    new ReaderFilesStore(flash).put('card-profile', 1, profile);
    for (let cut = 0; cut < 4096 + 80; cut += 37) {
      const copy = new VirtualNorFlash({ cells: flash.cells.slice() });
      const store = new ReaderFilesStore(copy);
      copy.cutPowerAfter(cut);
      try {
        store.put('card-profile', 2, Uint8Array.of(9, 9, 9));
      } catch (error) {
        assert.ok(error instanceof PowerLoss);
      }
      const after = new ReaderFilesStore(new VirtualNorFlash({ cells: copy.cells })).get('card-profile');
      assert.ok(after?.version === 1 || after?.version === 2, `cut ${cut}: a whole set survives`);
      if (after.version === 1) assert.deepEqual(after.bytes, profile);
      else assert.deepEqual(after.bytes, Uint8Array.of(9, 9, 9));
    }
  });
});
