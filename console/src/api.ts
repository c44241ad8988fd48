// The platform's operator API as the console calls it: a bearer token from the login kept for the
// tab (sessionStorage), the platform's error shape turned into an ApiError with its message, and
// the fleet's server-sent events read through fetch (an EventSource cannot send the token).

// The platform's roles in order (platform-server/operators/service.ts ROLES): an enforcement officer
// reads the fleet like a viewer and changes nothing in it.
export type Role = 'viewer' | 'enforcement' | 'operator' | 'supervisor' | 'admin';
export const ROLES: Role[] = ['viewer', 'enforcement', 'operator', 'supervisor', 'admin'];
export const roleAtLeast = (have: Role, need: Role) => ROLES.indexOf(have) >= ROLES.indexOf(need);

export interface Operator {
  username: string;
  displayName: string;
  role: Role;
}

export interface FleetRow {
  id: number;
  name: string;
  area: string | null;
  address: string | null;
  latitude: number | null;
  longitude: number | null;
  bays: number | null;
  provisioned: boolean;
  keyEpoch: number;
  lastContactAt: string | null;
  contactSeconds: number;
  contact: 'online' | 'overdue' | 'never';
  light: 'green' | 'amber' | 'red' | 'grey';
  battery: number | null;
  openAlarms: number;
  worstAlarm: string | null;
  occupiedBays: number;
  reportedBays: number;
  firmwareVersion: number | null;
  revenueToday: number;
  currency: number | null;
}

/**
 * The row as of `now`: a meter the platform last saw online turns overdue (and red) once it has
 * been silent for twice its interval, without waiting for the platform to send the row again.
 */
export function asOf(row: FleetRow, now = Date.now()): FleetRow {
  if (row.contact !== 'online' || !row.lastContactAt) return row;
  if (now - Date.parse(row.lastContactAt) <= 2 * row.contactSeconds * 1000) return row;
  return { ...row, contact: 'overdue', light: 'red' };
}

export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

const TOKEN_KEY = 'parklink.console.token';
export const session = {
  get token(): string | null {
    return sessionStorage.getItem(TOKEN_KEY);
  },
  set token(value: string | null) {
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
  },
};

/** Called when the platform answers 401: the session ended (expired, logged out elsewhere). */
export let onSignedOut: () => void = () => {};
export function setSignedOutHandler(handler: () => void): void {
  onSignedOut = handler;
}

export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = {};
  if (session.token) headers.authorization = `Bearer ${session.token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) {
    if (response.status === 401 && !path.endsWith('/login')) onSignedOut();
    throw new ApiError(
      response.status,
      data?.code ?? 'error',
      data?.message ?? `${response.status} ${response.statusText}`,
      data?.field,
    );
  }
  return data as T;
}

export interface FleetEvent {
  kind: 'snapshot' | 'update';
  at: string;
  meters: FleetRow[];
}

/**
 * Follows /api/console/fleet/events until `signal` aborts, calling `onEvent` per event; reconnects
 * after a lost connection (a fresh snapshot then replaces what was shown).
 */
export async function followFleet(
  onEvent: (event: FleetEvent) => void,
  onState: (connected: boolean) => void,
  signal: AbortSignal,
): Promise<void> {
  while (!signal.aborted) {
    try {
      const response = await fetch('/api/console/fleet/events', {
        headers: { authorization: `Bearer ${session.token}`, accept: 'text/event-stream' },
        signal,
      });
      if (response.status === 401) return onSignedOut();
      if (!response.ok || !response.body) throw new Error(`fleet events: ${response.status}`);
      onState(true);
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end = buffer.indexOf('\n\n');
        while (end >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let event = 'message';
          let data = '';
          for (const line of block.split('\n')) {
            if (line.startsWith('event: ')) event = line.slice(7);
            else if (line.startsWith('data: ')) data += line.slice(6);
          }
          if (data && (event === 'snapshot' || event === 'update')) {
            const parsed = JSON.parse(data) as { at: string; meters: FleetRow[] };
            onEvent({ kind: event, at: parsed.at, meters: parsed.meters });
          }
          end = buffer.indexOf('\n\n');
        }
      }
    } catch (error) {
      if (signal.aborted) return;
      console.warn('fleet events lost', error);
    }
    onState(false);
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

const CURRENCIES: Record<number, string> = { 826: 'GBP', 978: 'EUR', 840: 'USD' };
export function money(minor: number, currency: number | null): string {
  const code = currency === null ? undefined : CURRENCIES[currency];
  if (!code) return (minor / 100).toFixed(2);
  return new Intl.NumberFormat('en-GB', { style: 'currency', currency: code }).format(minor / 100);
}

export function ago(iso: string | null, now = Date.now()): string {
  if (!iso) return 'never';
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}
