// Evaluated by startXs (sim/xs/xsnap.ts) in every XS worker before any firmware script, to make xsnap's
// globals look like the Moddable runtime's (SDK 8.2.3, checked on the real build):
// - No global TextEncoder/TextDecoder: firmware gets them only by installing them from the SDK's
//   `text/encoder` and `text/decoder` (firmware/setup/text.ts). xsnap's own are kept aside (see
//   hostText.ts) for the SDK stand-ins and the harness's message codec.
// - Frozen primordials: after preloading, the XS linker freezes the built-ins, their prototypes and
//   every function (documentation/xs/preload.md, "Automatic Freezing of Built-ins"). Here every object
//   reachable from the global object (values, accessors, prototypes, recursively) and the intrinsics
//   reachable only through syntax (generator and async function prototypes, iterator prototypes,
//   %TypedArray%) are frozen. The global object itself stays open: on the device modules can still
//   install globals.
import { type TextCodecs, XSNAP_TEXT } from './hostText';

const globals = globalThis as unknown as Record<PropertyKey, unknown>;

const kept: TextCodecs = Object.freeze({
  TextEncoder: globals.TextEncoder as typeof TextEncoder,
  TextDecoder: globals.TextDecoder as typeof TextDecoder,
});
Object.defineProperty(globalThis, XSNAP_TEXT, { value: kept });
delete globals.TextEncoder;
delete globals.TextDecoder;

type Reachable = object | ((...args: unknown[]) => unknown);

/** Intrinsics no global property leads to (ECMA-262 §6.1.7.4), reached through syntax instead. */
function hiddenIntrinsics(): unknown[] {
  const found: unknown[] = [
    Object.getPrototypeOf(function* () {}),
    Object.getPrototypeOf(async () => {}),
    Object.getPrototypeOf(async function* () {}),
    Object.getPrototypeOf((function* () {})()),
    Object.getPrototypeOf((async function* () {})()),
    Object.getPrototypeOf(Int8Array),
    Object.getPrototypeOf([][Symbol.iterator]()),
    Object.getPrototypeOf(new Map()[Symbol.iterator]()),
    Object.getPrototypeOf(new Set()[Symbol.iterator]()),
    Object.getPrototypeOf(''[Symbol.iterator]()),
    Object.getPrototypeOf(/x/[Symbol.matchAll]('')),
  ];
  // Iterator helpers, where this XS has them.
  const values = [][Symbol.iterator]() as unknown as { map?: (f: (x: unknown) => unknown) => object };
  if (typeof values.map === 'function') found.push(Object.getPrototypeOf(values.map((x) => x)));
  return found;
}

function freezeReachable(roots: unknown[]): number {
  const seen = new Set<Reachable>([globalThis]);
  const pending: Reachable[] = [];
  const visit = (value: unknown): void => {
    if ((typeof value === 'object' && value !== null) || typeof value === 'function') {
      if (!seen.has(value as Reachable)) {
        seen.add(value as Reachable);
        pending.push(value as Reachable);
      }
    }
  };
  for (const root of roots) visit(root);
  for (const key of Reflect.ownKeys(globalThis)) {
    const descriptor = Reflect.getOwnPropertyDescriptor(globalThis, key)!;
    visit(descriptor.value);
    visit(descriptor.get);
    visit(descriptor.set);
  }
  let frozen = 0;
  while (pending.length) {
    const object = pending.pop()!;
    Object.freeze(object);
    frozen++;
    visit(Object.getPrototypeOf(object));
    for (const key of Reflect.ownKeys(object)) {
      const descriptor = Reflect.getOwnPropertyDescriptor(object, key)!;
      visit(descriptor.value);
      visit(descriptor.get);
      visit(descriptor.set);
    }
  }
  return frozen;
}

const frozen = freezeReachable(hiddenIntrinsics());
// Read back by the harness's own test.
Object.defineProperty(globalThis, Symbol.for('parklink.sim.frozenPrimordials'), { value: frozen });
