// Key input (42): the momentary buttons, active low with pull-ups, debounced in software. Each
// accepted press is a 'key' event on the bus.
import type { Clock } from '../../hal/clock';
import type { Digital, DigitalOptions, IOClass } from '../../hal/io';
import type { EventBus } from '../bus';
import type { KeyName, MeterEvents } from '../events';

const DEBOUNCE_MS = 30; // longer than the contact bounce of common tactile switches (5–20 ms)
const FALLING = 2; // ECMA-419 Digital.Falling

export interface KeyInputOptions {
  Digital: IOClass<Digital, DigitalOptions>;
  pins: Readonly<Record<KeyName, number>>;
  clock: Clock;
  bus: EventBus<MeterEvents>;
}

export class KeyInputUnit {
  readonly #pins: Digital[] = [];
  readonly #lastPress = new Map<KeyName, number>();

  constructor(options: KeyInputOptions) {
    const { Digital, pins, clock, bus } = options;
    for (const key of Object.keys(pins) as KeyName[]) {
      const lastPress = this.#lastPress;
      this.#pins.push(
        new Digital({
          pin: pins[key],
          mode: 'inputPullUp',
          edge: FALLING,
          onReadable() {
            const now = clock.monotonic();
            const last = lastPress.get(key);
            if (last !== undefined && now - last < DEBOUNCE_MS) return;
            lastPress.set(key, now);
            bus.emit('key', { key });
          },
        }),
      );
    }
  }

  close(): void {
    for (const pin of this.#pins.splice(0)) pin.close();
  }
}
