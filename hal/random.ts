// Randomness from the hardware RNG (ESP32: RF-noise seeded TRNG).

export interface Random {
  /** Fills `bytes` with cryptographically strong random bytes. */
  fill(bytes: Uint8Array): void;
}
