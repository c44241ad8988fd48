// What a driver says back: SMS text ("EXTEND 30", "YES", "STATUS", "STOP", "HELP") and the digits
// pressed in the voice menu (IVRS). Anything else is 'unknown', which earns a helpful reply.

export type Intent =
  | { kind: 'extend'; minutes: number | undefined }
  | { kind: 'status' }
  | { kind: 'stop' }
  | { kind: 'help' }
  | { kind: 'unknown'; text: string };

const EXTEND = /^(?:EXTEND|RENEW|EXT|ADD|MORE)(?:\s+(?:BY\s+)?(\d{1,4})\s*(?:M|MIN|MINS|MINUTE|MINUTES)?)?$/;

export function parseSms(text: string): Intent {
  const t = text
    .trim()
    .toUpperCase()
    .replace(/\s+/g, ' ')
    .replace(/[.!]+$/, '');
  const extend = EXTEND.exec(t);
  if (extend) return { kind: 'extend', minutes: extend[1] === undefined ? undefined : Number(extend[1]) };
  if (/^\d{1,4}$/.test(t)) return { kind: 'extend', minutes: Number(t) };
  if (/^(?:YES|Y|OK)$/.test(t)) return { kind: 'extend', minutes: undefined };
  if (/^(?:STATUS|TIME|WHEN)$/.test(t)) return { kind: 'status' };
  if (/^(?:STOP|NO|CANCEL)$/.test(t)) return { kind: 'stop' };
  if (/^(?:HELP|\?|INFO)$/.test(t)) return { kind: 'help' };
  return { kind: 'unknown', text: text.slice(0, 160) };
}

export const SMS_HELP =
  'ParkLink: reply EXTEND 30 (or any minutes) to add time to your parking, STATUS for your expiry time, STOP to end alerts for this session.';

/** The voice menu: keys and what they do. */
export const IVR_OPTIONS = Object.freeze({ '1': 30, '2': 60 } as Record<string, number>);

export function ivrMenu(): string {
  return 'Press 1 to extend 30 minutes. Press 2 to extend 60 minutes. Press 3 to hear your expiry time. Press 9 to hear this menu again.';
}

export function parseDtmf(digits: string): Intent {
  const d = digits.replace(/[^0-9*#]/g, '');
  if (d === '' || d === '9' || d === '*') return { kind: 'help' };
  if (d in IVR_OPTIONS) return { kind: 'extend', minutes: IVR_OPTIONS[d] };
  if (d === '3') return { kind: 'status' };
  return { kind: 'unknown', text: d };
}
