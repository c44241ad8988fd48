// On the Moddable runtime the firmware's modules are preloaded and the primordials then frozen:
// Error.prototype.name is no longer writable, so an error class that sets `this.name = 'X'` in its
// constructor throws a TypeError instead of the error it meant. This test bundles every firmware-side
// module, evaluates the bundle in a fresh node:vm realm, deep-freezes that realm's intrinsics and the
// bundle's exports (the preload model), then constructs every exported error class.
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import vm from 'node:vm';
import { build } from 'esbuild';
import { XS_RESOLUTION } from '../sim/xs/xsnap';
import { firmwareFiles, MODDABLE_DIRS, TEXT_SETUP_FILE } from '../tools/purity';

const root = fileURLToPath(new URL('../', import.meta.url));

/** Arguments that construct each firmware-side error class; a new class needs a line here. */
const SAMPLES: Readonly<Record<string, readonly unknown[]>> = {
  AuthenticationError: [],
  BlacklistError: ['base-mismatch', 'a delta from version 3 on a list at version 2'],
  CardNotGenuine: ['signature did not verify'],
  CardProtocolError: ['bad BCC'],
  CardRefused: [0x6982, 'debit'],
  CardTorn: [],
  ChainBrokenError: [7],
  ChipError: ['command did not finish'],
  ChipVersionError: [0x00],
  XBeeError: ['checksum', 'API frame checksum does not add up to 0xFF'],
  CmeError: ['AT+CPIN?', 10],
  CmsError: ['AT+CMGS', 500],
  DebitUncertain: ['6001', 4, 500, 200, 'card left the field'],
  FirmwareRejected: ['bad-signature', 'image signature did not verify'],
  FlashRangeError: ['write beyond the partition'],
  HandheldChunkError: ['chunk 3 where 2 was due'],
  BeaconError: ['beacon version 9'],
  BrickedError: ['no application slot holds a bootable image'],
  I2cNoAcknowledge: [0x60],
  ProvisioningError: ['not provisioned: meter.id missing'],
  IsoDepProtocolError: ['malformed ATS'],
  MalformedResponse: ['short answer'],
  ModemError: ['timeout', 'AT: no final result'],
  MqttResultError: ['AT+CMQTTCONNECT', 32],
  NotProvisionedError: [],
  ParameterError: ['statusIntervalSeconds', 'must be a whole number from 60 to 86400'],
  PowerLoss: [],
  ProtocolError: ['bad-field', 'amount is negative'],
  PurseError: ['purse refused'],
  RegistrationError: [3, 'registration denied by the network'],
  NetworkTimeUnavailable: ['the network has not sent its time since the modem started'],
  ReaderFileRefused: ['hash', 'card-profiles v2 does not match its SHA-256'],
  ReaderFirmwareRefused: ['flash full'],
  ReleaseRefusedError: ['release refused'],
  ReportRequestError: ['bad-range', 'sequence range 9..3 is empty'],
  RfidBufferOverflow: [],
  RfidCollision: [9],
  RfidCrcError: [],
  RfidError: ['reader fault'],
  RfidParityError: [],
  RfidProtocolError: [],
  RfidTimeout: [],
  SamError: ['SAM refused', 0x6a82],
  SecureElementError: ['no wake token', 0x11],
  SensorIdentityError: ['VL53L1X', 0x00],
  SensorReadError: ['bay', 'no answer'],
  SensorStuckError: ['bay'],
  ServiceUnavailableError: ['record store full'],
  StaleReaderFileError: ['tariff', 2, 3],
  StorageCorruptError: ['sector 3 header unreadable'],
  StorageDamageError: [{ store: 'main', action: 'truncated', detail: 'torn record at 4096' }],
  StorageFullError: [],
  TariffError: ['band overlaps'],
  TimeZoneError: ['unknown zone'],
  UnsupportedCard: [0x08],
  UnsupportedCardError: ['MIFARE Classic'],
  UpdateRefused: ['an update is being switched to'],
};

/**
 * The firmware-side modules as mcconfig would load them (not the Moddable bindings nor the text
 * set-up, which import the SDK's modules).
 */
function bundledModules(): string[] {
  return firmwareFiles(root)
    .map((file) => path.relative(root, file).split(path.sep).join('/'))
    .filter(
      (rel) =>
        rel !== 'firmware/main.ts' &&
        rel !== TEXT_SETUP_FILE &&
        !MODDABLE_DIRS.some((dir) => rel.startsWith(dir)),
    );
}

async function bundle(modules: readonly string[]): Promise<string> {
  const imports = modules.map((rel, i) => `import * as m${i} from './${rel}';`).join('\n');
  const table = modules.map((rel, i) => `  ${JSON.stringify(rel)}: m${i},`).join('\n');
  const result = await build({
    stdin: {
      contents: `${imports}\nexport const modules = {\n${table}\n};\n`,
      resolveDir: root,
      sourcefile: 'error-classes.entry.ts',
      loader: 'ts',
    },
    absWorkingDir: root,
    bundle: true,
    write: false,
    format: 'iife',
    globalName: 'parklinkFirmware',
    ...XS_RESOLUTION,
    keepNames: true,
    logLevel: 'silent',
  });
  return result.outputFiles[0].text;
}

/**
 * Freezes every object reachable from the realm's global object (the global object itself stays
 * extensible, as the bundle's `var` lives there). Objects of this Node realm (the TextEncoder and
 * TextDecoder handed in, as the device installs them) are left alone.
 */
function freezeRealm(context: vm.Context): number {
  const isNodeRealm = (value: object): boolean => value instanceof Object || value === Object.prototype;
  const seen = new Set<object>();
  const queue: object[] = [];
  const visit = (value: unknown): void => {
    if ((typeof value !== 'object' || value === null) && typeof value !== 'function') return;
    if (seen.has(value) || isNodeRealm(value)) return;
    seen.add(value);
    queue.push(value);
  };
  const global = vm.runInContext('globalThis', context) as object;
  seen.add(global);
  for (const key of Reflect.ownKeys(global)) {
    const d = Reflect.getOwnPropertyDescriptor(global, key);
    visit(d?.value);
    visit(d?.get);
    visit(d?.set);
  }
  for (let object = queue.pop(); object; object = queue.pop()) {
    visit(Object.getPrototypeOf(object));
    for (const key of Reflect.ownKeys(object)) {
      const d = Reflect.getOwnPropertyDescriptor(object, key);
      visit(d?.value);
      visit(d?.get);
      visit(d?.set);
    }
    // A typed array with elements cannot be frozen (its elements stay writable on the device too).
    if (ArrayBuffer.isView(object)) Object.preventExtensions(object);
    else Object.freeze(object);
  }
  return seen.size;
}

type ErrorClass = new (...args: unknown[]) => Error;

interface FrozenRealm {
  context: vm.Context;
  errorClass: ErrorClass;
  modules: Record<string, Record<string, unknown>>;
}

describe('error classes construct under frozen primordials (as preloaded on Moddable)', function () {
  this.timeout(60_000);
  let realm: FrozenRealm;
  /** Every exported class whose instances are Errors, by class name, with the module that exports it. */
  const errorClasses = new Map<string, { module: string; ctor: ErrorClass }>();

  before(async () => {
    const code = await bundle(bundledModules());
    const context = vm.createContext({ TextEncoder, TextDecoder });
    vm.runInContext(code, context, { filename: 'firmware-bundle.js' });
    const frozen = freezeRealm(context);
    assert.ok(frozen > 100, `froze only ${frozen} objects`);
    realm = {
      context,
      errorClass: vm.runInContext('Error', context) as ErrorClass,
      modules: vm.runInContext('parklinkFirmware.modules', context) as FrozenRealm['modules'],
    };
    for (const [module, exports] of Object.entries(realm.modules)) {
      for (const value of Object.values(exports)) {
        if (typeof value !== 'function' || !(value.prototype instanceof realm.errorClass)) continue;
        errorClasses.set(value.name, { module, ctor: value as ErrorClass });
      }
    }
  });

  it('the realm is really frozen: Error.prototype.name cannot be set, and a `this.name =` class throws', () => {
    const descriptor = vm.runInContext(
      "Object.getOwnPropertyDescriptor(Error.prototype, 'name')",
      realm.context,
    );
    assert.equal(descriptor.writable, false);
    assert.throws(
      () =>
        vm.runInContext(
          "new (class Legacy extends Error { constructor(m) { super(m); this.name = 'Legacy'; } })('x')",
          realm.context,
        ),
      (error: Error) => error.constructor.name === 'TypeError' && /name/.test(error.message),
    );
  });

  it('finds the error classes, and every one has a sample here', () => {
    assert.ok(
      errorClasses.has('ProtocolError') && errorClasses.has('RfidError'),
      [...errorClasses.keys()].join(),
    );
    const unsampled = [...errorClasses.keys()].filter((name) => !(name in SAMPLES));
    assert.deepEqual(unsampled, [], 'add construction arguments for these classes to SAMPLES');
    const gone = Object.keys(SAMPLES).filter((name) => !errorClasses.has(name));
    assert.deepEqual(gone, [], 'these SAMPLES name no exported error class');
  });

  it('every error class constructs with its own name, an own `name`, and stays instanceof its chain', () => {
    const failures: string[] = [];
    for (const [name, { module, ctor }] of errorClasses) {
      try {
        const error = new ctor(...(SAMPLES[name] ?? []));
        if (error.name !== name) failures.push(`${module} ${name}: name is ${error.name}`);
        if (!Object.hasOwn(error, 'name')) failures.push(`${module} ${name}: name is not an own property`);
        if (!(error instanceof ctor) || !(error instanceof realm.errorClass)) {
          failures.push(`${module} ${name}: instanceof broken`);
        }
        if (typeof error.message !== 'string' || error.message === '') {
          failures.push(`${module} ${name}: no message`);
        }
      } catch (thrown) {
        failures.push(
          `${module} ${name}: construction threw ${(thrown as Error).name}: ${(thrown as Error).message}`,
        );
      }
    }
    assert.deepEqual(failures, []);
  });

  it('subclasses keep their base class and their fields (ChipVersionError, ProtocolError, SamError)', () => {
    const chip = errorClasses.get('ChipVersionError');
    const rfid = errorClasses.get('RfidError');
    const protocol = errorClasses.get('ProtocolError');
    const sam = errorClasses.get('SamError');
    assert.ok(chip && rfid && protocol && sam);
    const version = new chip.ctor(0x12) as Error & { version: number };
    assert.ok(version instanceof rfid.ctor);
    assert.equal(version.version, 0x12);
    assert.match(version.message, /VersionReg 0x12/);
    const refused = new protocol.ctor('replay', 'seen before') as Error & { code: string };
    assert.equal(refused.code, 'replay');
    assert.equal(refused.message, 'replay: seen before');
    const samError = new sam.ctor('SAM refused', 0x6a82) as Error & { sw?: number };
    assert.equal(samError.sw, 0x6a82);
  });
});
