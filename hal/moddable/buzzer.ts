// A piezo buzzer on an ECMA-419 PWM pin (ESP32 LEDC). The PWM frequency is fixed when the
// instance is made (ECMA-419 PWM has no hz setter), so each tone opens the pin at the tone's
// frequency and drives it at 50 % duty; silence closes it.
import PWM from 'embedded:io/pwm';
import Timer from 'timer';
import type { Buzzer } from '../ui';

type TimerObject = ReturnType<typeof Timer.set>;
// close() is ECMA-419's (modules/io/pwm/esp32/_pwm.js); @moddable/typings 5.6 omits it.
type ClosablePWM = PWM & { close(): void };

export class PwmBuzzer implements Buzzer {
  readonly #pin: number;
  #pwm: ClosablePWM | undefined;
  #timer: TimerObject | undefined;

  constructor(options: { pin: number }) {
    this.#pin = options.pin;
  }

  tone(frequencyHz: number, durationMs: number): void {
    this.stop();
    if (!(frequencyHz > 0) || !(durationMs > 0)) return;
    const pwm = new PWM({ pin: this.#pin, hz: Math.round(frequencyHz) }) as ClosablePWM;
    this.#pwm = pwm;
    pwm.write(2 ** (pwm.resolution - 1)); // half of full scale: the loudest square wave
    this.#timer = Timer.set(() => {
      this.#timer = undefined;
      this.stop();
    }, durationMs);
  }

  stop(): void {
    Timer.clear(this.#timer);
    this.#timer = undefined;
    const pwm = this.#pwm;
    this.#pwm = undefined;
    if (pwm) {
      pwm.write(0);
      pwm.close();
    }
  }
}
