// The HAL's BlePeripheral on Moddable's `bleserver` (modules/network/ble): the handheld service of
// bleservices/handheld.json (docs/handheld.md), with the writable "control", the notifying "data"
// and the readable "info" characteristics. The stack starts at open(); the meter advertises only
// between advertise(true) and advertise(false), and not while a handheld is connected. The ATT MTU
// the central asks for (onMTUExchanged) goes to the handheld link, which cuts its messages to fit.
// Otherwise, when given a beacon, it broadcasts it non-connectable: the Flags AD without the
// discoverable bits makes bleserver use ADV_NONCONN_IND (modBLEServer.c), and the interval is
// passed in 0.625 ms units (bleserver.js reads `interval`, which the SDK's typings leave out).
import { BLEServer } from 'bleserver';
import { uuid } from 'btutils';
import type { BleHandlers, BlePeripheral } from '../ble';

type Characteristic = Parameters<BLEServer['notifyValue']>[0];
type AdvertisingParams = Parameters<BLEServer['startAdvertising']>[0];
type Beacon = { companyId: number; data: Uint8Array; intervalMs: number };

/** Flags AD: LE only (BR/EDR not supported), neither discoverable bit: non-connectable. */
const FLAGS_NON_CONNECTABLE = 0x04;
/** Flags AD: LE general discoverable, BR/EDR not supported: the connectable service. */
const FLAGS_CONNECTABLE = 0x06;

/** ATT MTU the meter accepts at most: 244-byte values, the BLE 4.2 data length less the headers. */
export const MAX_MTU = 247;

export class ModdableBlePeripheral extends BLEServer implements BlePeripheral {
  #handlers: BleHandlers | undefined;
  #data: Characteristic | undefined;
  #connected = false;
  #ready = false;
  #wanted = false;
  #advertising: 'off' | 'service' | 'beacon' = 'off';
  #beacon: Beacon | undefined;
  /** The beacon on air changed: broadcast again with the new data. */
  #beaconChanged = false;
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

  broadcast(beacon: Beacon | undefined): void {
    this.#beacon = beacon && { ...beacon, data: beacon.data.slice() };
    this.#beaconChanged = true;
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
    this.#beacon = undefined;
    this.#advertising = 'off';
    this.#connected = false;
    this.#data = undefined;
    super.close();
  }

  /**
   * Advertises the connectable service when asked to, the stack is ready and no handheld is
   * connected; otherwise broadcasts the beacon, when there is one.
   */
  #apply(): void {
    const free = this.#ready && !this.#connected;
    const should = free && this.#wanted ? 'service' : free && this.#beacon ? 'beacon' : 'off';
    const restart = should === 'beacon' && this.#beaconChanged;
    this.#beaconChanged = false;
    if (should === this.#advertising && !restart) return;
    if (this.#advertising !== 'off') this.stopAdvertising();
    this.#advertising = should;
    if (should === 'service') {
      this.startAdvertising({
        advertisingData: {
          flags: FLAGS_CONNECTABLE,
          completeName: this.#name,
          completeUUID128List: [uuid`5041524B-0001-4C49-4E4B-48414E44484C`],
        },
      });
    } else if (should === 'beacon' && this.#beacon) {
      const units = Math.round(this.#beacon.intervalMs / 0.625);
      const params = {
        advertisingData: {
          flags: FLAGS_NON_CONNECTABLE,
          manufacturerSpecific: { identifier: this.#beacon.companyId, data: Array.from(this.#beacon.data) },
        },
        interval: { min: units, max: Math.min(0x4000, units + 80) },
      };
      this.startAdvertising(params as AdvertisingParams);
    }
  }
}
