// The Moddable runtime has no global TextEncoder/TextDecoder, and cborg (through protocol/cbor)
// creates one of each when its module body runs. Device entries import this module first, so the
// SDK's text modules ($(MODULES)/data/text) are installed as the globals before cborg loads.
import TextDecoder from 'text/decoder';
import TextEncoder from 'text/encoder';

const host = globalThis as { TextDecoder?: unknown; TextEncoder?: unknown };
host.TextDecoder ??= TextDecoder;
host.TextEncoder ??= TextEncoder;
