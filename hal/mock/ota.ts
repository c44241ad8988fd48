// Virtual A/B application slots with an ESP-IDF-like boot selector ("otadata": two sectors, each
// one entry of sequence u32 | state u32 | CRC-32 of both u32; the valid entry with the highest
// sequence wins and selects slot (seq - 1) % 2). States follow esp_ota_img_states_t: new 0,
// pending-verify 1, valid 2, invalid 3, aborted 4, 0xFFFFFFFF undefined (counts as valid).
// The bootloader turns new into pending-verify and boots it; finding pending-verify at boot means
// the image restarted without confirming, so it is marked aborted and the other entry's slot
// boots. An image the `bootable` check refuses is skipped like ESP-IDF's image verification.
// Every write and erase goes through a PowerRail, so power can fail at any byte.
import { crc32, readUint32, writeUint32 } from '../../protocol/bytes';
import type { NorFlash } from '../flash';
import type { OtaSlotIndex, OtaSlots } from '../ota';
import { PowerLoss, VirtualNorFlash } from './flash';

const NEW = 0;
const PENDING = 1;
const VALID = 2;
const INVALID = 3;
const ABORTED = 4;
const UNDEFINED = 0xffffffff;

/** One power supply for several virtual parts: `cutAfter(n)` fails the n+1-th byte written or erased. */
export class PowerRail {
  #budget = Number.POSITIVE_INFINITY;
  #dead = false;
  /** Called once, the moment the power fails or the board restarts (what flash holds then survives). */
  onDown: (() => void) | undefined;

  /** Set once power failed or the board restarted: every later operation throws PowerLoss. */
  get dead(): boolean {
    return this.#dead;
  }

  set dead(dead: boolean) {
    const was = this.#dead;
    this.#dead = dead;
    if (dead && !was) this.onDown?.();
  }
  /** Set when the power failed (not a restart). */
  cut = false;
  bytes = 0;

  cutAfter(bytes: number): void {
    this.#budget = bytes;
  }

  /** How many of `bytes` get power (all, or fewer when it fails part-way: then the rail is dead). */
  take(bytes: number): number {
    if (this.dead) throw new PowerLoss();
    const given = Math.min(bytes, this.#budget);
    this.#budget -= given;
    this.bytes += given;
    if (given < bytes) {
      this.cut = true;
      this.dead = true;
    }
    return given;
  }
}

/** A VirtualNorFlash fed from a PowerRail, cut at the exact byte. */
export class RailFlash implements NorFlash {
  readonly byteLength: number;
  readonly sectorSize: number;
  constructor(
    readonly inner: VirtualNorFlash,
    readonly rail: PowerRail,
  ) {
    this.byteLength = inner.byteLength;
    this.sectorSize = inner.sectorSize;
  }
  read(offset: number, byteLength: number): Uint8Array {
    if (this.rail.dead) throw new PowerLoss();
    return this.inner.read(offset, byteLength);
  }
  write(offset: number, data: Uint8Array): void {
    const given = this.rail.take(data.length);
    this.inner.write(offset, data.subarray(0, given));
    if (given < data.length) throw new PowerLoss();
  }
  eraseSector(sector: number): void {
    if (!Number.isInteger(sector) || sector < 0 || (sector + 1) * this.sectorSize > this.byteLength)
      throw new RangeError(`no sector ${sector}`);
    const start = sector * this.sectorSize;
    // an erase cut part-way leaves the sector partly erased, as a real one may
    const given = this.rail.take(this.sectorSize);
    this.inner.cells.fill(0xff, start, start + given);
    if (given < this.sectorSize) throw new PowerLoss();
    this.inner.eraseCounts[sector]++;
  }
}

/** What survives a power cycle: both slots and the selector's sectors. */
export interface OtaMemory {
  slots: [Uint8Array, Uint8Array];
  otadata: Uint8Array;
}

export function newOtaMemory(slotBytes: number, sectorSize = 4096, factory?: Uint8Array): OtaMemory {
  const slot = () => new Uint8Array(slotBytes).fill(0xff);
  const memory: OtaMemory = { slots: [slot(), slot()], otadata: new Uint8Array(2 * sectorSize).fill(0xff) };
  if (factory) memory.slots[0].set(factory);
  return memory;
}

interface Entry {
  sector: number;
  seq: number;
  state: number;
}

function entries(flash: NorFlash): Entry[] {
  const found: Entry[] = [];
  for (const sector of [0, 1]) {
    const bytes = flash.read(sector * flash.sectorSize, 12);
    const seq = readUint32(bytes, 0);
    if (seq === 0xffffffff || seq === 0 || crc32(bytes.subarray(0, 8)) !== readUint32(bytes, 8)) continue;
    found.push({ sector, seq, state: readUint32(bytes, 4) });
  }
  return found.sort((a, b) => b.seq - a.seq);
}

function writeEntry(flash: NorFlash, sector: number, seq: number, state: number): void {
  const bytes = new Uint8Array(12);
  writeUint32(bytes, 0, seq);
  writeUint32(bytes, 4, state);
  writeUint32(bytes, 8, crc32(bytes.subarray(0, 8)));
  flash.eraseSector(sector);
  flash.write(sector * flash.sectorSize, bytes);
}

const slotOf = (seq: number): OtaSlotIndex => ((seq - 1) % 2) as OtaSlotIndex;
const bootable = (state: number) =>
  state === NEW || state === PENDING || state === VALID || state === UNDEFINED;

export interface BootResult {
  slot: OtaSlotIndex;
  pending: boolean;
}

export class VirtualOtaSlots implements OtaSlots {
  readonly #memory: OtaMemory;
  readonly #rail: PowerRail;
  readonly #otadata: RailFlash;
  readonly #slots: [RailFlash, RailFlash];
  readonly #running: OtaSlotIndex;
  #pending: boolean;
  /** Why the board restarted itself, once it did ('restart' or 'rollback'). */
  restarted: 'restart' | 'rollback' | undefined;

  private constructor(memory: OtaMemory, rail: PowerRail, boot: BootResult, sectorSize: number) {
    this.#memory = memory;
    this.#rail = rail;
    const flash = (cells: Uint8Array) => new RailFlash(new VirtualNorFlash({ cells, sectorSize }), rail);
    this.#otadata = flash(memory.otadata);
    this.#slots = [flash(memory.slots[0]), flash(memory.slots[1])];
    this.#running = boot.slot;
    this.#pending = boot.pending;
  }

  /**
   * Plays the bootloader on `memory` and returns the running board's slots, or undefined when no
   * slot holds an image `isBootable` accepts (the board is bricked). The bootloader's own writes
   * go through `rail` too (a cut there is a cut during the switch).
   */
  static boot(
    memory: OtaMemory,
    rail: PowerRail,
    isBootable: (slot: NorFlash) => boolean,
    sectorSize = 4096,
  ): VirtualOtaSlots | undefined {
    const probe = new VirtualOtaSlots(memory, rail, { slot: 0, pending: false }, sectorSize);
    const result = probe.#select(isBootable);
    return result && new VirtualOtaSlots(memory, rail, result, sectorSize);
  }

  #select(isBootable: (slot: NorFlash) => boolean): BootResult | undefined {
    const list = entries(this.#otadata);
    if (list.length === 0) return isBootable(this.#slots[0]) ? { slot: 0, pending: false } : undefined;
    const [top, other] = list;
    if (top.state === PENDING) {
      writeEntry(this.#otadata, top.sector, top.seq, ABORTED); // restarted before confirming
      top.state = ABORTED;
    }
    if (bootable(top.state) && isBootable(this.#slots[slotOf(top.seq)])) {
      if (top.state === NEW) {
        writeEntry(this.#otadata, top.sector, top.seq, PENDING);
        return { slot: slotOf(top.seq), pending: true };
      }
      return { slot: slotOf(top.seq), pending: top.state === PENDING };
    }
    if (
      other &&
      other.state !== PENDING &&
      bootable(other.state) &&
      isBootable(this.#slots[slotOf(other.seq)])
    )
      return { slot: slotOf(other.seq), pending: false };
    // no entry left to trust: the slot that is not the failed one, else nothing
    const fallback = (1 - slotOf(top.seq)) as OtaSlotIndex;
    return isBootable(this.#slots[fallback]) ? { slot: fallback, pending: false } : undefined;
  }

  get memory(): OtaMemory {
    return this.#memory;
  }

  running(): OtaSlotIndex {
    return this.#running;
  }

  inactiveIndex(): OtaSlotIndex {
    return (1 - this.#running) as OtaSlotIndex;
  }

  inactive(): NorFlash {
    return this.#slots[this.inactiveIndex()];
  }

  setBoot(slot: OtaSlotIndex): void {
    const list = entries(this.#otadata);
    const top = list[0];
    let seq = (top?.seq ?? 0) + 1;
    if (slotOf(seq) !== slot) seq++;
    // keep the running image's entry: write over the other sector
    const sector = top ? 1 - top.sector : 0;
    writeEntry(this.#otadata, sector, seq, NEW);
  }

  pending(): boolean {
    return this.#pending;
  }

  confirm(): void {
    const top = entries(this.#otadata)[0];
    if (top && slotOf(top.seq) === this.#running && top.state === PENDING) {
      writeEntry(this.#otadata, top.sector, top.seq, VALID);
    }
    this.#pending = false;
  }

  rollback(): void {
    const top = entries(this.#otadata)[0];
    if (top && slotOf(top.seq) === this.#running) writeEntry(this.#otadata, top.sector, top.seq, INVALID);
    this.restarted = 'rollback';
    this.#rail.dead = true;
  }

  restart(): void {
    this.restarted = 'restart';
    this.#rail.dead = true;
  }

  aborted(slot: OtaSlotIndex): boolean {
    return entries(this.#otadata).some(
      (e) => slotOf(e.seq) === slot && (e.state === ABORTED || e.state === INVALID),
    );
  }
}
