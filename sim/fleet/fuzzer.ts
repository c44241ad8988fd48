// The frame and APDU parser fuzzer: random and mutated inputs into the meter's
// downlink opener, the T=1 block and response APDU parsers, the purse client, the virtual SAM and
// the purse applet. Every input must end in a typed refusal; none may crash or be accepted.
// host-tests/security/fuzz.test.ts runs 6,000 inputs; tools/bench/fuzz.ts runs 100,000.
import { CardRefused, decodePurse, PurseError, readPurse } from '../../drivers/rfid/purse';
import { decodeT1Block, SamError, splitResponse } from '../../drivers/secure/sam';
import { SecurityUnit } from '../../firmware/units/security';
import { PurseApplet } from '../../hal/mock/cards';
import { blankSamState, VirtualSam } from '../../hal/mock/secure/sam';
import { MemoryPreferences } from '../../hal/mock/preferences';
import { nobleCrypto as crypto } from '../../hal/nobleCrypto';
import { ProtocolError } from '../../protocol/errors';
import { sealFrame } from '../../protocol/frame';
import {
  decodeMaintenanceToken,
  decodeRotation,
  decodeSecurityEvent,
  deriveMeterKeys,
} from '../../protocol/keys';

export interface FuzzReport {
  inputs: number;
  refused: Record<string, number>;
  accepted: number;
  /** Accepted inputs by target (frame, t1, sam, purse, read, decode), with the first few inputs. */
  acceptedBy: Record<string, string[]>;
  crashes: string[];
}

function rng(seed: number) {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}

export function fuzz(inputs: number, seed = 1): FuzzReport {
  const next = rng(seed);
  const byte = () => next() & 0xff;
  const keys = deriveMeterKeys(crypto, new Uint8Array(32).fill(1), 7, 1);
  const preferences = new MemoryPreferences();
  SecurityUnit.provision(preferences, keys);
  const unit = new SecurityUnit({ preferences, crypto, meterId: 7 });
  const good = sealFrame(
    crypto,
    keys.downlink,
    { version: 1, type: 0x84, meterId: 7, epoch: 1, seq: 0x7fff_ffff },
    Uint8Array.of(1, 2, 3),
  );
  const sam = new VirtualSam({ state: blankSamState(new Uint8Array(16)) });
  const applet = new PurseApplet(
    {
      cardNumber: '6280000000000017',
      expiry: { year: 2030, month: 1 },
      cardType: 1,
      balance: 100,
      limit: 0,
      counter: 0,
      currency: 826,
    },
    { key: new Uint8Array(16) },
  );
  const report: FuzzReport = { inputs: 0, refused: {}, accepted: 0, acceptedBy: {}, crashes: [] };
  const targets = ['frame', 't1', 'sam', 'purse', 'read', 'decode'];
  const refuse = (what: string) => {
    report.refused[what] = (report.refused[what] ?? 0) + 1;
  };
  const accept = (input: Uint8Array) => {
    report.accepted++;
    const target = targets[(report.inputs - 1) % 6];
    const list = report.acceptedBy[target] ?? [];
    report.acceptedBy[target] = list;
    if (list.length < 3) list.push(Array.from(input, (b) => b.toString(16).padStart(2, '0')).join(''));
  };

  const trusting = { mac: () => new Uint8Array(8), verify: () => false };
  for (let i = 0; i < inputs; i++) {
    report.inputs++;
    const kind = i % 6;
    // Half random bytes of random length (up to 300), half the good frame with 1-4 mutations.
    let input: Uint8Array;
    if (next() & 1) {
      input = Uint8Array.from({ length: next() % 300 }, byte);
    } else {
      input = good.slice(0, next() % 3 === 0 ? next() % (good.length + 1) : good.length);
      for (let m = 1 + (next() % 4); m > 0 && input.length > 0; m--)
        input[next() % input.length] ^= 1 << (next() % 8);
      if (next() % 5 === 0)
        input = Uint8Array.of(...input, ...Uint8Array.from({ length: next() % 400 }, byte));
    }
    if (input.length === good.length && input.every((b, j) => b === good[j])) {
      refuse('unmutated'); // mutations that cancelled out: the genuine frame, not a fuzz input
      continue;
    }
    try {
      switch (kind) {
        case 0:
          unit.openDownlink(input);
          accept(input);
          break;
        case 1:
          decodeT1Block(input);
          splitResponse(input);
          refuse('t1-parsed'); // a well-formed block is parsing, not acceptance of a command
          break;
        case 2: {
          const answer = sam.process(input);
          const sw = (answer[answer.length - 2] << 8) | answer[answer.length - 1];
          if (sw === 0x9000 && input[1] !== 0x10) accept(input);
          else refuse(`sam-${sw.toString(16)}`);
          break;
        }
        case 3: {
          const answer = applet.process(input);
          const sw = (answer[answer.length - 2] << 8) | answer[answer.length - 1];
          if (sw === 0x9000 && input[1] !== 0xa4) accept(input);
          else refuse(`purse-${sw.toString(16)}`);
          break;
        }
        case 4:
          readPurse(() => input, trusting);
          accept(input);
          break;
        default:
          [decodeRotation, decodeSecurityEvent, decodeMaintenanceToken, decodePurse][next() % 4](input);
          refuse('decoded');
      }
    } catch (error) {
      if (error instanceof ProtocolError) refuse(error.code);
      else if (error instanceof SamError) refuse('sam-error');
      else if (error instanceof CardRefused) refuse('card-refused');
      else if (error instanceof PurseError) refuse(error.name);
      else if (error instanceof RangeError && /bad-field|bytes/.test(error.message)) refuse('range');
      else if (report.crashes.length < 10) report.crashes.push(`${kind}: ${(error as Error).stack}`);
      else report.crashes.push('');
    }
  }
  return report;
}
