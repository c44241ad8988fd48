// The script side of sim/xs/xsnap.ts: imported by an entry that is bundled and run under XS,
// and by the Node side for the shared message codec. Pure: no Node module, no Node global.
//
// What a script sees under xsnap (checked with @agoric/xsnap 0.15.0): the language, plus `print`
// (one line to the worker's stdout, arguments joined by spaces), `trace`, `issueCommand`,
// `setImmediate` (no setTimeout/setInterval/clear*), `gc`, `performance.now`, `currentMeterLimit`,
// `resetMeter`, `harden`, `Compartment`, `global`, `TextEncoder`/`TextDecoder` and `Base64`. There is
// no `console`, `queueMicrotask`, `structuredClone`, `Buffer`, `process`, `crypto`, `URL`, `atob` or
// `Intl`. A rejected promise nobody handles is only printed to stderr: wrap async work in `run`.
// startXs's Moddable runtime prelude then deletes `TextEncoder`/`TextDecoder` and freezes the
// primordials; this file's codec uses xsnap's text codecs, kept aside by the prelude (hostText.ts).

import { xsnapText } from './hostText';

type IssueCommand = (message: ArrayBuffer) => ArrayBuffer;

interface XsGlobals {
  issueCommand?: IssueCommand;
  print?: (...args: unknown[]) => void;
}

const xs = globalThis as unknown as XsGlobals;
const text = xsnapText();
const encoder = new text.TextEncoder();
const decoder = new text.TextDecoder();

/** The message a failed `run` sends; the Node side turns it into a rejected `evaluate`. */
export interface XsErrorMessage {
  $xsError: { name: string; message: string; stack?: string };
}

function toHex(bytes: Uint8Array): string {
  let hex = '';
  for (const b of bytes) hex += b.toString(16).padStart(2, '0');
  return hex;
}

function fromHex(hex: string): Uint8Array {
  const bytes = new Uint8Array(hex.length >> 1);
  for (let i = 0; i < bytes.length; i++) bytes[i] = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return bytes;
}

/** JSON, with Uint8Array as `{ $bytes: hex }` and bigint as `{ $bigint: decimal }` so both survive. */
export function encodeMessage(value: unknown): Uint8Array {
  const json = JSON.stringify(value, (_key, v: unknown) => {
    if (v instanceof Uint8Array) return { $bytes: toHex(v) };
    if (typeof v === 'bigint') return { $bigint: v.toString() };
    return v;
  });
  return encoder.encode(json ?? 'null');
}

export function decodeMessage(bytes: Uint8Array): unknown {
  if (bytes.length === 0) return undefined;
  return JSON.parse(decoder.decode(bytes), (_key, v: unknown) => {
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      const keys = Object.keys(v);
      const o = v as Record<string, unknown>;
      if (keys.length === 1 && typeof o.$bytes === 'string') return fromHex(o.$bytes);
      if (keys.length === 1 && typeof o.$bigint === 'string') return BigInt(o.$bigint);
    }
    return v;
  });
}

/** Sends `value` to the Node side (as JSON bytes through `issueCommand`) and returns its reply. */
export function send(value: unknown): unknown {
  if (typeof xs.issueCommand !== 'function')
    throw new Error('send: no issueCommand (not running under xsnap)');
  const bytes = encodeMessage(value);
  const copy = new Uint8Array(bytes.length);
  copy.set(bytes);
  const reply = xs.issueCommand(copy.buffer);
  return decodeMessage(new Uint8Array(reply));
}

/** One line to the worker's stdout (the Node side collects it); a no-op outside XS. */
export function print(...args: unknown[]): void {
  xs.print?.(...args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a, bigintSafe))));
}

function bigintSafe(_key: string, v: unknown): unknown {
  return typeof v === 'bigint' ? `${v}n` : v;
}

/**
 * Runs the script's body and reports a throw or a rejection to the Node side, where the `evaluate`
 * that ran the script rejects with it. Async work finishes within the evaluate: xsnap runs the
 * promise jobs until none is left before answering.
 */
export function run(body: () => unknown): void {
  const fail = (error: unknown): void => {
    const e = error instanceof Error ? error : new Error(String(error));
    const message: XsErrorMessage = { $xsError: { name: e.name, message: e.message } };
    if (typeof e.stack === 'string' && e.stack) message.$xsError.stack = e.stack;
    send(message);
  };
  try {
    const result = body();
    if (result && typeof (result as PromiseLike<unknown>).then === 'function') {
      (result as PromiseLike<unknown>).then(undefined, fail);
    }
  } catch (error) {
    fail(error);
  }
}
