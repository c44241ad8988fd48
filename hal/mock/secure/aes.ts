// One AES block (ECB, no padding) by @noble/ciphers: the virtual SAM's and virtual cards' cipher.
import { ecb } from '@noble/ciphers/aes';
import type { AesBlock } from '../../../drivers/secure/cmac';

export const nobleAesBlock: AesBlock = (key, block) => ecb(key, { disablePadding: true }).encrypt(block);
