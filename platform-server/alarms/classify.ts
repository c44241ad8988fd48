// What the meters report, read as alarms: which events and report fields raise an alarm, at which
// severity, on which subject, and which ones say the condition is gone. Pure functions: the alarm
// service (service.ts) applies their signals in the transaction that stores the frame.
import type { SecurityEvent } from '../../protocol/keys';
import type { StatusEvent, StatusReport } from '../../protocol/status';

/** The levels meter vendors use, most severe first. */
export const SEVERITIES = ['security', 'total-fault', 'partial-fault', 'warning', 'technical'] as const;
export type AlarmSeverity = (typeof SEVERITIES)[number];

export interface AlarmRaise {
  type: 'raise';
  kind: string;
  /** What it happened to: a pack, a module, a sensor, a bay; '' for the meter as a whole. */
  subject: string;
  severity: AlarmSeverity;
  detail: string;
  occurredAt: Date;
  /**
   * 'occurrence': each report is a new incident and counts on the open alarm; 'condition': a state
   * reported again (a periodic status report, the sweep) is not counted again.
   */
  repeat: 'occurrence' | 'condition';
}

export interface AlarmClear {
  type: 'clear';
  kind: string;
  /** null: every subject of the kind. */
  subject: string | null;
  detail: string;
}

export type AlarmSignal = AlarmRaise | AlarmClear;

/** Modules without which a meter cannot take a payment: their failure is a total fault. */
const ESSENTIAL_MODULES = new Set(['reader', 'power', 'storage']);

/** Events that are an incident even when reported inactive (nothing to clear later). */
const ONE_OFF = new Set(['watchdog-restart', 'settings-refused']);

/** Warnings that concern the meter's operation rather than the street: technical alarms. */
const TECHNICAL = new Set([
  'watchdog-restart',
  'settings-refused',
  'clock-source-refused',
  'clock-holdover',
  'call-in-failed',
]);

/** Warnings that are security incidents (a stranger's number calling the meter in). */
const SECURITY_WARNINGS = new Set(['call-in-refused']);

/** Enforcement, not the meter's health: left to the bay views. */
const NOT_ALARMS = new Set(['bay-unpaid']);

/** The event an inactive event clears, where its name differs. */
const CLEARS: Record<string, string[]> = {
  'cover-closed': ['cover-opened'],
  'battery-replaced': ['battery-low'],
  'module-repaired': ['module-fault', 'module-failed'],
};

/** A SensorStuckError as the monitor reports it: "sensors/<part>: ... in 6 samples". */
const STUCK = /^sensors\/([^:]{1,64}): .* in \d+ samples$/;
/** "<module>/<part>: ..." from the monitor's fault, escalation and repair events. */
const MODULE_PART = /^([a-z]{1,32})\/([^:]{1,64}):/;
/** "<pack> pack at N %" (battery-low) or "<pack> pack (how)" (battery-replaced). */
const PACK = /^([A-Za-z0-9_-]{1,32}) pack\b/;

const seconds = (s: number) => new Date(s * 1000);
const clip = (text: string, max = 200) => (text.length > max ? text.slice(0, max) : text);

function subjectOf(e: StatusEvent): string {
  if (e.bayId !== undefined) return `bay ${e.bayId}`;
  const pack = PACK.exec(e.detail);
  if (pack && (e.event === 'battery-low' || e.event === 'battery-replaced')) return pack[1];
  const module = MODULE_PART.exec(e.detail);
  if (module && (e.event.startsWith('module-') || e.event === 'escalation')) return module[1];
  return '';
}

/** The alarm signals of one status event (uplink 0x04). */
export function signalsOfStatusEvent(e: StatusEvent): AlarmSignal[] {
  if (NOT_ALARMS.has(e.event)) return [];
  const occurredAt = seconds(e.at);
  const detail = clip(e.detail);
  const stuck = e.event === 'module-fault' ? STUCK.exec(e.detail) : null;
  if (stuck)
    return [
      {
        type: 'raise',
        kind: 'sensor-stuck',
        subject: stuck[1],
        severity: 'partial-fault',
        detail,
        occurredAt,
        repeat: 'occurrence',
      },
    ];
  const subject = subjectOf(e);
  if (e.severity === 'info') {
    if (e.active) return [];
    const cleared: AlarmSignal[] = (CLEARS[e.event] ?? [e.event]).map((kind) => ({
      type: 'clear',
      kind,
      subject,
      detail,
    }));
    // A sensor repaired: whichever of its sensors was stuck is back.
    if (e.event === 'module-repaired' && subject === 'sensors') {
      const part = MODULE_PART.exec(e.detail)?.[2];
      cleared.push({ type: 'clear', kind: 'sensor-stuck', subject: part ?? null, detail });
    }
    return cleared;
  }
  if (!e.active && !ONE_OFF.has(e.event)) return [{ type: 'clear', kind: e.event, subject, detail }];
  let severity: AlarmSeverity;
  let kind = e.event;
  if (e.severity === 'alarm' || SECURITY_WARNINGS.has(e.event)) severity = 'security';
  else if (e.event === 'escalation') {
    // The monitor gave up repairing the module: it is failed until repaired.
    kind = 'module-failed';
    severity = ESSENTIAL_MODULES.has(subject) ? 'total-fault' : 'partial-fault';
  } else if (TECHNICAL.has(e.event)) severity = 'technical';
  else if (e.severity === 'fault') severity = 'partial-fault';
  else severity = 'warning';
  return [{ type: 'raise', kind, subject, severity, detail, occurredAt, repeat: 'occurrence' }];
}

/**
 * The alarm signals of a periodic status report: packs at or below `lowPercent` (battery low,
 * cleared 5 points above it, as the meter's power unit does) and failed modules.
 */
export function signalsOfStatusReport(r: StatusReport, lowPercent: number): AlarmSignal[] {
  const occurredAt = seconds(r.at);
  const signals: AlarmSignal[] = [];
  for (const [pack, percent] of Object.entries(r.battery.packs)) {
    if (!PACK.test(`${pack} pack`)) continue;
    if (percent <= lowPercent)
      signals.push({
        type: 'raise',
        kind: 'battery-low',
        subject: pack,
        severity: 'warning',
        detail: `${pack} pack at ${percent} % (status report)`,
        occurredAt,
        repeat: 'condition',
      });
    else if (percent > lowPercent + 5)
      signals.push({
        type: 'clear',
        kind: 'battery-low',
        subject: pack,
        detail: `${pack} pack at ${percent} %`,
      });
  }
  for (const [module, state] of Object.entries(r.modules)) {
    if (!/^[a-z]{1,32}$/.test(module)) continue;
    if (state === 'failed')
      signals.push({
        type: 'raise',
        kind: 'module-failed',
        subject: module,
        severity: ESSENTIAL_MODULES.has(module) ? 'total-fault' : 'partial-fault',
        detail: `${module} failed (status report)`,
        occurredAt,
        repeat: 'condition',
      });
    else if (state === 'ok') {
      for (const kind of ['module-failed', 'module-fault'])
        signals.push({ type: 'clear', kind, subject: module, detail: `${module} ok (status report)` });
      if (module === 'sensors')
        signals.push({
          type: 'clear',
          kind: 'sensor-stuck',
          subject: null,
          detail: 'sensors ok (status report)',
        });
    }
  }
  return signals;
}

/** The alarm signals of a security event (uplink 0x03): every one but a rotation's acknowledgement. */
export function signalsOfSecurityEvent(e: SecurityEvent): AlarmSignal[] {
  if (e.ev === 'key-epoch') return [];
  return [
    {
      type: 'raise',
      kind: e.ev,
      subject: '',
      severity: 'security',
      detail: clip(e.detail || e.ev),
      occurredAt: seconds(e.at),
      repeat: 'occurrence',
    },
  ];
}
