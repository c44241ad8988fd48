// The HAL's BlePeripheral on Moddable's `bleserver` (modules/network/ble): the handheld service of
// bleservices/handheld.json (docs/handheld.md), with the writable "control", the notifying "data"
// and the readable "info" characteristics. The stack starts at open(); the meter advertises only
// between advertise(true) and advertise(false), and not while a handheld is connected. The ATT MTU
// the central asks for (onMTUExchanged) goes to the handheld link, which cuts its messages to fit.
import { BLEServer } from 'bleserver';
import { uuid } from 'btutils';
import type { BleHandlers, BlePeripheral } from '../ble';

type Characteristic = Parameters<BLEServer['notifyValue']>[0];

/** ATT MTU the meter accepts at most: 244-byte values, the BLE 4.2 data length less the headers. */
export const MAX_MTU = 247;

export class ModdableBlePeripheral extends BLEServer implements BlePeripheral {
  #handlers: BleHandlers | undefined;
  #data: Characteristic | undefined;
  #connected = false;
  #ready = false;
  #wanted = false;
  #advertising = false;
  #info: ArrayBuffer = new ArrayBuffer(0);
  readonly #name: string;

  constructor(name = 'ParkLink meter') {
    super();
    this.#name = name;
  }

  open(handlers: BleHandlers): void {
    this.#handlers = handlers;
  }

  advertise(on: boolean): void {
    this.#wanted = on;
    this.#apply();
  }

  setInfo(value: Uint8Array): void {
    this.#info = value.slice().buffer;
  }

  override onReady(): void {
    this.deviceName = this.#name;
    this.#ready = true;
    this.#apply();
  }

  override onConnected(): void {
    this.#connected = true;
    this.#apply();
    this.#handlers?.onConnect();
  }

  override onDisconnected(): void {
    this.#connected = false;
    this.#data = undefined;
    this.#handlers?.onDisconnect();
    this.#apply();
  }

  /** bleserver calls this with the MTU agreed with the central (modules/network/ble/bleserver.js). */
  onMTUExchanged(mtu: number): void {
    this.#handlers?.onMtu?.(Math.min(mtu, MAX_MTU));
  }

  override onCharacteristicNotifyEnabled(characteristic: Characteristic): void {
    if (characteristic.name === 'data') this.#data = characteristic;
  }

  override onCharacteristicWritten(characteristic: Characteristic, value: unknown): void {
    if (characteristic.name === 'control' && value instanceof ArrayBuffer)
      this.#handlers?.onWrite(new Uint8Array(value));
  }

  override onCharacteristicRead(characteristic: Characteristic): Uint8Array | undefined {
    if (characteristic.name === 'info') return new Uint8Array(this.#info.slice(0));
    return undefined;
  }

  notify(data: Uint8Array): boolean {
    if (!this.#connected || !this.#data) return false;
    this.notifyValue(this.#data, data.slice().buffer);
    return true;
  }

  override disconnect(): void {
    if (this.#connected) super.disconnect();
  }

  override close(): void {
    this.#wanted = false;
    this.#connected = false;
    this.#data = undefined;
    super.close();
  }

  /** Advertises when asked to, the stack is ready and no handheld is connected. */
  #apply(): void {
    const should = this.#wanted && this.#ready && !this.#connected;
    if (should === this.#advertising) return;
    this.#advertising = should;
    if (should) {
      this.startAdvertising({
        advertisingData: {
          flags: 6,
          completeName: this.#name,
          completeUUID128List: [uuid`5041524B-0001-4C49-4E4B-48414E44484C`],
        },
      });
    } else this.stopAdvertising();
  }
}
