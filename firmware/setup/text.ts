// Installs the global TextEncoder and TextDecoder from the Moddable SDK's `text/encoder` and
// `text/decoder` where the runtime has none. The Moddable runtime has none, and cborg (under
// protocol/cbor.ts) creates both when its modules load. Device entries import this module first:
// a module's imports are evaluated in order, each with its own imports first, so this body runs
// before any module imported after it.
import SdkTextDecoder from 'text/decoder';
import SdkTextEncoder from 'text/encoder';

const globals = globalThis as unknown as Record<string, unknown>;
if (typeof globals.TextEncoder !== 'function') globals.TextEncoder = SdkTextEncoder;
if (typeof globals.TextDecoder !== 'function') globals.TextDecoder = SdkTextDecoder;
