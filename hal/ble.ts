// The meter's BLE peripheral for the maintenance handheld: one GATT service with a characteristic
// the handheld writes and one the meter notifies (hal/moddable/ble.ts binds Moddable's bleserver;
// hal/mock/ble.ts is the virtual link).

export interface BleHandlers {
  onConnect(): void;
  onDisconnect(): void;
  /** A write of the handheld to the command characteristic. */
  onWrite(data: Uint8Array): void;
}

export interface BlePeripheral {
  /** Starts advertising and delivers the handheld's connection and writes. */
  open(handlers: BleHandlers): void;
  /** Notifies the handheld; false when none is connected. */
  notify(data: Uint8Array): boolean;
  /** Drops the handheld's connection, if any. */
  disconnect(): void;
  close(): void;
}
