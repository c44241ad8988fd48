// The Moddable SDK modules the XS harness can stand in for, and the SDK manifest that provides each.
// The harness uses a stand-in only where manifest.json provides the module (by including that SDK
// manifest, or by listing the module's SDK path) for the platform under test.

export interface StandIn {
  /** The SDK manifest that lists the module, as a project manifest includes it. */
  sdkManifest: string;
  /** The stand-in's file, relative to the repository root. */
  file: string;
}

export const SDK_STAND_INS: Readonly<Record<string, StandIn>> = Object.freeze({
  'text/encoder': {
    sdkManifest: '$(MODULES)/data/text/encoder/manifest.json',
    file: 'sim/standins/text/encoder.ts',
  },
  'text/decoder': {
    sdkManifest: '$(MODULES)/data/text/decoder/manifest.json',
    file: 'sim/standins/text/decoder.ts',
  },
});
