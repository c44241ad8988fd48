// The sensor and fuel-gauge drivers at register level against their virtual chips: identity, configuration
// writes, conversions, and each fault (no acknowledge, stuck output, wrong identity, bad CRC).
import assert from 'node:assert/strict';
import { Bits as GaugeBits, MAX17048, Register as GaugeRegister } from '../../drivers/power/max17048';
import { Config as AirConfig, ENS160, Register as AirRegister, Validity } from '../../drivers/sensors/ens160';
import { Bits as AccelBits, LIS3DH, Register as AccelRegister } from '../../drivers/sensors/lis3dh';
import { QMC5883L, Register as MagRegister } from '../../drivers/sensors/qmc5883l';
import { SensorIdentityError } from '../../drivers/sensors/registers';
import { Command, SHT3x, sensirionCrc } from '../../drivers/sensors/sht3x';
import { Config as LightConfig, Register as LightRegister, VEML7700 } from '../../drivers/sensors/veml7700';
import { I2cNoAcknowledge, VirtualI2cBus, VirtualPins } from '../../hal/mock/bus';
import { VirtualEns160 } from '../../hal/mock/sensors/ens160';
import { VirtualLis3dh } from '../../hal/mock/sensors/lis3dh';
import { VirtualMax17048 } from '../../hal/mock/sensors/max17048';
import { VirtualQmc5883l } from '../../hal/mock/sensors/qmc5883l';
import { VirtualSht3x } from '../../hal/mock/sensors/sht3x';
import { VirtualVeml7700 } from '../../hal/mock/sensors/veml7700';

function busWith(address: number, chip: Parameters<VirtualI2cBus['attach']>[1]) {
  const bus = new VirtualI2cBus();
  bus.attach(address, chip);
  return bus;
}

describe('VEML7700 cover light sensor (register level)', () => {
  it('reads ID 0x81, writes ALS_CONF_0 (gain, integration time, power on) and converts counts to lux', () => {
    const chip = new VirtualVeml7700();
    const light = new VEML7700({ sensor: { io: busWith(0x10, chip).io } });
    // Default: gain 1/8, 100 ms, ALS on → ALS_CONF_0 = 0b10 << 11 = 0x1000, written LSB first.
    assert.deepEqual(chip.writes.slice(-2), [
      [LightRegister.ALS_CONF_0 * 2, 0x00],
      [LightRegister.ALS_CONF_0 * 2 + 1, 0x10],
    ]);
    assert.ok(Math.abs(light.resolution - 0.4608) < 1e-9, 'gain 1/8, 100 ms: 0.4608 lx/count');
    chip.lux = 0;
    assert.equal(light.sample().lightmeter.illuminance, 0);
    chip.lux = 460.8;
    const { counts, illuminance } = light.sample().lightmeter;
    assert.ok(Math.abs(counts - 1000) <= 1, `counts ${counts}`);
    assert.ok(Math.abs(illuminance - 460.8) < 1);
    light.configure({ gain: LightConfig.Gain.X2, integrationTime: LightConfig.IntegrationTime.MS_800 });
    assert.ok(Math.abs(light.resolution - 0.0036) < 1e-12);
  });

  it('raises the window flags and clears them on read', () => {
    const chip = new VirtualVeml7700();
    const light = new VEML7700({ sensor: { io: busWith(0x10, chip).io } });
    light.configure({ thresholds: { low: 1, high: 50 } });
    chip.lux = 300;
    light.sample();
    assert.deepEqual(light.status(), { high: true, low: false });
    chip.lux = 20; // back inside the window: the flag, cleared by the read, stays clear
    assert.deepEqual(light.status(), { high: false, low: false });
    chip.lux = 0;
    light.sample();
    assert.deepEqual(light.status(), { high: false, low: true });
  });

  it('faults: wrong ID refused and the bus closed; no ACK throws; a stuck output keeps its value; close shuts it down', () => {
    const wrong = new VirtualVeml7700();
    wrong.fault = 'wrong-id';
    assert.throws(() => new VEML7700({ sensor: { io: busWith(0x10, wrong).io } }), SensorIdentityError);
    const mute = new VirtualVeml7700();
    mute.fault = 'no-ack';
    assert.throws(() => new VEML7700({ sensor: { io: busWith(0x10, mute).io } }), I2cNoAcknowledge);
    const chip = new VirtualVeml7700();
    const light = new VEML7700({ sensor: { io: busWith(0x10, chip).io } });
    chip.lux = 100;
    const before = light.sample().lightmeter.counts;
    chip.fault = 'stuck';
    chip.lux = 5000;
    assert.equal(light.sample().lightmeter.counts, before);
    chip.fault = 'no-ack';
    assert.throws(() => light.sample(), I2cNoAcknowledge);
    chip.fault = 'none';
    light.close();
    light.close();
    assert.deepEqual(chip.writes.at(-1), [LightRegister.ALS_CONF_0 * 2 + 1, 0x00]);
    assert.equal(chip.registers[LightRegister.ALS_CONF_0 * 2] & 1, 1, 'ALS_SD set');
    assert.throws(() => light.sample(), /closed/);
  });
});

describe('LIS3DH accelerometer (register level)', () => {
  it('checks WHO_AM_I, sets INT1 active low, configures 10 Hz ±2 g high resolution, reads 12-bit outputs with auto-increment', () => {
    const chip = new VirtualLis3dh();
    const accel = new LIS3DH({ sensor: { io: busWith(0x18, chip).io } });
    assert.equal(chip.registers[AccelRegister.CTRL_REG6], AccelBits.INT_POLARITY);
    assert.equal(chip.registers[AccelRegister.CTRL_REG1], 0b0010_0111);
    assert.equal(chip.registers[AccelRegister.CTRL_REG4], 0b1000_1000);
    chip.acceleration = { x: 0, y: -0.5, z: 0.866 };
    const a = accel.sample().accelerometer;
    assert.ok(
      Math.abs(a.x) < 0.02 && Math.abs(a.y + 0.5 * 9.80665) < 0.02 && Math.abs(a.z - 0.866 * 9.80665) < 0.02,
      JSON.stringify(a),
    );
  });

  it('a shake above INT1_THS pulls INT1 low and calls onAlert; reading INT1_SRC releases it', () => {
    const pins = new VirtualPins();
    const chip = new VirtualLis3dh({ pins, int1: 34 });
    let alerts = 0;
    const accel = new LIS3DH({
      sensor: { io: busWith(0x18, chip).io },
      alert: { io: pins.io, pin: 34 },
      onAlert: () => alerts++,
    });
    accel.configure({ alert: { threshold: 0.5 } });
    assert.equal(chip.registers[AccelRegister.INT1_THS], 31, '0.5 g / 16 mg');
    assert.equal(chip.registers[AccelRegister.INT1_CFG], AccelBits.OR_HIGH_EVENTS);
    assert.equal(pins.level(34), 1);
    assert.equal(chip.shake(0.3), false, 'below the threshold');
    assert.equal(chip.shake(1.2), true);
    assert.equal(pins.level(34), 0);
    assert.equal(alerts, 1);
    const status = accel.status();
    assert.equal(status.active, true);
    assert.equal(pins.level(34), 1, 'released by the read');
    assert.equal(accel.status().active, false);
    accel.close();
  });

  it('faults: wrong WHO_AM_I, no ACK, stuck outputs', () => {
    const wrong = new VirtualLis3dh();
    wrong.fault = 'wrong-id';
    assert.throws(
      () => new LIS3DH({ sensor: { io: busWith(0x18, wrong).io } }),
      /LIS3DH not found: identity 0x32/,
    );
    const chip = new VirtualLis3dh();
    const accel = new LIS3DH({ sensor: { io: busWith(0x18, chip).io } });
    const first = accel.sample().accelerometer;
    chip.fault = 'stuck';
    chip.acceleration = { x: 1, y: 0, z: 0 };
    assert.deepEqual(accel.sample().accelerometer, accel.sample().accelerometer);
    assert.ok(Math.abs(accel.sample().accelerometer.z - first.z) < 0.05);
    chip.fault = 'no-ack';
    assert.throws(() => accel.sample(), I2cNoAcknowledge);
  });
});

describe('SHT31 temperature and humidity (command level, CRC-8)', () => {
  it('CRC-8 of 0xBEEF is 0x92 (datasheet example)', () => {
    assert.equal(sensirionCrc(Uint8Array.of(0xbe, 0xef)), 0x92);
  });

  it('soft-resets, checks the status word, clears it, and converts a single shot', () => {
    const chip = new VirtualSht3x();
    const sht = new SHT3x({ sensor: { io: busWith(0x44, chip).io } });
    assert.deepEqual(chip.commands, [Command.SOFT_RESET, Command.READ_STATUS, Command.CLEAR_STATUS]);
    chip.temperature = 47.5;
    chip.humidity = 81.2;
    const s = sht.sample();
    assert.ok(Math.abs((s.thermometer.temperature ?? 0) - 47.5) < 0.01);
    assert.ok(Math.abs((s.hygrometer.humidity ?? 0) - 81.2) < 0.01);
    assert.equal(chip.commands.at(-1), Command.MEASURE_HIGH_STRETCH);
  });

  it('a bad CRC leaves the value out and reports it; wrong identity, no ACK and a stuck output', () => {
    const chip = new VirtualSht3x();
    const errors: string[] = [];
    const sht = new SHT3x({ sensor: { io: busWith(0x44, chip).io }, onError: (m) => errors.push(m) });
    chip.corruptCrc = 1;
    const s = sht.sample();
    assert.equal(s.thermometer.temperature, undefined);
    assert.equal(typeof s.hygrometer.humidity, 'number');
    assert.deepEqual(errors, ['bad checksum: temperature']);
    chip.fault = 'stuck';
    chip.temperature = 90;
    assert.ok((sht.sample().thermometer.temperature ?? 0) < 30);
    const wrong = new VirtualSht3x();
    wrong.fault = 'wrong-id';
    assert.throws(() => new SHT3x({ sensor: { io: busWith(0x44, wrong).io } }), SensorIdentityError);
    const mute = new VirtualSht3x();
    mute.fault = 'no-ack';
    assert.throws(() => new SHT3x({ sensor: { io: busWith(0x44, mute).io } }), I2cNoAcknowledge);
  });
});

describe('ENS160 air quality (register level)', () => {
  it('checks PART_ID 0x0160, sets standard mode, writes compensation as K×64 and %RH×512, reads AQI/TVOC/eCO2', () => {
    const chip = new VirtualEns160();
    const air = new ENS160({ sensor: { io: busWith(0x52, chip).io } });
    assert.equal(chip.registers[AirRegister.OPMODE], AirConfig.Mode.STANDARD);
    air.configure({ compensation: { temperature: 25, humidity: 50 } });
    assert.deepEqual(
      [chip.registers[0x13], chip.registers[0x14]],
      [0x8a, 0x4a],
      '25 °C = 0x4A8A (datasheet example)',
    );
    assert.deepEqual([chip.registers[0x15], chip.registers[0x16]], [0x00, 0x64], '50 % = 0x6400');
    chip.aqi = 4;
    chip.tvoc = 900;
    chip.eco2 = 1500;
    const s = air.sample().airQuality;
    assert.equal(s.aqi, 4);
    assert.ok(s.tvoc === 900 || s.tvoc === 901);
    assert.equal(s.eco2, 1500);
    assert.equal(s.validity, Validity.NORMAL);
    chip.validity = Validity.WARM_UP;
    assert.equal(air.sample().airQuality.validity, Validity.WARM_UP);
    air.close();
    assert.equal(chip.registers[AirRegister.OPMODE], AirConfig.Mode.DEEP_SLEEP);
  });

  it('faults: wrong PART_ID, no ACK, stuck outputs', () => {
    const wrong = new VirtualEns160();
    wrong.fault = 'wrong-id';
    assert.throws(() => new ENS160({ sensor: { io: busWith(0x52, wrong).io } }), SensorIdentityError);
    const chip = new VirtualEns160();
    const air = new ENS160({ sensor: { io: busWith(0x52, chip).io } });
    air.sample();
    chip.fault = 'stuck';
    chip.aqi = 5;
    assert.equal(air.sample().airQuality.aqi, 1);
    chip.fault = 'no-ack';
    assert.throws(() => air.sample(), I2cNoAcknowledge);
  });
});

describe('QMC5883L bay magnetometer (register level)', () => {
  it('checks chip ID 0xFF, soft-resets, sets SET/RESET period, continuous 10 Hz 8 G OSR 512, reads µT', () => {
    const chip = new VirtualQmc5883l();
    const mag = new QMC5883L({ sensor: { io: busWith(0x0d, chip).io } });
    assert.equal(chip.registers[MagRegister.SET_RESET_PERIOD], 0x01);
    assert.equal(chip.registers[MagRegister.CONTROL_1], 0b0001_0001);
    chip.field = { x: 30, y: -12, z: -45 };
    const m = mag.sample().magnetometer;
    assert.ok(
      Math.abs(m.x - 30) < 0.1 && Math.abs(m.y + 12) < 0.1 && Math.abs(m.z + 45) < 0.1,
      JSON.stringify(m),
    );
  });

  it('reports an overflow, and faults: wrong ID, no ACK, stuck outputs', () => {
    const chip = new VirtualQmc5883l();
    const errors: string[] = [];
    const mag = new QMC5883L({ sensor: { io: busWith(0x0d, chip).io }, onError: (e) => errors.push(e) });
    chip.field = { x: 2000, y: 0, z: 0 };
    mag.sample();
    assert.deepEqual(errors, ['magnetic overflow']);
    chip.field = { x: 20, y: 5, z: -42 };
    const before = mag.sample().magnetometer;
    chip.fault = 'stuck';
    chip.field = { x: 90, y: 90, z: 90 };
    assert.deepEqual(mag.sample().magnetometer, before);
    chip.fault = 'no-ack';
    assert.throws(() => mag.sample(), I2cNoAcknowledge);
    const wrong = new VirtualQmc5883l();
    wrong.fault = 'wrong-id';
    assert.throws(() => new QMC5883L({ sensor: { io: busWith(0x0d, wrong).io } }), SensorIdentityError);
  });
});

describe('MAX17048 fuel gauge (register level)', () => {
  it('checks VERSION 0x001_, writes CONFIG (RCOMP 0x97, empty alert), reads VCELL, SOC and CRATE', () => {
    const chip = new VirtualMax17048();
    const gauge = new MAX17048({ sensor: { io: busWith(0x36, chip).io } });
    gauge.configure({ emptyAlert: 15, voltageAlert: { min: 3.0, max: 4.3 } });
    assert.deepEqual(
      [chip.registers[GaugeRegister.CONFIG], chip.registers[GaugeRegister.CONFIG + 1]],
      [0x97, 32 - 15],
    );
    assert.deepEqual(
      [chip.registers[GaugeRegister.VALRT], chip.registers[GaugeRegister.VALRT + 1]],
      [150, 215],
    );
    chip.percent = 57.5;
    chip.voltage = 3.8;
    chip.rate = -1.04;
    const b = gauge.sample().battery;
    assert.equal(b.percent, 57.5);
    assert.ok(Math.abs(b.voltage - 3.8) < 0.0001);
    assert.ok(Math.abs(b.rate + 1.04) < 0.01);
  });

  it('RI after power-up, VR after a drop-out, HD below the empty threshold; clearStatus and quick-start', () => {
    const chip = new VirtualMax17048();
    const gauge = new MAX17048({ sensor: { io: busWith(0x36, chip).io } });
    assert.equal(gauge.status().resetIndicator, true);
    gauge.clearStatus();
    assert.equal(gauge.status().resetIndicator, false);
    gauge.configure({ resetAlert: true, emptyAlert: 10 });
    chip.dropOut();
    assert.equal(gauge.status().voltageReset, true);
    chip.percent = 5;
    gauge.sample();
    assert.equal(gauge.status().low, true);
    assert.ok(chip.peek16(GaugeRegister.CONFIG) & GaugeBits.ALRT);
    gauge.clearStatus();
    assert.equal(gauge.status().voltageReset, false);
    assert.equal(chip.peek16(GaugeRegister.STATUS) & GaugeBits.EN_VR, GaugeBits.EN_VR, 'EnVR kept');
    gauge.quickStart();
    assert.equal(chip.quickStarts, 1);
  });

  it('faults: wrong VERSION, no ACK, stuck outputs', () => {
    const wrong = new VirtualMax17048();
    wrong.fault = 'wrong-id';
    assert.throws(() => new MAX17048({ sensor: { io: busWith(0x36, wrong).io } }), SensorIdentityError);
    const chip = new VirtualMax17048();
    const gauge = new MAX17048({ sensor: { io: busWith(0x36, chip).io } });
    chip.percent = 70;
    gauge.sample();
    chip.fault = 'stuck';
    chip.percent = 20;
    assert.equal(gauge.sample().battery.percent, 70);
    chip.fault = 'no-ack';
    assert.throws(() => gauge.sample(), I2cNoAcknowledge);
  });
});
