// The meter's link to a maintenance handheld: one GATT service (docs/handheld.md) with a control
// characteristic the handheld writes, a data characteristic the meter notifies and an info
// characteristic anyone nearby may read. hal/moddable/ble.ts binds Moddable's bleserver;
// hal/mock/ble.ts is the virtual link. A Wi-Fi port of the same service has the same shape.

/** The handheld service's UUIDs (128-bit, random base; docs/handheld.md). */
export const HANDHELD_SERVICE = Object.freeze({
  service: '5041524B-0001-4C49-4E4B-48414E44484C',
  control: '5041524B-0002-4C49-4E4B-48414E44484C',
  data: '5041524B-0003-4C49-4E4B-48414E44484C',
  info: '5041524B-0004-4C49-4E4B-48414E44484C',
});

/** The ATT MTU before any exchange (Bluetooth Core, Vol 3 Part F §3.2.8): 20-byte values. */
export const DEFAULT_ATT_MTU = 23;

export interface BleHandlers {
  onConnect(): void;
  onDisconnect(): void;
  /** A write of the handheld to the control characteristic. */
  onWrite(data: Uint8Array): void;
  /** The ATT MTU agreed with the handheld (DEFAULT_ATT_MTU until an exchange). */
  onMtu?(mtu: number): void;
}

export interface BlePeripheral {
  /** Starts the stack and delivers the handheld's connection and writes; advertises only when told. */
  open(handlers: BleHandlers): void;
  /** Starts (true) or stops (false) advertising; a connection in progress stays. */
  advertise(on: boolean): void;
  /** The value of the info characteristic, read without pairing or authentication. */
  setInfo(value: Uint8Array): void;
  /**
   * Broadcasts a non-connectable advertisement (ADV_NONCONN_IND) with one Manufacturer Specific
   * Data AD — `companyId` then `data` (at most 24 bytes: the 31-byte payload less the Flags AD and
   * the AD's header) — every `intervalMs` (20–10 240 ms); undefined stops it. It goes out only while
   * the connectable advertising of advertise(true) is off and no handheld is connected. A transport
   * that cannot broadcast (the Wi-Fi port) leaves it out.
   */
  broadcast?(beacon: { companyId: number; data: Uint8Array; intervalMs: number } | undefined): void;
  /** Notifies the handheld on the data characteristic; false when none is connected. */
  notify(data: Uint8Array): boolean;
  /** Drops the handheld's connection, if any. */
  disconnect(): void;
  close(): void;
}
