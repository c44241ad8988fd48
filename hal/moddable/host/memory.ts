// What the host program reports of its XS memory (native.ts reads it, tools/device.ts parses it).
export interface XsMemory {
  /** Slots in the heap, now and at the peak (16 bytes each on the ESP32, 32 on a 64-bit host). */
  slots: number;
  peakSlots: number;
  /** Chunk heap in use and at its peak, in bytes. */
  chunks: number;
  peakChunks: number;
  /** Deepest stack use in slots (-1 unless the build is instrumented) and the stack's size. */
  peakStack: number;
  stackSlots: number;
}
