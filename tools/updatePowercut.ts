// Power-cut test of the firmware update: a meter (the real UpdateUnit and RecordStore on virtual
// A/B slots, hal/mock/ota.ts) is updated again and again by a platform played here (offer, chunks at
// the offset the meter asks for, its ok after the new image boots), while power fails at a random
// byte written or erased during the download, the switch (verification, boot selector) or the first
// boot of the new image (bootloader, confirmation); the link also loses downlinks at random. After
// each cut the board boots again on the same flash and preferences and the update goes on without
// further cuts until it settles. Then every invariant is checked:
//
//   - "bricked": the bootloader found no slot holding a whole, intact image;
//   - the running image is the old or the new one; a confirmed update runs the new one, confirmed;
//     an image that fails its self-test is never confirmed (it is rolled back);
//   - "records lost": a record the meter committed is missing or changed afterwards (the record
//     partitions are also compared byte for byte: the update never writes them).
//
//   npm run bench -- update-powercut [--cuts=20000] [--seed=2026]
//
// Record appends are not cut here (tools/powercut.ts cuts those); preferences writes are (one
// entry is written whole or not at all, as NVS does).
import { ed25519 } from '@noble/curves/ed25519';
import { EventBus } from '../firmware/bus';
import type { MeterEvents } from '../firmware/events';
import { FirmwareRejected, firmwareMessage } from '../firmware/units/firmwareVerify';
import { MainRecord } from '../firmware/units/records';
import { RecordStore } from '../firmware/units/storage';
import { UpdateRefused, UpdateUnit } from '../firmware/units/update';
import type { NorFlash } from '../hal/flash';
import { VirtualClock } from '../hal/mock/clock';
import { PowerLoss, VirtualNorFlash } from '../hal/mock/flash';
import { type OtaMemory, newOtaMemory, PowerRail, VirtualOtaSlots } from '../hal/mock/ota';
import { IMAGE_FAILS_SELF_TEST, type ImageInfo, makeImage, readImage } from '../hal/mock/otaImage';
import { BOARD_TARGET } from '../hal/ota';
import { MemoryPreferences } from '../hal/mock/preferences';
import { SeededRandom } from '../hal/mock/random';
import { nobleCrypto as crypto } from '../hal/nobleCrypto';
import type { PreferenceValue } from '../hal/preferences';
import { bytesEqual } from '../protocol/bytes';
import { ProtocolError } from '../protocol/errors';
import {
  decodeFirmwareProgress,
  encodeFirmwareDownlink,
  FIRMWARE_UPLINK,
  type FirmwareDownlink,
  type FirmwareProgress,
} from '../protocol/firmware';
import { encodeRecord } from '../protocol/records';

export const TARGET = BOARD_TARGET;
/** The release key of these tests (a fixed test secret, never a production key). */
export const RELEASE_SECRET = new Uint8Array(32).fill(0x5a);
export const RELEASE_KEY = ed25519.getPublicKey(RELEASE_SECRET);
const SECTOR = 4096;
const METER_ID = 4242;

export { IMAGE_FAILS_SELF_TEST, type ImageInfo, makeImage, readImage };

export function signImage(image: Uint8Array, version: number, target = TARGET, secret = RELEASE_SECRET) {
  const digest = crypto.sha256(image);
  return {
    sha256: digest,
    signature: ed25519.sign(firmwareMessage({ version, length: image.length, target, digest }), secret),
  };
}

/** Preferences whose writes draw from the rail: a cut before a set leaves the old value. */
class RailPreferences extends MemoryPreferences {
  constructor(
    entries: Map<string, PreferenceValue>,
    readonly rail: PowerRail,
  ) {
    super(entries);
  }
  override set(domain: string, key: string, value: PreferenceValue): void {
    if (this.rail.take(1) < 1) throw new PowerLoss();
    super.set(domain, key, value);
  }
}

/** What a meter keeps across power cycles, and one boot of it. */
export class UpdateRig {
  readonly ota: OtaMemory;
  readonly entries = new Map<string, PreferenceValue>();
  readonly records = {
    records: new Uint8Array(64 * 1024).fill(0xff),
    backup: new Uint8Array(64 * 1024).fill(0xff),
    upload: new Uint8Array(16 * 1024).fill(0xff),
  };
  clock = new VirtualClock();
  /** Records committed so far: seq → encoded bytes. */
  readonly committed = new Map<number, Uint8Array>();
  boots = 0;

  rail = new PowerRail();
  slots: VirtualOtaSlots | undefined;
  unit: UpdateUnit | undefined;
  store: RecordStore | undefined;
  mainRecord: MainRecord | undefined;
  image: ImageInfo | undefined;
  /** Uplinks the meter sent this boot, decoded. */
  readonly sent: FirmwareProgress[] = [];
  /** Every uplink of this boot, in order (drive consumes `sent`, not this). */
  readonly heard: FirmwareProgress[] = [];
  linkUp = true;

  constructor(factory: Uint8Array, slotBytes = 64 * 1024) {
    this.ota = newOtaMemory(slotBytes, SECTOR, factory);
  }

  /** Powers the board up: bootloader, record store, update unit (started). False: bricked. */
  boot(options: { confirmWindowMs?: number; cutAfter?: number } = {}): boolean {
    this.boots++;
    this.rail = new PowerRail();
    if (options.cutAfter !== undefined) this.rail.cutAfter(options.cutAfter);
    this.clock = new VirtualClock(); // timers of the boot before are gone with it
    this.sent.length = 0;
    this.heard.length = 0;
    this.unit = undefined;
    let slots: VirtualOtaSlots | undefined;
    try {
      slots = VirtualOtaSlots.boot(this.ota, this.rail, (f) => readImage(f) !== undefined, SECTOR);
    } catch (error) {
      if (error instanceof PowerLoss) return true; // cut while the bootloader wrote: boot again
      throw error;
    }
    this.slots = slots;
    if (!slots) return false;
    this.image = readImage(this.#slotFlash(slots.running()));
    const flash = (cells: Uint8Array) => new VirtualNorFlash({ cells, sectorSize: SECTOR });
    const plainPrefs = new MemoryPreferences(this.entries);
    this.store = new RecordStore({
      records: flash(this.records.records),
      backup: flash(this.records.backup),
      upload: flash(this.records.upload),
      preferences: plainPrefs,
      crypto,
    });
    this.mainRecord = new MainRecord({
      log: this.store,
      ledger: this.store.ledger,
      crypto,
      clock: this.clock,
      meterId: METER_ID,
      bus: new EventBus<MeterEvents>(),
      onAppended: (record) => this.committed.set(record.seq, encodeRecord(record)),
    });
    const flags = this.image?.flags ?? 0;
    this.unit = new UpdateUnit({
      slots,
      preferences: new RailPreferences(this.entries, this.rail),
      timers: this.clock,
      send: (type, body) => {
        if (!this.linkUp || type !== FIRMWARE_UPLINK) return false;
        const progress = decodeFirmwareProgress(body);
        this.sent.push(progress);
        this.heard.push(progress);
        return true;
      },
      pinnedKey: RELEASE_KEY,
      target: TARGET,
      version: this.image?.version ?? 0,
      selfTest: () => ((flags & IMAGE_FAILS_SELF_TEST) !== 0 ? 'display does not answer' : undefined),
      confirmWindowMs: options.confirmWindowMs ?? 60_000,
    });
    try {
      this.unit.start();
    } catch (error) {
      if (!(error instanceof PowerLoss)) throw error;
    }
    return true;
  }

  #slotFlash(slot: 0 | 1): NorFlash {
    return new VirtualNorFlash({ cells: this.ota.slots[slot], sectorSize: SECTOR });
  }

  /** Whether the board stopped (power cut or its own restart) and needs booting again. */
  get down(): boolean {
    return this.rail.dead;
  }

  /** Appends one record, as the meter does between update steps. */
  appendRecord(detail: string): void {
    this.mainRecord?.appendMaintenance('note', detail);
  }

  /** The platform acknowledges all records but the last `keep` (they leave the meter's count). */
  acknowledgeAllBut(keep: number): void {
    const store = this.store;
    if (!store) return;
    const seq = store.lastSeq - keep;
    const link = seq > store.ledger.acknowledgedSeq ? store.linkOf(seq) : undefined;
    if (!link) return;
    store.acknowledge(seq, link);
    for (const s of [...this.committed.keys()]) if (s <= seq) this.committed.delete(s);
  }

  /** Records committed and missing or changed in the store now. */
  recordsLost(): number {
    const store = this.store;
    if (!store) return this.committed.size;
    let lost = 0;
    const held = new Map<number, Uint8Array>();
    for (const r of store.read(1, store.lastSeq, Number.MAX_SAFE_INTEGER)) held.set(r.seq, r.bytes);
    for (const [seq, bytes] of this.committed) {
      const h = held.get(seq);
      if (!h || !bytesEqual(h, bytes)) lost++;
    }
    return lost;
  }
}

/** The platform's side of one delivery: stop-and-wait on the meter's progress, re-offering on silence. */
export class DeliverySim {
  constructor(
    readonly id: number,
    readonly image: Uint8Array,
    readonly version: number,
    readonly chunk = 512,
    readonly signed = signImage(image, version),
  ) {}

  offer(): FirmwareDownlink {
    return {
      k: 'offer',
      id: this.id,
      version: this.version,
      length: this.image.length,
      target: TARGET,
      ...this.signed,
    };
  }

  /** The next downlink for a progress report, or undefined when the delivery needs nothing more. */
  next(p: FirmwareProgress): FirmwareDownlink | undefined {
    if (p.id !== this.id) return undefined;
    if ((p.state === 'offered' || p.state === 'downloading') && p.offset < this.image.length) {
      const data = this.image.subarray(p.offset, Math.min(this.image.length, p.offset + this.chunk));
      return { k: 'chunk', id: this.id, offset: p.offset, data };
    }
    if (p.state === 'booted-pending' && p.version === this.version)
      return { k: 'ok', id: this.id, version: this.version };
    return undefined;
  }
}

export type CutPhase = 'download' | 'switch' | 'first-boot';
export const CUT_PHASES: readonly CutPhase[] = ['download', 'switch', 'first-boot'];

export interface UpdatePowerCutResult {
  /** Cuts drawn, and those that fell on a byte (a draw past the update's last write does not). */
  cuts: number;
  landed: number;
  bricked: number;
  recordsLost: number;
  confirmed: number;
  rolledBack: number;
  violations: number;
  cutsByPhase: Record<CutPhase, number>;
}

export interface UpdatePowerCutOptions {
  seed: number;
  cuts: number;
  /** Payload bytes of each image (default 12 KiB: three sectors and more). */
  imageBytes?: number;
  onViolation?: (message: string) => void;
}

const TERMINAL = ['confirmed', 'rolled-back', 'refused'];
const settledOn = (rig: UpdateRig, id: number) =>
  rig.unit?.delivery === id && TERMINAL.includes(rig.unit.state);

/**
 * Delivers on a booted rig until the meter stops (its restart or a cut) or settles; `drop` is the
 * chance a downlink is lost (after silence the platform offers again and the meter says where it is).
 * `before` sees each downlink about to be handled (to arm a cut); `appends` is the chance the meter
 * appends a record after a downlink (its ordinary work going on during the update).
 */
export function drive(
  rig: UpdateRig,
  sim: DeliverySim,
  random: SeededRandom,
  options: { drop?: number; appends?: number; before?: (m: FirmwareDownlink) => void } = {},
): void {
  const { drop = 0, appends = 0, before } = options;
  let silence = 0;
  while (!rig.down && silence < 50) {
    const p = rig.sent.shift();
    let message = p && sim.next(p);
    if (!message) {
      if (rig.sent.length > 0) continue;
      if (settledOn(rig, sim.id)) return;
      silence++;
      message = sim.offer();
    }
    if (random.nextFloat() < drop) continue;
    before?.(message);
    try {
      rig.unit?.handle(encodeFirmwareDownlink(message));
    } catch (error) {
      if (rig.down) return;
      if (
        !(
          error instanceof UpdateRefused ||
          error instanceof FirmwareRejected ||
          error instanceof ProtocolError
        )
      )
        throw error;
    }
    if (!rig.down && random.nextFloat() < appends) rig.appendRecord(`during ${rig.unit?.state}`);
  }
}

export function runUpdatePowerCuts(options: UpdatePowerCutOptions): UpdatePowerCutResult {
  const random = new SeededRandom(options.seed);
  const payload = options.imageBytes ?? 12 * 1024;
  const result: UpdatePowerCutResult = {
    cuts: 0,
    landed: 0,
    bricked: 0,
    recordsLost: 0,
    confirmed: 0,
    rolledBack: 0,
    violations: 0,
    cutsByPhase: { download: 0, switch: 0, 'first-boot': 0 },
  };
  const violation = (m: string) => {
    result.violations++;
    options.onViolation?.(m);
  };
  let version = 1;
  const rig = new UpdateRig(makeImage(version, payload));
  if (!rig.boot()) throw new Error('the factory image does not boot');
  rig.appendRecord('factory');
  for (let round = 0; result.cuts < options.cuts; round++) {
    const where = `round ${round} (seed ${options.seed})`;
    const next = version + 1;
    const failing = random.nextFloat() < 0.2;
    const image = makeImage(next, payload, failing ? IMAGE_FAILS_SELF_TEST : 0, next + round);
    const sim = new DeliverySim(round + 1, image, next);
    const phase = CUT_PHASES[Math.floor(random.nextFloat() * CUT_PHASES.length)];
    // Power fails at a byte drawn within the phase's writes and erases.
    const span = phase === 'download' ? image.length * 2 : phase === 'switch' ? 4096 + 1024 : 2 * 4096 + 64;
    let armed = false;
    const budget = () => {
      armed = true;
      result.cuts++;
      result.cutsByPhase[phase]++;
      return Math.floor(random.nextFloat() * span);
    };
    if (phase === 'download') rig.rail.cutAfter(budget());
    const lastChunk = (m: FirmwareDownlink) => {
      if (phase === 'switch' && !armed && m.k === 'chunk' && m.offset + m.data.length === image.length)
        rig.rail.cutAfter(budget());
    };
    let settled = false;
    for (let boots = 0; boots < 12 && !settled; boots++) {
      drive(rig, sim, random, { drop: 0.05, appends: 0.02, before: lastChunk });
      if (!rig.down && rig.unit?.state === 'booted-pending') {
        try {
          rig.clock.advance(61_000); // no contact within the window: the image rolls itself back
        } catch (error) {
          if (!(error instanceof PowerLoss)) throw error;
        }
      }
      if (!rig.down) {
        settled = settledOn(rig, sim.id);
        if (!settled) violation(`${where}: stuck in ${rig.unit?.state}`);
        break;
      }
      if (rig.rail.cut) result.landed++;
      const switching = rig.unit?.state === 'pending-switch';
      const before = Object.values(rig.records).map((c) => c.slice());
      const cut = phase === 'first-boot' && !armed && switching ? budget() : undefined;
      const booted = rig.boot({ cutAfter: cut });
      if (!booted) {
        result.bricked++;
        violation(`${where}: bricked after a cut during ${phase}`);
        return result;
      }
      if (!Object.values(rig.records).every((c, i) => bytesEqual(c, before[i])))
        violation(`${where}: a boot changed the record partitions`);
    }
    const state = rig.unit?.state;
    const running = rig.image?.version;
    if (state === 'confirmed') {
      result.confirmed++;
      if (failing) violation(`${where}: an image failing its self-test was confirmed`);
      if (running !== next || rig.slots?.pending()) violation(`${where}: confirmed but running ${running}`);
      version = next;
    } else {
      if (state === 'rolled-back') result.rolledBack++;
      if (running !== version) violation(`${where}: ${state} but running ${running}, not ${version}`);
      if (!failing && state !== 'rolled-back') violation(`${where}: a good image ended ${state}`);
    }
    const lost = rig.recordsLost();
    result.recordsLost += lost;
    if (lost > 0) violation(`${where}: ${lost} records lost`);
    rig.appendRecord(`round ${round}`);
    rig.acknowledgeAllBut(4);
  }
  return result;
}

export function formatUpdateResult(r: UpdatePowerCutResult): string {
  return `cuts ${r.cuts} (${r.landed} during a write or erase), bricked ${r.bricked}, records lost ${r.recordsLost}, confirmed ${r.confirmed}, rolled back ${r.rolledBack}`;
}
