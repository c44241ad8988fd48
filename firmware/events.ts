// The events units exchange over the meter's bus.
import type { MeterRecord } from '../protocol/records';
import type { ModuleState, StatusEvent } from '../protocol/status';

export type KeyName = 'bay' | 'up' | 'down' | 'ok' | 'cancel';

export interface PaymentResult {
  bayId: number;
  minutes: number;
  charge: number;
  paidUntil: number;
  remainingValue: number;
  /** The card's last four digits (the meter keeps no more of its number). */
  cardLast4: string;
  /** The receipt code of the sale's record ("1001-42-7KQ4-M2XD"), for the receipt page online. */
  receiptCode?: string;
}

export interface MeterEvents {
  fault: { unit: string; error: unknown };
  key: { key: KeyName };
  'selection-changed': {
    bayId: number;
    minutes: number;
    charge: number;
    /** Why nothing can be sold on this bay now (free, restricted, no sale…), from the tariff. */
    refusal?: { reason: string; message: string };
  };
  'awaiting-card': { bayId: number; minutes: number; charge: number };
  'payment-accepted': PaymentResult;
  'payment-refused': { reason: string; message: string; cardLast4: string | null };
  'selection-cancelled': { reason: string };
  'record-appended': { record: MeterRecord };
  'upload-sent': { firstSeq: number; lastSeq: number; frameSeq: number };
  'upload-acknowledged': { seq: number };
  'downlink-refused': { reason: string };
  /** Sales stopped (storage full...) until 'service-available'. */
  'service-unavailable': { reason: string };
  'service-available': Record<string, never>;
  /** Unacknowledged records discarded under an operator's release token. */
  'upload-released': { fromSeq: number; toSeq: number; operator: string };
  /** A remote renewal (pay by phone) applied to a bay by registration management. */
  'renewal-applied': {
    renewalId: string;
    authorisation: string;
    bayId: number;
    minutes: number;
    charge: number;
    paidUntil: number;
  };
  /** Tariffs and modes: a 0x85 downlink applied or refused by charging (43). */
  'tariff-applied': { id: string; version: number };
  'tariff-refused': { kind: string; version: number; reason: string };
  /** A line from the platform for the display (weather, road works), from and until epoch seconds. */
  'platform-message': { text: string; from?: number; until?: number };
  /** Bay modes (suspended, free, no parking…) with their windows, set by the platform (0x85 'bays'). */
  'bay-modes-changed': { bayIds: number[] };
  /** A bay taken out of (or back into) service by the platform. */
  'bay-availability': { bayId: number; available: boolean };
  /** Key input (42): card type chosen while the meter waits for a card (0 any, 1 debit, 2 credit, 3 prepaid). */
  'card-type-selected': { cardType: 0 | 1 | 2 | 3 };
  /** The driver asked for a receipt of the payment just made. */
  'receipt-requested': PaymentResult;
  /** Mode key subunit: the maintenance sequence is being entered, was right, wrong, or is locked out. */
  'maintenance-entry': Record<string, never>;
  'maintenance-opened': { at: number };
  'maintenance-refused': { attempts: number; left: number };
  'maintenance-locked': { untilMonotonic: number };
  /** Sleep: idle time switched the power consumers off; a key switched them on. */
  sleep: Record<string, never>;
  wake: { reason: string };
  /** State of charge for the display, from hybrid power (416). */
  battery: { percent: number; charging?: boolean };
  /** Tamper detected by security and environment (48): notification plays the tamper pattern. */
  tamper: { source: string };
  /** The cover's light sensor saw light (security and environment, 48): `at` is the edge, monotonic ms. */
  'cover-opened': { at: number };
  /** Security management (47) zeroised the keys after a tamper, `afterMs` after the sensor edge. */
  'keys-wiped': { afterMs: number };
  /** Maintenance mode opened (handheld token proven and mode keys entered) or ended. */
  'maintenance-mode': { open: boolean; staff: string };
  /** Per bay, from notification (415): paid time ran out, grace ran out (overtime begins). */
  'bay-expired': { bayId: number; at: number; graceUntil: number };
  'bay-overtime': { bayId: number; since: number };
  /** An authenticated downlink other than an ack, for the unit that owns its type. */
  downlink: { type: number; seq: number; body: Uint8Array };
  /** Security & environment (48): the cover went dark again (monotonic ms). */
  'cover-closed': { at: number };
  /** A guard threshold crossed (active) or back within bounds: tilt, vibration, over-temperature, humidity, air-quality. */
  'guard-alarm': { kind: string; active: boolean; value: number; at: number };
  /** A bay's magnetometer saw a vehicle arrive or leave (debounced); `paid` at that moment. */
  'bay-occupancy': { bayId: number; occupied: boolean; paid: boolean; at: number };
  /** A vehicle stands in a bay without a paid session (enforcement). */
  'bay-unpaid': { bayId: number; since: number };
  /** A session ended before its paid time: the vehicle left and the time is non-transferable. */
  'bay-session-ended': { bayId: number; at: number; paidUntil: number; reason: string };
  fan: { on: boolean; temperature: number };
  /** Hybrid power (416): the pack feeding the meter and every pack's state of charge. */
  'power-status': { source: string; packs: Record<string, number>; millivolts?: number };
  'power-source': { from: string; to: string; reason: string };
  /** Monitoring engine (413): a module's state changed. */
  'module-state': { module: string; state: ModuleState; detail: string };
  /** The platform's call or SMS asking the meter to connect (accepted), or anyone else's (refused). */
  'call-in': { kind: 'call' | 'sms'; number: string; accepted: boolean };
  /** Time management (414): a time source corrected or confirmed the clock, or was not believed. */
  'time-synced': {
    source: string;
    offsetMs: number;
    how: 'stepped' | 'slewed' | 'confirmed';
    driftPpm: number;
  };
  'time-refused': { source: string; reason: string; detail: string; offsetMs?: number };
  /** The wall clock jumped by deltaMs (a step, not a slew): day accounting re-bases on it. */
  'clock-stepped': { deltaMs: number };
  /** An event for the platform (uplink 0x04), sent by the meter's status channel (units/monitor.ts). */
  'status-event': StatusEvent;
}
