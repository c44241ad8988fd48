// The virtual sensor chips state their registers from the datasheets and the drivers state their
// own: here the tables meet, so a wrong address or bit on either side fails by name.
import assert from 'node:assert/strict';
import * as max from '../../drivers/power/max17048';
import * as ens from '../../drivers/sensors/ens160';
import * as lis from '../../drivers/sensors/lis3dh';
import * as qmc from '../../drivers/sensors/qmc5883l';
import * as sht from '../../drivers/sensors/sht3x';
import * as veml from '../../drivers/sensors/veml7700';
import { ENS_PART_ID, EnsMode, ensMisr, EnsReg, EnsStatus, EnsValidity } from '../../hal/mock/sensors/ens160';
import { LIS_AUTO_INCREMENT, LIS_WHO_AM_I, LisBit, LisReg } from '../../hal/mock/sensors/lis3dh';
import { MAX_POWER_ON_RESET, MaxBit, MaxReg, MaxReset } from '../../hal/mock/sensors/max17048';
import { QMC_CHIP_ID, QmcBit, QmcReg } from '../../hal/mock/sensors/qmc5883l';
import { ShtCommand, shtCrc, ShtStatus } from '../../hal/mock/sensors/sht3x';
import { VEML_ID, VemlBit, VemlCommand } from '../../hal/mock/sensors/veml7700';

/** Every key the driver and the twin both name must hold the same value. */
function sameWhereNamed(driver: Record<string, unknown>, twin: Record<string, unknown>, names: string[]) {
  for (const name of names) assert.equal(driver[name], twin[name], name);
}

describe('sensor twins against their drivers', () => {
  it('QMC5883L', () => {
    sameWhereNamed(qmc.Register, QmcReg, ['STATUS', 'CONTROL_1', 'CONTROL_2', 'SET_RESET_PERIOD', 'CHIP_ID']);
    assert.equal(qmc.Register.X_LSB, QmcReg.DATA_X_LSB);
    assert.equal(qmc.Register.TEMP_LSB, QmcReg.TOUT_LSB);
    sameWhereNamed(qmc.Bits, QmcBit, ['DRDY', 'OVL', 'DOR', 'SOFT_RST', 'ROL_PNT', 'INT_ENB']);
    assert.equal(qmc.CHIP_ID, QMC_CHIP_ID);
  });

  it('VEML7700', () => {
    sameWhereNamed(veml.Register, VemlCommand, Object.keys(VemlCommand));
    assert.equal(veml.Bits.SD, VemlBit.ALS_SD);
    assert.equal(veml.Bits.INT_EN, VemlBit.ALS_INT_EN);
    sameWhereNamed(veml.Bits, VemlBit, ['INT_TH_HIGH', 'INT_TH_LOW']);
    assert.equal(veml.DEVICE_ID, VEML_ID & 0xff);
  });

  it('SHT3x: commands, status bits and the §4.12 CRC example', () => {
    const pairs: [number, number][] = [
      [sht.Command.MEASURE_HIGH_STRETCH, ShtCommand.SINGLE_SHOT_STRETCH_HIGH],
      [sht.Command.MEASURE_MEDIUM_STRETCH, ShtCommand.SINGLE_SHOT_STRETCH_MEDIUM],
      [sht.Command.MEASURE_LOW_STRETCH, ShtCommand.SINGLE_SHOT_STRETCH_LOW],
      [sht.Command.READ_STATUS, ShtCommand.READ_STATUS],
      [sht.Command.CLEAR_STATUS, ShtCommand.CLEAR_STATUS],
      [sht.Command.SOFT_RESET, ShtCommand.SOFT_RESET],
      [sht.Command.HEATER_ON, ShtCommand.HEATER_ENABLE],
      [sht.Command.HEATER_OFF, ShtCommand.HEATER_DISABLE],
      [sht.Status.ALERT_PENDING, ShtStatus.ALERT_PENDING],
      [sht.Status.HEATER_ON, ShtStatus.HEATER],
      [sht.Status.RESET_DETECTED, ShtStatus.RESET_DETECTED],
      [sht.Status.COMMAND_FAILED, ShtStatus.COMMAND_STATUS],
      [sht.Status.WRITE_CRC_FAILED, ShtStatus.WRITE_CHECKSUM],
    ];
    for (const [driver, twin] of pairs) assert.equal(driver, twin);
    assert.equal(shtCrc(Uint8Array.of(0xbe, 0xef)), 0x92);
    for (let word = 0; word < 0x10000; word += 257) {
      const bytes = Uint8Array.of(word >> 8, word & 0xff);
      assert.equal(shtCrc(bytes), sht.sensirionCrc(bytes), `word ${word}`);
    }
  });

  it('LIS3DH', () => {
    sameWhereNamed(lis.Register, LisReg, Object.keys(lis.Register));
    sameWhereNamed(lis.Bits, LisBit, ['I1_IA1', 'LIR_INT1', 'INT_POLARITY', 'IA']);
    assert.equal(lis.Bits.OR_HIGH_EVENTS, LisBit.ZHIE | LisBit.YHIE | LisBit.XHIE);
    assert.equal(lis.WHO_AM_I_VALUE, LIS_WHO_AM_I);
    assert.equal(lis.AUTO_INCREMENT, LIS_AUTO_INCREMENT);
  });

  it('ENS160: registers, modes, status, validity and the MISR', () => {
    sameWhereNamed(ens.Register, EnsReg, Object.keys(ens.Register));
    assert.equal(ens.PART_ID, ENS_PART_ID);
    sameWhereNamed(ens.Config.Mode, EnsMode, Object.keys(EnsMode));
    sameWhereNamed(ens.Status, EnsStatus, ['STATAS', 'STATER', 'NEWDAT']);
    assert.equal(ens.Status.VALIDITY, 0b11 << 2);
    sameWhereNamed(ens.Validity, EnsValidity, Object.keys(EnsValidity));
    let a = 0;
    let b = 0;
    for (let byte = 0; byte < 256; byte++) {
      a = ensMisr(a, byte);
      b = ens.misrStep(b, byte);
      assert.equal(a, b, `after byte ${byte}`);
    }
  });

  it('MAX17048', () => {
    sameWhereNamed(max.Register, MaxReg, Object.keys(max.Register));
    sameWhereNamed(max.Bits, MaxBit, Object.keys(MaxBit));
    assert.equal(max.POWER_ON_RESET, MAX_POWER_ON_RESET);
    assert.equal(max.HIBRT_DEFAULT, MaxReset.HIBRT);
    assert.equal(MaxReset.VERSION & max.VERSION_MASK, max.VERSION_VALUE);
  });
});
