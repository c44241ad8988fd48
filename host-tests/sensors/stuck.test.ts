// Stuck or steady: the cover's light sensor and the air sensor legitimately read the same for hours
// (a shut cover is dark; clean air is clean), so an unchanged output alone proves nothing. At
// register level: the VEML7700's window flag as a self-check, the ENS160's NEWDAT flag and its
// DATA_MISR checksum over the bytes read.
import assert from 'node:assert/strict';
import { ENS160, misrStep, Register as AirRegister } from '../../drivers/sensors/ens160';
import { Bits as LightBits, Register as LightRegister, VEML7700 } from '../../drivers/sensors/veml7700';
import { VirtualI2cBus } from '../../hal/mock/bus';
import { VirtualEns160 } from '../../hal/mock/sensors/ens160';
import { VirtualVeml7700 } from '../../hal/mock/sensors/veml7700';

function busWith(address: number, chip: Parameters<VirtualI2cBus['attach']>[1]) {
  const bus = new VirtualI2cBus();
  bus.attach(address, chip);
  return bus;
}

describe('VEML7700 self-test (window flag)', () => {
  it('a dark, converting chip raises ALS_INT low once ALS_WL is put above its count; the window is restored', () => {
    const chip = new VirtualVeml7700();
    const light = new VEML7700({ sensor: { io: busWith(0x10, chip).io } });
    chip.lux = 0;
    assert.equal(light.sample().lightmeter.counts, 0);
    light.armSelfTest();
    assert.equal(chip.peek16(LightRegister.ALS_WL * 2, true), 1, 'ALS_WL one count above 0');
    assert.equal(chip.peek16(LightRegister.ALS_WH * 2, true), 0xffff);
    assert.ok(chip.peek16(LightRegister.ALS_CONF_0 * 2, true) & LightBits.INT_EN, 'interrupt enabled');
    assert.equal(light.sample().lightmeter.counts, 0, 'still dark');
    assert.equal(light.selfTestPassed(), true);
    assert.equal(chip.peek16(LightRegister.ALS_WL * 2, true), 0, 'window restored');
    assert.equal(
      chip.peek16(LightRegister.ALS_CONF_0 * 2, true) & LightBits.INT_EN,
      0,
      'interrupt off again',
    );
    assert.equal(light.selfTestPassed(), false, 'nothing armed: no pass');
  });

  it('at full scale the high threshold is used', () => {
    const chip = new VirtualVeml7700();
    const light = new VEML7700({ sensor: { io: busWith(0x10, chip).io } });
    chip.lux = 1e6;
    assert.equal(light.sample().lightmeter.counts, 0xffff);
    light.armSelfTest();
    assert.equal(chip.peek16(LightRegister.ALS_WH * 2, true), 0xfffe);
    light.sample();
    assert.equal(light.selfTestPassed(), true);
  });

  it('a stuck chip (no conversions) never raises the flag', () => {
    const chip = new VirtualVeml7700();
    const light = new VEML7700({ sensor: { io: busWith(0x10, chip).io } });
    light.sample();
    chip.fault = 'stuck';
    light.armSelfTest();
    light.sample();
    assert.equal(light.selfTestPassed(), false);
  });
});

describe('ENS160 data checksum (DATA_MISR) and NEWDAT', () => {
  it('misrStep: shift left, xor the byte, xor 0x1D when the top bit fell out', () => {
    assert.equal(misrStep(0x00, 0x01), 0x01);
    assert.equal(misrStep(0x01, 0x00), 0x02);
    assert.equal(misrStep(0x80, 0x00), 0x1d);
    assert.equal(misrStep(0xff, 0xff), (0x1fe ^ 0xff ^ 0x1d) & 0xff);
  });

  it('reads DATA_MISR before and after the data and accepts a clean read', () => {
    const chip = new VirtualEns160();
    const errors: string[] = [];
    const air = new ENS160({ sensor: { io: busWith(0x52, chip).io }, onError: (m) => errors.push(m) });
    for (let i = 0; i < 5; i++) air.sample();
    assert.deepEqual(errors, []);
    assert.ok(
      chip.transactions > 0 && chip.writes.every(([r]) => r !== AirRegister.DATA_MISR),
      'DATA_MISR is only read',
    );
  });

  it('a corrupted data byte is caught by the checksum', () => {
    const chip = new VirtualEns160();
    const errors: string[] = [];
    const air = new ENS160({ sensor: { io: busWith(0x52, chip).io }, onError: (m) => errors.push(m) });
    air.sample();
    chip.corruptReads = 1;
    air.sample();
    assert.equal(errors.length, 1);
    assert.match(errors[0], /data checksum \(DATA_MISR 0x[0-9a-f]+, expected 0x[0-9a-f]+\)/);
    air.sample();
    assert.equal(errors.length, 1, 'the next clean read agrees again');
  });

  it('NEWDAT: set by each new result, cleared by reading it; a stuck chip shows none', () => {
    const chip = new VirtualEns160();
    const air = new ENS160({ sensor: { io: busWith(0x52, chip).io } });
    assert.equal(air.sample().airQuality.fresh, true);
    assert.equal(air.sample().airQuality.fresh, true, 'a converting chip has a new result each time');
    chip.fault = 'stuck';
    air.sample(); // the flag raised before it stuck is read (and cleared) once
    assert.equal(air.sample().airQuality.fresh, false);
    assert.equal(air.sample().airQuality.fresh, false);
  });
});
