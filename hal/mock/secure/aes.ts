// One AES-128 block (ECB, no padding) by @noble/ciphers: the virtual SAM's and virtual cards' cipher.
import { ecb } from '@noble/ciphers/aes';

/** AES encryption of one 16-byte block under `key`. */
export type AesBlockCipher = (key: Uint8Array, block: Uint8Array) => Uint8Array;

export const nobleAesBlock: AesBlockCipher = (key, block) =>
  ecb(key, { disablePadding: true }).encrypt(block);
