// What the host program reports of its XS memory (native.ts reads it, tools/device.ts parses it).
export interface XsMemory {
  /** Slots in the heap, live after a collection and at the peak (16 bytes each on the ESP32, 32 here). */
  slots: number;
  peakSlots: number;
  /** Chunk bytes live after a collection, and the most allocated between collections. */
  chunks: number;
  peakChunks: number;
  /** Deepest stack use in slots (-1 unless the build is instrumented) and the stack's size. */
  peakStack: number;
  stackSlots: number;
}
