// The host program's own natives (native.c): the x-cli-lin build of the meter runs as a Linux
// command, so it needs a way to end, to read its environment and to report its XS memory.
/// <reference path="../typings.d.ts" />
import type { XsMemory } from './memory';

export type { XsMemory };

/** Ends the program with the status (the GLib main loop would otherwise run forever). */
export function exit(status: number): never {
  native('xs_parklink_host_exit')(status);
  throw new Error('unreachable');
}

/** An environment variable of the host process, or undefined. */
export function getenv(name: string): string | undefined {
  return native('xs_parklink_host_getenv')(name) as string | undefined;
}

export function xsMemory(): XsMemory {
  const [slots, peakSlots, chunks, peakChunks, peakStack, stackSlots] = native(
    'xs_parklink_host_heap',
  )() as number[];
  return { slots, peakSlots, chunks, peakChunks, peakStack, stackSlots };
}

/** Fills the bytes from the kernel's random source (getrandom). */
export function fillRandom(bytes: Uint8Array): void {
  const buffer = new ArrayBuffer(bytes.byteLength);
  native('xs_parklink_host_random')(buffer);
  bytes.set(new Uint8Array(buffer));
}
