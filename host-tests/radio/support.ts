// A virtual A7670 on a virtual UART and pins, bridged to a virtual broker, with the driver and
// the MqttLink over it: what the radio tests share.
import { A7670 } from '../../drivers/radio/a7670';
import { ModemLink, type ModemLinkOptions } from '../../drivers/radio/modemLink';
import type { MqttEvents } from '../../hal/mqtt';
import { VirtualPins } from '../../hal/mock/bus';
import { VirtualClock } from '../../hal/mock/clock';
import { VirtualA7670 } from '../../hal/mock/modem/a7670';
import { VirtualBroker, type VirtualMqttLink } from '../../hal/mock/mqtt';
import { VirtualSerialPort } from '../../hal/mock/serial';

export const PINS = Object.freeze({ pwrkey: 4, status: 34, dtr: 21, ri: 35 });
export const UART = 1;
export const PLATFORM_CA = new TextEncoder().encode(
  '-----BEGIN CERTIFICATE-----\nMIIB-parklink-test-root\n-----END CERTIFICATE-----\n',
);

export interface Rig {
  clock: VirtualClock;
  broker: VirtualBroker;
  twin: VirtualA7670;
  modem: A7670;
  link: ModemLink;
  platform: VirtualMqttLink;
  events: { connects: number; disconnects: number; messages: { topic: string; payload: Uint8Array }[] };
  errors: Error[];
  mqttEvents: MqttEvents;
}

export function rig(
  options: Partial<ModemLinkOptions> & {
    ca?: Uint8Array;
    brokerCa?: Uint8Array;
    network?: { now?: () => number; zoneQuarters?: number };
  } = {},
): Rig {
  const clock = new VirtualClock();
  const broker = new VirtualBroker(clock);
  const pins = new VirtualPins();
  const serial = new VirtualSerialPort();
  const twin = new VirtualA7670({
    clock,
    timers: clock,
    pins,
    pinMap: PINS,
    broker,
    brokerCa: options.brokerCa ?? PLATFORM_CA,
    network: options.network,
  });
  serial.attach(UART, twin);
  const modem = new A7670({
    serial: { io: serial.io, port: UART },
    pwrkey: { io: pins.io, pin: PINS.pwrkey },
    status: { io: pins.io, pin: PINS.status },
    dtr: { io: pins.io, pin: PINS.dtr },
    ri: { io: pins.io, pin: PINS.ri },
    timers: clock,
  });
  const errors: Error[] = [];
  const link = new ModemLink({
    modem,
    timers: clock,
    broker: { host: 'mqtt.parklink.example', port: 8883, user: 'meter-7', password: 'secret' },
    clientId: 'meter-7',
    apn: 'iot.example',
    tls: { caName: 'parklink-ca.pem', ca: options.ca ?? PLATFORM_CA },
    onError: (e) => errors.push(e),
    ...options,
  });
  const events: Rig['events'] = { connects: 0, disconnects: 0, messages: [] };
  const mqttEvents: MqttEvents = {
    onConnect: () => events.connects++,
    onDisconnect: () => events.disconnects++,
    onMessage: (topic, payload) => events.messages.push({ topic, payload }),
  };
  const platform = broker.link();
  platform.open({ onConnect() {}, onDisconnect() {}, onMessage() {} });
  return { clock, broker, twin, modem, link, platform, events, errors, mqttEvents };
}

/** Advances the clock in steps of `step` ms until `until()` or `limitMs` has passed. */
export function runUntil(clock: VirtualClock, until: () => boolean, limitMs = 120_000, step = 50): boolean {
  for (let t = 0; t < limitMs; t += step) {
    if (until()) return true;
    clock.advance(step);
  }
  return until();
}
