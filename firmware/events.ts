// The events units exchange over the meter's bus.
import type { MeterRecord } from '../protocol/records';

export type KeyName = 'bay' | 'up' | 'down' | 'ok' | 'cancel';

export interface PaymentResult {
  bayId: number;
  minutes: number;
  charge: number;
  paidUntil: number;
  remainingValue: number;
  cardNumber: string;
}

export interface MeterEvents {
  fault: { unit: string; error: unknown };
  key: { key: KeyName };
  'selection-changed': { bayId: number; minutes: number; charge: number };
  'awaiting-card': { bayId: number; minutes: number; charge: number };
  'payment-accepted': PaymentResult;
  'payment-refused': { reason: string; message: string; cardNumber: string | null };
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
  /** An authenticated downlink other than an ack, for the unit that owns its type. */
  downlink: { type: number; seq: number; body: Uint8Array };
}
