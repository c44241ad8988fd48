// The city's reports (#/reports, viewers): revenue, occupancy, events and uptime over a range of the
// city's days, for the fleet or an area; shown a page at a time (a page of days and, for rows per
// meter, of meters: the platform's `next` and `nextMeters`), downloaded whole as CSV or PDF (fetched
// with the session's token, saved from a blob).
import { useState } from 'preact/hooks';
import { ApiError, session } from './api';
import { useApi } from './meter';

type Kind = 'revenue' | 'occupancy' | 'events' | 'uptime' | 'settlement';
const KINDS: { kind: Kind; label: string }[] = [
  { kind: 'revenue', label: 'Revenue' },
  { kind: 'occupancy', label: 'Occupancy' },
  { kind: 'events', label: 'Events' },
  { kind: 'uptime', label: 'Uptime' },
  { kind: 'settlement', label: 'Settlement' },
];

interface Report {
  title: string;
  timeZone: string;
  from: string;
  to: string;
  next: string | null;
  nextMeters: string | null;
  columns: { key: string; title: string; money?: boolean }[];
  rows: Record<string, string | number | null>[];
  totals: Record<string, number>;
}

const day = (d: Date) => d.toISOString().slice(0, 10);

export function ReportsScreen() {
  const today = new Date();
  const [kind, setKind] = useState<Kind>('revenue');
  const [from, setFrom] = useState(day(new Date(today.getTime() - 6 * 86_400_000)));
  const [to, setTo] = useState(day(new Date(today.getTime() + 86_400_000)));
  const [area, setArea] = useState('');
  // Revenue for the whole city is shown per area unless asked per meter: a week of a large city is
  // hundreds of thousands of rows per meter (the CSV and PDF downloads follow the same choice).
  const [by, setBy] = useState<'area' | 'meter'>('area');
  // Where the pages after the first start (their first day, and the meter before their first), to
  // go back.
  const [pages, setPages] = useState<{ from: string; afterMeter?: string }[]>([]);
  const [downloadError, setDownloadError] = useState<string | null>(null);
  const page = pages.length > 0 ? pages[pages.length - 1] : { from };
  const query = new URLSearchParams({ from: page.from, to });
  if (page.afterMeter) query.set('afterMeter', page.afterMeter);
  if (area.trim()) query.set('area', area.trim());
  if (kind === 'revenue') query.set('by', by);
  const report = useApi<Report>(`/api/reporting/${kind}?${query}`);
  const reset = () => setPages([]);

  const download = async (format: 'csv' | 'pdf') => {
    setDownloadError(null);
    const whole = new URLSearchParams({ from, to, format });
    if (area.trim()) whole.set('area', area.trim());
    if (kind === 'revenue') whole.set('by', by);
    const response = await fetch(`/api/reporting/${kind}?${whole}`, {
      headers: session.token ? { authorization: `Bearer ${session.token}` } : {},
    });
    if (!response.ok) {
      const body = await response.json().catch(() => null);
      setDownloadError(
        new ApiError(response.status, body?.code ?? 'error', body?.message ?? response.statusText).message,
      );
      return;
    }
    const link = document.createElement('a');
    link.href = URL.createObjectURL(await response.blob());
    link.download = `parklink-${kind}-${from}-${to}.${format}`;
    link.click();
    URL.revokeObjectURL(link.href);
  };

  const show = (column: Report['columns'][number], value: string | number | null | undefined) =>
    value === null || value === undefined
      ? '—'
      : column.money && typeof value === 'number'
        ? (value / 100).toFixed(2)
        : String(value);

  return (
    <section aria-labelledby="reports-title">
      <h1 id="reports-title">Reports</h1>
      <form class="filters" aria-label="Report settings" onSubmit={(e) => e.preventDefault()}>
        <label>
          Report
          <select
            value={kind}
            onChange={(e) => {
              setKind(e.currentTarget.value as Kind);
              reset();
            }}
          >
            {KINDS.map((k) => (
              <option key={k.kind} value={k.kind}>
                {k.label}
              </option>
            ))}
          </select>
        </label>
        <label>
          From
          <input
            type="date"
            value={from}
            onChange={(e) => {
              setFrom(e.currentTarget.value);
              reset();
            }}
          />
        </label>
        <label>
          To (the day after the last)
          <input
            type="date"
            value={to}
            onChange={(e) => {
              setTo(e.currentTarget.value);
              reset();
            }}
          />
        </label>
        <label>
          Area
          <input
            value={area}
            placeholder="every area"
            onChange={(e) => {
              setArea(e.currentTarget.value);
              reset();
            }}
          />
        </label>
        {kind === 'revenue' && (
          <label>
            Rows
            <select
              value={by}
              onChange={(e) => {
                setBy(e.currentTarget.value as 'area' | 'meter');
                reset();
              }}
            >
              <option value="area">per area</option>
              <option value="meter">per meter</option>
            </select>
          </label>
        )}
        <button type="button" onClick={() => download('csv')}>
          Download CSV
        </button>
        <button type="button" onClick={() => download('pdf')}>
          Download PDF
        </button>
      </form>
      {downloadError && <p role="alert">{downloadError}</p>}
      {report.error && <p role="alert">{report.error}</p>}
      {report.data && (
        <>
          <h2>{report.data.title}</h2>
          <p>
            {report.data.from} to {report.data.to}, days in {report.data.timeZone}
          </p>
          <table aria-label={report.data.title}>
            <thead>
              <tr>
                {report.data.columns.map((c) => (
                  <th key={c.key}>{c.title}</th>
                ))}
              </tr>
            </thead>
            <tbody>
              {report.data.rows.map((row, i) => (
                <tr key={i}>
                  {report.data!.columns.map((c) => (
                    <td key={c.key}>{show(c, row[c.key])}</td>
                  ))}
                </tr>
              ))}
              {report.data.rows.length === 0 && (
                <tr>
                  <td colSpan={report.data.columns.length}>No data in this range.</td>
                </tr>
              )}
            </tbody>
            <tfoot>
              <tr>
                {report.data.columns.map((c, i) => (
                  <td key={c.key}>
                    {i === 0
                      ? pages.length > 0 || report.data!.next || report.data!.nextMeters
                        ? 'Total, this page'
                        : 'Total'
                      : c.key in report.data!.totals
                        ? show(c, report.data!.totals[c.key])
                        : ''}
                  </td>
                ))}
              </tr>
            </tfoot>
          </table>
          <nav aria-label="Pages">
            <button type="button" disabled={pages.length === 0} onClick={() => setPages(pages.slice(0, -1))}>
              Previous page
            </button>
            <button
              type="button"
              disabled={!report.data.next && !report.data.nextMeters}
              onClick={() => {
                const data = report.data!;
                // The rest of the meters over these days first, then the next days from the first meter.
                setPages([
                  ...pages,
                  data.nextMeters ? { from: page.from, afterMeter: data.nextMeters } : { from: data.next! },
                ]);
              }}
            >
              Next page
            </button>
          </nav>
        </>
      )}
    </section>
  );
}
