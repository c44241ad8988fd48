// The HAL's BlePeripheral on Moddable's `bleserver` (modules/network/ble): one GATT service, from
// the build's bleservices JSON, with a writable "command" and a notifying "events" characteristic.
/// <reference path="../../node_modules/@moddable/typings/ble/bleserver.d.ts" />
import { BLEServer } from 'bleserver';
import type { BleHandlers, BlePeripheral } from '../ble';

type Characteristic = Parameters<BLEServer['notifyValue']>[0];

export class ModdableBlePeripheral extends BLEServer implements BlePeripheral {
  #handlers: BleHandlers | undefined;
  #events: Characteristic | undefined;
  #connected = false;
  readonly #name: string;

  constructor(name = 'ParkLink meter') {
    super();
    this.#name = name;
  }

  open(handlers: BleHandlers): void {
    this.#handlers = handlers;
  }

  override onReady(): void {
    this.deviceName = this.#name;
    this.#advertise();
  }

  override onConnected(): void {
    this.#connected = true;
    this.stopAdvertising();
    this.#handlers?.onConnect();
  }

  override onDisconnected(): void {
    this.#connected = false;
    this.#events = undefined;
    this.#handlers?.onDisconnect();
    this.#advertise();
  }

  override onCharacteristicNotifyEnabled(characteristic: Characteristic): void {
    this.#events = characteristic;
  }

  override onCharacteristicWritten(_characteristic: Characteristic, value: unknown): void {
    if (value instanceof ArrayBuffer) this.#handlers?.onWrite(new Uint8Array(value));
  }

  notify(data: Uint8Array): boolean {
    if (!this.#connected || !this.#events) return false;
    this.notifyValue(this.#events, data.slice().buffer);
    return true;
  }

  override disconnect(): void {
    if (this.#connected) super.disconnect();
  }

  #advertise(): void {
    this.startAdvertising({ advertisingData: { flags: 6, completeName: this.#name } });
  }
}
