// The virtual secure parts (CMAC, the purse card, the SAM, the ATECC608) state their constants from
// the standards, datasheet and application specifications; the drivers state their own. Here each
// twin meets the published test vectors and the driver's table.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import * as purseDriver from '../../drivers/rfid/purse';
import * as atecc from '../../drivers/secure/atecc608';
import { aesCmac, diversifyAes128, purseCardKey } from '../../drivers/secure/cmac';
import * as samDriver from '../../drivers/secure/sam';
import { nobleAesBlock } from '../../hal/mock/secure/aes';
import { Op, packetCrc, Param1, REVISION_608A, Sha, StatusCode, Word } from '../../hal/mock/secure/atecc608';
import { cmac, diversify, subkeys } from '../../hal/mock/secure/cmac';
import { Pcb, SamApdu, SamSw, t1Block } from '../../hal/mock/secure/sam';
import * as purse from '../../hal/mock/purse';
import { fromHex, toHex } from '../../protocol/bytes';

describe('twin CMAC (NIST SP 800-38B, AN10922)', () => {
  // SP 800-38B Appendix D.1, AES-128 examples
  const key = fromHex('2b7e151628aed2a6abf7158809cf4f3c');
  const message = fromHex(
    '6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e5130c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710',
  );

  it('derives the D.1 subkeys', () => {
    const [k1, k2] = subkeys(key);
    assert.equal(toHex(k1), 'fbeed618357133667c85e08f7236a8de');
    assert.equal(toHex(k2), 'f7ddac306ae266ccf90bc11ee46d513b');
  });

  it('gives the D.1 tags for 0, 128, 320 and 512 bits', () => {
    assert.equal(toHex(cmac(key, new Uint8Array(0))), 'bb1d6929e95937287fa37d129b756746');
    assert.equal(toHex(cmac(key, message.subarray(0, 16))), '070a16b46b4d4144f79bdd9dd04a287c');
    assert.equal(toHex(cmac(key, message.subarray(0, 40))), 'dfa66747de9ae63030ca32611497c827');
    assert.equal(toHex(cmac(key, message)), '51f0bebf7e3b9d92fc49741779363cfe');
  });

  it('gives the AN10922 §2.2.1 diversified key', () => {
    const master = fromHex('00112233445566778899aabbccddeeff');
    const input = fromHex('04782e21801d803042f54e585020416275');
    assert.equal(toHex(diversify(master, input)), 'a8dd63a3b89d54b37ca802473fda9175');
    assert.throws(() => diversify(master, new Uint8Array(32)), RangeError);
  });

  it('agrees with the driver on any key and message', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 16, maxLength: 16 }),
        fc.uint8Array({ maxLength: 80 }),
        (k, m) => {
          assert.equal(toHex(cmac(k, m)), toHex(aesCmac(nobleAesBlock, k, m)));
          if (m.length >= 1 && m.length <= 31) {
            assert.equal(toHex(diversify(k, m)), toHex(diversifyAes128(nobleAesBlock, k, m)));
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('twin purse application (docs/purse.md) against the purse driver', () => {
  it('has the driver AID, instructions, status words and card types', () => {
    assert.deepEqual([...purse.AID], [...purseDriver.PURSE_AID]);
    assert.equal(purse.Apdu.CLA_ISO, purseDriver.Cla.ISO);
    assert.equal(purse.Apdu.CLA_PURSE, purseDriver.Cla.PROPRIETARY);
    for (const name of ['SELECT', 'AUTH_1', 'AUTH_2', 'READ_PURSE', 'DEBIT'] as const) {
      assert.equal(purse.Apdu[name], purseDriver.Instruction[name], name);
    }
    const sw = purseDriver.StatusWord;
    assert.deepEqual(
      [sw.OK, sw.WRONG_LENGTH, sw.SECURITY_STATUS, sw.BELOW_FLOOR, sw.NOT_SELECTED, sw.BAD_MAC, sw.BAD_DATA],
      [
        purse.Sw.OK,
        purse.Sw.WRONG_LENGTH,
        purse.Sw.SECURITY_STATUS_NOT_SATISFIED,
        purse.Sw.CONDITIONS_NOT_SATISFIED,
        purse.Sw.NO_APPLICATION_SELECTED,
        purse.Sw.WRONG_MAC,
        purse.Sw.WRONG_DATA,
      ],
    );
    assert.deepEqual(
      [sw.NOT_FOUND, sw.BAD_P1P2, sw.UNKNOWN_INS, sw.UNKNOWN_CLA],
      [purse.Sw.FILE_NOT_FOUND, purse.Sw.WRONG_P1_P2, purse.Sw.INS_NOT_SUPPORTED, purse.Sw.CLA_NOT_SUPPORTED],
    );
    assert.deepEqual({ ...purse.Kind }, { ...purseDriver.CardType });
    assert.equal(purse.RECORD_BYTES, purseDriver.PURSE_LENGTH);
    assert.equal(purse.MAC_BYTES, purseDriver.MAC_LENGTH);
  });

  it('writes the 25-byte record byte for byte as the driver encodes it', () => {
    const record = {
      cardNumber: '6012345678901234',
      expiry: { year: 2031, month: 7 },
      cardType: 2 as const,
      balance: -1250,
      limit: 5000,
      counter: 77,
      currency: 826,
    };
    // docs/purse.md "Record": number BCD, expiry 31 07, type 02, balance, limit, counter, 08 26
    const expected = ['6012345678901234', '3107', '02', 'fffffb1e', '00001388', '0000004d', '0826'].join('');
    assert.equal(toHex(purse.writeRecord(record)), expected);
    assert.equal(toHex(purseDriver.encodePurse(record)), expected);
    assert.deepEqual(
      purse.readRecord(purseDriver.encodePurse(record)),
      purseDriver.decodePurse(purse.writeRecord(record)),
    );
  });

  it('builds the MAC inputs the driver builds, and the same card key', () => {
    const master = Uint8Array.from({ length: 16 }, (_, i) => i * 7);
    const uid = Uint8Array.of(0x04, 0x51, 0x22, 0x9a, 0x6c, 0x11, 0x80);
    assert.equal(toHex(purse.cardKey(master, uid)), toHex(purseCardKey(nobleAesBlock, master, uid)));
    assert.equal(toHex(purse.MacInput.debitCommand(180, 9)), toHex(purseDriver.debitCommandMacInput(180, 9)));
    assert.equal(
      toHex(purse.MacInput.debitAnswer(180, -20, 10)),
      toHex(purseDriver.debitResponseMacInput(180, { balance: -20, counter: 10 })),
    );
    const record = new Uint8Array(25).fill(0x11);
    assert.equal(toHex(purse.MacInput.readAnswer(record)), toHex(purseDriver.readMacInput(record)));
  });
});

describe('twin SAM (ISO/IEC 7816-3 T=1, docs/secure-parts.md) against the SAM driver', () => {
  it('frames a block as the driver parses it, LRC included', () => {
    const block = t1Block(Pcb.I_SEQUENCE, Uint8Array.of(1, 2, 3));
    assert.equal(toHex(block), '00400301020343');
    const parsed = samDriver.decodeT1Block(block);
    assert.equal(parsed.pcb, Pcb.I_SEQUENCE);
    assert.equal(
      toHex(samDriver.encodeT1Block(0x00, Uint8Array.of(9))),
      toHex(t1Block(0x00, Uint8Array.of(9))),
    );
  });

  it('has the driver S-block codes, instructions and status words', () => {
    assert.equal(samDriver.T1.RESYNCH, Pcb.RESYNCH_REQUEST);
    assert.equal(samDriver.T1.RESYNCH_RESPONSE, Pcb.RESYNCH_RESPONSE);
    assert.equal(samDriver.T1.WTX, Pcb.WTX_REQUEST);
    assert.equal(samDriver.T1.WTX_RESPONSE, Pcb.WTX_RESPONSE);
    assert.equal(samDriver.SAM_CLA, SamApdu.CLA);
    for (const [name, ins] of Object.entries(samDriver.SamInstruction)) {
      assert.equal(SamApdu[name as keyof typeof SamApdu], ins, name);
    }
    const st = samDriver.SamStatus;
    assert.deepEqual(
      [st.OK, st.WRONG_LENGTH, st.SECURITY_STATUS, st.CONDITIONS, st.BAD_MAC, st.BAD_P1P2, st.KEY_NOT_FOUND],
      [
        SamSw.OK,
        SamSw.WRONG_LENGTH,
        SamSw.SECURITY_STATUS_NOT_SATISFIED,
        SamSw.CONDITIONS_NOT_SATISFIED,
        SamSw.WRONG_MAC,
        SamSw.WRONG_P1_P2,
        SamSw.REFERENCED_DATA_NOT_FOUND,
      ],
    );
    assert.deepEqual([st.UNKNOWN_INS, st.UNKNOWN_CLA], [SamSw.INS_NOT_SUPPORTED, SamSw.CLA_NOT_SUPPORTED]);
  });
});

describe('twin ATECC608 (DS40001977) against the ATECC608 driver', () => {
  it('computes the §6.2.5 wake answer CRC 33 43 and agrees with the driver CRC', () => {
    assert.equal(packetCrc(Uint8Array.of(0x04, 0x11)), 0x4333);
    assert.deepEqual([...atecc.WAKE_RESPONSE], [0x04, 0x11, 0x33, 0x43]);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 70 }), (bytes) =>
        assert.equal(packetCrc(bytes), atecc.crc16(bytes)),
      ),
    );
  });

  it('has the driver word addresses, opcodes, zones and status codes', () => {
    assert.deepEqual(
      [atecc.WordAddress.RESET, atecc.WordAddress.SLEEP, atecc.WordAddress.IDLE, atecc.WordAddress.COMMAND],
      [Word.Reset, Word.Sleep, Word.Idle, Word.Command],
    );
    assert.deepEqual(
      [atecc.Opcode.READ, atecc.Opcode.WRITE, atecc.Opcode.RANDOM, atecc.Opcode.INFO, atecc.Opcode.SHA],
      [Op.Read, Op.Write, Op.Random, Op.Info, Op.SHA],
    );
    assert.deepEqual(
      [atecc.Zone.CONFIG, atecc.Zone.OTP, atecc.Zone.DATA, atecc.Zone.BLOCK_32],
      [Param1.Config, Param1.OTP, Param1.Data, Param1.ThirtyTwoBytes],
    );
    const s = atecc.Status;
    assert.deepEqual(
      [
        s.SUCCESS,
        s.CHECKMAC_FAIL,
        s.PARSE_ERROR,
        s.ECC_FAULT,
        s.EXECUTION_ERROR,
        s.AFTER_WAKE,
        s.WATCHDOG,
        s.CRC_ERROR,
      ],
      [
        StatusCode.Success,
        StatusCode.CheckMacOrVerifyMiscompare,
        StatusCode.ParseError,
        StatusCode.EccFault,
        StatusCode.ExecutionError,
        StatusCode.AfterWake,
        StatusCode.WatchdogAboutToExpire,
        StatusCode.CrcOrCommunicationError,
      ],
    );
    assert.ok(atecc.REVISIONS.includes(REVISION_608A));
  });

  it('has the driver SHA modes for Start, Update, End and HMAC Start', () => {
    assert.deepEqual(
      [atecc.ShaMode.START, atecc.ShaMode.UPDATE, atecc.ShaMode.END, atecc.ShaMode.HMAC_START],
      [Sha.Start, Sha.Update, Sha.End, Sha.HmacStart],
    );
  });

  // A 608 ends an HMAC with End (0x02); 0x05 is the ATECC508A's code, which the 608 refuses.
  it('ends an HMAC with the 608 End mode', () => {
    assert.equal(atecc.ShaMode.HMAC_END, Sha.End);
  });
});
