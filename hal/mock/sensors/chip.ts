// The common part of the virtual sensor chips: a byte-addressed register file behind a register
// pointer (set by the first byte of a write, advanced by each byte moved), and the faults a test
// injects: no acknowledge, a stuck output (the data registers stop updating) and a wrong identity.
import type { VirtualI2cChip } from '../bus';

export type ChipFault = 'none' | 'no-ack' | 'stuck' | 'wrong-id';

export abstract class VirtualRegisterChip implements VirtualI2cChip {
  readonly registers = new Uint8Array(256);
  fault: ChipFault = 'none';
  /** A latched-up chip: its fault goes away when its supply is cycled. */
  latched = false;
  /** Whether the chip is powered (a power-cycled module comes back at its reset values). */
  powered = true;
  pointer = 0;
  /** Transactions seen (writes and reads), for tests that count bus traffic. */
  transactions = 0;
  /** Register writes in order, [register, value]. */
  readonly writes: [number, number][] = [];

  constructor() {
    this.reset();
  }

  acknowledge(): boolean {
    return this.powered && this.fault !== 'no-ack';
  }

  receive(bytes: Uint8Array, _stop: boolean): void {
    this.transactions++;
    if (bytes.length === 0) return;
    this.pointer = this.pointerOf(bytes[0]);
    for (let i = 1; i < bytes.length; i++) {
      this.writes.push([this.pointer, bytes[i]]);
      this.write(this.pointer, bytes[i]);
      this.pointer = this.advance(this.pointer);
    }
  }

  transmit(byteLength: number, _stop: boolean): Uint8Array {
    this.transactions++;
    if (this.fault !== 'stuck') this.update();
    const out = new Uint8Array(byteLength);
    for (let i = 0; i < byteLength; i++) {
      out[i] = this.read(this.pointer);
      this.pointer = this.advance(this.pointer);
    }
    return out;
  }

  /** A 16-bit register as the chip holds it (for tests). */
  peek16(register: number, littleEndian = false): number {
    return this.getUint16(register, littleEndian);
  }

  /** Power off and on again: registers back to their reset values. */
  powerCycle(): void {
    if (this.latched) {
      this.fault = 'none';
      this.latched = false;
    }
    this.reset();
  }

  /** The pointer from a write's first byte (a chip may keep flag bits there). */
  protected pointerOf(first: number): number {
    return first;
  }

  protected advance(pointer: number): number {
    return (pointer + 1) & 0xff;
  }

  protected read(register: number): number {
    return this.registers[register];
  }

  protected write(register: number, value: number): void {
    this.registers[register] = value;
  }

  /** Brings the data registers up to date with the simulated physics before a read. */
  protected abstract update(): void;

  protected abstract reset(): void;

  protected setUint16(register: number, value: number, littleEndian: boolean): void {
    const v = value & 0xffff;
    this.registers[register] = littleEndian ? v & 0xff : v >> 8;
    this.registers[register + 1] = littleEndian ? v >> 8 : v & 0xff;
  }

  protected getUint16(register: number, littleEndian: boolean): number {
    const a = this.registers[register];
    const b = this.registers[register + 1];
    return littleEndian ? a | (b << 8) : (a << 8) | b;
  }
}

/** A deterministic ±1 LSB dither, so a live output never repeats exactly (a stuck one does). */
export class Dither {
  #n = 0;
  next(): number {
    this.#n = (this.#n + 1) % 4;
    return [0, 1, 0, -1][this.#n];
  }
}
