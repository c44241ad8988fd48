// A virtual BLE link between the meter's peripheral (the HAL's BlePeripheral) and a maintenance
// handheld: connect, write to the meter's command characteristic, receive its notifications,
// disconnect. Delivery is synchronous, like the rest of the virtual hardware.
import type { BleHandlers, BlePeripheral } from '../ble';

export class VirtualBleLink {
  #handlers: BleHandlers | undefined;
  #connected = false;
  #closed = false;
  /** What the meter notified, in order (the handheld's inbox). */
  readonly notifications: Uint8Array[] = [];
  onNotify: ((data: Uint8Array) => void) | undefined;
  /** While set, opening the peripheral throws this message (a radio stack that did not start). */
  openFault: string | undefined;
  readonly peripheral: BlePeripheral;

  constructor() {
    const link = this;
    this.peripheral = {
      open(handlers) {
        if (link.openFault !== undefined) throw new Error(link.openFault);
        link.#handlers = handlers;
        link.#closed = false;
      },
      notify(data) {
        if (!link.#connected) return false;
        const copy = data.slice();
        link.notifications.push(copy);
        link.onNotify?.(copy);
        return true;
      },
      disconnect() {
        if (!link.#connected) return;
        link.#connected = false;
        link.#handlers?.onDisconnect();
      },
      close() {
        link.#closed = true;
        link.#connected = false;
      },
    };
  }

  get advertising(): boolean {
    return this.#handlers !== undefined && !this.#closed;
  }

  get connected(): boolean {
    return this.#connected;
  }

  /** The handheld connects; false when the meter is not advertising. */
  connect(): boolean {
    if (!this.advertising) return false;
    this.#connected = true;
    this.#handlers?.onConnect();
    return true;
  }

  /** The handheld writes to the meter's command characteristic. */
  write(data: Uint8Array): void {
    if (!this.#connected) throw new Error('BLE: not connected');
    this.#handlers?.onWrite(data.slice());
  }

  disconnect(): void {
    if (!this.#connected) return;
    this.#connected = false;
    this.#handlers?.onDisconnect();
  }
}
