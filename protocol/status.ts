// Status, sensor events and settings between a meter and the platform: uplink frame type
// 0x04 carries a status report or a guard/power/monitor event; downlink 0x84 carries the guard's
// settings (sampling schedule and thresholds). Bodies are CBOR maps with short keys; numbers are
// integers (tenths where a unit says so) so the encoding stays deterministic under XS and Node.
import { decodeCbor, encodeCbor } from './cbor';
import { ProtocolError } from './errors';

export const STATUS_FRAME = 0x04;
export const SETTINGS_FRAME = 0x84;

export type ModuleState = 'ok' | 'degraded' | 'failed' | 'repairing' | 'absent';

export interface StatusReport {
  kind: 'status';
  /** Epoch seconds. */
  at: number;
  battery: {
    /** The pack now feeding the meter. */
    source: string;
    /** State of charge per pack, percent. */
    packs: Record<string, number>;
    /** Cell voltage of the source, millivolts. */
    millivolts?: number;
  };
  /** Latest readings: tenths of °C and %RH, lux, AQI (1..5), TVOC ppb, eCO2 ppm, tilt in tenths of a degree. */
  sensors: Record<string, number>;
  modules: Record<string, ModuleState>;
  /** Open faults (module names). */
  faults: string[];
  /** Per bay: occupied, since (epoch s), paid. */
  bays: { bayId: number; occupied: boolean; since: number; paid: boolean }[];
  fan: boolean;
  /** Settings version in force. */
  settings: number;
}

export type EventSeverity = 'alarm' | 'warning' | 'info' | 'fault';

export interface StatusEvent {
  kind: 'event';
  at: number;
  /** tilt, vibration, over-temperature, humidity, air-quality, cover-opened, bay-unpaid, bay-vacated,
   * battery-low, battery-replaced, pack-switched, module-fault, module-repaired, escalation, watchdog-restart… */
  event: string;
  severity: EventSeverity;
  /** Whether the condition is now present (an alarm raised) or gone (cleared). */
  active: boolean;
  value?: number;
  bayId?: number;
  detail: string;
}

export type StatusMessage = StatusReport | StatusEvent;

/** An event at `nowMs` (wall clock); `value` and `bayId` appear only when given (and finite). */
export function statusEvent(
  nowMs: number,
  event: string,
  severity: EventSeverity,
  active: boolean,
  detail: string,
  value?: number,
  bayId?: number,
): StatusEvent {
  const e: StatusEvent = { kind: 'event', at: Math.floor(nowMs / 1000), event, severity, active, detail };
  if (value !== undefined && Number.isFinite(value)) e.value = value;
  if (bayId !== undefined) e.bayId = bayId;
  return e;
}

export interface GuardSettings {
  version: number;
  /** Environment and security sampling period, seconds. */
  sampleSeconds: number;
  /** Bay magnetometer period, seconds. */
  baySeconds: number;
  /** Status report period, seconds. */
  statusSeconds: number;
  thresholds: {
    tiltDegrees: number;
    vibrationG: number;
    temperatureHigh: number;
    /** The fan switches on above fanOn °C and off below fanOff °C (hysteresis). */
    fanOn: number;
    fanOff: number;
    humidityHigh: number;
    /** AQI-UBA at or above which air quality is an alarm (1..5). */
    aqi: number;
    /** Light on the cover sensor above which the cover counts as open, lux. */
    coverLux: number;
    /** Field change from the baseline that means a vehicle, µT. */
    vehicleMicroTesla: number;
  };
}

export const DEFAULT_SETTINGS: GuardSettings = Object.freeze({
  version: 0,
  sampleSeconds: 60,
  baySeconds: 5,
  statusSeconds: 3600,
  thresholds: Object.freeze({
    tiltDegrees: 15,
    vibrationG: 0.5,
    temperatureHigh: 60,
    fanOn: 45,
    fanOff: 40,
    humidityHigh: 90,
    aqi: 4,
    coverLux: 5,
    vehicleMicroTesla: 12,
  }),
}) as GuardSettings;

const tenths = (v: number) => Math.round(v * 10);

export function encodeStatusMessage(m: StatusMessage): Uint8Array {
  if (m.kind === 'event') {
    const body: Record<string, unknown> = {
      k: 'e',
      t: m.at,
      ev: m.event,
      sev: m.severity,
      on: m.active,
      d: m.detail,
    };
    if (m.value !== undefined) body.val = tenths(m.value);
    if (m.bayId !== undefined) body.bay = m.bayId;
    return encodeCbor(body);
  }
  const sensors: Record<string, number> = {};
  for (const [k, v] of Object.entries(m.sensors)) sensors[k] = tenths(v);
  return encodeCbor({
    k: 's',
    t: m.at,
    bat: {
      src: m.battery.source,
      p: m.battery.packs,
      ...(m.battery.millivolts !== undefined ? { mv: m.battery.millivolts } : {}),
    },
    sen: sensors,
    mod: m.modules,
    f: m.faults,
    bays: m.bays.map((b) => [b.bayId, b.occupied ? 1 : 0, b.since, b.paid ? 1 : 0]),
    fan: m.fan,
    set: m.settings,
  });
}

function field<T>(ok: boolean, value: unknown, name: string): T {
  if (!ok) throw new ProtocolError('bad-field', `status message field ${name}`);
  return value as T;
}

const isInt = (v: unknown): v is number => Number.isInteger(v);
const isMap = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);

export function decodeStatusMessage(bytes: Uint8Array): StatusMessage {
  const m = decodeCbor(bytes);
  if (!isMap(m)) throw new ProtocolError('bad-field', 'status message is not a map');
  const at = field<number>(isInt(m.t) && (m.t as number) >= 0, m.t, 't');
  if (m.k === 'e') {
    const event: StatusEvent = {
      kind: 'event',
      at,
      event: field<string>(typeof m.ev === 'string' && m.ev.length > 0 && m.ev.length <= 40, m.ev, 'ev'),
      severity: field<EventSeverity>(
        ['alarm', 'warning', 'info', 'fault'].includes(m.sev as string),
        m.sev,
        'sev',
      ),
      active: field<boolean>(typeof m.on === 'boolean', m.on, 'on'),
      detail: field<string>(typeof m.d === 'string' && m.d.length <= 200, m.d, 'd'),
    };
    if (m.val !== undefined) event.value = field<number>(isInt(m.val), m.val, 'val') / 10;
    if (m.bay !== undefined) event.bayId = field<number>(isInt(m.bay), m.bay, 'bay');
    return event;
  }
  if (m.k !== 's') throw new ProtocolError('bad-field', `status message kind ${String(m.k)}`);
  const bat = field<Record<string, unknown>>(isMap(m.bat), m.bat, 'bat');
  const packs = field<Record<string, number>>(
    isMap(bat.p) && Object.values(bat.p).every(isInt),
    bat.p,
    'bat.p',
  );
  const sen = field<Record<string, number>>(isMap(m.sen) && Object.values(m.sen).every(isInt), m.sen, 'sen');
  const sensors: Record<string, number> = {};
  for (const [k, v] of Object.entries(sen)) sensors[k] = v / 10;
  const bays = field<unknown[]>(Array.isArray(m.bays), m.bays, 'bays').map((b) => {
    const row = field<number[]>(Array.isArray(b) && b.length === 4 && b.every(isInt), b, 'bays[]');
    return { bayId: row[0], occupied: row[1] === 1, since: row[2], paid: row[3] === 1 };
  });
  return {
    kind: 'status',
    at,
    battery: {
      source: field<string>(typeof bat.src === 'string', bat.src, 'bat.src'),
      packs,
      ...(bat.mv !== undefined ? { millivolts: field<number>(isInt(bat.mv), bat.mv, 'bat.mv') } : {}),
    },
    sensors,
    modules: field<Record<string, ModuleState>>(isMap(m.mod), m.mod, 'mod'),
    faults: field<string[]>(Array.isArray(m.f) && m.f.every((f) => typeof f === 'string'), m.f, 'f'),
    bays,
    fan: field<boolean>(typeof m.fan === 'boolean', m.fan, 'fan'),
    settings: field<number>(isInt(m.set), m.set, 'set'),
  };
}

export function encodeSettings(s: GuardSettings): Uint8Array {
  const t = s.thresholds;
  return encodeCbor({
    v: s.version,
    si: s.sampleSeconds,
    bi: s.baySeconds,
    st: s.statusSeconds,
    th: {
      tilt: tenths(t.tiltDegrees),
      vib: tenths(t.vibrationG),
      tmax: tenths(t.temperatureHigh),
      fon: tenths(t.fanOn),
      foff: tenths(t.fanOff),
      rh: tenths(t.humidityHigh),
      aqi: t.aqi,
      lux: tenths(t.coverLux),
      veh: tenths(t.vehicleMicroTesla),
    },
  });
}

/** Decodes and checks a settings downlink: a bad value is refused whole (nothing half-applied). */
export function decodeSettings(bytes: Uint8Array): GuardSettings {
  const m = decodeCbor(bytes);
  if (!isMap(m) || !isMap(m.th)) throw new ProtocolError('bad-field', 'settings are not a map with th');
  const th = m.th;
  const int = (v: unknown, name: string, min: number, max: number) =>
    field<number>(isInt(v) && (v as number) >= min && (v as number) <= max, v, name);
  const settings: GuardSettings = {
    version: int(m.v, 'v', 0, 0xffffffff),
    sampleSeconds: int(m.si, 'si', 1, 86_400),
    baySeconds: int(m.bi, 'bi', 1, 3_600),
    statusSeconds: int(m.st, 'st', 60, 7 * 86_400),
    thresholds: {
      tiltDegrees: int(th.tilt, 'th.tilt', 10, 900) / 10,
      vibrationG: int(th.vib, 'th.vib', 1, 160) / 10,
      temperatureHigh: int(th.tmax, 'th.tmax', 0, 1250) / 10,
      fanOn: int(th.fon, 'th.fon', -400, 1250) / 10,
      fanOff: int(th.foff, 'th.foff', -400, 1250) / 10,
      humidityHigh: int(th.rh, 'th.rh', 0, 1000) / 10,
      aqi: int(th.aqi, 'th.aqi', 1, 5),
      coverLux: int(th.lux, 'th.lux', 1, 1_000_000) / 10,
      vehicleMicroTesla: int(th.veh, 'th.veh', 10, 10_000) / 10,
    },
  };
  if (settings.thresholds.fanOff >= settings.thresholds.fanOn)
    throw new ProtocolError('bad-field', 'fan off threshold must be below the on threshold');
  return settings;
}
