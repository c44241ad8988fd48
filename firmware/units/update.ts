// Firmware update (414), meter side: an image offered by the platform (or a handheld: the same
// messages) arrives in chunks and is written to the application slot not running; its state is
// persisted after every step, so a power cut or a dropped link resumes at the last written offset.
// Before the switch the whole slot is hashed and the signature, hardware target and anti-rollback
// floor checked again. The new image boots pending; it confirms itself only after its self-test
// passed and the platform was heard from, else it rolls back by itself (self-test failed, no
// contact in time), and a restart before confirming (watchdog, power cut) makes the bootloader roll
// it back. The unit writes the inactive slot and one preference entry: never the record store.
//
//   idle → offered → downloading(offset) → verified → pending-switch → booted-pending → confirmed
//                                                                                      ↘ rolled-back
import { sha256 } from '@noble/hashes/sha2';
import type { TimerHandle, Timers } from '../../hal/clock';
import type { OtaSlotIndex, OtaSlots } from '../../hal/ota';
import type { Preferences } from '../../hal/preferences';
import { bytesEqual } from '../../protocol/bytes';
import { decodeCbor, encodeCbor } from '../../protocol/cbor';
import {
  decodeFirmwareDownlink,
  encodeFirmwareProgress,
  FIRMWARE_UPLINK,
  type FirmwareDownlink,
  type UpdateState,
} from '../../protocol/firmware';
import { checkFirmwareSignature, FirmwareRejected } from './firmwareVerify';

const DOMAIN = 'update';
/** Times the switch is retried when the new slot did not boot and the bootloader did not refuse it. */
const SWITCH_TRIES = 2;

interface Persisted {
  st: UpdateState;
  id: number;
  v: number;
  len: number;
  tgt: string;
  sha: Uint8Array;
  sig: Uint8Array;
  off: number;
  slot: number;
  tries: number;
  why: string;
}

export interface UpdateOptions {
  slots: OtaSlots;
  preferences: Preferences;
  timers: Timers;
  /** Sends an uplink (CommsUnit.send); false when the link is down. */
  send(type: number, body: Uint8Array): boolean;
  /** The release key pinned at provisioning (security.ts pinnedFirmwareKey). */
  pinnedKey: Uint8Array | undefined;
  /** This board's hardware target, as images are signed for it. */
  target: string;
  /** The running image's version. */
  version: number;
  /** Runs after a new image boots: undefined when the meter works, else what failed. */
  selfTest(): string | undefined;
  /** Time a new image waits for the platform before rolling back (default 10 minutes). */
  confirmWindowMs?: number;
}

export class UpdateRefused extends Error {
  override readonly name: string = 'UpdateRefused';
}

export class UpdateUnit {
  readonly #o: UpdateOptions;
  #s: Persisted;
  #deadline: TimerHandle | undefined;
  #selfTestPassed = false;
  #unreported = false;

  constructor(options: UpdateOptions) {
    this.#o = options;
    this.#s = this.#load();
  }

  get state(): UpdateState {
    return this.#s.st;
  }

  /** The delivery id of the update on record (0: none). */
  get delivery(): number {
    return this.#s.id;
  }

  /** Offset of the next byte wanted while downloading. */
  get offset(): number {
    return this.#s.off;
  }

  /** Highest version ever confirmed on this meter: nothing at or below it is accepted. */
  get floor(): number {
    const f = this.#o.preferences.get(DOMAIN, 'floor');
    return Math.max(typeof f === 'number' ? f : 0, this.#o.version);
  }

  get reason(): string {
    return this.#s.why;
  }

  /**
   * Settles what happened across the restart (the switch, the bootloader's rollback), then runs the
   * self-test on a pending image and waits for the platform. Call once the meter's units started.
   */
  start(): void {
    const { slots } = this.#o;
    const s = this.#s;
    const onTarget = slots.running() === s.slot;
    if (s.st === 'verified' || (s.st === 'downloading' && s.off >= s.len)) {
      this.#verify(); // power failed after the last chunk, before the switch: check again, then switch
      return;
    }
    if (s.st === 'pending-switch') {
      if (onTarget && slots.pending()) this.#save({ st: 'booted-pending' });
      else if (onTarget) this.#confirmed();
      else if (slots.aborted(s.slot as OtaSlotIndex) || s.tries >= SWITCH_TRIES)
        this.#save({ st: 'rolled-back', why: 'the new image did not start' });
      else {
        this.#save({ tries: s.tries + 1 });
        this.#switch();
        return;
      }
    } else if (s.st === 'booted-pending') {
      if (!onTarget) this.#save({ st: 'rolled-back', why: 'restarted before confirming' });
      else if (!slots.pending()) this.#confirmed();
    } else if (slots.pending()) {
      // booted pending with no update of ours on record (state lost): confirm like one
      this.#save({ st: 'booted-pending', slot: slots.running(), v: this.#o.version, why: '' });
    }
    if (this.#s.st === 'booted-pending') {
      const failed = this.#o.selfTest();
      if (failed !== undefined) {
        this.#rollback(`self-test: ${failed}`);
        return;
      }
      this.#selfTestPassed = true;
      this.#deadline = this.#o.timers.setTimeout(
        () => this.#rollback('no platform contact'),
        this.#o.confirmWindowMs ?? 600_000,
      );
    }
    this.#report();
  }

  stop(): void {
    this.#o.timers.clear(this.#deadline);
    this.#deadline = undefined;
  }

  /** A firmware downlink's body (0x87), from the platform or a handheld. Bad input: a typed error, state kept. */
  handle(body: Uint8Array): void {
    const m = decodeFirmwareDownlink(body);
    switch (m.k) {
      case 'offer':
        this.#offer(m);
        break;
      case 'chunk':
        this.#chunk(m.id, m.offset, m.data);
        break;
      case 'ok':
        this.platformContact(m.version);
        break;
      default:
        if (m.id === this.#s.id && ['offered', 'downloading', 'verified'].includes(this.#s.st)) {
          this.#save({ st: 'idle', why: 'aborted by the platform' });
        }
        this.#report();
    }
  }

  /** The platform was heard from after the switch (its ok, or an ack of records): confirm. */
  platformContact(version = this.#s.v): void {
    if (this.#unreported) this.#report();
    if (this.#s.st !== 'booted-pending' || !this.#selfTestPassed || version !== this.#s.v) return;
    this.#o.timers.clear(this.#deadline);
    this.#deadline = undefined;
    this.#o.slots.confirm();
    this.#confirmed();
    this.#report();
  }

  #offer(m: Extract<FirmwareDownlink, { k: 'offer' }>): void {
    const s = this.#s;
    if (s.st !== 'idle' && m.id === s.id && bytesEqual(m.sha256, s.sha)) {
      this.#report(); // the same offer again (a lost progress): say where this update is
      return;
    }
    if (s.st === 'pending-switch' || s.st === 'booted-pending') {
      this.#send({ id: m.id, state: 'refused', version: m.version, offset: 0, reason: 'busy' });
      throw new UpdateRefused('an update is being switched to');
    }
    const manifest = { version: m.version, length: m.length, target: m.target, digest: m.sha256 };
    try {
      checkFirmwareSignature(this.#o.pinnedKey, manifest, m.signature, {
        target: this.#o.target,
        floor: this.floor,
      });
      if (m.length === 0 || m.length > this.#o.slots.inactive().byteLength)
        throw new FirmwareRejected('malformed', `${m.length} bytes do not fit the slot`);
    } catch (error) {
      const reason = error instanceof FirmwareRejected ? error.reason : 'malformed';
      this.#send({ id: m.id, state: 'refused', version: m.version, offset: 0, reason });
      throw error;
    }
    this.#save({
      st: 'offered',
      id: m.id,
      v: m.version,
      len: m.length,
      tgt: m.target,
      sha: m.sha256,
      sig: m.signature,
      off: 0,
      slot: this.#o.slots.inactiveIndex(),
      tries: 0,
      why: '',
    });
    this.#report();
  }

  #chunk(id: number, offset: number, data: Uint8Array): void {
    const s = this.#s;
    if ((s.st !== 'offered' && s.st !== 'downloading') || id !== s.id) {
      this.#report();
      return;
    }
    if (offset !== s.off || offset + data.length > s.len) {
      this.#report(); // not the chunk wanted: the progress names the offset to resume at
      return;
    }
    const slot = this.#o.slots.inactive();
    const size = slot.sectorSize;
    // erase each sector this chunk enters at its start (a resumed chunk erases it again: harmless)
    for (let sector = Math.ceil(offset / size); sector * size < offset + data.length; sector++) {
      slot.eraseSector(sector);
    }
    slot.write(offset, data);
    const next = offset + data.length;
    if (next < s.len) {
      this.#save({ st: 'downloading', off: next });
      this.#report();
      return;
    }
    this.#save({ st: 'downloading', off: next });
    this.#verify();
  }

  /** Hashes the slot as written and checks everything again; then switches, or refuses the image. */
  #verify(): void {
    const s = this.#s;
    const slot = this.#o.slots.inactive();
    const hash = sha256.create();
    for (let at = 0; at < s.len; at += slot.sectorSize) {
      hash.update(slot.read(at, Math.min(slot.sectorSize, s.len - at)));
    }
    const digest = hash.digest();
    let why = '';
    if (!bytesEqual(digest, s.sha)) why = 'hash';
    else {
      try {
        checkFirmwareSignature(
          this.#o.pinnedKey,
          { version: s.v, length: s.len, target: s.tgt, digest },
          s.sig,
          { target: this.#o.target, floor: this.floor },
        );
      } catch (error) {
        why = error instanceof FirmwareRejected ? error.reason : 'malformed';
      }
    }
    if (why) {
      this.#save({ st: 'refused', why });
      this.#report();
      return;
    }
    this.#save({ st: 'verified' });
    this.#report();
    this.#switch();
  }

  #switch(): void {
    const s = this.#s;
    if (s.st === 'verified' && s.slot !== this.#o.slots.inactiveIndex()) {
      this.#save({ st: 'refused', why: 'slot changed' });
      this.#report();
      return;
    }
    this.#save({ st: 'pending-switch' });
    this.#o.slots.setBoot(s.slot as OtaSlotIndex);
    this.#o.slots.restart();
  }

  #rollback(why: string): void {
    this.#o.timers.clear(this.#deadline);
    this.#deadline = undefined;
    this.#save({ st: 'rolled-back', why });
    this.#report();
    this.#o.slots.rollback();
  }

  #confirmed(): void {
    const floor = this.#o.preferences.get(DOMAIN, 'floor');
    if (typeof floor !== 'number' || floor < this.#s.v) this.#o.preferences.set(DOMAIN, 'floor', this.#s.v);
    this.#save({ st: 'confirmed', why: '' });
  }

  #report(): void {
    const s = this.#s;
    const version = s.st === 'idle' ? this.#o.version : s.v;
    this.#unreported = !this.#send({
      id: s.id,
      state: s.st,
      version,
      offset: s.off,
      reason: s.why || undefined,
    });
  }

  #send(p: Parameters<typeof encodeFirmwareProgress>[0]): boolean {
    try {
      return this.#o.send(FIRMWARE_UPLINK, encodeFirmwareProgress(p));
    } catch {
      return false; // the link's fault is the comms unit's to report
    }
  }

  #save(change: Partial<Persisted>): void {
    const next = { ...this.#s, ...change };
    this.#o.preferences.set(DOMAIN, 'state', toArrayBuffer(encodeCbor(next)));
    this.#s = next;
  }

  #load(): Persisted {
    const idle: Persisted = {
      st: 'idle',
      id: 0,
      v: 0,
      len: 0,
      tgt: '',
      sha: new Uint8Array(32),
      sig: new Uint8Array(64),
      off: 0,
      slot: 0,
      tries: 0,
      why: '',
    };
    const raw = this.#o.preferences.get(DOMAIN, 'state');
    if (!(raw instanceof ArrayBuffer)) return idle;
    try {
      const v = decodeCbor(new Uint8Array(raw)) as Persisted;
      if (typeof v !== 'object' || v === null || typeof v.st !== 'string' || !(v.sha instanceof Uint8Array))
        return idle;
      return { ...idle, ...v };
    } catch {
      return idle; // an unreadable entry: no update in progress
    }
  }
}

/** A copy in its own ArrayBuffer (the encoder may hand back a view into a larger one). */
function toArrayBuffer(bytes: Uint8Array): ArrayBuffer {
  const copy = new Uint8Array(bytes.length);
  copy.set(bytes);
  return copy.buffer;
}
