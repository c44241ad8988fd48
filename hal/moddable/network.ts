// Joins the Wi-Fi network the factory provisioned, through the ECMA-419 network interface
// (embedded:network/interface/wifi, as the SDK's own setup/network does with build-time
// settings). The meter's MQTT link retries on its own, so joining only reports and rejoins.
import WiFi from 'embedded:network/interface/wifi';
import Timer from 'timer';

/** The interface's connection code: 400s associated, 500 and up an address (as the SDK's setup/network reads it). */
const ADDRESS_ASSIGNED = 500;
const REJOIN_MS = 10_000;

export interface WifiSettings {
  ssid: string;
  password?: string;
}

export class WifiStation {
  readonly #settings: WifiSettings;
  readonly #wifi: WiFi;
  readonly #onChange: (up: boolean, detail: string) => void;
  #up = false;

  constructor(settings: WifiSettings, onChange: (up: boolean, detail: string) => void) {
    this.#settings = settings;
    this.#onChange = onChange;
    const station = this;
    this.#wifi = new WiFi({
      onChanged() {
        station.#changed();
      },
    });
    this.#join();
  }

  get up(): boolean {
    return this.#up;
  }

  #join(): void {
    const { ssid, password } = this.#settings;
    this.#wifi.connect(password ? { SSID: ssid, password } : { SSID: ssid });
  }

  #changed(): void {
    const up = this.#wifi.connection >= ADDRESS_ASSIGNED;
    if (up === this.#up) return;
    this.#up = up;
    this.#onChange(up, up ? `address ${this.#wifi.address}` : `lost "${this.#settings.ssid}"`);
    if (!up) {
      // A dropped association is not retried by the interface: ask again after a pause.
      Timer.set(() => {
        if (!this.#up) this.#join();
      }, REJOIN_MS);
    }
  }

  close(): void {
    this.#wifi.close();
  }
}
