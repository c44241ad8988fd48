// The virtual MFRC522 states its registers from the datasheet and the driver states its own: here
// the two tables meet, so a wrong address or bit on either side fails by name.
import assert from 'node:assert/strict';
import { Bits, Command, FIFO_SIZE, Register } from '../../drivers/rfid/mfrc522';
import { Bit, Cmd, CRC_PRESETS, crcA, FIFO_BYTES, Reg, withCrcA } from '../../hal/mock/mfrc522';

const REGISTER_NAMES: Record<keyof typeof Register, keyof typeof Reg> = {
  COMMAND: 'CommandReg',
  COM_IEN: 'ComIEnReg',
  DIV_IEN: 'DivIEnReg',
  COM_IRQ: 'ComIrqReg',
  DIV_IRQ: 'DivIrqReg',
  ERROR: 'ErrorReg',
  STATUS1: 'Status1Reg',
  STATUS2: 'Status2Reg',
  FIFO_DATA: 'FIFODataReg',
  FIFO_LEVEL: 'FIFOLevelReg',
  WATER_LEVEL: 'WaterLevelReg',
  CONTROL: 'ControlReg',
  BIT_FRAMING: 'BitFramingReg',
  COLL: 'CollReg',
  MODE: 'ModeReg',
  TX_MODE: 'TxModeReg',
  RX_MODE: 'RxModeReg',
  TX_CONTROL: 'TxControlReg',
  TX_ASK: 'TxASKReg',
  TX_SEL: 'TxSelReg',
  RX_SEL: 'RxSelReg',
  RX_THRESHOLD: 'RxThresholdReg',
  DEMOD: 'DemodReg',
  MF_TX: 'MfTxReg',
  MF_RX: 'MfRxReg',
  SERIAL_SPEED: 'SerialSpeedReg',
  CRC_RESULT_H: 'CRCResultRegMSB',
  CRC_RESULT_L: 'CRCResultRegLSB',
  MOD_WIDTH: 'ModWidthReg',
  RF_CFG: 'RFCfgReg',
  GS_N: 'GsNReg',
  CW_GS_P: 'CWGsPReg',
  MOD_GS_P: 'ModGsPReg',
  T_MODE: 'TModeReg',
  T_PRESCALER: 'TPrescalerReg',
  T_RELOAD_H: 'TReloadRegHi',
  T_RELOAD_L: 'TReloadRegLo',
  T_COUNTER_H: 'TCounterValRegHi',
  T_COUNTER_L: 'TCounterValRegLo',
  TEST_SEL1: 'TestSel1Reg',
  TEST_SEL2: 'TestSel2Reg',
  TEST_PIN_EN: 'TestPinEnReg',
  TEST_PIN_VALUE: 'TestPinValueReg',
  TEST_BUS: 'TestBusReg',
  AUTO_TEST: 'AutoTestReg',
  VERSION: 'VersionReg',
  ANALOG_TEST: 'AnalogTestReg',
  TEST_DAC1: 'TestDAC1Reg',
  TEST_DAC2: 'TestDAC2Reg',
  TEST_ADC: 'TestADCReg',
};

const COMMAND_NAMES: Record<keyof typeof Command, keyof typeof Cmd> = {
  IDLE: 'Idle',
  MEM: 'Mem',
  GENERATE_RANDOM_ID: 'GenerateRandomID',
  CALC_CRC: 'CalcCRC',
  TRANSMIT: 'Transmit',
  NO_CMD_CHANGE: 'NoCmdChange',
  RECEIVE: 'Receive',
  TRANSCEIVE: 'Transceive',
  MF_AUTHENT: 'MFAuthent',
  SOFT_RESET: 'SoftReset',
};

/** The driver's bit constants as the datasheet's bit names combine them. */
const BITS: Record<keyof typeof Bits, number> = {
  COMMAND_POWER_DOWN: Bit.PowerDown,
  IRQ_SET: Bit.Set1,
  IRQ_TX: Bit.TxIRq,
  IRQ_RX: Bit.RxIRq,
  IRQ_IDLE: Bit.IdleIRq,
  IRQ_ERR: Bit.ErrIRq,
  IRQ_TIMER: Bit.TimerIRq,
  IRQ_ALL: 0x7f,
  DIV_IRQ_CRC: Bit.CRCIRq,
  ERR_WR: Bit.WrErr,
  ERR_TEMP: Bit.TempErr,
  ERR_BUFFER_OVFL: Bit.BufferOvfl,
  ERR_COLL: Bit.CollErr,
  ERR_CRC: Bit.CRCErr,
  ERR_PARITY: Bit.ParityErr,
  ERR_PROTOCOL: Bit.ProtocolErr,
  FIFO_FLUSH: Bit.FlushBuffer,
  FIFO_LEVEL: 0x7f,
  CONTROL_RX_LAST_BITS: Bit.RxLastBits,
  FRAMING_START_SEND: Bit.StartSend,
  COLL_VALUES_AFTER_COLL: Bit.ValuesAfterColl,
  COLL_POS_NOT_VALID: Bit.CollPosNotValid,
  COLL_POS: Bit.CollPos,
  MODE_CRC_PRESET: Bit.CRCPreset,
  CRC_EN: Bit.TxCRCEn,
  TX_RF_EN: Bit.Tx2RFEn | Bit.Tx1RFEn,
  TX_FORCE_100_ASK: Bit.Force100ASK,
  RF_CFG_RX_GAIN: Bit.RxGain,
  T_MODE_AUTO: Bit.TAuto,
  T_MODE_PRESCALER_HI: Bit.TPrescalerHi,
};

describe('MFRC522: the driver and the datasheet twin', () => {
  for (const [driverName, twinName] of Object.entries(REGISTER_NAMES)) {
    it(`register ${driverName} is ${twinName}`, () => {
      assert.equal(Register[driverName as keyof typeof Register], Reg[twinName]);
    });
  }
  for (const [driverName, twinName] of Object.entries(COMMAND_NAMES)) {
    it(`command ${driverName} is ${twinName}`, () => {
      assert.equal(Command[driverName as keyof typeof Command], Cmd[twinName]);
    });
  }
  for (const [driverName, value] of Object.entries(BITS)) {
    it(`bits ${driverName}`, () => {
      assert.equal(Bits[driverName as keyof typeof Bits], value);
    });
  }
  it('RxCRCEn sits where TxCRCEn does, and the FIFO sizes agree', () => {
    assert.equal(Bit.RxCRCEn, Bits.CRC_EN);
    assert.equal(FIFO_SIZE, FIFO_BYTES);
  });
});

describe('CRC_A (ISO/IEC 14443-3 Annex B)', () => {
  it('gives the standard worked examples', () => {
    // Annex B.3: 00 00 is sent with CRC_A A0 1E, 12 34 with 26 CF (low byte first)
    assert.deepEqual([...withCrcA(Uint8Array.of(0x00, 0x00))], [0x00, 0x00, 0xa0, 0x1e]);
    assert.deepEqual([...withCrcA(Uint8Array.of(0x12, 0x34))], [0x12, 0x34, 0x26, 0xcf]);
  });
  it('takes the ModeReg presets of §9.3.2.2', () => {
    assert.deepEqual(CRC_PRESETS, [0x0000, 0x6363, 0xa671, 0xffff]);
    assert.equal(crcA(new Uint8Array(0)), 0x6363);
    assert.equal(crcA(new Uint8Array(0), 0, 0xffff), 0xffff);
  });
});
