// A virtual BLE link between the meter's peripheral (the HAL's BlePeripheral) and a handheld or a
// phone: connect, exchange the MTU, write to the control characteristic, read the info
// characteristic, receive notifications, disconnect. Delivery is synchronous, like the rest of the
// virtual hardware. As on a real stack, a value longer than the ATT MTU allows (MTU − 3) cannot be
// written or notified: the link throws. The same class stands in for the Wi-Fi port (a larger MTU).
import type { BleHandlers, BlePeripheral } from '../ble';

const ATT_DEFAULT_MTU = 23; // Bluetooth Core Vol 3 Part F §3.2.8
const ATT_HEADER = 3; // opcode + handle of a write or notification
/** Legacy advertising payload (Core Vol 6 Part B §2.3.1.3): 31 bytes; the Flags AD takes 3, the manufacturer AD's header 4. */
const ADV_PAYLOAD = 31;

/** A non-connectable broadcast as a phone scanning nearby receives it. */
export interface HeardBeacon {
  companyId: number;
  data: Uint8Array;
  intervalMs: number;
}

export class VirtualBleLink {
  #handlers: BleHandlers | undefined;
  #connected = false;
  #closed = false;
  #advertising = false;
  #mtu = ATT_DEFAULT_MTU;
  #info: Uint8Array = new Uint8Array(0);
  #beacon: HeardBeacon | undefined;
  /** What the meter notified, in order (the handheld's inbox). */
  readonly notifications: Uint8Array[] = [];
  onNotify: ((data: Uint8Array) => void) | undefined;
  /** While set, opening the peripheral throws this message (a radio stack that did not start). */
  openFault: string | undefined;
  /** Largest MTU the meter's side accepts in an exchange. */
  readonly maxMtu: number;
  readonly peripheral: BlePeripheral;

  /** `broadcast: false` for a transport that has no advertising (the Wi-Fi port). */
  constructor(options: { maxMtu?: number; broadcast?: boolean } = {}) {
    this.maxMtu = options.maxMtu ?? 247;
    const link = this;
    const broadcast = (beacon: HeardBeacon | undefined) => {
      if (beacon) {
        if (3 + 4 + beacon.data.length > ADV_PAYLOAD)
          throw new RangeError(
            `a beacon of ${beacon.data.length} bytes does not fit the 31-byte advertising payload`,
          );
        if (!(beacon.intervalMs >= 20 && beacon.intervalMs <= 10_240))
          throw new RangeError(`advertising interval ${beacon.intervalMs} ms is outside 20–10 240 ms`);
        if (!Number.isInteger(beacon.companyId) || beacon.companyId < 0 || beacon.companyId > 0xffff)
          throw new RangeError(`company id ${beacon.companyId}`);
      }
      link.#beacon = beacon && { ...beacon, data: beacon.data.slice() };
    };
    this.peripheral = {
      ...(options.broadcast === false ? {} : { broadcast }),
      open(handlers) {
        if (link.openFault !== undefined) throw new Error(link.openFault);
        link.#handlers = handlers;
        link.#closed = false;
      },
      advertise(on) {
        link.#advertising = on;
      },
      setInfo(value) {
        link.#info = value.slice();
      },
      notify(data) {
        if (!link.#connected) return false;
        if (data.length > link.#mtu - ATT_HEADER)
          throw new RangeError(`notification of ${data.length} bytes over MTU ${link.#mtu}`);
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
        link.#advertising = false;
        link.#beacon = undefined;
        if (link.#connected) {
          link.#connected = false;
          link.#handlers?.onDisconnect();
        }
      },
    };
  }

  /** Whether a handheld scanning now would find the meter. */
  get advertising(): boolean {
    return this.#handlers !== undefined && !this.#closed && this.#advertising;
  }

  get connected(): boolean {
    return this.#connected;
  }

  /**
   * What a phone scanning nearby hears of the non-connectable broadcast: the beacon, while it is on
   * air (the stack open, no connectable advertising, no handheld connected); undefined otherwise.
   */
  scanBeacon(): HeardBeacon | undefined {
    if (!this.#handlers || this.#closed || this.#advertising || this.#connected || !this.#beacon)
      return undefined;
    return { ...this.#beacon, data: this.#beacon.data.slice() };
  }

  get mtu(): number {
    return this.#mtu;
  }

  /** The handheld connects (at the default MTU); false when the meter is not advertising. */
  connect(): boolean {
    if (!this.advertising) return false;
    this.#connected = true;
    this.#mtu = ATT_DEFAULT_MTU;
    this.#handlers?.onConnect();
    return true;
  }

  /** The handheld asks for a larger MTU; both sides use the smaller of the two. */
  exchangeMtu(mtu: number): number {
    if (!this.#connected) throw new Error('BLE: not connected');
    this.#mtu = Math.max(ATT_DEFAULT_MTU, Math.min(mtu, this.maxMtu));
    this.#handlers?.onMtu?.(this.#mtu);
    return this.#mtu;
  }

  /** The handheld writes to the meter's control characteristic. */
  write(data: Uint8Array): void {
    if (!this.#connected) throw new Error('BLE: not connected');
    if (data.length > this.#mtu - ATT_HEADER)
      throw new RangeError(`write of ${data.length} bytes over MTU ${this.#mtu}`);
    this.#handlers?.onWrite(data.slice());
  }

  /** Reads the info characteristic (no pairing, no authentication). */
  readInfo(): Uint8Array {
    if (!this.#connected) throw new Error('BLE: not connected');
    return this.#info.slice();
  }

  disconnect(): void {
    if (!this.#connected) return;
    this.#connected = false;
    this.#handlers?.onDisconnect();
  }
}
