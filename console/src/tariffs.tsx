// The tariffs (#/tariffs, #/tariffs/ID): the stored tariffs; an editor for a tariff document as JSON
// text, checked by the platform's validator (the engine the meters run) with its message on the
// offending path; a live quote of the draft by that same engine (arrival, bay, minutes or amount →
// price and end time); saving a version; assigning it to an area or listed meters, and each meter's
// push as it goes: pending, applied, refused, or timed out (the platform's bound, shown per meter).
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, ApiError, money, type Operator, roleAtLeast } from './api';
import { useApi } from './meter';
import type { FleetStore } from './store';

interface TariffSummary {
  id: string;
  version: number;
  versions: number;
  currency: number;
  updatedAt: string;
  meters: number;
}

interface QuoteLine {
  kind: string;
  fromLocal?: string;
  toLocal?: string;
  rate?: string;
  amount?: number;
}

type Quote =
  | {
      ok: true;
      currency: number;
      amount: number;
      minutes: number;
      startLocal: string;
      paidUntil: number;
      paidUntilLocal: string;
      lines: QuoteLine[];
    }
  | { ok: false; reason?: string; why?: string; [k: string]: unknown };

interface Push {
  meterId: number;
  tariffId: string;
  pushedVersion: number;
  state: 'pending' | 'applied' | 'refused' | 'timed-out';
  pushedAt: string;
  timesOutAt: string;
  appliedVersion: number | null;
  refused: { version: number | null; why: string | null } | null;
}

/** A new tariff's starting point: a flat hourly rate, every day. */
const TEMPLATE = {
  id: 'new-tariff',
  version: 1,
  currency: 826,
  timeZone: 'GMT0BST,M3.5.0/1,M10.5.0',
  rates: { hourly: [{ price: 200, per: 60, prorata: true }] },
  timetable: [
    {
      days: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun', 'hol'],
      from: '08:00',
      to: '18:00',
      mode: 'charged',
      rate: 'hourly',
    },
  ],
  maxStayMinutes: 240,
  minimum: { minutes: 15 },
  rounding: { stepMinutes: 5 },
};

/** The last name in a validator path ('rates.hourly[0].price' → 'price'), to find in the text. */
function lastKey(path: string): string | null {
  const parts = path.split(/[.[\]]/).filter((p) => p && !/^\d+$/.test(p));
  return parts.length > 0 ? parts[parts.length - 1] : null;
}

/** datetime-local's value for a Date, in the browser's local time. */
function localInput(d: Date): string {
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/**
 * The quote of the draft (operators: POST /api/tariffs/draft-quote), or for a role that may not
 * price drafts, of the stored tariff shown (the public POST /api/quote, its latest version).
 */
function QuotePreview({
  text,
  canQuote,
  storedId,
}: {
  text: string;
  canQuote: boolean;
  storedId: string | null;
}) {
  const [arrival, setArrival] = useState(() => {
    const d = new Date();
    d.setDate(d.getDate() + ((8 - d.getDay()) % 7 || 7)); // next Monday
    d.setHours(10, 0, 0, 0);
    return localInput(d);
  });
  const [bay, setBay] = useState('1');
  const [mode, setMode] = useState<'minutes' | 'amount'>('minutes');
  const [value, setValue] = useState('60');
  const [quote, setQuote] = useState<Quote | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  useEffect(() => {
    if (!canQuote && !storedId) return;
    let document: unknown;
    try {
      document = JSON.parse(text);
    } catch {
      setQuote(null);
      return;
    }
    const start = Math.floor(new Date(arrival).getTime() / 1000);
    const n = Number(value);
    if (!Number.isFinite(start) || !/^\d+$/.test(bay) || !Number.isInteger(n)) return;
    let live = true;
    const timer = setTimeout(() => {
      const question = { bay: Number(bay), start, ...(mode === 'minutes' ? { minutes: n } : { amount: n }) };
      (canQuote
        ? api<Quote>('POST', '/api/tariffs/draft-quote', { document, ...question })
        : api<Quote>('POST', '/api/quote', { tariffId: storedId, ...question })
      )
        .then((q) => {
          if (!live) return;
          setQuote(q);
          setError(null);
        })
        .catch((e) => {
          if (!live) return;
          setQuote(null);
          setError(e instanceof ApiError ? e : new ApiError(0, 'error', String(e)));
        });
    }, 300);
    return () => {
      live = false;
      clearTimeout(timer);
    };
  }, [text, arrival, bay, mode, value, canQuote, storedId]);
  return (
    <section aria-labelledby="quote-title" class="quote-preview">
      <h2 id="quote-title">Quote preview</h2>
      <div class="filters">
        <label>
          Arrival
          <input type="datetime-local" value={arrival} onInput={(e) => setArrival(e.currentTarget.value)} />
        </label>
        <label>
          Bay
          <input type="number" min={1} value={bay} onInput={(e) => setBay(e.currentTarget.value)} />
        </label>
        <label>
          Quote by
          <select value={mode} onChange={(e) => setMode(e.currentTarget.value as 'minutes' | 'amount')}>
            <option value="minutes">duration (minutes)</option>
            <option value="amount">amount (minor units)</option>
          </select>
        </label>
        <label>
          {mode === 'minutes' ? 'Minutes' : 'Amount'}
          <input
            type="number"
            min={mode === 'minutes' ? 1 : 0}
            value={value}
            onInput={(e) => setValue(e.currentTarget.value)}
          />
        </label>
      </div>
      {!canQuote && (
        <p>
          {storedId
            ? 'The stored latest version, quoted (pricing a changed draft needs the operator role).'
            : 'Pricing a draft needs the operator role.'}
        </p>
      )}
      {error && error.status !== 400 && <p class="error">{error.message}</p>}
      {quote?.ok === true && (
        <div role="status" aria-label="Quote" class="quote">
          <p>
            <strong>{money(quote.amount, quote.currency)}</strong> for {quote.minutes} min, from{' '}
            {quote.startLocal} until <strong>{quote.paidUntilLocal}</strong>
          </p>
          <ul>
            {quote.lines.map((l, i) => (
              <li key={i}>
                {l.kind}
                {l.rate ? ` ${l.rate}` : ''}
                {l.fromLocal ? ` ${l.fromLocal} → ${l.toLocal}` : ''}
                {l.amount !== undefined ? `: ${money(l.amount, quote.currency)}` : ''}
              </li>
            ))}
          </ul>
        </div>
      )}
      {quote?.ok === false && (
        <p role="status" aria-label="Quote" class="quote refused">
          No sale: {String(quote.reason ?? quote.why ?? JSON.stringify(quote))}
        </p>
      )}
    </section>
  );
}

const STATE_WORDS: Record<Push['state'], string> = {
  pending: 'pending',
  applied: 'applied',
  refused: 'refused',
  'timed-out': 'timed out',
};

/** Each assigned meter's push, read again every 2 s while any is pending, every 15 s after. */
function PushWatch({ tariffId, meterIds }: { tariffId: string; meterIds: number[] }) {
  const [pushes, setPushes] = useState<Push[]>([]);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let live = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const wanted = new Set(meterIds);
    const look = async () => {
      try {
        const r = await api<{ pushes: Push[] }>(
          'GET',
          `/api/tariff-pushes?tariffId=${encodeURIComponent(tariffId)}&limit=1000`,
        );
        if (!live) return;
        const mine = r.pushes.filter((p) => wanted.has(p.meterId)).sort((a, b) => a.meterId - b.meterId);
        setPushes(mine);
        setError(null);
        // Every 2 s while a meter is pending; then every 15 s, for a late acknowledgement.
        timer = setTimeout(look, mine.some((p) => p.state === 'pending') ? 2000 : 15_000);
      } catch (e) {
        if (!live) return;
        setError(e instanceof ApiError ? e.message : String(e));
        timer = setTimeout(look, 5000);
      }
    };
    void look();
    return () => {
      live = false;
      clearTimeout(timer);
    };
  }, [tariffId, meterIds.join(',')]);
  const count = (s: Push['state']) => pushes.filter((p) => p.state === s).length;
  return (
    <section aria-labelledby="watch-title">
      <h3 id="watch-title">The push, meter by meter</h3>
      <p role="status">
        {count('applied')} applied, {count('pending')} pending, {count('refused')} refused,{' '}
        {count('timed-out')} timed out
      </p>
      {error && <p class="error">{error}</p>}
      <table aria-label="Tariff push">
        <thead>
          <tr>
            <th scope="col">Meter</th>
            <th scope="col">Version</th>
            <th scope="col">State</th>
            <th scope="col">Pushed</th>
            <th scope="col">Times out</th>
          </tr>
        </thead>
        <tbody>
          {pushes.map((p) => (
            <tr key={p.meterId} data-push={p.meterId} class={`push-${p.state}`}>
              <td>
                <a href={`#/meters/${p.meterId}`}>{p.meterId}</a>
              </td>
              <td>{p.pushedVersion}</td>
              <td>
                {STATE_WORDS[p.state]}
                {p.refused?.why ? ` (${p.refused.why})` : ''}
              </td>
              <td>{new Date(p.pushedAt).toLocaleString('en-GB')}</td>
              <td>
                {p.state === 'pending' || p.state === 'timed-out'
                  ? new Date(p.timesOutAt).toLocaleString('en-GB')
                  : '—'}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

function Assign({
  tariffId,
  store,
  onAssigned,
}: {
  tariffId: string;
  store: FleetStore;
  onAssigned: () => void;
}) {
  const areas = [
    ...new Set(
      store
        .rows()
        .map((r) => r.area)
        .filter((a): a is string => Boolean(a)),
    ),
  ].sort();
  const [kind, setKind] = useState<'area' | 'meters'>('area');
  const [area, setArea] = useState(areas[0] ?? '');
  const [meters, setMeters] = useState('');
  const [error, setError] = useState<ApiError | null>(null);
  const [sent, setSent] = useState<{ version: number; ids: number[]; failed: string[] } | null>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    const ids = meters
      .split(/[\s,]+/)
      .filter(Boolean)
      .map(Number);
    if (kind === 'meters' && (ids.length === 0 || ids.some((n) => !Number.isInteger(n)))) {
      setError(new ApiError(400, 'bad-target', 'list meter ids, separated by commas or spaces', 'target'));
      return;
    }
    try {
      const r = await api<{
        version: number;
        meters: { meterId: number; downlinkSeq?: number; error?: string }[];
      }>('POST', `/api/tariffs/${encodeURIComponent(tariffId)}/assign`, {
        target: kind === 'area' ? { area } : { meters: ids },
      });
      setSent({
        version: r.version,
        ids: r.meters.filter((m) => m.downlinkSeq !== undefined).map((m) => m.meterId),
        failed: r.meters.filter((m) => m.error).map((m) => `${m.meterId}: ${m.error}`),
      });
      onAssigned();
    } catch (e) {
      setError(e instanceof ApiError ? e : new ApiError(0, 'error', String(e)));
    }
  };
  return (
    <section aria-labelledby="assign-title">
      <h2 id="assign-title">Assign and push {tariffId}</h2>
      <form class="filters" aria-label="Assign the tariff" onSubmit={submit}>
        <label>
          To
          <select value={kind} onChange={(e) => setKind(e.currentTarget.value as 'area' | 'meters')}>
            <option value="area">an area</option>
            <option value="meters">listed meters</option>
          </select>
        </label>
        {kind === 'area' ? (
          <label>
            Area to push to
            <select value={area} onChange={(e) => setArea(e.currentTarget.value)}>
              {areas.map((a) => (
                <option key={a} value={a}>
                  {a}
                </option>
              ))}
            </select>
          </label>
        ) : (
          <label>
            Meter ids
            <input
              value={meters}
              aria-invalid={error?.field === 'target' ? 'true' : undefined}
              onInput={(e) => setMeters(e.currentTarget.value)}
            />
          </label>
        )}
        <button type="submit">Assign and push</button>
      </form>
      {error && (
        <p role="alert" class="error">
          {error.message}
        </p>
      )}
      {sent && (
        <>
          <p>
            Version {sent.version} sent to {sent.ids.length} meters
            {sent.failed.length > 0 ? `; not sent: ${sent.failed.join('; ')}` : ''}.
          </p>
          <PushWatch tariffId={tariffId} meterIds={sent.ids} />
        </>
      )}
    </section>
  );
}

export function TariffsScreen({
  store,
  operator,
  id,
}: {
  store: FleetStore;
  operator: Operator;
  id: string | null;
}) {
  const list = useApi<{ tariffs: TariffSummary[] }>('/api/tariffs');
  const operatorRole = roleAtLeast(operator.role, 'operator');
  const [text, setText] = useState(() => JSON.stringify(TEMPLATE, null, 2));
  const [loaded, setLoaded] = useState<string | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [saved, setSaved] = useState<{ id: string; version: number } | null>(null);
  const [checking, setChecking] = useState(false);
  const area = useRef<HTMLTextAreaElement>(null);
  useEffect(() => {
    if (!id) return;
    let live = true;
    api<unknown>('GET', `/api/tariffs/${encodeURIComponent(id)}`)
      .then((doc) => {
        if (!live) return;
        setText(JSON.stringify(doc, null, 2));
        setLoaded(id);
        setError(null);
        setSaved(null);
      })
      .catch((e) => live && setError(e instanceof ApiError ? e : new ApiError(0, 'error', String(e))));
    return () => {
      live = false;
    };
  }, [id]);
  // The validator's verdict on the draft, as it is typed (the draft quote validates it first).
  useEffect(() => {
    if (!operatorRole) return;
    let document: unknown;
    try {
      document = JSON.parse(text);
    } catch (e) {
      setError(new ApiError(400, 'bad-json', `not JSON: ${(e as Error).message}`, ''));
      return;
    }
    let live = true;
    setChecking(true);
    const timer = setTimeout(() => {
      api('POST', '/api/tariffs/draft-quote', { document, bay: 1, start: 0, minutes: 60 })
        .then(() => live && setError(null))
        .catch((e) => {
          if (!live) return;
          setError(e instanceof ApiError && e.status === 400 ? e : null);
        })
        .finally(() => live && setChecking(false));
    }, 300);
    return () => {
      live = false;
      clearTimeout(timer);
    };
  }, [text, operatorRole]);
  const showField = () => {
    const key = error?.field ? lastKey(error.field) : null;
    const el = area.current;
    if (!key || !el) return;
    const at = text.indexOf(`"${key}"`);
    if (at < 0) return;
    el.focus();
    el.setSelectionRange(at, at + key.length + 2);
  };
  const save = async () => {
    setSaved(null);
    let document: unknown;
    try {
      document = JSON.parse(text);
    } catch (e) {
      setError(new ApiError(400, 'bad-json', `not JSON: ${(e as Error).message}`, ''));
      return;
    }
    try {
      const r = await api<{ id: string; version: number }>('POST', '/api/tariffs', document);
      setSaved(r);
      setLoaded(r.id);
      setError(null);
      list.reload();
    } catch (e) {
      setError(e instanceof ApiError ? e : new ApiError(0, 'error', String(e)));
    }
  };
  const editing = loaded ?? (saved?.id || null);
  return (
    <div class="tariffs-page">
      <h1>Tariffs</h1>
      <section aria-labelledby="tariff-list-title">
        <h2 id="tariff-list-title">Stored tariffs</h2>
        {list.error && <p class="error">{list.error}</p>}
        <table aria-label="Stored tariffs">
          <thead>
            <tr>
              <th scope="col">Tariff</th>
              <th scope="col">Latest version</th>
              <th scope="col">Versions</th>
              <th scope="col">Meters pushed</th>
              <th scope="col">Changed</th>
            </tr>
          </thead>
          <tbody>
            {list.data?.tariffs.map((t) => (
              <tr key={t.id} data-tariff={t.id}>
                <td>
                  <a href={`#/tariffs/${encodeURIComponent(t.id)}`}>{t.id}</a>
                </td>
                <td>{t.version}</td>
                <td>{t.versions}</td>
                <td>{t.meters}</td>
                <td>{new Date(t.updatedAt).toLocaleString('en-GB')}</td>
              </tr>
            ))}
          </tbody>
        </table>
        {list.data?.tariffs.length === 0 && <p>No tariffs stored yet.</p>}
        {operatorRole && (
          <p>
            <button
              type="button"
              onClick={() => {
                location.hash = '#/tariffs';
                setText(JSON.stringify(TEMPLATE, null, 2));
                setLoaded(null);
                setSaved(null);
              }}
            >
              Start a new tariff
            </button>
          </p>
        )}
      </section>
      <div class="tariff-editor">
        <section aria-labelledby="editor-title">
          <h2 id="editor-title">{editing ? `Tariff ${editing}` : 'New tariff'}</h2>
          <label for="tariff-text">Tariff document (JSON)</label>
          <textarea
            id="tariff-text"
            ref={area}
            rows={24}
            spellcheck={false}
            readOnly={!operatorRole}
            value={text}
            aria-invalid={error && error.status === 400 ? 'true' : undefined}
            aria-describedby="tariff-problem"
            onInput={(e) => {
              setText(e.currentTarget.value);
              setSaved(null);
            }}
          />
          <div id="tariff-problem">
            {error && (
              <p role="alert" class="error" data-field={error.field ?? ''}>
                {error.field ? (
                  <>
                    At <code>{error.field}</code>: {error.message.replace(`${error.field}: `, '')}{' '}
                    <button type="button" onClick={showField}>
                      Show in the text
                    </button>
                  </>
                ) : (
                  error.message
                )}
              </p>
            )}
            {!error && operatorRole && !checking && <p class="ok">The validator accepts this document.</p>}
          </div>
          {operatorRole && (
            <button type="button" onClick={save}>
              Save version
            </button>
          )}
          {saved && (
            <p role="status">
              Saved {saved.id} version {saved.version}.
            </p>
          )}
        </section>
        <QuotePreview text={text} canQuote={operatorRole} storedId={loaded} />
      </div>
      {operatorRole && editing && (
        <Assign key={editing} tariffId={editing} store={store} onAssigned={list.reload} />
      )}
    </div>
  );
}
