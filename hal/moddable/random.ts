// Randomness for keys and nonces from the ESP32 hardware RNG (trng.ts/trng.c, esp_fill_random).
// Chosen because the SDK exposes no getRandomValues: Math.random and the `rng` module are not
// cryptographic byte sources (see trng.ts).
import type { Random } from '../random';
import { fill } from './trng';

export const hardwareRandom: Random = {
  fill(bytes: Uint8Array): void {
    if (bytes.byteLength > 0) fill(bytes);
  },
};
