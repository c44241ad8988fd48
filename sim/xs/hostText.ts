// xsnap's own TextEncoder and TextDecoder, kept aside by the Moddable runtime prelude
// (moddableRuntime.entry.ts) before it deletes the globals, for the harness's message codec and the
// SDK stand-ins. Outside that prelude (in Node, or a worker started without it) the globals serve.

/** Where the prelude keeps them: a registered symbol on the global object, which firmware never reads. */
export const XSNAP_TEXT = Symbol.for('parklink.sim.xsnapText');

export interface TextCodecs {
  TextEncoder: typeof TextEncoder;
  TextDecoder: typeof TextDecoder;
}

export function xsnapText(): TextCodecs {
  const kept = (globalThis as unknown as Record<symbol, TextCodecs | undefined>)[XSNAP_TEXT];
  if (kept) return kept;
  const { TextEncoder, TextDecoder } = globalThis as unknown as Partial<TextCodecs>;
  if (!TextEncoder || !TextDecoder) throw new Error('xsnapText: no TextEncoder/TextDecoder to stand in with');
  return { TextEncoder, TextDecoder };
}
