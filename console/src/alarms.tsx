// The alarm inbox (#/alarms, #/alarms?meter=ID, #/alarms?area=NAME): every alarm of the fleet with
// its severity and state, filters, and per alarm its history; operators acknowledge and resolve,
// supervisors assign. Below it, time to acknowledge and time to repair per meter or per area, and
// the forwarding rules (supervisors read them, admins create and disable them). The list is read
// again whenever the fleet's event stream brings a change, so a new alarm shows without a reload,
// and every 30 s for changes that leave the meters' rows alone.
import { useEffect, useState } from 'preact/hooks';
import { ago, api, ApiError, type Operator, roleAtLeast } from './api';
import { useFleet } from './hooks';
import { useApi } from './meter';
import type { FleetStore } from './store';

export const SEVERITIES = ['security', 'total-fault', 'partial-fault', 'warning', 'technical'] as const;
export type Severity = (typeof SEVERITIES)[number];
const SEVERITY_WORDS: Record<Severity, string> = {
  security: 'Security',
  'total-fault': 'Total fault',
  'partial-fault': 'Partial fault',
  warning: 'Warning',
  technical: 'Technical',
};
const STATES = ['active', 'open', 'acknowledged', 'resolved', 'all'] as const;

export interface Alarm {
  id: number;
  meterId: number;
  meterName: string;
  area: string | null;
  kind: string;
  subject: string;
  severity: Severity;
  detail: string;
  state: 'open' | 'acknowledged' | 'resolved';
  raisedAt: string;
  lastAt: string;
  occurrences: number;
  clearedAt: string | null;
  acknowledgedAt: string | null;
  acknowledgedBy: string | null;
  assignedTo: string | null;
  resolvedAt: string | null;
  resolvedBy: string | null;
  resolution: string | null;
}

interface History {
  at: string;
  action: string;
  actor: string;
  note: string | null;
}

/** The query part of the hash (#/alarms?meter=1001) as parameters. */
export function hashParams(hash: string): URLSearchParams {
  const q = hash.indexOf('?');
  return new URLSearchParams(q < 0 ? '' : hash.slice(q + 1));
}

const duration = (s: number | null) => {
  if (s === null) return '—';
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
};

function AlarmDetail({
  alarm,
  operator,
  onChanged,
}: {
  alarm: Alarm;
  operator: Operator;
  onChanged: () => void;
}) {
  const detail = useApi<Alarm & { history: History[] }>(`/api/alarms/${alarm.id}`, [
    alarm.state,
    alarm.assignedTo,
  ]);
  const [note, setNote] = useState('');
  const [assignee, setAssignee] = useState(alarm.assignedTo ?? '');
  const [error, setError] = useState<ApiError | null>(null);
  const [done, setDone] = useState<string | null>(null);
  const run = async (what: string, path: string, body: unknown) => {
    setError(null);
    setDone(null);
    try {
      await api('POST', `/api/alarms/${alarm.id}/${path}`, body);
      setDone(what);
      setNote('');
      onChanged();
      detail.reload();
    } catch (e) {
      setError(e instanceof ApiError ? e : new ApiError(0, 'error', String(e)));
    }
  };
  const canHandle = roleAtLeast(operator.role, 'operator') && alarm.state !== 'resolved';
  const canAssign = roleAtLeast(operator.role, 'supervisor') && alarm.state !== 'resolved';
  return (
    <div class="alarm-detail">
      <h3>History of alarm {alarm.id}</h3>
      {detail.error && <p class="error">{detail.error}</p>}
      <ol aria-label={`History of alarm ${alarm.id}`}>
        {detail.data?.history.map((h) => (
          <li key={`${h.at}${h.action}`}>
            {new Date(h.at).toLocaleString('en-GB')}: {h.action} by {h.actor}
            {h.note ? ` — ${h.note}` : ''}
          </li>
        ))}
      </ol>
      {alarm.resolution && <p>Resolution: {alarm.resolution}</p>}
      {canHandle && (
        <div class="alarm-actions">
          <label>
            Note
            <input
              value={note}
              maxLength={1000}
              aria-invalid={error?.field === 'note' ? 'true' : undefined}
              onInput={(e) => setNote(e.currentTarget.value)}
            />
          </label>
          {alarm.state === 'open' && (
            <button type="button" onClick={() => run('Acknowledged.', 'acknowledge', note ? { note } : {})}>
              Acknowledge
            </button>
          )}
          <button
            type="button"
            onClick={() =>
              note.trim()
                ? run('Resolved.', 'resolve', { note })
                : setError(new ApiError(400, 'note-required', 'a resolution needs a note', 'note'))
            }
          >
            Resolve
          </button>
        </div>
      )}
      {canAssign && (
        <form
          class="alarm-actions"
          aria-label={`Assign alarm ${alarm.id}`}
          onSubmit={(e) => {
            e.preventDefault();
            void run(assignee ? `Assigned to ${assignee}.` : 'Unassigned.', 'assign', {
              operator: assignee || null,
            });
          }}
        >
          <label>
            Assign to (user name)
            <input value={assignee} onInput={(e) => setAssignee(e.currentTarget.value)} />
          </label>
          <button type="submit">Assign</button>
        </form>
      )}
      {error && (
        <p role="alert" class="error">
          {error.message}
        </p>
      )}
      {done && <p role="status">{done}</p>}
    </div>
  );
}

function ResponseTimes({ version }: { version: unknown }) {
  const [by, setBy] = useState<'meter' | 'area'>('meter');
  const times = useApi<{
    rows: {
      key: number | string | null;
      alarms: number;
      acknowledged: number;
      resolved: number;
      meanAcknowledgeSeconds: number | null;
      maxAcknowledgeSeconds: number | null;
      meanRepairSeconds: number | null;
      maxRepairSeconds: number | null;
    }[];
  }>(`/api/alarms/response-times?by=${by}`, [version]);
  return (
    <section aria-labelledby="times-title">
      <h2 id="times-title">Time to acknowledge and to repair (30 days)</h2>
      <label>
        Per
        <select value={by} onChange={(e) => setBy(e.currentTarget.value as 'meter' | 'area')}>
          <option value="meter">meter</option>
          <option value="area">area</option>
        </select>
      </label>
      {times.error && <p class="error">{times.error}</p>}
      <table aria-label="Response times">
        <thead>
          <tr>
            <th scope="col">{by === 'meter' ? 'Meter' : 'Area'}</th>
            <th scope="col">Alarms</th>
            <th scope="col">Acknowledged</th>
            <th scope="col">Mean TTA</th>
            <th scope="col">Max TTA</th>
            <th scope="col">Resolved</th>
            <th scope="col">Mean TTR</th>
            <th scope="col">Max TTR</th>
          </tr>
        </thead>
        <tbody>
          {times.data?.rows.map((r) => (
            <tr key={String(r.key)}>
              <th scope="row">{r.key ?? 'no area'}</th>
              <td>{r.alarms}</td>
              <td>{r.acknowledged}</td>
              <td>{duration(r.meanAcknowledgeSeconds)}</td>
              <td>{duration(r.maxAcknowledgeSeconds)}</td>
              <td>{r.resolved}</td>
              <td>{duration(r.meanRepairSeconds)}</td>
              <td>{duration(r.maxRepairSeconds)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {times.data?.rows.length === 0 && <p>No alarms in the period.</p>}
    </section>
  );
}

interface Rule {
  id: number;
  name: string;
  channel: 'email' | 'sms' | 'webhook';
  destination: string;
  hasSecret: boolean;
  minSeverity: Severity;
  area: string | null;
  enabled: boolean;
  createdBy: string;
}

const DESTINATION_HINT = {
  email: 'E-mail address',
  sms: 'Phone number (international, +44…)',
  webhook: 'Webhook URL (https://…)',
};

function ForwardingRules({ operator }: { operator: Operator }) {
  const rules = useApi<{ rules: Rule[] }>('/api/alarm-rules');
  const admin = roleAtLeast(operator.role, 'admin');
  const [form, setForm] = useState({
    name: '',
    channel: 'email' as Rule['channel'],
    destination: '',
    minSeverity: 'total-fault' as Severity,
    area: '',
    secret: '',
  });
  const [error, setError] = useState<ApiError | null>(null);
  const [done, setDone] = useState<string | null>(null);
  const set = (k: keyof typeof form, v: string) => setForm({ ...form, [k]: v });
  const create = async (e: Event) => {
    e.preventDefault();
    setError(null);
    setDone(null);
    try {
      const rule = await api<Rule>('POST', '/api/alarm-rules', {
        name: form.name,
        channel: form.channel,
        destination: form.destination,
        minSeverity: form.minSeverity,
        ...(form.area ? { area: form.area } : {}),
        ...(form.channel === 'webhook' && form.secret ? { secret: form.secret } : {}),
      });
      setDone(`Rule ${rule.name} created.`);
      rules.reload();
    } catch (e) {
      setError(e instanceof ApiError ? e : new ApiError(0, 'error', String(e)));
    }
  };
  const remove = async (rule: Rule) => {
    setError(null);
    try {
      await api('DELETE', `/api/alarm-rules/${rule.id}`);
      setDone(`Rule ${rule.name} disabled.`);
      rules.reload();
    } catch (e) {
      setError(e instanceof ApiError ? e : new ApiError(0, 'error', String(e)));
    }
  };
  const invalid = (field: string) => (error?.field === field ? 'true' : undefined);
  return (
    <section aria-labelledby="rules-title">
      <h2 id="rules-title">Forwarding rules</h2>
      {rules.error && <p class="error">{rules.error}</p>}
      <table aria-label="Forwarding rules">
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Channel</th>
            <th scope="col">Destination</th>
            <th scope="col">From severity</th>
            <th scope="col">Area</th>
            <th scope="col">State</th>
            {admin && <th scope="col">Action</th>}
          </tr>
        </thead>
        <tbody>
          {rules.data?.rules.map((r) => (
            <tr key={r.id} data-rule={r.id}>
              <td>{r.name}</td>
              <td>{r.channel}</td>
              <td>
                {r.destination}
                {r.hasSecret ? ' (with a secret)' : ''}
              </td>
              <td>{SEVERITY_WORDS[r.minSeverity]}</td>
              <td>{r.area ?? 'all'}</td>
              <td>{r.enabled ? 'enabled' : 'disabled'}</td>
              {admin && (
                <td>
                  {r.enabled && (
                    <button type="button" aria-label={`Disable rule ${r.name}`} onClick={() => remove(r)}>
                      Disable
                    </button>
                  )}
                </td>
              )}
            </tr>
          ))}
        </tbody>
      </table>
      {admin && (
        <form class="rule-form" aria-label="New forwarding rule" onSubmit={create}>
          <label>
            Rule name
            <input
              required
              maxLength={100}
              value={form.name}
              aria-invalid={invalid('name')}
              onInput={(e) => set('name', e.currentTarget.value)}
            />
          </label>
          <label>
            Channel
            <select value={form.channel} onChange={(e) => set('channel', e.currentTarget.value)}>
              <option value="email">e-mail</option>
              <option value="sms">SMS</option>
              <option value="webhook">webhook</option>
            </select>
          </label>
          <label>
            {DESTINATION_HINT[form.channel]}
            <input
              required
              maxLength={500}
              value={form.destination}
              aria-invalid={invalid('destination')}
              onInput={(e) => set('destination', e.currentTarget.value)}
            />
          </label>
          <label>
            From severity
            <select value={form.minSeverity} onChange={(e) => set('minSeverity', e.currentTarget.value)}>
              {SEVERITIES.map((s) => (
                <option key={s} value={s}>
                  {SEVERITY_WORDS[s]}
                </option>
              ))}
            </select>
          </label>
          <label>
            Only area (empty: all)
            <input
              maxLength={64}
              value={form.area}
              aria-invalid={invalid('area')}
              onInput={(e) => set('area', e.currentTarget.value)}
            />
          </label>
          {form.channel === 'webhook' && (
            <label>
              Webhook secret (16 characters or more)
              <input
                type="password"
                minLength={16}
                value={form.secret}
                aria-invalid={invalid('secret')}
                onInput={(e) => set('secret', e.currentTarget.value)}
              />
            </label>
          )}
          <button type="submit">Create rule</button>
        </form>
      )}
      {error && (
        <p role="alert" class="error">
          {error.field ? `${error.field}: ` : ''}
          {error.message}
        </p>
      )}
      {done && <p role="status">{done}</p>}
    </section>
  );
}

export function AlarmsScreen({
  store,
  operator,
  hash,
}: {
  store: FleetStore;
  operator: Operator;
  hash: string;
}) {
  useFleet(store);
  const params = hashParams(hash);
  const [severity, setSeverity] = useState(params.get('severity') ?? '');
  const [state, setState] = useState(params.get('state') ?? 'active');
  const [area, setArea] = useState(params.get('area') ?? '');
  const [meter, setMeter] = useState(params.get('meter') ?? '');
  const [open, setOpen] = useState<number | null>(null);
  const [before, setBefore] = useState<number[]>([]);
  // Changes that do not touch a meter's row (an acknowledgement by someone else) every 30 s.
  const [tick, setTick] = useState(0);
  useEffect(() => {
    const timer = setInterval(() => setTick((n) => n + 1), 30_000);
    return () => clearInterval(timer);
  }, []);
  useEffect(() => {
    setMeter(params.get('meter') ?? '');
    setArea(params.get('area') ?? '');
  }, [hash]);
  const query = new URLSearchParams({ state, limit: '50' });
  if (severity) query.set('severity', severity);
  if (area) query.set('area', area);
  if (/^\d+$/.test(meter)) query.set('meterId', meter);
  if (before.length > 0) query.set('before', String(before[before.length - 1]));
  // Read again on every change the fleet's event stream brings (a new alarm changes a meter's row).
  const list = useApi<{ alarms: Alarm[]; nextBefore: number | null; active: Record<Severity, number> }>(
    `/api/alarms?${query}`,
    [store.lastUpdateAt, tick],
  );
  const areas = [
    ...new Set(
      store
        .rows()
        .map((r) => r.area)
        .filter((a): a is string => Boolean(a)),
    ),
  ].sort();
  const resetPage = () => setBefore([]);
  return (
    <div class="alarms-page">
      <h1>Alarms</h1>
      <ul class="severity-counts" aria-label="Unresolved alarms per severity">
        {SEVERITIES.map((s) => (
          <li key={s} class={`sev-${s}`}>
            <strong>{list.data?.active[s] ?? '…'}</strong> {SEVERITY_WORDS[s]}
          </li>
        ))}
      </ul>
      <div class="filters">
        <label>
          Severity
          <select
            value={severity}
            onChange={(e) => {
              setSeverity(e.currentTarget.value);
              resetPage();
            }}
          >
            <option value="">all</option>
            {SEVERITIES.map((s) => (
              <option key={s} value={s}>
                {SEVERITY_WORDS[s]}
              </option>
            ))}
          </select>
        </label>
        <label>
          Alarm state
          <select
            value={state}
            onChange={(e) => {
              setState(e.currentTarget.value);
              resetPage();
            }}
          >
            {STATES.map((s) => (
              <option key={s} value={s}>
                {s === 'active' ? 'not resolved' : s}
              </option>
            ))}
          </select>
        </label>
        <label>
          Area
          <select
            value={area}
            onChange={(e) => {
              setArea(e.currentTarget.value);
              resetPage();
            }}
          >
            <option value="">all</option>
            {areas.map((a) => (
              <option key={a} value={a}>
                {a}
              </option>
            ))}
          </select>
        </label>
        <label>
          Meter id
          <input
            inputMode="numeric"
            value={meter}
            onInput={(e) => {
              setMeter(e.currentTarget.value.trim());
              resetPage();
            }}
          />
        </label>
        <span class="live" role="status">
          {store.connected ? 'Live' : 'Reconnecting…'}
        </span>
      </div>
      {list.error && <p class="error">{list.error}</p>}
      <table class="alarm-list" aria-label="Alarm inbox">
        <thead>
          <tr>
            <th scope="col">Severity</th>
            <th scope="col">Meter</th>
            <th scope="col">Area</th>
            <th scope="col">What</th>
            <th scope="col">Raised</th>
            <th scope="col">State</th>
            <th scope="col">Assigned</th>
            <th scope="col">Details</th>
          </tr>
        </thead>
        <tbody>
          {list.data?.alarms.map((a) => [
            <tr key={a.id} data-alarm={a.id} class={`sev-${a.severity}`}>
              <td>{SEVERITY_WORDS[a.severity]}</td>
              <td>
                <a href={`#/meters/${a.meterId}`}>
                  {a.meterId} {a.meterName}
                </a>
              </td>
              <td>{a.area ?? '—'}</td>
              <td>
                {a.kind}
                {a.subject ? ` (${a.subject})` : ''} — {a.detail}
                {a.occurrences > 1 ? ` ×${a.occurrences}` : ''}
                {a.clearedAt ? ' · cleared by the meter' : ''}
              </td>
              <td>{ago(a.raisedAt)}</td>
              <td>
                {a.state}
                {a.acknowledgedBy ? ` by ${a.acknowledgedBy}` : ''}
              </td>
              <td>{a.assignedTo ?? '—'}</td>
              <td>
                <button
                  type="button"
                  aria-expanded={open === a.id}
                  aria-label={`Alarm ${a.id} details`}
                  onClick={() => setOpen(open === a.id ? null : a.id)}
                >
                  {open === a.id ? 'Close' : 'Open'}
                </button>
              </td>
            </tr>,
            open === a.id && (
              <tr key={`${a.id}-detail`}>
                <td colSpan={8}>
                  <AlarmDetail alarm={a} operator={operator} onChanged={list.reload} />
                </td>
              </tr>
            ),
          ])}
        </tbody>
      </table>
      {list.data?.alarms.length === 0 && <p>No alarms match.</p>}
      <div class="pager">
        {before.length > 0 && (
          <button type="button" onClick={() => setBefore(before.slice(0, -1))}>
            Newer alarms
          </button>
        )}
        {list.data?.nextBefore && (
          <button type="button" onClick={() => setBefore([...before, list.data!.nextBefore!])}>
            Older alarms
          </button>
        )}
      </div>
      <ResponseTimes version={`${store.lastUpdateAt} ${list.data?.alarms.map((a) => a.state).join()}`} />
      {roleAtLeast(operator.role, 'supervisor') && <ForwardingRules operator={operator} />}
    </div>
  );
}
