// The purse's reader half in software: the driver's PurseAuthenticator over a virtual SAM's APDUs,
// for tests of the purse protocol without a serial line.
import { CardNotGenuine, type PurseAuthenticator } from '../../drivers/rfid/purse';
import { blankSamState, SamApdu, SamSw, VirtualSam } from '../../hal/mock/secure/sam';

export class SoftwarePurseAuthenticator implements PurseAuthenticator {
  readonly #sam: VirtualSam;

  constructor(cardMaster: Uint8Array) {
    this.#sam = new VirtualSam({ state: blankSamState(cardMaster) });
  }

  #call(ins: number, p1: number, data: Uint8Array): { data: Uint8Array; sw: number } {
    const r = this.#sam.process(Uint8Array.of(SamApdu.CLA, ins, p1, 0, data.length, ...data, 0));
    return { data: r.subarray(0, r.length - 2), sw: (r[r.length - 2] << 8) | r[r.length - 1] };
  }

  begin(uid: Uint8Array): Uint8Array {
    return this.#call(SamApdu.CARD_AUTH_BEGIN, 0, uid).data.slice();
  }

  prove(rndC: Uint8Array, proof: Uint8Array): Uint8Array {
    const r = this.#call(SamApdu.CARD_AUTH_PROVE, 0, Uint8Array.of(...rndC, ...proof));
    if (r.sw !== SamSw.OK) throw new CardNotGenuine('the card cannot prove its diversified key');
    return r.data.slice();
  }

  mac(data: Uint8Array): Uint8Array {
    return this.#call(SamApdu.CARD_MAC, 0, data).data.slice();
  }

  verify(data: Uint8Array, mac: Uint8Array): boolean {
    return this.#call(SamApdu.CARD_MAC, 1, Uint8Array.of(...data, ...mac)).sw === SamSw.OK;
  }
}
