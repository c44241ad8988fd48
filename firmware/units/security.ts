// Security management (47): the meter's keys, sealing uplinks and opening downlinks.
//
// Keys live in a KeyVault: on a board with the secure parts, the SAM holds the meter id, A and M
// and derives D = KDF(A, B) from the secure element's HMAC with B (drivers/secure), the secure
// element holds B and C; a board without them (development, unit tests) keeps C and D in
// preferences. Two banks hold the keys of the current and, during a rotation's window, the
// previous epoch. Only C and D are ever in RAM, and zeroise() wipes SAM, secure element and RAM.
//
// Nonces: uplink frame sequence numbers are reserved in blocks in preferences *before* use (written
// first, then taken), so a restart or a power cut at any point skips numbers and never repeats one.
// A downlink sequence number is accepted once, within a 64-frame sliding window; anything else is a
// replay and is refused.
import type { PurseAuthenticator } from '../../drivers/rfid/purse';
import { ATECC608, SecureElementError } from '../../drivers/secure/atecc608';
import { SecureAccessModule } from '../../drivers/secure/sam';
import type { BleHandlers, BlePeripheral } from '../../hal/ble';
import type { Clock, TimerHandle, Timers } from '../../hal/clock';
import type { Crypto } from '../../hal/crypto';
import type { MeterHardware } from '../../hal/hardware';
import type { Preferences } from '../../hal/preferences';
import type { Random } from '../../hal/random';
import type { Buzzer } from '../../hal/ui';
import { bytesEqual, ownBuffer } from '../../protocol/bytes';
import { CARD_TOKEN_KEY_LENGTH, type CardRef, cardRef } from '../../protocol/cardToken';
import { decodeCbor, encodeCbor } from '../../protocol/cbor';
import { ProtocolError } from '../../protocol/errors';
import { FRAME_VERSION, type FrameHeader, isDownlink, openFrame, sealFrame } from '../../protocol/frame';
import { ReplayWindow } from '../../protocol/replayWindow';
import type { EventBus } from '../bus';
import type { MeterEvents } from '../events';
import {
  decodeMaintenanceToken,
  decodeRotation,
  downlinkKeyFromSalt as hkdfDownlink,
  downlinkSaltMessage,
  encodeSecurityEvent,
  KeyFrame,
  keyCheckValueOf,
  type MaintenanceToken,
  maintenanceProof,
  maintenanceSecret as maintenanceSecretOf,
  type MeterKeys,
  type MeterSecrets,
  unwrapEpochKeys,
} from '../../protocol/keys';

const DOMAIN = 'security';
const SEQ_BLOCK = 64;
/** How long the previous epoch is still accepted after a rotation (frames in flight), ms. */
export const DEFAULT_ROTATION_WINDOW_MS = 10 * 60_000;

export type Bank = 0 | 1;

export class NotProvisionedError extends Error {
  override readonly name: string = 'NotProvisionedError';
  constructor(message = 'meter has no keys: provision it or wait for the platform to re-key it') {
    super(message);
  }
}

/** Where the keys of each epoch live. */
export interface KeyVault {
  readonly kind: 'secure-parts' | 'preferences';
  /** Loads one epoch's keys into a bank (a factory, a re-key, a rotation). */
  install(
    bank: Bank,
    epoch: number,
    meterId: number,
    uplink: Uint8Array,
    secrets: MeterSecrets | undefined,
    downlink?: Uint8Array,
  ): void;
  /** C and D of a bank, in fresh arrays the caller wipes; undefined when the bank is empty. */
  load(bank: Bank, meterId: number, epoch: number): { uplink: Uint8Array; downlink: Uint8Array } | undefined;
  /** HMAC(M, token) by the SAM (maintenance sessions). */
  maintenanceSecret(bank: Bank, token: Uint8Array): Uint8Array;
  erase(bank: Bank): void;
  /** Every key: SAM, secure element (or preferences). */
  wipe(): void;
}

/** Secure element slots: B and C per bank, and the pinned firmware key. */
export const Slot = Object.freeze({ B: [2, 3] as const, C: [4, 5] as const, FIRMWARE_KEY: 6 });

/** The keys in the SAM (A, M) and the ATECC608 (B, C). */
export class SecurePartsVault implements KeyVault {
  readonly kind = 'secure-parts';
  readonly #element: ATECC608;
  readonly #sam: SecureAccessModule;

  constructor(element: ATECC608, sam: SecureAccessModule) {
    this.#element = element;
    this.#sam = sam;
  }

  install(
    bank: Bank,
    epoch: number,
    meterId: number,
    uplink: Uint8Array,
    secrets: MeterSecrets | undefined,
  ): void {
    if (!secrets) throw new RangeError('the secure parts need A, B and M, not only C and D');
    this.#sam.setMeterId(meterId);
    this.#sam.loadKeys(bank, epoch, secrets.a, secrets.m);
    this.#element.writeSlot(Slot.B[bank], secrets.b);
    this.#element.writeSlot(Slot.C[bank], uplink);
    this.#element.sleep();
  }

  load(bank: Bank, meterId: number, epoch: number) {
    const info = this.#sam.info();
    if (info.wiped || info.meterId !== meterId || info.epochs[bank] !== epoch || epoch === 0)
      return undefined;
    const salt = this.#element.hmac(Slot.B[bank], downlinkSaltMessage(meterId, epoch)); // B stays in the chip
    const downlink = this.#sam.deriveDownlinkKey(bank, salt); // A stays in the SAM
    salt.fill(0);
    const uplink = this.#element.readSlot(Slot.C[bank]);
    this.#element.sleep();
    return { uplink, downlink };
  }

  maintenanceSecret(bank: Bank, token: Uint8Array): Uint8Array {
    return this.#sam.maintenanceSecret(bank, token);
  }

  erase(bank: Bank): void {
    this.#sam.eraseBank(bank);
    this.#element.wipe([Slot.B[bank], Slot.C[bank]]);
    this.#element.sleep();
  }

  wipe(): void {
    // The SAM first (A and M, the card master), then the secure element; each is tried even if
    // the other fails, and the first failure is thrown after both.
    let failure: unknown;
    try {
      this.#sam.wipe();
    } catch (error) {
      failure = error;
    }
    try {
      this.#element.wipe([...Slot.B, ...Slot.C]);
      this.#element.sleep();
    } catch (error) {
      failure ??= error;
    }
    if (failure) throw failure;
  }
}

/** C, D (and M) in preferences: boards without secure parts (development, unit tests). */
export class PreferencesVault implements KeyVault {
  readonly kind = 'preferences';
  readonly #preferences: Preferences;
  readonly #crypto: Crypto;

  constructor(preferences: Preferences, crypto: Crypto) {
    this.#preferences = preferences;
    this.#crypto = crypto;
  }

  install(
    bank: Bank,
    epoch: number,
    meterId: number,
    uplink: Uint8Array,
    secrets: MeterSecrets | undefined,
    downlink?: Uint8Array,
  ) {
    let d = downlink;
    if (!d) {
      if (!secrets) throw new RangeError('no downlink key and no secrets to derive it from');
      const salt = this.#crypto.hmacSha256(secrets.b, downlinkSaltMessage(meterId, epoch));
      d = hkdfDownlink(this.#crypto, secrets.a, salt, meterId, epoch);
    }
    const p = this.#preferences;
    p.set(DOMAIN, `upKey${bank || ''}`, ownBuffer(uplink));
    p.set(DOMAIN, `downKey${bank || ''}`, ownBuffer(d));
    if (secrets) p.set(DOMAIN, `mKey${bank}`, ownBuffer(secrets.m));
    p.set(DOMAIN, `bankEpoch${bank}`, epoch);
  }

  load(bank: Bank, _meterId: number, epoch: number) {
    const p = this.#preferences;
    const up = p.get(DOMAIN, `upKey${bank || ''}`);
    const down = p.get(DOMAIN, `downKey${bank || ''}`);
    const stored = p.get(DOMAIN, `bankEpoch${bank}`) ?? (bank === 0 ? p.get(DOMAIN, 'epoch') : undefined);
    if (!(up instanceof ArrayBuffer) || !(down instanceof ArrayBuffer) || stored !== epoch) return undefined;
    return { uplink: new Uint8Array(up), downlink: new Uint8Array(down) };
  }

  maintenanceSecret(bank: Bank, token: Uint8Array): Uint8Array {
    const m = this.#preferences.get(DOMAIN, `mKey${bank}`);
    if (!(m instanceof ArrayBuffer)) throw new NotProvisionedError('no maintenance key');
    return maintenanceSecretOf(this.#crypto, new Uint8Array(m), token);
  }

  erase(bank: Bank): void {
    for (const key of [`upKey${bank || ''}`, `downKey${bank || ''}`, `mKey${bank}`, `bankEpoch${bank}`])
      this.#preferences.delete(DOMAIN, key);
  }

  wipe(): void {
    this.erase(0);
    this.erase(1);
  }
}

export interface SecurityOptions {
  preferences: Preferences;
  crypto: Crypto;
  meterId: number;
  /** The secure parts; a PreferencesVault when absent. */
  vault?: KeyVault;
  /** Wall clock for the rotation window; without one the previous epoch is refused at once. */
  clock?: Clock;
  rotationWindowMs?: number;
}

interface EpochKeys {
  epoch: number;
  bank: Bank;
  uplink: Uint8Array;
  downlink: Uint8Array;
}

export interface RotationOutcome {
  /** The 0x03 acknowledgement body, sealed by the caller with the *old* epoch's C. */
  ack: Uint8Array;
  epoch: number;
  /** Whether this rotation was already applied (a resent 0x83): acknowledged again, nothing changed. */
  repeated: boolean;
}

export class SecurityUnit {
  readonly #preferences: Preferences;
  readonly #crypto: Crypto;
  readonly #vault: KeyVault;
  readonly #clock: Clock | undefined;
  readonly #windowMs: number;
  readonly meterId: number;
  /** The meter's preferences (security management keeps its maintenance token high-water mark there). */
  get preferences(): Preferences {
    return this.#preferences;
  }
  #current: EpochKeys | undefined;
  #previous: (EpochKeys & { until: number }) | undefined;
  #nextUplinkSeq: number;
  #reservedUpTo: number;
  #downlinks: ReplayWindow;
  #tampered: boolean;
  #lastOpenedEpoch = 0;

  constructor(options: SecurityOptions) {
    this.#preferences = options.preferences;
    this.#crypto = options.crypto;
    this.#vault = options.vault ?? new PreferencesVault(options.preferences, options.crypto);
    this.#clock = options.clock;
    this.#windowMs = options.rotationWindowMs ?? DEFAULT_ROTATION_WINDOW_MS;
    this.meterId = options.meterId;
    this.#reservedUpTo = this.#number('upReserved');
    this.#nextUplinkSeq = this.#reservedUpTo + 1;
    const window = this.#preferences.get(DOMAIN, 'downWindow');
    // Meters provisioned before the window kept only the highest number: everything up to it is spent.
    this.#downlinks =
      window instanceof ArrayBuffer
        ? ReplayWindow.decode(new Uint8Array(window))
        : new ReplayWindow(this.#number('downSeq'));
    this.#tampered = this.#preferences.get(DOMAIN, 'tampered') === true;
    this.#loadKeys();
  }

  /**
   * Provisioning (a factory, or the platform's re-key after a tamper): loads the epoch's keys into
   * the vault's bank 0 and makes it current. With preferences only (no secure parts), C and D go
   * to preferences as before.
   */
  static provision(
    target: Preferences | { vault: KeyVault; preferences: Preferences },
    keys: MeterKeys,
    meterId?: number,
  ): void {
    const preferences = 'vault' in target ? target.preferences : target;
    const vault =
      'vault' in target ? target.vault : new PreferencesVault(target, undefined as unknown as Crypto);
    vault.erase(1);
    vault.install(0, keys.epoch, meterId ?? 0, keys.uplink, keys.secrets, keys.downlink);
    preferences.set(DOMAIN, 'epoch', keys.epoch);
    preferences.set(DOMAIN, 'bank', 0);
    preferences.delete(DOMAIN, 'prevEpoch');
    preferences.delete(DOMAIN, 'prevUntil');
    preferences.delete(DOMAIN, 'tampered');
  }

  get provisioned(): boolean {
    return this.#current !== undefined;
  }

  /**
   * Loads the fleet's card-token key (protocol/cardToken.ts), with which the meter turns a card
   * number into the token its records and blacklist carry. Kept in preferences: it is the same on
   * every meter, so neither the SAM nor the secure element has a slot for it.
   */
  static provisionCardTokenKey(preferences: Preferences, key: Uint8Array): void {
    if (key.length !== CARD_TOKEN_KEY_LENGTH)
      throw new RangeError(`a card-token key is ${CARD_TOKEN_KEY_LENGTH} bytes, not ${key.length}`);
    preferences.set(DOMAIN, 'cardKey', ownBuffer(key));
  }

  #cardTokenKey(): Uint8Array | undefined {
    const key = this.#preferences.get(DOMAIN, 'cardKey');
    return key instanceof ArrayBuffer && key.byteLength === CARD_TOKEN_KEY_LENGTH
      ? new Uint8Array(key.slice(0))
      : undefined;
  }

  /** Whether the meter holds the card-token key: without it no card can be sold to. */
  get cardTokensReady(): boolean {
    return this.#cardTokenKey() !== undefined;
  }

  /**
   * A card number as records and the blacklist keep it: the keyed token and the last four digits.
   * Throws NotProvisionedError without the card-token key (the number is never kept instead).
   */
  cardRef(cardNumber: string): CardRef {
    const key = this.#cardTokenKey();
    if (!key) throw new NotProvisionedError('no card-token key: the meter cannot record a card');
    try {
      return cardRef(this.#crypto, key, cardNumber);
    } finally {
      key.fill(0);
    }
  }

  /**
   * Loads the current epoch's keys again when they are not held (the secure parts did not answer
   * at boot and answer now); true when the meter holds keys afterwards.
   */
  reloadKeys(): boolean {
    if (!this.#current) this.#loadKeys();
    return this.#current !== undefined;
  }

  get epoch(): number {
    return this.#current?.epoch ?? 0;
  }

  /** Set by a tamper wipe; cleared only by provisioning (the platform's re-key). */
  get tampered(): boolean {
    return this.#tampered;
  }

  /** The key epoch of the last downlink opened (the frame a 'downlink' event came in). */
  get lastDownlinkEpoch(): number {
    return this.#lastOpenedEpoch;
  }

  get vaultKind(): KeyVault['kind'] {
    return this.#vault.kind;
  }

  /** Takes the next uplink sequence number, reserving a block in preferences first when needed. */
  #takeUplinkSeq(): number {
    const seq = this.#nextUplinkSeq;
    if (seq > this.#reservedUpTo) {
      const reserved = seq + SEQ_BLOCK - 1;
      this.#preferences.set(DOMAIN, 'upReserved', reserved); // persisted before any use
      this.#reservedUpTo = reserved;
    }
    this.#nextUplinkSeq = seq + 1;
    return seq;
  }

  sealUplink(type: number, body: Uint8Array): Uint8Array {
    const keys = this.#requireKeys();
    if (isDownlink(type)) throw new RangeError(`frame type 0x${type.toString(16)} is a downlink type`);
    const header: FrameHeader = {
      version: FRAME_VERSION,
      type,
      meterId: this.meterId,
      epoch: keys.epoch,
      seq: this.#takeUplinkSeq(),
    };
    return sealFrame(this.#crypto, keys.uplink, header, body);
  }

  /**
   * Authenticates a downlink addressed to this meter; refuses replays, foreign frames and epochs
   * other than the current one or, within the rotation window, the previous one.
   */
  openDownlink(frame: Uint8Array): { header: FrameHeader; body: Uint8Array } {
    const current = this.#requireKeys();
    if (frame.length < 14) throw new ProtocolError('truncated', `frame of ${frame.length} bytes`);
    const epoch = ((frame[6] << 24) | (frame[7] << 16) | (frame[8] << 8) | frame[9]) >>> 0;
    let keys: EpochKeys = current;
    if (epoch !== current.epoch) {
      const previous = this.#previousKeys();
      if (!previous || previous.epoch !== epoch) throw new ProtocolError('stale-epoch', `epoch ${epoch}`);
      keys = previous;
    }
    const opened = openFrame(this.#crypto, keys.downlink, frame);
    const { header } = opened;
    if (header.meterId !== this.meterId)
      throw new ProtocolError('bad-field', `frame is for meter ${header.meterId}`);
    if (!isDownlink(header.type)) throw new ProtocolError('bad-type', 'uplink frame on the downlink');
    const replay = this.#downlinks.check(header.seq);
    if (replay) throw new ProtocolError('replay', `downlink ${replay}`);
    this.#downlinks.accept(header.seq);
    // Spent before it is acted on: a power cut after this line cannot make the frame acceptable again.
    this.#preferences.set(DOMAIN, 'downWindow', this.#downlinks.encode().buffer as ArrayBuffer);
    this.#lastOpenedEpoch = header.epoch;
    return opened;
  }

  /**
   * Applies a key rotation (0x83 body, opened under `epoch`): unwraps the new keys with the current
   * D, loads them into the other bank, and returns the acknowledgement to send. The switch happens
   * in commitRotation(), after the acknowledgement has gone out under the old keys.
   */
  prepareRotation(body: Uint8Array, frameEpoch: number): RotationOutcome {
    const current = this.#requireKeys();
    const message = decodeRotation(body);
    const now = Math.floor((this.#clock?.now() ?? 0) / 1000);
    if (message.epoch === current.epoch) {
      // Resent after the switch: acknowledge again.
      const kcv = keyCheckValueOf(this.#crypto, current.uplink);
      return {
        ack: encodeSecurityEvent({ ev: 'key-epoch', epoch: current.epoch, kcv, at: now, detail: 'repeated' }),
        epoch: current.epoch,
        repeated: true,
      };
    }
    if (frameEpoch !== current.epoch || message.epoch <= current.epoch) {
      throw new ProtocolError('stale-epoch', `rotation to ${message.epoch} under epoch ${frameEpoch}`);
    }
    const unwrapped = unwrapEpochKeys(
      this.#crypto,
      current.downlink,
      this.meterId,
      message.epoch,
      message.keys,
    );
    const bank: Bank = current.bank === 0 ? 1 : 0;
    try {
      this.#vault.install(bank, message.epoch, this.meterId, unwrapped.uplink, unwrapped.secrets);
    } finally {
      unwrapped.secrets.a.fill(0);
      unwrapped.secrets.b.fill(0);
      unwrapped.secrets.m.fill(0);
    }
    const kcv = keyCheckValueOf(this.#crypto, unwrapped.uplink);
    unwrapped.uplink.fill(0);
    this.#pending = { epoch: message.epoch, bank };
    return {
      ack: encodeSecurityEvent({ ev: 'key-epoch', epoch: message.epoch, kcv, at: now, detail: '' }),
      epoch: message.epoch,
      repeated: false,
    };
  }

  #pending: { epoch: number; bank: Bank } | undefined;
  #alert: Uint8Array | undefined;

  /**
   * A security-event frame sealed now, kept for the moment the keys are gone: a tamper wipes C
   * before anything else, and this frame (its sequence number reserved like any other) still tells
   * the platform, authenticated. Sealed again after each use and after a rotation.
   */
  armAlert(detail: string): void {
    if (!this.#current) return;
    const at = Math.floor((this.#clock?.now() ?? 0) / 1000);
    const body = encodeSecurityEvent({
      ev: 'tamper',
      epoch: this.#current.epoch,
      kcv: new Uint8Array(0),
      at,
      detail,
    });
    this.#alert = this.sealUplink(KeyFrame.SECURITY, body);
  }

  /** Takes the armed alert frame (once). */
  takeAlert(): Uint8Array | undefined {
    const alert = this.#alert;
    this.#alert = undefined;
    return alert;
  }

  /** Switches to the prepared epoch; the previous one stays valid for the rotation window. */
  commitRotation(): boolean {
    const pending = this.#pending;
    const current = this.#current;
    this.#pending = undefined;
    if (!pending || !current) return false;
    const until = (this.#clock?.now() ?? 0) + (this.#clock ? this.#windowMs : 0);
    const p = this.#preferences;
    p.set(DOMAIN, 'prevEpoch', current.epoch);
    p.set(DOMAIN, 'prevUntil', until);
    p.set(DOMAIN, 'bank', pending.bank);
    p.set(DOMAIN, 'epoch', pending.epoch); // the commit point
    this.#previous?.uplink.fill(0);
    this.#previous?.downlink.fill(0);
    this.#previous = { ...current, until };
    this.#current = undefined;
    this.#loadKeys();
    return this.#current !== undefined;
  }

  /** The previous epoch's keys while its window lasts; erased (vault and RAM) once it has passed. */
  #previousKeys(): EpochKeys | undefined {
    const previous = this.#previous;
    if (!previous) return undefined;
    if (!this.#clock || this.#clock.now() >= previous.until) {
      this.#forgetPrevious();
      return undefined;
    }
    return previous;
  }

  /** Ends the rotation window now (and erases the old bank). */
  #forgetPrevious(): void {
    const previous = this.#previous;
    if (!previous) return;
    previous.uplink.fill(0);
    previous.downlink.fill(0);
    this.#previous = undefined;
    this.#preferences.delete(DOMAIN, 'prevEpoch');
    this.#preferences.delete(DOMAIN, 'prevUntil');
    try {
      this.#vault.erase(previous.bank);
    } catch {
      // erased again at the next rotation
    }
  }

  /** HMAC(M, token) from the vault (maintenance sessions). */
  maintenanceSecret(token: Uint8Array): Uint8Array {
    const current = this.#requireKeys();
    return this.#vault.maintenanceSecret(current.bank, token);
  }

  /**
   * Zeroisation (tamper): RAM keys first (they cannot fail), then the vault (SAM, secure element);
   * the tampered flag survives a restart. Returns the error of the vault's wipe, if any.
   */
  zeroise(): unknown {
    for (const keys of [this.#current, this.#previous]) {
      keys?.uplink.fill(0);
      keys?.downlink.fill(0);
    }
    this.#current = undefined;
    this.#previous = undefined;
    this.#pending = undefined;
    this.#tampered = true;
    let failure: unknown;
    try {
      this.#vault.wipe();
    } catch (error) {
      failure = error;
    }
    this.#preferences.set(DOMAIN, 'tampered', true);
    return failure;
  }

  #requireKeys(): EpochKeys {
    if (!this.#current) throw new NotProvisionedError();
    return this.#current;
  }

  #number(key: string): number {
    const value = this.#preferences.get(DOMAIN, key);
    return typeof value === 'number' ? value : 0;
  }

  #loadKeys(): void {
    if (this.#tampered) return;
    const epoch = this.#number('epoch');
    const bank: Bank = this.#number('bank') === 1 ? 1 : 0;
    if (epoch === 0) return;
    try {
      const keys = this.#vault.load(bank, this.meterId, epoch);
      if (keys) this.#current = { epoch, bank, ...keys };
      const prevEpoch = this.#number('prevEpoch');
      const until = this.#number('prevUntil');
      if (keys && prevEpoch && !this.#previous && this.#clock && this.#clock.now() < until) {
        const other: Bank = bank === 0 ? 1 : 0;
        const old = this.#vault.load(other, this.meterId, prevEpoch);
        if (old) this.#previous = { epoch: prevEpoch, bank: other, until, ...old };
      }
    } catch {
      this.#current = undefined; // a secure part that does not answer: not provisioned until it does
    }
  }
}

// ---- Security management on the bus: rotation, replays, tamper, maintenance sessions ----------

/** What security management records (MainRecord has these). */
export interface SecurityRecords {
  appendOperation(code: string, detail: string, card?: CardRef | null): unknown;
  appendMaintenance(code: string, detail: string): unknown;
}

export interface SecurityManagementOptions {
  security: SecurityUnit;
  bus: EventBus<MeterEvents>;
  records: SecurityRecords;
  clock: Clock;
  timers: Timers;
  crypto: Crypto;
  random: Random;
  buzzer: Buzzer;
  /** Seals and sends an uplink (comms.send): false when no link is up. */
  send(type: number, body: Uint8Array): boolean;
  /** Publishes an already sealed frame on every link up; false when none is. */
  publishSealed(frame: Uint8Array): boolean;
  /** The handheld's channel: the handheld link's authentication messages (firmware/units/handheld.ts). */
  ble?: HandheldChannel;
  /** How long after the handheld's proof the mode-key sequence may come, ms (default 60 s). */
  modeKeyWindowMs?: number;
  /** Longest maintenance mode, ms (default 30 min; never past the token's expiry). */
  maxMaintenanceMs?: number;
}

/** What security management needs of the handheld's link: its messages, whole (not chunked). */
export type HandheldChannel = Pick<BlePeripheral, 'open' | 'notify' | 'disconnect' | 'close'>;

/** The high-frequency alarm: 4 kHz for a minute (the seed's claim 1a alarm). */
export const ALARM = Object.freeze({ frequencyHz: 4_000, durationMs: 60_000 });

type Gate =
  | { name: 'idle' }
  | { name: 'challenged'; token: MaintenanceToken; tokenBytes: Uint8Array; challenge: Uint8Array }
  | { name: 'proven'; token: MaintenanceToken; timer: TimerHandle }
  | { name: 'open'; token: MaintenanceToken; timer: TimerHandle };

/**
 * Security management (47) on the meter's bus: key rotation downlinks (0x83, acknowledged with
 * 0x03 before the switch), refused downlinks as security records, the tamper response to
 * 'cover-opened' outside a maintenance session, and the maintenance session itself (a platform
 * token proven over BLE by challenge-response, then the mode-key sequence).
 */
export class SecurityManagement {
  readonly #o: SecurityManagementOptions;
  #gate: Gate = { name: 'idle' };
  readonly #bleHandlers: BleHandlers;
  /** Whether the BLE peripheral is open (advertising to the handheld). */
  #bleOpen = false;
  /** Tamper response timings of the last wipe (monotonic ms from the sensor edge). */
  lastTamper: { wipedAfterMs: number; alertSent: boolean; wipeError?: string } | undefined;

  constructor(options: SecurityManagementOptions) {
    this.#o = options;
    const { bus, security } = options;
    bus.on('downlink', (d) => {
      if (d.type === KeyFrame.ROTATION) this.#rotate(d.body);
    });
    bus.on('downlink-refused', ({ reason }) => this.#refused(reason));
    bus.on('cover-opened', (e) => this.#coverOpened(e?.at));
    bus.on('maintenance-opened', () => this.#modeKey()); // the mode-key sequence was right
    this.#bleHandlers = {
      onConnect: () => {},
      onDisconnect: () => {
        const gate = this.#gate;
        if (gate.name === 'challenged')
          this.#endSession('maintenance-session-refused', 'handheld disconnected');
        else if (gate.name === 'proven')
          this.#endSession('maintenance-session-closed', `handheld of ${gate.token.staff} left`);
      },
      onWrite: (data) => this.#onBle(data),
    };
    if (options.ble) {
      // The handheld link's channel: its transports' faults and repairs are the handheld link's.
      options.ble.open(this.#bleHandlers);
      this.#bleOpen = true;
    }
    security.armAlert('cover opened without a maintenance session; keys wiped');
  }

  /** The staff member of a proven handheld token (proven or in maintenance mode), else undefined. */
  get handheldStaff(): string | undefined {
    const gate = this.#gate;
    return gate.name === 'proven' || gate.name === 'open' ? gate.token.staff : undefined;
  }

  /**
   * A proven handheld is at work (collecting, carrying downlinks): the window for the mode-key
   * sequence starts again, so a collection longer than the window is not cut off; never past the
   * token's expiry.
   */
  keepHandheld(): void {
    const gate = this.#gate;
    if (gate.name !== 'proven') return;
    const { timers, clock } = this.#o;
    timers.clear(gate.timer);
    const window = this.#o.modeKeyWindowMs ?? 60_000;
    const ms = Math.max(0, Math.min(window, gate.token.expiresAt * 1000 - clock.now()));
    gate.timer = timers.setTimeout(
      () =>
        this.#endSession(
          'maintenance-session-timeout',
          `no mode-key sequence after token ${gate.token.tokenId}`,
        ),
      ms,
    );
  }

  /** Whether maintenance mode is open (the cover may be opened). */
  get maintenanceOpen(): boolean {
    return this.#gate.name === 'open';
  }

  /** Why payments are refused, or undefined when they are allowed. */
  get paymentBlock(): string | undefined {
    return this.#o.security.tampered ? 'tampered: waiting for the platform to re-key the meter' : undefined;
  }

  #rotate(body: Uint8Array): void {
    const { security, send, records, bus } = this.#o;
    try {
      const outcome = security.prepareRotation(body, security.lastDownlinkEpoch);
      if (!send(KeyFrame.SECURITY, outcome.ack)) return; // no ack, no switch: the platform resends
      if (!outcome.repeated && security.commitRotation()) {
        security.armAlert('cover opened without a maintenance session; keys wiped');
        records.appendMaintenance('key-epoch', `switched to key epoch ${outcome.epoch}`);
      }
    } catch (error) {
      const code = error instanceof ProtocolError ? error.code : (error as Error).name;
      records.appendOperation('security-rotation-refused', `${code}`);
      bus.emit('fault', { unit: 'security', error });
    }
  }

  #refused(reason: string): void {
    const { records, send, clock, security } = this.#o;
    if (reason !== 'replay' && reason !== 'decrypt-failed' && reason !== 'stale-epoch') return;
    records.appendOperation(`security-${reason}`, `downlink refused: ${reason}`);
    send(
      KeyFrame.SECURITY,
      encodeSecurityEvent({
        ev: reason,
        epoch: security.epoch,
        kcv: new Uint8Array(0),
        at: Math.floor(clock.now() / 1000),
        detail: 'downlink refused',
      }),
    );
  }

  /** The tamper response: keys first, then the alarm, the alert and the records. */
  #coverOpened(edgeAt?: number): void {
    const { security, clock, buzzer, publishSealed, records, bus, ble } = this.#o;
    if (this.#gate.name === 'open') {
      records.appendMaintenance('cover-opened', `in maintenance by ${this.#gate.token.staff}`);
      return;
    }
    const edge = edgeAt ?? clock.monotonic();
    const wipeError = security.zeroise();
    const wipedAfterMs = clock.monotonic() - edge;
    bus.emit('keys-wiped', { afterMs: wipedAfterMs });
    buzzer.tone(ALARM.frequencyHz, ALARM.durationMs);
    const alert = security.takeAlert();
    let alertSent = false;
    if (alert) {
      alertSent = publishSealed(alert);
      if (this.#bleOpen && ble?.notify(alert)) alertSent = true;
    }
    this.lastTamper = {
      wipedAfterMs,
      alertSent,
      wipeError: wipeError ? String((wipeError as Error).message ?? wipeError) : undefined,
    };
    records.appendOperation(
      'tamper',
      `cover opened without a maintenance session; keys wiped${wipeError ? ` (secure part: ${(wipeError as Error).message})` : ''}`,
    );
    bus.emit('service-unavailable', { reason: 'tampered' });
    this.#reset();
  }

  // ---- Maintenance sessions ----

  #onBle(data: Uint8Array): void {
    let message: Record<string, unknown>;
    try {
      const decoded = decodeCbor(data);
      if (!decoded || typeof decoded !== 'object' || Array.isArray(decoded))
        throw new ProtocolError('bad-field', 'not a map');
      message = decoded as Record<string, unknown>;
    } catch {
      this.#reply({ t: 'refused', why: 'malformed' });
      return;
    }
    if (message.t === 'hello' && message.token instanceof Uint8Array) this.#hello(message.token);
    else if (message.t === 'proof' && message.p instanceof Uint8Array) this.#proof(message.p);
    else this.#reply({ t: 'refused', why: 'unexpected' });
  }

  #hello(tokenBytes: Uint8Array): undefined {
    const { security, clock, random, ble } = this.#o;
    if (this.#gate.name !== 'idle') return this.#refuse('session already in progress', false);
    if (!security.provisioned) return this.#refuse('meter has no keys');
    let token: MaintenanceToken;
    try {
      token = decodeMaintenanceToken(tokenBytes);
    } catch {
      return this.#refuse('malformed token');
    }
    const now = Math.floor(clock.now() / 1000);
    if (token.meterId !== security.meterId) return this.#refuse(`token for meter ${token.meterId}`);
    if (now < token.notBefore || now >= token.expiresAt)
      return this.#refuse(`token ${token.tokenId} expired or not yet valid`);
    if (token.tokenId <= this.#lastTokenId()) return this.#refuse(`token ${token.tokenId} already used`);
    const challenge = new Uint8Array(16);
    random.fill(challenge);
    this.#gate = { name: 'challenged', token, tokenBytes: tokenBytes.slice(), challenge };
    if (ble) this.#reply({ t: 'challenge', c: challenge });
    return undefined;
  }

  #proof(proof: Uint8Array): undefined {
    const { security, crypto, timers } = this.#o;
    const gate = this.#gate;
    if (gate.name !== 'challenged') return this.#refuse('no challenge outstanding', false);
    let expected: Uint8Array;
    try {
      const secret = security.maintenanceSecret(gate.tokenBytes);
      expected = maintenanceProof(crypto, secret, gate.challenge, security.meterId);
      secret.fill(0);
    } catch (error) {
      return this.#refuse(`no maintenance key: ${(error as Error).message}`);
    }
    if (!bytesEqual(expected, proof)) return this.#refuse(`wrong proof for token ${gate.token.tokenId}`);
    // The token is spent once proven: a replay of it is refused.
    this.#setLastTokenId(gate.token.tokenId);
    const timer = timers.setTimeout(
      () =>
        this.#endSession(
          'maintenance-session-timeout',
          `no mode-key sequence after token ${gate.token.tokenId}`,
        ),
      this.#o.modeKeyWindowMs ?? 60_000,
    );
    this.#gate = { name: 'proven', token: gate.token, timer };
    this.#reply({ t: 'ok' });
    return undefined;
  }

  #modeKey(): void {
    const { timers, clock, records, bus } = this.#o;
    const gate = this.#gate;
    if (gate.name !== 'proven') {
      records.appendOperation(
        'maintenance-session-refused',
        'mode-key sequence without a proven handheld token',
      );
      return;
    }
    timers.clear(gate.timer);
    const remaining = gate.token.expiresAt * 1000 - clock.now();
    const ms = Math.max(0, Math.min(remaining, this.#o.maxMaintenanceMs ?? 30 * 60_000));
    const timer = timers.setTimeout(
      () => this.#endSession('maintenance-session-timeout', 'maintenance mode ended'),
      ms,
    );
    this.#gate = { name: 'open', token: gate.token, timer };
    records.appendMaintenance(
      'maintenance-session-opened',
      `staff ${gate.token.staff}, token ${gate.token.tokenId}`,
    );
    bus.emit('maintenance-mode', { open: true, staff: gate.token.staff });
  }

  /** Ends maintenance mode (the staff closes the cover and leaves). */
  closeMaintenance(): void {
    if (this.#gate.name === 'open')
      this.#endSession('maintenance-session-closed', `staff ${this.#gate.token.staff}`);
  }

  #refuse(why: string, reset = true): undefined {
    this.#o.records.appendOperation('maintenance-session-refused', why);
    this.#reply({ t: 'refused', why });
    if (reset) this.#reset();
    return undefined;
  }

  #endSession(code: string, detail: string): void {
    const wasOpen = this.#gate.name === 'open';
    if (wasOpen) this.#o.records.appendMaintenance(code, detail);
    else this.#o.records.appendOperation(code, detail);
    this.#reset();
    if (wasOpen) this.#o.bus.emit('maintenance-mode', { open: false, staff: '' });
    if (this.#bleOpen) this.#o.ble?.disconnect();
  }

  #reset(): void {
    const gate = this.#gate;
    if (gate.name === 'proven' || gate.name === 'open') this.#o.timers.clear(gate.timer);
    this.#gate = { name: 'idle' };
  }

  #reply(message: Record<string, unknown>): void {
    if (this.#bleOpen) this.#o.ble?.notify(encodeCbor(message));
  }

  #lastTokenId(): number {
    const v = this.#preferencesOf().get(DOMAIN, 'maintTokenId');
    return typeof v === 'number' ? v : 0;
  }

  #setLastTokenId(id: number): void {
    this.#preferencesOf().set(DOMAIN, 'maintTokenId', id);
  }

  #preferencesOf(): Preferences {
    return this.#o.security.preferences;
  }
}

// ---- The board's secure parts ------------------------------------------------------------------

export interface SecureParts {
  element: ATECC608;
  sam: SecureAccessModule;
  vault: SecurePartsVault;
}

/** Opens the secure element and the SAM when the board has them; throws when a fitted part fails its check. */
export function openSecureParts(hardware: MeterHardware): SecureParts | undefined {
  const secure = hardware.pins.secure;
  const Serial = hardware.io.Serial;
  if (!secure || !Serial) return undefined;
  const element = new ATECC608({ element: { io: hardware.io.I2C, address: secure.element.address } });
  let sam: SecureAccessModule;
  try {
    sam = new SecureAccessModule({ sam: { io: Serial, ...secure.sam }, clock: hardware.clock });
  } catch (error) {
    element.close();
    throw error;
  }
  return { element, sam, vault: new SecurePartsVault(element, sam) };
}

/**
 * The secure element and the SAM as the meter holds them. A fitted part that does not answer at
 * boot leaves them closed instead of throwing out of the meter's construction: the keys and card
 * authentication are then out of service (the vault and the authenticator throw, so the meter holds
 * no keys and refuses cards) until reopen(), the monitor's repair of module 'secure', opens both.
 * A wipe asked for while they are closed is done first thing when they open.
 */
export class SecurePartsHolder {
  readonly #hardware: MeterHardware;
  #parts: SecureParts | undefined;
  #fault: Error | undefined;
  #wipePending = false;
  /** The keys, in whichever parts are open now. */
  readonly vault: KeyVault;
  /** Card authentication by the SAM, while it is open. */
  readonly authenticator: PurseAuthenticator;

  constructor(hardware: MeterHardware) {
    this.#hardware = hardware;
    const parts = (): SecureParts => this.#inService();
    this.vault = {
      kind: 'secure-parts',
      install: (bank, epoch, meterId, uplink, secrets) =>
        parts().vault.install(bank, epoch, meterId, uplink, secrets),
      load: (bank, meterId, epoch) => parts().vault.load(bank, meterId, epoch),
      maintenanceSecret: (bank, token) => parts().vault.maintenanceSecret(bank, token),
      erase: (bank) => parts().vault.erase(bank),
      wipe: () => {
        if (!this.#parts) this.#wipePending = true;
        parts().vault.wipe();
      },
    };
    this.authenticator = {
      begin: (uid) => parts().sam.begin(uid),
      prove: (rndC, cardProof) => parts().sam.prove(rndC, cardProof),
      mac: (data) => parts().sam.mac(data),
      verify: (data, mac) => parts().sam.verify(data, mac),
    };
    this.reopen();
  }

  /** Whether the board has secure parts at all. */
  get fitted(): boolean {
    return this.#hardware.pins.secure !== undefined && this.#hardware.io.Serial !== undefined;
  }

  /** The open parts, or undefined while they are out of service. */
  get parts(): SecureParts | undefined {
    return this.#parts;
  }

  /** Why the parts are out of service, or undefined while they are open. */
  outOfService(): Error | undefined {
    return this.#fault;
  }

  /** Closes the parts and opens them again; true when both answer (a pending wipe then runs). */
  reopen(): boolean {
    const old = this.#parts;
    this.#parts = undefined;
    try {
      old?.element.close();
      old?.sam.close();
    } catch {
      // a part that does not answer cannot be shut down politely
    }
    try {
      this.#parts = openSecureParts(this.#hardware);
    } catch (error) {
      this.#fault = error instanceof Error ? error : new SecureElementError(String(error));
      return false;
    }
    this.#fault = undefined;
    if (this.#parts && this.#wipePending) {
      try {
        this.#parts.vault.wipe();
        this.#wipePending = false;
      } catch (error) {
        this.#fault = error instanceof Error ? error : new SecureElementError(String(error));
        return false;
      }
    }
    return this.#parts !== undefined;
  }

  #inService(): SecureParts {
    if (this.#parts) return this.#parts;
    throw new NotProvisionedError(
      `secure parts out of service: ${this.#fault?.message ?? 'the board has none'}`,
    );
  }
}

/**
 * Factory provisioning over the board's own buses (the virtual fleet, tests): the SAM gets the
 * meter id, A and M (and the card scheme's master key when given), the secure element B and C, and
 * the firmware signing key is pinned in its slot. Boards without secure parts get preferences.
 * The fleet's card-token key, when given with the keys, goes to preferences either way.
 */
export function provisionBoard(
  hardware: MeterHardware,
  keys: MeterKeys & { cardTokenKey?: Uint8Array },
  meterId: number,
  extras: { cardMaster?: Uint8Array; firmwareKey?: Uint8Array } = {},
): void {
  if (keys.cardTokenKey) SecurityUnit.provisionCardTokenKey(hardware.preferences, keys.cardTokenKey);
  const parts = openSecureParts(hardware);
  if (!parts) {
    SecurityUnit.provision(hardware.preferences, keys, meterId);
    if (extras.firmwareKey) hardware.preferences.set(DOMAIN, 'fwKey', ownBuffer(extras.firmwareKey));
    return;
  }
  try {
    SecurityUnit.provision({ vault: parts.vault, preferences: hardware.preferences }, keys, meterId);
    if (extras.cardMaster) parts.sam.loadCardMaster(extras.cardMaster);
    if (extras.firmwareKey) parts.element.writeSlot(Slot.FIRMWARE_KEY, extras.firmwareKey);
  } finally {
    parts.element.close();
    parts.sam.close();
  }
}

/** Reads the pinned firmware signing key (secure element slot, or preferences without one). */
export function pinnedFirmwareKey(hardware: MeterHardware, parts?: SecureParts): Uint8Array | undefined {
  if (parts) {
    const key = parts.element.readSlot(Slot.FIRMWARE_KEY);
    parts.element.sleep();
    return key.some((b) => b !== 0) ? key : undefined;
  }
  const key = hardware.preferences.get(DOMAIN, 'fwKey');
  return key instanceof ArrayBuffer ? new Uint8Array(key) : undefined;
}

/** A reader's authenticator on a board without a SAM: every card is refused. */
export const noSam: PurseAuthenticator = {
  begin() {
    throw new NotProvisionedError('no SAM: cards cannot be authenticated');
  },
  prove() {
    throw new NotProvisionedError('no SAM');
  },
  mac() {
    throw new NotProvisionedError('no SAM');
  },
  verify() {
    return false;
  },
};
