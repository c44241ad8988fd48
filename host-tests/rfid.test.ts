import assert from 'node:assert/strict';
import { CardProtocolError, Iso14443A, type SelectedCard } from '../drivers/rfid/iso14443a';
import { IsoDep, IsoDepProtocolError, parseAts, UnsupportedCard } from '../drivers/rfid/isodep';
import {
  Bits,
  ChipError,
  ChipVersionError,
  Config,
  MFRC522,
  Register,
  RfidCrcError,
  RfidError,
  RfidTimeout,
} from '../drivers/rfid/mfrc522';
import {
  authenticatePurse,
  CardRefused,
  CardType,
  debitPurse,
  decodePurse,
  encodePurse,
  encodeSelect,
  MalformedResponse,
  PURSE_AID,
  type PurseData,
  readPurse,
  selectPurse,
  StatusWord,
} from '../drivers/rfid/purse';
import type { SPI, SPIOptions } from '../hal/io';
import { VirtualPins, VirtualSpiBus, type VirtualSpiChip } from '../hal/mock/bus';
import {
  type Applet,
  classicCard,
  DEMO_CARD_MASTER,
  PiccState,
  PurseApplet,
  purseCard,
  VirtualCard,
} from '../hal/mock/cards';
import { SoftwarePurseAuthenticator } from './support/softwarePurseAuthenticator';
import { VirtualClock } from '../hal/mock/clock';
import { crcA, type RfFrame, type VirtualPicc, VirtualMfrc522, withCrcA } from '../hal/mock/mfrc522';

const SELECT_PIN = 5;

function rig(options: { version?: number; chip?: VirtualSpiChip } = {}) {
  const bus = new VirtualSpiBus();
  const chip = new VirtualMfrc522({ version: options.version });
  bus.attach(SELECT_PIN, options.chip ?? chip);
  let closes = 0;
  const io = class SpyIO extends bus.io {
    override close(): void {
      closes++;
      super.close();
    }
  };
  const make = (extra: { clock?: VirtualClock } = {}) =>
    new MFRC522({ reader: { io, select: SELECT_PIN }, ...extra });
  return { bus, chip, make, closes: () => closes };
}

function reader() {
  const r = rig();
  const driver = r.make();
  return { ...r, driver, iso: new Iso14443A(driver) };
}

const sample = (overrides: Partial<PurseData> = {}): PurseData => ({
  cardNumber: '4000123412341234',
  expiry: { year: 2028, month: 9 },
  cardType: CardType.DEBIT,
  balance: 1_000,
  limit: 5_000,
  counter: 7,
  currency: 826,
  ...overrides,
});

/** A purse card in the field, selected, ISO-DEP on, purse application selected. */
function purseSession(
  data: PurseData,
  cardOptions: { fsci?: number; wtxRequests?: number; wtxm?: number } = {},
) {
  const r = reader();
  const { card, applet } = purseCard([0x04, 0x51, 0x22, 0x9a, 0x6c, 0x11, 0x80], data, cardOptions);
  r.chip.field.add(card);
  const selected = r.iso.activate();
  assert.ok(selected);
  const dep = new IsoDep(r.driver);
  dep.activate(selected);
  const transceive = (apdu: Uint8Array) => dep.transceive(apdu);
  selectPurse(transceive);
  const session = authenticatePurse(
    transceive,
    selected.uid,
    new SoftwarePurseAuthenticator(DEMO_CARD_MASTER),
  );
  return { ...r, card, applet, dep, transceive, selected, session };
}

/** A session whose MACs always verify: for answers made up by hand. */
const trusting = { mac: () => new Uint8Array(8), verify: () => true };

const hex = (bytes: Uint8Array) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(' ');
const lastSent = (chip: VirtualMfrc522): RfFrame => chip.sent[chip.sent.length - 1];

/** A tiny deterministic generator for UIDs. */
function lcg(seed: number) {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1_664_525) + 1_013_904_223) >>> 0;
    return state >>> 24;
  };
}

describe('MFRC522 driver', () => {
  it('soft-resets, checks VersionReg and sets up type A, the timer and the antenna', () => {
    const { chip, driver } = reader();
    assert.equal(driver.version, 0x92);
    assert.equal(chip.softResets, 1);
    assert.equal(chip.peek(Register.MODE), 0x3d);
    assert.equal(chip.peek(Register.TX_ASK), 0x40);
    assert.equal(chip.peek(Register.T_MODE) & Bits.T_MODE_AUTO, Bits.T_MODE_AUTO);
    assert.ok(Math.abs(chip.timerPeriodMs - 25) < 0.1, `timer ${chip.timerPeriodMs} ms`);
    assert.equal(chip.antennaOn, true);
    assert.equal(driver.antenna, true);
  });

  it('uses the §8.1.2.3 address byte: bit 7 read, address in bits 6..1', () => {
    const bus = new VirtualSpiBus();
    const seen: number[] = [];
    const chip = new VirtualMfrc522();
    bus.attach(1, {
      select: () => chip.select(),
      exchange: (b) => {
        seen.push(b);
        return chip.exchange(b);
      },
      deselect: () => chip.deselect(),
    });
    new MFRC522({ reader: { io: bus.io, select: 1 } });
    assert.equal(seen[0], 0x80 | (0x37 << 1)); // read VersionReg first
    assert.ok(seen.includes(0x01 << 1)); // a write to CommandReg (SoftReset)
  });

  it('accepts MFRC522 v1.0 (0x91) and the FM17522 clone (0x88)', () => {
    for (const version of [0x91, 0x88]) assert.equal(rig({ version }).make().version, version);
  });

  it('refuses a wrong VersionReg, closes the SPI and throws ChipVersionError', () => {
    for (const version of [0x12, 0x00, 0xff]) {
      const r = rig({ version });
      assert.throws(
        () => r.make(),
        (error: unknown) => error instanceof ChipVersionError && error.version === version,
      );
      assert.equal(r.closes(), 1);
      assert.equal(r.chip.softResets, 0);
    }
  });

  it('drives NRSTPD high while open and low when closed; close is idempotent', () => {
    const bus = new VirtualSpiBus();
    bus.attach(SELECT_PIN, new VirtualMfrc522());
    const pins = new VirtualPins();
    const driver = new MFRC522({
      reader: { io: bus.io, select: SELECT_PIN },
      reset: { io: pins.io, pin: 22 },
    });
    assert.equal(pins.level(22), 1);
    driver.close();
    driver.close();
    assert.equal(pins.level(22), 0);
    assert.throws(() => driver.transceive(Uint8Array.of(0x26), { txLastBits: 7 }), RfidError);
  });

  it('configures the receiver gain and the timer, and validates', () => {
    const { chip, driver } = reader();
    driver.configure({ antennaGain: Config.AntennaGain.DB_48, timeoutMs: 100 });
    assert.equal(driver.antennaGain, 0b111);
    assert.equal(chip.peek(Register.RF_CFG) & 0x0f, 0x08); // the reserved bits kept
    assert.ok(Math.abs(chip.timerPeriodMs - 100) < 0.1);
    driver.configure({ timeoutMs: 4_000 }); // beyond the 25 µs prescaler's reach
    assert.ok(Math.abs(chip.timerPeriodMs - 4_000) < 1, `timer ${chip.timerPeriodMs}`);
    assert.throws(() => driver.configure({ antennaGain: 8 }), RangeError);
    assert.throws(() => driver.configure({ timeoutMs: 0 }), RangeError);
    assert.throws(() => driver.configure({ timeoutMs: 60_000 }), RangeError);
  });

  it('computes CRC_A with the coprocessor (ISO 14443-3 Annex B vectors)', () => {
    const { driver } = reader();
    assert.equal(driver.calculateCRC(Uint8Array.of(0x00, 0x00)), 0x1ea0);
    assert.equal(driver.calculateCRC(Uint8Array.of(0x12, 0x34)), 0xcf26); // 26 CF on air
    const data = Uint8Array.of(0x93, 0x70, 0x01, 0x02, 0x03, 0x04, 0x04);
    assert.equal(driver.calculateCRC(data), crcA(data));
  });

  it('times out with no card in the field, and switches the antenna off', () => {
    const { chip, driver } = reader();
    assert.throws(() => driver.transceive(Uint8Array.of(0x26), { txLastBits: 7 }), RfidTimeout);
    assert.equal(chip.peek(Register.COM_IRQ) & Bits.IRQ_TIMER, Bits.IRQ_TIMER);
    driver.antennaOff();
    assert.equal(chip.antennaOn, false);
    const card = new VirtualCard({ uid: [1, 2, 3, 4], applet: new PurseApplet(sample()) });
    chip.field.add(card);
    assert.throws(() => driver.transceive(Uint8Array.of(0x26), { txLastBits: 7 }), RfidTimeout);
    driver.antennaOn();
    assert.equal(driver.transceive(Uint8Array.of(0x26), { txLastBits: 7 }).bytes.length, 2);
  });

  it('gives up with ChipError when the chip never signals (timer not running), with or without a clock', () => {
    const chip = new VirtualMfrc522();
    let address = -1;
    let first = true;
    // Keeps TModeReg.TAuto clear, so nothing ever ends a Transceive without an answer.
    const stuck: VirtualSpiChip = {
      select: () => {
        first = true;
        chip.select();
      },
      exchange: (b) => {
        if (first) {
          first = false;
          address = b & 0x80 ? -1 : (b >> 1) & 0x3f;
          return chip.exchange(b);
        }
        return chip.exchange(address === Register.T_MODE ? b & 0x7f : b);
      },
      deselect: () => chip.deselect(),
    };
    for (const clock of [undefined, new VirtualClock()]) {
      const r = rig({ chip: stuck });
      const driver = r.make({ clock });
      assert.throws(() => driver.transceive(Uint8Array.of(0x26), { txLastBits: 7 }), ChipError);
    }
  });

  it('reuses its buffers: a register write is one 2-byte SPI write', () => {
    const bus = new VirtualSpiBus();
    const chip = new VirtualMfrc522();
    bus.attach(SELECT_PIN, chip);
    const buffers = new Set<ArrayBufferLike>();
    const io = class extends bus.io {
      constructor(options: SPIOptions) {
        super(options);
      }
      override write(buffer: Uint8Array): void {
        buffers.add(buffer.buffer);
        super.write(buffer);
      }
    } as unknown as new (
      options: SPIOptions,
    ) => SPI;
    const driver = new MFRC522({ reader: { io, select: SELECT_PIN } });
    for (let i = 0; i < 5; i++) driver.configure({ antennaGain: i % 2 ? 4 : 5 });
    assert.ok(buffers.size <= 2, `${buffers.size} distinct buffers`);
  });
});

describe('ISO 14443-3 A activation', () => {
  it('finds nothing when no card is in the field', () => {
    const { chip, iso } = reader();
    assert.equal(iso.activate(), undefined);
    assert.deepEqual(Array.from(lastSent(chip).bytes), [0x26]);
    assert.equal(lastSent(chip).bits, 7);
  });

  for (const uid of [
    [0x1a, 0x2b, 0x3c, 0x4d],
    [0x04, 0x51, 0x22, 0x9a, 0x6c, 0x11, 0x80],
    [0x04, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09],
  ]) {
    it(`selects a card with a ${uid.length}-byte UID through its cascade levels`, () => {
      const { chip, iso } = reader();
      const card = new VirtualCard({ uid, applet: new PurseApplet(sample()) });
      chip.field.add(card);
      const selected = iso.activate();
      assert.ok(selected);
      assert.deepEqual(Array.from(selected.uid), uid);
      assert.equal(selected.sak, 0x20);
      assert.equal(selected.atqa, card.atqa);
      assert.equal(card.state, PiccState.ACTIVE);
      const selects = chip.sent.filter((f) => f.bytes[1] === 0x70).map((f) => f.bytes[0]);
      assert.deepEqual(selects, [0x93, 0x95, 0x97].slice(0, { 4: 1, 7: 2, 10: 3 }[uid.length]));
      for (const f of chip.sent.filter((f) => f.bytes[1] === 0x70)) assert.equal(f.bits, 9 * 8); // + CRC_A
    });
  }

  it('resolves two cards to one, deterministically; the other stays unselected until the first halts', () => {
    const run = () => {
      const { chip, iso } = reader();
      const a = new VirtualCard({ uid: [0x10, 0x22, 0x33, 0x44], applet: new PurseApplet(sample()) });
      const b = new VirtualCard({ uid: [0x10, 0x2a, 0x33, 0x45], applet: new PurseApplet(sample()) });
      chip.field.add(a);
      chip.field.add(b);
      const selected = iso.activate();
      assert.ok(selected);
      return { chip, iso, a, b, selected };
    };
    const { iso, a, b, selected, chip } = run();
    // bit 11 (byte 1 bit 3) differs first; the driver takes the 1 branch: card b
    assert.deepEqual(Array.from(selected.uid), Array.from(b.uid));
    assert.equal(b.state, PiccState.ACTIVE);
    assert.ok(a.state === PiccState.READY || a.state === PiccState.IDLE);
    assert.ok(chip.sent.some((f) => f.bytes[0] === 0x93 && f.bytes[1] === 0x34)); // NVB 3 bytes + 4 bits
    assert.deepEqual(Array.from(run().selected.uid), Array.from(selected.uid));
    iso.halt();
    assert.equal(b.state, PiccState.HALT);
    const second = iso.activate();
    assert.ok(second);
    assert.deepEqual(Array.from(second.uid), Array.from(a.uid));
    iso.halt();
    assert.equal(iso.activate(), undefined);
  });

  it('resolves random pairs of 4-, 7- and 10-byte UIDs, colliding at any level', () => {
    const next = lcg(7);
    const sizes = [4, 7, 10];
    for (let round = 0; round < 30; round++) {
      const uidOf = (n: number) => {
        const uid = Array.from({ length: n }, next);
        uid[0] = uid[0] === 0x88 ? 0x08 : uid[0];
        return uid;
      };
      const first = uidOf(sizes[round % 3]);
      // share a prefix with the first UID so collisions happen deep inside
      const second =
        sizes[(round >> 1) % 3] === first.length ? first.slice() : uidOf(sizes[(round >> 1) % 3]);
      second[second.length - 1 - (round % 3)] ^= 1 << (round % 8);
      const { chip, iso } = reader();
      const cards = [first, second].map((uid) => new VirtualCard({ uid, applet: new PurseApplet(sample()) }));
      for (const card of cards) chip.field.add(card);
      const found: string[] = [];
      for (let i = 0; i < 2; i++) {
        const selected = iso.activate();
        assert.ok(selected, `round ${round}, pass ${i}`);
        found.push(hex(selected.uid));
        iso.halt();
      }
      assert.deepEqual(found.sort(), cards.map((c) => hex(c.uid)).sort(), `round ${round}`);
      assert.equal(iso.activate(), undefined);
    }
  });

  it('halts a card: REQA no longer sees it, WUPA wakes it', () => {
    const { chip, iso } = reader();
    const card = classicCard([0xde, 0xad, 0xbe, 0xef]);
    chip.field.add(card);
    assert.ok(iso.activate());
    iso.halt();
    assert.equal(card.state, PiccState.HALT);
    assert.equal(iso.activate(), undefined);
    const woken = iso.activate({ wakeup: true });
    assert.ok(woken);
    assert.equal(woken.sak, 0x08);
  });

  it('rejects a UID whose BCC does not check', () => {
    const { chip, iso } = reader();
    const liar: VirtualPicc = {
      powerOff() {},
      receive(frame) {
        if (frame.bits === 7) return { bytes: Uint8Array.of(0x04, 0x00), bits: 16 };
        if (frame.bytes[1] === 0x20) return { bytes: Uint8Array.of(1, 2, 3, 4, 0x99), bits: 40 };
        return undefined;
      },
    };
    chip.field.add(liar);
    assert.throws(() => iso.activate(), CardProtocolError);
  });

  it('rejects an anticollision answer of the wrong length', () => {
    const { chip, iso } = reader();
    const short: VirtualPicc = {
      powerOff() {},
      receive(frame) {
        if (frame.bits === 7) return { bytes: Uint8Array.of(0x04, 0x00), bits: 16 };
        if (frame.bytes[1] === 0x20) return { bytes: Uint8Array.of(1, 2, 3), bits: 24 };
        return undefined;
      },
    };
    chip.field.add(short);
    assert.throws(() => iso.activate(), CardProtocolError);
  });
});

describe('ISO 14443-4 (ISO-DEP)', () => {
  it('refuses a card that is not ISO 14443-4 without sending RATS', () => {
    const { chip, iso, driver } = reader();
    chip.field.add(classicCard([0x0a, 0x0b, 0x0c, 0x0d]));
    const selected = iso.activate();
    assert.ok(selected);
    const frames = chip.field.frames;
    assert.throws(
      () => new IsoDep(driver).activate(selected),
      (error: unknown) => error instanceof UnsupportedCard && error.sak === 0x08,
    );
    assert.equal(chip.field.frames, frames);
  });

  it('parses the ATS and waits the frame waiting time it announces', () => {
    const { chip, iso, driver } = reader();
    chip.field.add(
      new VirtualCard({ uid: [1, 2, 3, 4], applet: new PurseApplet(sample()), fsci: 8, fwi: 9 }),
    );
    const selected = iso.activate() as SelectedCard;
    const dep0 = new IsoDep(driver);
    const ats = dep0.activate(selected);
    assert.equal(ats.fsc, 256);
    assert.equal(ats.fwi, 9);
    assert.ok(Math.abs(ats.fwtMs - 154.7) < 0.1);
    assert.deepEqual(Array.from(ats.historical), [0x80]);
    assert.deepEqual(Array.from(lastSent(chip).bytes.subarray(0, 2)), [0xe0, 0x50]); // FSDI 5, CID 0
    selectPurse((apdu) => dep0.transceive(apdu));
    assert.ok(Math.abs(chip.timerPeriodMs - (ats.fwtMs + 4)) < 0.1, `timer ${chip.timerPeriodMs} ms`);
    // a second RATS in PROTOCOL is not for the card: silence
    assert.throws(() => new IsoDep(driver).activate({ sak: 0x20 }), RfidTimeout);
  });

  it('parses ATS variants and refuses malformed ones', () => {
    const minimal = parseAts(Uint8Array.of(0x01));
    assert.equal(minimal.fsc, 32);
    assert.equal(minimal.fwi, 4);
    const tbOnly = parseAts(Uint8Array.of(0x04, 0x25, 0xe2, 0x77));
    assert.equal(tbOnly.fsc, 64);
    assert.equal(tbOnly.fwi, 14);
    assert.equal(tbOnly.sfgi, 2);
    assert.deepEqual(Array.from(tbOnly.historical), [0x77]);
    assert.throws(() => parseAts(Uint8Array.of(0x05, 0x78)), IsoDepProtocolError);
    assert.throws(() => parseAts(Uint8Array.of(0x02, 0x70)), IsoDepProtocolError);
  });

  it('chains in both directions with small frames and toggles block numbers', () => {
    const r = reader();
    const { card, applet } = purseCard([1, 2, 3, 4], sample(), { fsci: 0 }); // the card takes 16-byte frames
    r.chip.field.add(card);
    const dep = new IsoDep(r.driver, { fsdi: 0 }); // and so do we
    dep.activate(r.iso.activate() as SelectedCard);
    const transceive = (apdu: Uint8Array) => dep.transceive(apdu);
    selectPurse(transceive);
    const session = authenticatePurse(transceive, card.uid, new SoftwarePurseAuthenticator(DEMO_CARD_MASTER));
    const before = readPurse(transceive, session);
    assert.deepEqual(before, sample());
    const result = debitPurse(transceive, session, 300, before.counter);
    assert.deepEqual(result, { balance: 700, counter: 8 });
    assert.equal(applet.data.balance, 700);
    const pcbs = r.chip.sent.filter((f) => f.bytes[0] !== 0x26 && f.bytes[0] !== 0x93).map((f) => f.bytes[0]);
    assert.ok(pcbs.includes(0x12) || pcbs.includes(0x13), 'an I-block with the chaining bit');
    assert.ok(pcbs.includes(0xa2) || pcbs.includes(0xa3), 'an R(ACK) for the card’s chain');
    for (const f of r.chip.sent) assert.ok(f.bytes.length <= 16);
  });

  it('answers S(WTX) and returns the response', () => {
    const s = purseSession(sample(), { wtxRequests: 2, wtxm: 3 });
    const purse = readPurse(s.transceive, s.session);
    assert.equal(purse.balance, 1_000);
    const wtx = s.chip.sent.filter((f) => f.bytes[0] === 0xf2);
    assert.ok(wtx.length >= 4);
    assert.equal(wtx[0].bytes[1], 3);
  });

  it('recovers from a CRC error with R(NAK) without running the command twice', () => {
    const s = purseSession(sample());
    const apdus = s.card.apdus;
    s.chip.injectCrcError(1);
    const result = debitPurse(s.transceive, s.session, 100, 7);
    assert.deepEqual(result, { balance: 900, counter: 8 });
    assert.equal(s.card.apdus, apdus + 1);
    assert.equal(s.applet.data.balance, 900);
    assert.ok(s.chip.sent.some((f) => (f.bytes[0] & 0xf6) === 0xb2)); // R(NAK)
  });

  it('throws RfidCrcError when the errors persist; a re-read shows whether the debit happened', () => {
    const s = purseSession(sample());
    s.chip.injectCrcError(3); // one answer and both retries
    assert.throws(() => debitPurse(s.transceive, s.session, 100, 7), RfidCrcError);
    assert.equal(s.dep.active, false);
    assert.throws(() => readPurse(s.transceive, s.session), IsoDepProtocolError);
    // field reset and a new activation; the card did debit once: its answer was lost, not the command
    s.driver.antennaOff();
    s.driver.antennaOn();
    s.dep.activate(s.iso.activate() as SelectedCard);
    selectPurse(s.transceive);
    const again = authenticatePurse(
      s.transceive,
      s.card.uid,
      new SoftwarePurseAuthenticator(DEMO_CARD_MASTER),
    );
    const after = readPurse(s.transceive, again);
    assert.equal(after.counter, 8);
    assert.equal(after.balance, 900);
    assert.equal(s.card.apdus, 8); // SELECT, AUTH 1, AUTH 2, DEBIT (once), then SELECT, AUTH 1, AUTH 2, READ PURSE
  });

  it('throws RfidTimeout when the card leaves before the debit; the value is unchanged', () => {
    const s = purseSession(sample());
    s.chip.field.removeAfter(s.card, 0);
    assert.throws(() => debitPurse(s.transceive, s.session, 100, 7), RfidTimeout);
    assert.equal(s.chip.field.has(s.card), false);
    assert.equal(s.applet.data.balance, 1_000);
    assert.equal(s.applet.data.counter, 7);
    assert.equal(s.card.state, PiccState.IDLE);
  });

  it('throws RfidTimeout when the card leaves mid-chain; the value is unchanged', () => {
    const r = reader();
    const { card, applet } = purseCard([1, 2, 3, 4], sample(), { fsci: 0 });
    r.chip.field.add(card);
    const dep = new IsoDep(r.driver, { fsdi: 0 });
    dep.activate(r.iso.activate() as SelectedCard);
    const transceive = (apdu: Uint8Array) => dep.transceive(apdu);
    selectPurse(transceive);
    const session = authenticatePurse(transceive, card.uid, new SoftwarePurseAuthenticator(DEMO_CARD_MASTER));
    r.chip.field.removeAfter(card, 1); // the first block of the DEBIT arrives, the second does not
    assert.throws(() => debitPurse(transceive, session, 100, 7), RfidTimeout);
    assert.equal(applet.data.balance, 1_000);
    assert.equal(card.apdus, 3); // only SELECT, AUTH 1 and AUTH 2 ran
  });

  it('S(DESELECT) puts the card in HALT', () => {
    const s = purseSession(sample());
    s.dep.deselect();
    assert.equal(s.card.state, PiccState.HALT);
    assert.throws(() => s.dep.transceive(Uint8Array.of(0x80, 0xb0, 0, 0, 0)), IsoDepProtocolError);
  });

  it('refuses blocks that fit no rule, and ends the session', () => {
    const answers: [string, number[]][] = [
      ['R(NAK) from the card', [0xb2]],
      ['S(DESELECT) unasked', [0xc2]],
      ['I-block with the wrong block number', [0x03, 0x90, 0x00]],
      ['S(WTX) with WTXM 0', [0xf2, 0x00]],
      ['R(ACK) to an unchained I-block', [0xa2]],
      ['unknown PCB', [0x26, 0x90, 0x00]],
    ];
    for (const [what, answer] of answers) {
      const { chip, iso, driver } = reader();
      const card = new VirtualCard({ uid: [1, 2, 3, 4], applet: new PurseApplet(sample()) });
      chip.field.add(card);
      const dep = new IsoDep(driver);
      dep.activate(iso.activate() as SelectedCard);
      chip.field.remove(card);
      const rogue: VirtualPicc = {
        powerOff() {},
        receive: () => {
          const bytes = withCrcA(Uint8Array.from(answer));
          return { bytes, bits: bytes.length * 8 };
        },
      };
      chip.field.add(rogue);
      assert.throws(() => dep.transceive(encodeSelect()), IsoDepProtocolError, what);
      assert.equal(dep.active, false, what);
    }
  });
});

describe('ParkLink purse', () => {
  it('round-trips the 25-byte record and validates it', () => {
    const data = sample({
      cardType: CardType.CREDIT,
      balance: -2_500,
      currency: 978,
      expiry: { year: 2031, month: 12 },
    });
    const bytes = encodePurse(data);
    assert.equal(bytes.length, 25);
    assert.equal(hex(bytes.subarray(0, 10)), '40 00 12 34 12 34 12 34 31 12');
    assert.equal(hex(bytes.subarray(23)), '09 78');
    assert.deepEqual(decodePurse(bytes), data);
    assert.throws(() => encodePurse(sample({ cardNumber: '12' })), RangeError);
    assert.throws(() => encodePurse(sample({ balance: 2 ** 31 })), RangeError);
    assert.throws(() => encodePurse(sample({ expiry: { year: 2028, month: 13 } })), RangeError);
  });

  it('reads and debits a debit card, and refuses to go below zero whatever the limit', () => {
    const s = purseSession(sample({ balance: 500, limit: 10_000 }));
    const purse = readPurse(s.transceive, s.session);
    assert.equal(purse.cardType, CardType.DEBIT);
    assert.equal(purse.cardNumber, '4000123412341234');
    assert.deepEqual(purse.expiry, { year: 2028, month: 9 });
    assert.equal(purse.currency, 826);
    assert.deepEqual(debitPurse(s.transceive, s.session, 500, 7), { balance: 0, counter: 8 });
    assert.throws(
      () => debitPurse(s.transceive, s.session, 1, 8),
      (error: unknown) => error instanceof CardRefused && error.sw === 0x6985 && error.insufficientFunds,
    );
    assert.deepEqual(readPurse(s.transceive, s.session), { ...purse, balance: 0, counter: 8 });
  });

  it('lets a credit card go negative down to -limit, not beyond', () => {
    const s = purseSession(sample({ cardType: CardType.CREDIT, balance: 100, limit: 1_000 }));
    assert.deepEqual(debitPurse(s.transceive, s.session, 1_100, 7), { balance: -1_000, counter: 8 });
    assert.throws(() => debitPurse(s.transceive, s.session, 1, 8), CardRefused);
    assert.equal(s.applet.data.balance, -1_000);
    assert.equal(s.applet.data.counter, 8);
  });

  it('lets a prepaid card overdraw within its limit, and refuses beyond with the value unchanged', () => {
    const s = purseSession(sample({ cardType: CardType.PREPAID, balance: 200, limit: 300, currency: 978 }));
    assert.throws(
      () => debitPurse(s.transceive, s.session, 501, 7),
      (error: unknown) => error instanceof CardRefused && error.sw === StatusWord.BELOW_FLOOR,
    );
    assert.deepEqual(
      s.applet.data,
      sample({ cardType: CardType.PREPAID, balance: 200, limit: 300, currency: 978 }),
    );
    assert.deepEqual(debitPurse(s.transceive, s.session, 500, 7), { balance: -300, counter: 8 });
  });

  it('refuses a stale counter with 6A80 and leaves the value', () => {
    const s = purseSession(sample());
    assert.throws(
      () => debitPurse(s.transceive, s.session, 100, 6),
      (error: unknown) => error instanceof CardRefused && error.sw === 0x6a80,
    );
    assert.equal(s.applet.data.balance, 1_000);
    assert.equal(s.applet.data.counter, 7);
  });

  it('answers the applet status words for bad commands', () => {
    const s = purseSession(sample());
    const swOf = (apdu: number[]) => {
      const r = s.transceive(Uint8Array.from(apdu));
      return (r[r.length - 2] << 8) | r[r.length - 1];
    };
    assert.equal(swOf([0x80, 0xb0, 0, 0]), 0x6700);
    assert.equal(swOf([0x80, 0xd0, 0, 0, 4, 0, 0, 0, 1, 0]), 0x6700);
    assert.equal(swOf([0x80, 0xca, 0, 0, 0]), 0x6d00);
    assert.equal(swOf([0x90, 0xb0, 0, 0, 0]), 0x6e00);
    assert.equal(swOf([0x00, 0xa4, 0x04, 0x00, 0x07, 0xa0, 0, 0, 0, 0x03, 0x10, 0x10, 0x00]), 0x6a82);
    assert.equal(swOf([0x80, 0xb0, 0, 0, 0]), 0x6986); // the failed SELECT deselected the purse
    assert.equal(s.applet.data.balance, 1_000);
  });

  it('reports a missing application as CardRefused 6A82', () => {
    const r = reader();
    const other: Applet = { process: () => Uint8Array.of(0x6a, 0x82) };
    r.chip.field.add(new VirtualCard({ uid: [9, 9, 9, 9], applet: other }));
    const dep = new IsoDep(r.driver);
    dep.activate(r.iso.activate() as SelectedCard);
    assert.throws(
      () => selectPurse((apdu) => dep.transceive(apdu)),
      (error: unknown) => error instanceof CardRefused && error.sw === StatusWord.NOT_FOUND,
    );
    assert.equal(PURSE_AID.length, 7);
  });

  it('refuses malformed responses with MalformedResponse', () => {
    const good = encodePurse(sample());
    const read = (t: (a: Uint8Array) => Uint8Array) => readPurse(t, trusting);
    const mac = [0, 0, 0, 0, 0, 0, 0, 0];
    const cases: [string, Uint8Array, (t: (a: Uint8Array) => Uint8Array) => unknown][] = [
      ['one byte', Uint8Array.of(0x90), read],
      ['short purse', Uint8Array.of(...good.subarray(0, 20), ...mac, 0x90, 0x00), read],
      ['non-BCD card number', Uint8Array.of(0x4a, ...good.subarray(1), ...mac, 0x90, 0x00), read],
      [
        'unknown card type',
        Uint8Array.of(...good.subarray(0, 10), 9, ...good.subarray(11), ...mac, 0x90, 0x00),
        read,
      ],
      [
        'month 13',
        Uint8Array.of(...good.subarray(0, 9), 0x13, ...good.subarray(10), ...mac, 0x90, 0x00),
        read,
      ],
      ['debit without data', Uint8Array.of(0x90, 0x00), (t) => debitPurse(t, trusting, 1, 7)],
      [
        'debit with a wrong counter',
        Uint8Array.of(0, 0, 0, 1, 0, 0, 0, 9, ...mac, 0x90, 0x00),
        (t) => debitPurse(t, trusting, 1, 7),
      ],
      ['select with data', Uint8Array.of(1, 0x90, 0x00), selectPurse],
    ];
    for (const [what, response, call] of cases) {
      assert.throws(() => call(() => response), MalformedResponse, what);
    }
    assert.throws(() => debitPurse(() => Uint8Array.of(0x90, 0x00), trusting, 0, 7), RangeError);
    assert.throws(() => debitPurse(() => Uint8Array.of(0x90, 0x00), trusting, -5, 7), RangeError);
  });

  it('carries malformed responses through the whole stack from a real card', () => {
    const r = reader();
    const broken: Applet = {
      process: (apdu) =>
        apdu[1] === 0xa4 ? Uint8Array.of(0x90, 0x00) : Uint8Array.of(0x12, 0x34, 0x90, 0x00),
    };
    r.chip.field.add(new VirtualCard({ uid: [5, 6, 7, 8, 9, 10, 11], applet: broken }));
    const dep = new IsoDep(r.driver);
    dep.activate(r.iso.activate() as SelectedCard);
    const transceive = (apdu: Uint8Array) => dep.transceive(apdu);
    selectPurse(transceive);
    assert.throws(() => readPurse(transceive, trusting), MalformedResponse);
  });
});
