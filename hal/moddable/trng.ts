// The ESP32 hardware RNG (esp_fill_random, trng.c) as a module. The SDK offers no byte source from
// it: Math.random is 31 bits of esp_random() scaled to a double, and `rng` (modules/crypt/etc/rng.c)
// is RC4 seeded from c_rand(), so neither is fit for keys.
/// <reference path="./typings.d.ts" />

/** Fills the whole buffer with bytes from the hardware RNG. */
export function fill(buffer: ArrayBuffer | ArrayBufferView): void {
  native('xs_parklink_trng_fill')(buffer);
}
