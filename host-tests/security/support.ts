// Frame helpers for the security tests.
export { openFrame, sealFrame } from '../../protocol/frame';
import { readUint32 } from '../../protocol/bytes';

export function readFrameSeq(frame: Uint8Array): number {
  return readUint32(frame, 10);
}
