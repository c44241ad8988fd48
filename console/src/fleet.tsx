// The fleet view: every meter with its live state, filtered by area and state, searched by id,
// name or address. Only the rows in view are in the page (a window over the filtered list), so
// 10,000 meters scroll and update as lightly as 100.
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { ago, type FleetRow, money } from './api';
import { useFleet } from './hooks';
import type { FleetStore } from './store';

const ROW_HEIGHT = 36;
const OVERSCAN = 10;

export type StateFilter = 'all' | 'online' | 'overdue' | 'never' | 'alarms' | 'red' | 'amber' | 'green';
const STATE_LABELS: Record<StateFilter, string> = {
  all: 'Any state',
  online: 'Online',
  overdue: 'Overdue',
  never: 'Never heard from',
  alarms: 'With open alarms',
  red: 'Red',
  amber: 'Amber',
  green: 'Green',
};

export function matches(row: FleetRow, area: string, state: StateFilter, search: string): boolean {
  if (area && (row.area ?? '') !== area) return false;
  if (state === 'online' || state === 'overdue' || state === 'never') {
    if (row.contact !== state) return false;
  } else if (state === 'alarms') {
    if (row.openAlarms === 0) return false;
  } else if (state !== 'all' && row.light !== state) return false;
  if (!search) return true;
  const s = search.toLowerCase();
  return (
    String(row.id).includes(s) ||
    row.name.toLowerCase().includes(s) ||
    (row.address ?? '').toLowerCase().includes(s)
  );
}

const LIGHT_WORDS = { green: 'OK', amber: 'Attention', red: 'Fault', grey: 'No contact yet' } as const;

export function Light({ light }: { light: FleetRow['light'] }) {
  return (
    <span class={`light light-${light}`} role="img" aria-label={`status ${LIGHT_WORDS[light]}`}>
      <span aria-hidden="true" class="dot" />
      {LIGHT_WORDS[light]}
    </span>
  );
}

function AlarmsPanel({ rows }: { rows: FleetRow[] }) {
  let alarm = 0;
  let fault = 0;
  let warning = 0;
  let overdue = 0;
  for (const r of rows) {
    if (r.worstAlarm === 'alarm') alarm++;
    else if (r.worstAlarm === 'fault') fault++;
    else if (r.worstAlarm === 'warning') warning++;
    if (r.contact === 'overdue') overdue++;
  }
  return (
    <section class="alarms" aria-labelledby="alarms-title">
      <h2 id="alarms-title">Open alarms</h2>
      <ul>
        <li class="sev-alarm">
          <strong>{alarm}</strong> meters with an alarm
        </li>
        <li class="sev-fault">
          <strong>{fault}</strong> with a fault
        </li>
        <li class="sev-warning">
          <strong>{warning}</strong> with a warning
        </li>
        <li class="sev-overdue">
          <strong>{overdue}</strong> overdue
        </li>
      </ul>
      <p class="note">
        Counted from the meters' status reports and events. <a href="#/alarms">Open the alarm inbox</a>
      </p>
    </section>
  );
}

export function FleetScreen({ store }: { store: FleetStore }) {
  const version = useFleet(store);
  const [area, setArea] = useState('');
  const [state, setState] = useState<StateFilter>('all');
  const [search, setSearch] = useState('');
  const [scrollTop, setScrollTop] = useState(0);
  const [height, setHeight] = useState(600);
  const scroller = useRef<HTMLElement>(null);

  const all = useMemo(() => store.rows(), [version]);
  const areas = useMemo(
    () => [...new Set(all.map((r) => r.area).filter((a): a is string => !!a))].sort(),
    [all],
  );
  const rows = useMemo(() => all.filter((r) => matches(r, area, state, search)), [all, area, state, search]);

  useEffect(() => {
    const el = scroller.current;
    if (!el) return;
    const observer = new ResizeObserver(() => setHeight(el.clientHeight));
    observer.observe(el);
    return () => observer.disconnect();
  }, []);
  useEffect(() => {
    if (store.loaded && rows.length > 0) performance.mark('fleet-rendered');
  }, [store.loaded]);

  const first = Math.max(0, Math.floor(scrollTop / ROW_HEIGHT) - OVERSCAN);
  const last = Math.min(rows.length, Math.ceil((scrollTop + height) / ROW_HEIGHT) + OVERSCAN);
  const online = all.filter((r) => r.contact === 'online').length;
  const revenue = all.reduce((sum, r) => sum + r.revenueToday, 0);
  const currency = all.find((r) => r.currency !== null)?.currency ?? null;

  return (
    <div class="fleet">
      <h1>Fleet</h1>
      <p class="summary" aria-live="polite">
        {store.loaded ? (
          <>
            {all.length} meters, {online} online; today {money(revenue, currency)}.{' '}
            <span class={store.connected ? 'live' : 'stale'}>
              {store.connected ? 'Live' : 'Reconnecting…'}
            </span>
          </>
        ) : (
          'Loading the fleet…'
        )}
      </p>
      <AlarmsPanel rows={all} />
      <search class="filters">
        <label>
          Search meters
          <input
            type="search"
            value={search}
            onInput={(e) => setSearch(e.currentTarget.value)}
            placeholder="id, name or address"
          />
        </label>
        <label>
          Area
          <select value={area} onChange={(e) => setArea(e.currentTarget.value)}>
            <option value="">All areas</option>
            {areas.map((a) => (
              <option key={a} value={a}>
                {a}
              </option>
            ))}
          </select>
        </label>
        <label>
          State
          <select value={state} onChange={(e) => setState(e.currentTarget.value as StateFilter)}>
            {(Object.keys(STATE_LABELS) as StateFilter[]).map((s) => (
              <option key={s} value={s}>
                {STATE_LABELS[s]}
              </option>
            ))}
          </select>
        </label>
        <span class="count" role="status">
          {rows.length} shown
        </span>
      </search>
      <section
        class="scroller"
        ref={scroller}
        onScroll={(e) => setScrollTop(e.currentTarget.scrollTop)}
        aria-label="Meters"
      >
        <table class="meters" aria-rowcount={rows.length + 1}>
          <thead>
            <tr>
              <th scope="col">Meter</th>
              <th scope="col">Status</th>
              <th scope="col">Contact</th>
              <th scope="col">Battery</th>
              <th scope="col">Alarms</th>
              <th scope="col">Bays</th>
              <th scope="col">Firmware</th>
              <th scope="col">Today</th>
              <th scope="col">Area</th>
            </tr>
          </thead>
          <tbody>
            <tr class="spacer" style={{ height: `${first * ROW_HEIGHT}px` }} />
            {rows.slice(first, last).map((r, i) => (
              <tr key={r.id} aria-rowindex={first + i + 2} data-meter={r.id}>
                <td>
                  <a href={`#/meters/${r.id}`}>
                    {r.id} {r.name}
                  </a>
                </td>
                <td>
                  <Light light={r.light} />
                </td>
                <td class={`contact-${r.contact}`}>
                  {r.contact === 'never' ? 'never' : `${r.contact}, ${ago(r.lastContactAt)}`}
                </td>
                <td class="battery">{r.battery === null ? '—' : `${Math.round(r.battery)} %`}</td>
                <td class="alarms-count">{r.openAlarms}</td>
                <td>
                  {r.occupiedBays}/{r.bays ?? r.reportedBays}
                </td>
                <td>{r.firmwareVersion ?? 'factory'}</td>
                <td>{money(r.revenueToday, r.currency)}</td>
                <td>{r.area ?? '—'}</td>
              </tr>
            ))}
            <tr class="spacer" style={{ height: `${(rows.length - last) * ROW_HEIGHT}px` }} />
          </tbody>
        </table>
      </section>
    </div>
  );
}
