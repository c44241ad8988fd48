// The handheld service's Wi-Fi port (docs/handheld.md) on Moddable's `socket` module: a TCP
// listener for one handheld at a time on the board's Wi-Fi. The same chunks as over BLE travel
// each behind a 2-byte big-endian length; the "MTU" is WIFI_MTU, so the chunks are large. While the
// link is off (no advertise(true)) a connection is closed at once. The info characteristic's value
// is the answer to an 'info' message here.
import { Listener, Socket } from 'socket';
import type { BleHandlers, BlePeripheral } from '../ble';

/** The port the handheld connects to. */
export const WIFI_PORT = 8738;
/** Chunks of 1024 bytes (the handheld link takes MTU − 3). */
export const WIFI_MTU = 1027;
const MESSAGE_DATA_RECEIVED = 2;
const MESSAGE_DISCONNECT = -1;
const MESSAGE_ERROR = -2;

function accept(listener: Listener) {
  return new Socket({ listener });
}
type TcpSocket = ReturnType<typeof accept>;
/** socket.js gives Listener close() ("xs_listener_close"); the SDK's typings leave it out. */
type ClosableListener = Listener & { close?(): void };

export class ModdableWifiPort implements BlePeripheral {
  readonly #port: number;
  #listener: ClosableListener | undefined;
  #socket: TcpSocket | undefined;
  #handlers: BleHandlers | undefined;
  #on = false;
  #pending = new Uint8Array(0);

  constructor(port = WIFI_PORT) {
    this.#port = port;
  }

  open(handlers: BleHandlers): void {
    this.#handlers = handlers;
    const self = this;
    const listener = new Listener({ port: this.#port });
    listener.callback = function (this: Listener) {
      self.#accept(accept(this));
    };
    this.#listener = listener;
  }

  advertise(on: boolean): void {
    this.#on = on;
  }

  setInfo(_value: Uint8Array): void {
    // A TCP port has no readable characteristic: the handheld asks with an 'info' message.
  }

  notify(data: Uint8Array): boolean {
    const socket = this.#socket;
    if (!socket) return false;
    socket.write(data.length >> 8, data.length & 0xff, data.slice().buffer);
    return true;
  }

  disconnect(): void {
    const socket = this.#socket;
    if (!socket) return;
    this.#socket = undefined;
    socket.close();
    this.#handlers?.onDisconnect();
  }

  close(): void {
    this.#socket?.close();
    this.#socket = undefined;
    this.#listener?.close?.();
    this.#listener = undefined;
    this.#on = false;
  }

  #accept(socket: TcpSocket): void {
    if (!this.#on || this.#socket) {
      socket.close(); // off, or a handheld already connected
      return;
    }
    this.#socket = socket;
    this.#pending = new Uint8Array(0);
    socket.callback = (message: number) => {
      if (message === MESSAGE_DATA_RECEIVED) this.#read(socket);
      else if (message === MESSAGE_DISCONNECT || message === MESSAGE_ERROR) {
        if (this.#socket !== socket) return;
        this.#socket = undefined;
        this.#handlers?.onDisconnect();
      }
    };
    this.#handlers?.onConnect();
    this.#handlers?.onMtu?.(WIFI_MTU);
  }

  /** Splits what arrived into length-prefixed chunks for the handheld link. */
  #read(socket: TcpSocket): void {
    const bytes = new Uint8Array(socket.read(ArrayBuffer));
    const all = new Uint8Array(this.#pending.length + bytes.length);
    all.set(this.#pending, 0);
    all.set(bytes, this.#pending.length);
    let at = 0;
    while (all.length - at >= 2) {
      const length = (all[at] << 8) | all[at + 1];
      if (length === 0 || length > WIFI_MTU - 3) {
        this.disconnect(); // not our framing: drop the connection
        return;
      }
      if (all.length - at - 2 < length) break;
      this.#handlers?.onWrite(all.slice(at + 2, at + 2 + length));
      at += 2 + length;
    }
    this.#pending = all.slice(at);
  }
}
