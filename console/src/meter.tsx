// One meter's page: live state and status report, its history as a chart, records with filters,
// the applied tariff and its push, key epoch, firmware, parameter and blacklist state. Operators
// push a tariff, supervisors rotate the key, admins edit the registry entry.
import { useEffect, useState } from 'preact/hooks';
import { ago, api, ApiError, type FleetRow, money, type Operator, roleAtLeast } from './api';
import { Light } from './fleet';
import { useFleet } from './hooks';
import { type RegistryForm, RegistryFields, registryBody } from './register';
import type { FleetStore } from './store';

interface Report {
  at: string;
  battery: number | null;
  occupiedBays: number;
  faults: number;
}

interface RecordRow {
  seq: number;
  kind: string;
  recordedAt: string;
  summary: string;
  charge: number | null;
  currency: number | null;
}

/** Fetches `path` when `key` changes; an error's message instead of the data. */
export function useApi<T>(
  path: string,
  key: unknown[] = [],
): { data: T | null; error: string | null; reload: () => void } {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [n, setN] = useState(0);
  useEffect(() => {
    let live = true;
    api<T>('GET', path)
      .then((d) => {
        if (!live) return;
        setData(d);
        setError(null);
      })
      .catch((e) => {
        if (!live) return;
        setData(null);
        setError(e instanceof ApiError ? e.message : String(e));
      });
    return () => {
      live = false;
    };
  }, [path, n, ...key]);
  return { data, error, reload: () => setN(n + 1) };
}

/** Any JSON object as a definition list, one level deep. */
function Facts({ value }: { value: Record<string, unknown> | null | undefined }) {
  if (!value) return <p>—</p>;
  return (
    <dl class="facts">
      {Object.entries(value).map(([k, v]) => (
        <div key={k}>
          <dt>{k}</dt>
          <dd>
            {v === null || v === undefined ? '—' : typeof v === 'object' ? JSON.stringify(v) : String(v)}
          </dd>
        </div>
      ))}
    </dl>
  );
}

/** Battery (percent) and occupied bays over time as an SVG line chart, with its figures for screen readers. */
export function HistoryChart({ reports }: { reports: Report[] }) {
  if (reports.length === 0) return <p>No status reports in the last 48 hours.</p>;
  const W = 640;
  const H = 160;
  const t0 = Date.parse(reports[0].at);
  const t1 = Math.max(t0 + 1, Date.parse(reports[reports.length - 1].at));
  const x = (at: string) => ((Date.parse(at) - t0) / (t1 - t0)) * (W - 40) + 30;
  const maxBays = Math.max(1, ...reports.map((r) => r.occupiedBays));
  const line = (y: (r: Report) => number | null) =>
    reports
      .filter((r) => y(r) !== null)
      .map((r, i) => `${i === 0 ? 'M' : 'L'}${x(r.at).toFixed(1)},${y(r)!.toFixed(1)}`)
      .join(' ');
  const battery = line((r) => (r.battery === null ? null : H - 20 - (r.battery / 100) * (H - 30)));
  const bays = line((r) => H - 20 - (r.occupiedBays / maxBays) * (H - 30));
  const last = reports[reports.length - 1];
  return (
    <figure>
      <svg
        viewBox={`0 0 ${W} ${H}`}
        class="chart"
        role="img"
        aria-label={`Battery from ${reports[0].battery ?? '—'} % to ${last.battery ?? '—'} %, ${last.occupiedBays} bays occupied at the last of ${reports.length} reports`}
      >
        <line x1="30" y1={H - 20} x2={W - 10} y2={H - 20} class="axis" />
        <text x="2" y="14">
          100%
        </text>
        <text x="2" y={H - 22}>
          0
        </text>
        <path d={battery} class="battery-line" />
        <path d={bays} class="bays-line" />
        <text x="30" y={H - 4}>
          {new Date(t0).toLocaleString()}
        </text>
        <text x={W - 10} y={H - 4} text-anchor="end">
          {new Date(t1).toLocaleString()}
        </text>
      </svg>
      <figcaption>
        <span class="key battery-key">Battery %</span>{' '}
        <span class="key bays-key">Occupied bays (max {maxBays})</span>
      </figcaption>
    </figure>
  );
}

function Records({ id }: { id: number }) {
  const [kind, setKind] = useState('all');
  const [bay, setBay] = useState('');
  const [from, setFrom] = useState('');
  const query = new URLSearchParams({ kind, limit: '50' });
  if (bay) query.set('bay', bay);
  if (from) query.set('from', new Date(from).toISOString());
  const { data, error } = useApi<{ records: RecordRow[] }>(`/api/meters/${id}/records?${query}`);
  return (
    <section aria-labelledby="records-title">
      <h2 id="records-title">Records</h2>
      <div class="filters">
        <label>
          Kind
          <select value={kind} onChange={(e) => setKind(e.currentTarget.value)}>
            <option value="all">All records</option>
            <option value="transaction">Transactions</option>
            <option value="operation">Operation</option>
            <option value="maintenance">Maintenance</option>
          </select>
        </label>
        <label>
          Bay
          <input type="number" min={0} value={bay} onInput={(e) => setBay(e.currentTarget.value)} />
        </label>
        <label>
          Recorded since
          <input type="datetime-local" value={from} onInput={(e) => setFrom(e.currentTarget.value)} />
        </label>
      </div>
      {error && <p class="error">{error}</p>}
      {data && data.records.length === 0 && <p>No records match.</p>}
      {data && data.records.length > 0 && (
        <table class="records">
          <thead>
            <tr>
              <th scope="col">Seq</th>
              <th scope="col">Kind</th>
              <th scope="col">Recorded</th>
              <th scope="col">What</th>
              <th scope="col">Charge</th>
            </tr>
          </thead>
          <tbody>
            {data.records.map((r) => (
              <tr key={r.seq}>
                <td>{r.seq}</td>
                <td>{r.kind}</td>
                <td>{new Date(r.recordedAt).toLocaleString()}</td>
                <td>{r.summary}</td>
                <td>{r.charge === null ? '' : money(r.charge, r.currency)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

function Action({ label, run }: { label: string; run: () => Promise<string> }) {
  const [message, setMessage] = useState<string | null>(null);
  return (
    <div class="action">
      <button
        type="button"
        onClick={async () => {
          try {
            setMessage(await run());
          } catch (e) {
            setMessage(e instanceof ApiError ? e.message : String(e));
          }
        }}
      >
        {label}
      </button>
      {message && <span role="status">{message}</span>}
    </div>
  );
}

function TariffPush({ id, onPushed }: { id: number; onPushed: () => void }) {
  const [tariffId, setTariffId] = useState('');
  const [message, setMessage] = useState<string | null>(null);
  return (
    <form
      class="inline-form"
      onSubmit={async (e) => {
        e.preventDefault();
        try {
          const pushed = await api<{ version: number; downlinkSeq: number }>(
            'POST',
            `/api/meters/${id}/tariff`,
            { tariffId },
          );
          setMessage(`Tariff ${tariffId} version ${pushed.version} pushed (downlink ${pushed.downlinkSeq}).`);
          onPushed();
        } catch (err) {
          setMessage(err instanceof ApiError ? err.message : String(err));
        }
      }}
    >
      <label>
        Tariff id
        <input required value={tariffId} onInput={(e) => setTariffId(e.currentTarget.value)} />
      </label>
      <button type="submit">Push tariff</button>
      {message && <span role="status">{message}</span>}
    </form>
  );
}

function RegistryEdit({ row, store }: { row: FleetRow; store: FleetStore }) {
  const [form, setForm] = useState<RegistryForm>({
    name: row.name,
    address: row.address ?? '',
    latitude: row.latitude?.toString() ?? '',
    longitude: row.longitude?.toString() ?? '',
    area: row.area ?? '',
    bays: row.bays?.toString() ?? '',
  });
  const [error, setError] = useState<ApiError | null>(null);
  const [saved, setSaved] = useState(false);
  return (
    <form
      class="grid-form"
      aria-label="Registry entry"
      onSubmit={async (e) => {
        e.preventDefault();
        setError(null);
        setSaved(false);
        try {
          const body = registryBody(form);
          for (const k of ['address', 'area', 'bays', 'latitude', 'longitude'])
            if (!(k in body)) body[k] = null;
          store.put(await api<FleetRow>('PATCH', `/api/meters/${row.id}/registry`, body));
          setSaved(true);
        } catch (err) {
          setError(err instanceof ApiError ? err : new ApiError(0, 'error', String(err)));
        }
      }}
    >
      <RegistryFields form={form} setForm={setForm} errorField={error?.field} />
      <button type="submit">Save registry entry</button>
      {error && (
        <p role="alert" class="error">
          {error.message}
        </p>
      )}
      {saved && <p role="status">Saved.</p>}
    </form>
  );
}

export function MeterScreen({ id, store, operator }: { id: number; store: FleetStore; operator: Operator }) {
  useFleet(store);
  const row = store.row(id);
  const status = useApi<
    Record<string, unknown> & {
      bays: { bayId: number; occupied: boolean; paid: boolean }[];
      openAlarms: { event: string; severity: string; detail: string; at: string }[];
    }
  >(`/api/meters/${id}/status`, [row?.lastContactAt]);
  const history = useApi<{ reports: Report[] }>(`/api/meters/${id}/status-history`, [row?.lastContactAt]);
  const tariff = useApi<Record<string, unknown>>(`/api/meters/${id}/tariff`);
  const parameters = useApi<Record<string, unknown>>(`/api/meters/${id}/parameters`);
  const blacklist = useApi<{ version: number; meters: { meterId?: number; id?: number }[] }>(
    '/api/blacklist/stale',
  );
  if (!row) return <p role="status">{store.loaded ? `No meter ${id}.` : 'Loading…'}</p>;
  const behind = blacklist.data?.meters.find((m) => m.meterId === id);
  const s = status.data;
  return (
    <div class="meter-page">
      <h1>
        Meter {row.id}: {row.name}
      </h1>
      <p class="headline">
        <Light light={row.light} />{' '}
        {row.contact === 'never'
          ? 'never heard from'
          : `${row.contact}, last contact ${ago(row.lastContactAt)}`}
        {' · '}
        {row.address ?? 'no address'} · area {row.area ?? '—'} ·{' '}
        {row.provisioned ? 'provisioned' : 'waiting for the factory'}
      </p>
      <div class="cards">
        <section aria-labelledby="status-title">
          <h2 id="status-title">Status</h2>
          <dl class="facts">
            <div>
              <dt>Battery</dt>
              <dd>{row.battery === null ? '—' : `${Math.round(row.battery)} %`}</dd>
            </div>
            <div>
              <dt>Open alarms</dt>
              <dd>{row.openAlarms}</dd>
            </div>
            <div>
              <dt>Bays occupied</dt>
              <dd>
                {row.occupiedBays}/{row.bays ?? row.reportedBays}
              </dd>
            </div>
            <div>
              <dt>Today</dt>
              <dd>{money(row.revenueToday, row.currency)}</dd>
            </div>
            <div>
              <dt>Expected contact</dt>
              <dd>every {Math.round(row.contactSeconds / 60)} min</dd>
            </div>
          </dl>
          {s && s.openAlarms.length > 0 && (
            <ul class="open-alarms" aria-label="Open alarms">
              {s.openAlarms.map((a) => (
                <li key={`${a.event}${a.at}`} class={`sev-${a.severity}`}>
                  {a.severity}: {a.event} — {a.detail} ({ago(a.at)})
                </li>
              ))}
            </ul>
          )}
          <p>
            <a href={`#/alarms?meter=${id}`}>This meter's alarms in the inbox</a>
          </p>
          {s && <Facts value={(s.modules as Record<string, unknown>) ?? null} />}
        </section>
        <section aria-labelledby="security-title">
          <h2 id="security-title">Keys and software</h2>
          <dl class="facts">
            <div>
              <dt>Key epoch</dt>
              <dd>{row.keyEpoch}</dd>
            </div>
            <div>
              <dt>Firmware</dt>
              <dd>{row.firmwareVersion ?? 'factory image'}</dd>
            </div>
            <div>
              <dt>Blacklist</dt>
              <dd>
                {blacklist.data
                  ? behind
                    ? `behind version ${blacklist.data.version}`
                    : `up to date (version ${blacklist.data.version})`
                  : '—'}
              </dd>
            </div>
          </dl>
          {roleAtLeast(operator.role, 'supervisor') && (
            <Action
              label="Rotate key"
              run={async () => {
                const r = await api<{ epoch: number }>('POST', `/api/meters/${id}/key-rotation`);
                return `Key epoch ${r.epoch} pushed; the meter's acknowledgement moves it on.`;
              }}
            />
          )}
          <h3>Parameters</h3>
          {parameters.error ? <p>{parameters.error}</p> : <Facts value={parameters.data} />}
        </section>
        <section aria-labelledby="tariff-title">
          <h2 id="tariff-title">Tariff</h2>
          {tariff.error ? <p>{tariff.error}</p> : <Facts value={tariff.data} />}
          {roleAtLeast(operator.role, 'operator') && <TariffPush id={id} onPushed={tariff.reload} />}
        </section>
      </div>
      <section aria-labelledby="history-title">
        <h2 id="history-title">Status history</h2>
        {history.data && <HistoryChart reports={history.data.reports} />}
      </section>
      <Records id={id} />
      {roleAtLeast(operator.role, 'admin') && (
        <section aria-labelledby="registry-title">
          <h2 id="registry-title">Registry entry</h2>
          <RegistryEdit row={row} store={store} />
        </section>
      )}
    </div>
  );
}
