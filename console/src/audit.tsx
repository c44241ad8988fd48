// The operator audit log (#/audit, supervisors and admins): newest first, filtered by actor,
// action, meter and a date range, 50 entries a page (the platform's `before` cursor).
import { useState } from 'preact/hooks';
import { useApi } from './meter';

interface Entry {
  id: number;
  at: string;
  username: string;
  action: string;
  meterId: number | null;
  target: string | null;
  detail: Record<string, unknown>;
}

const PAGE = 50;

export function AuditScreen() {
  // What is typed, and what the list is filtered by: a text field applies on change (Enter, or
  // leaving it), not on every key; dates apply at once.
  const [draft, setDraft] = useState({ actor: '', action: '', meter: '' });
  const [applied, setApplied] = useState({ actor: '', action: '', meter: '' });
  const { actor, action, meter } = applied;
  const [from, setFrom] = useState('');
  const [to, setTo] = useState('');
  const [cursors, setCursors] = useState<number[]>([]);
  const query = new URLSearchParams({ limit: String(PAGE) });
  if (actor.trim()) query.set('operator', actor.trim());
  if (action.trim()) query.set('action', action.trim());
  if (/^\d+$/.test(meter)) query.set('meterId', meter);
  // Dates are whole local days: from the start of `from` to the end of `to`.
  if (from) query.set('since', new Date(`${from}T00:00`).toISOString());
  if (to) {
    const end = new Date(`${to}T00:00`);
    end.setDate(end.getDate() + 1);
    query.set('until', end.toISOString());
  }
  if (cursors.length > 0) query.set('before', String(cursors[cursors.length - 1]));
  const log = useApi<{ entries: Entry[]; nextBefore: number | null }>(`/api/operators/audit?${query}`);
  const text = (key: keyof typeof draft) => ({
    value: draft[key],
    onInput: (e: { currentTarget: HTMLInputElement }) => setDraft({ ...draft, [key]: e.currentTarget.value }),
    onChange: (e: { currentTarget: HTMLInputElement }) => {
      setApplied({ ...applied, [key]: e.currentTarget.value });
      setCursors([]);
    },
  });
  const date = (set: (v: string) => void) => (e: { currentTarget: HTMLInputElement }) => {
    set(e.currentTarget.value);
    setCursors([]);
  };
  return (
    <div class="audit-page">
      <h1>Audit log</h1>
      <form class="filters" aria-label="Audit filters" onSubmit={(e) => e.preventDefault()}>
        <label>
          Actor
          <input {...text('actor')} />
        </label>
        <label>
          Action
          <input placeholder="e.g. alarm.resolve" {...text('action')} />
        </label>
        <label>
          Meter id
          <input inputMode="numeric" {...text('meter')} />
        </label>
        <label>
          From
          <input type="date" value={from} onChange={date(setFrom)} />
        </label>
        <label>
          To
          <input type="date" value={to} onChange={date(setTo)} />
        </label>
      </form>
      {log.error && (
        <p role="alert" class="error">
          {log.error}
        </p>
      )}
      <p role="status">
        Page {cursors.length + 1}
        {log.data ? `, ${log.data.entries.length} entries` : ''}
      </p>
      <table aria-label="Audit log">
        <thead>
          <tr>
            <th scope="col">When</th>
            <th scope="col">Actor</th>
            <th scope="col">Action</th>
            <th scope="col">Meter</th>
            <th scope="col">Target</th>
            <th scope="col">Detail</th>
          </tr>
        </thead>
        <tbody>
          {log.data?.entries.map((e) => (
            <tr key={e.id} data-audit={e.id}>
              <td>{new Date(e.at).toLocaleString('en-GB')}</td>
              <td>{e.username}</td>
              <td>{e.action}</td>
              <td>{e.meterId === null ? '—' : <a href={`#/meters/${e.meterId}`}>{e.meterId}</a>}</td>
              <td>{e.target ?? '—'}</td>
              <td class="detail">{Object.keys(e.detail ?? {}).length > 0 ? JSON.stringify(e.detail) : ''}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {log.data?.entries.length === 0 && <p>No entries match.</p>}
      <div class="pager">
        {cursors.length > 0 && (
          <button type="button" onClick={() => setCursors(cursors.slice(0, -1))}>
            Newer entries
          </button>
        )}
        {log.data?.nextBefore && (
          <button type="button" onClick={() => setCursors([...cursors, log.data!.nextBefore!])}>
            Older entries
          </button>
        )}
      </div>
    </div>
  );
}
