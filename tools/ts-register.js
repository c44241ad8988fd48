// Lets Node run the TypeScript sources directly (ts-node's ESM loader, transpile only, with SWC:
// tsconfig.json's ts-node settings).
import { register } from 'node:module';
import { pathToFileURL } from 'node:url';

register('ts-node/esm', pathToFileURL('./'));
