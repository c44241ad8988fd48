// The operator console: sign-in (with the authenticator or a recovery code once the account has
// one), then the fleet, the map, a meter's page, the registry, the alarm inbox, the tariffs, the
// accounts and the audit log, each a hash route (#/fleet, #/map, #/meters/1001, #/register,
// #/alarms, #/tariffs, #/reports, #/accounts, #/audit). Controls the operator's role cannot use are not
// rendered; the platform refuses them anyway.
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { api, ApiError, type Operator, roleAtLeast, session, setSignedOutHandler } from './api';
import { AccountsScreen } from './accounts';
import { AlarmsScreen } from './alarms';
import { AuditScreen } from './audit';
import { ReportsScreen } from './reports';
import { FleetScreen } from './fleet';
import { MapScreen } from './map';
import { MeterScreen } from './meter';
import { RegisterScreen } from './register';
import { FleetStore } from './store';
import { TariffsScreen } from './tariffs';

function useHash(): string {
  const [hash, setHash] = useState(location.hash || '#/fleet');
  useEffect(() => {
    const update = () => setHash(location.hash || '#/fleet');
    addEventListener('hashchange', update);
    return () => removeEventListener('hashchange', update);
  }, []);
  return hash;
}

function Login({ onSignedIn }: { onSignedIn: (operator: Operator) => void }) {
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  // Once the platform answers mfa-required: the authenticator's code, or a recovery code.
  const [second, setSecond] = useState<'code' | 'recovery' | null>(null);
  const [code, setCode] = useState('');
  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const answer = await api<{ token: string; operator: Operator }>('POST', '/api/operators/login', {
        username,
        password,
        ...(second === 'code' && code ? { code } : {}),
        ...(second === 'recovery' && code ? { recoveryCode: code } : {}),
      });
      session.token = answer.token;
      onSignedIn(answer.operator);
    } catch (e) {
      if (e instanceof ApiError && e.code === 'mfa-required' && !second) {
        setSecond('code');
        setError('This account needs the code from its authenticator app.');
      } else setError(e instanceof ApiError ? e.message : String(e));
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="login">
      <form onSubmit={submit} aria-labelledby="login-title">
        <h1 id="login-title">ParkLink operator console</h1>
        <label>
          User name
          <input
            name="username"
            autocomplete="username"
            required
            value={username}
            onInput={(e) => setUsername(e.currentTarget.value)}
          />
        </label>
        <label>
          Password
          <input
            name="password"
            type="password"
            autocomplete="current-password"
            required
            value={password}
            onInput={(e) => setPassword(e.currentTarget.value)}
          />
        </label>
        {second && (
          <label>
            {second === 'code' ? 'Authenticator code' : 'Recovery code'}
            <input
              name="code"
              autocomplete="one-time-code"
              inputMode={second === 'code' ? 'numeric' : 'text'}
              required
              value={code}
              onInput={(e) => setCode(e.currentTarget.value.trim())}
            />
          </label>
        )}
        {error && (
          <p role="alert" class="error">
            {error}
          </p>
        )}
        <button type="submit" disabled={busy}>
          Sign in
        </button>
        {second && (
          <button
            type="button"
            class="link"
            onClick={() => {
              setSecond(second === 'code' ? 'recovery' : 'code');
              setCode('');
            }}
          >
            {second === 'code' ? 'Use a recovery code instead' : 'Use the authenticator code'}
          </button>
        )}
      </form>
    </main>
  );
}

const NAV: { href: string; label: string; role: Operator['role'] }[] = [
  { href: '#/fleet', label: 'Fleet', role: 'viewer' },
  { href: '#/map', label: 'Map', role: 'viewer' },
  { href: '#/alarms', label: 'Alarms', role: 'viewer' },
  { href: '#/tariffs', label: 'Tariffs', role: 'viewer' },
  { href: '#/reports', label: 'Reports', role: 'viewer' },
  { href: '#/register', label: 'Register a meter', role: 'admin' },
  { href: '#/accounts', label: 'Accounts', role: 'supervisor' },
  { href: '#/audit', label: 'Audit', role: 'supervisor' },
];

function Shell({ operator, onSignOut }: { operator: Operator; onSignOut: () => void }) {
  const hash = useHash();
  const [store] = useState(() => new FleetStore());
  useEffect(() => {
    store.start();
    return () => store.stop();
  }, [store]);
  const meterMatch = /^#\/meters\/(\d+)$/.exec(hash);
  let screen = <FleetScreen store={store} />;
  if (hash === '#/map') screen = <MapScreen store={store} operator={operator} />;
  else if (hash === '#/register' && roleAtLeast(operator.role, 'admin'))
    screen = <RegisterScreen store={store} />;
  else if (hash === '#/alarms' || hash.startsWith('#/alarms?'))
    screen = <AlarmsScreen store={store} operator={operator} hash={hash} />;
  else if (hash === '#/tariffs' || hash.startsWith('#/tariffs/')) {
    const id = hash.startsWith('#/tariffs/') ? decodeURIComponent(hash.slice('#/tariffs/'.length)) : null;
    screen = <TariffsScreen store={store} operator={operator} id={id} />;
  } else if (hash === '#/accounts' && roleAtLeast(operator.role, 'supervisor'))
    screen = <AccountsScreen operator={operator} />;
  else if (hash === '#/audit' && roleAtLeast(operator.role, 'supervisor')) screen = <AuditScreen />;
  else if (hash === '#/reports') screen = <ReportsScreen />;
  else if (meterMatch) screen = <MeterScreen id={Number(meterMatch[1])} store={store} operator={operator} />;
  return (
    <>
      <header class="top">
        <span class="brand">ParkLink</span>
        <nav aria-label="Main">
          {NAV.filter((n) => roleAtLeast(operator.role, n.role)).map((n) => (
            <a key={n.href} href={n.href} aria-current={hash.startsWith(n.href) ? 'page' : undefined}>
              {n.label}
            </a>
          ))}
        </nav>
        <span class="who">
          {operator.displayName || operator.username} ({operator.role})
        </span>
        <button type="button" onClick={onSignOut}>
          Sign out
        </button>
      </header>
      <main id="content">{screen}</main>
    </>
  );
}

function App() {
  const [operator, setOperator] = useState<Operator | null>(null);
  const [checking, setChecking] = useState(Boolean(session.token));
  useEffect(() => {
    setSignedOutHandler(() => {
      session.token = null;
      setOperator(null);
    });
    if (!session.token) return;
    api<{ operator: Operator }>('GET', '/api/operators/me')
      .then((me) => setOperator(me.operator))
      .catch(() => (session.token = null))
      .finally(() => setChecking(false));
  }, []);
  const signOut = async () => {
    await api('POST', '/api/operators/logout').catch(() => {});
    session.token = null;
    setOperator(null);
  };
  if (checking) return <p role="status">Checking your session…</p>;
  if (!operator) return <Login onSignedIn={setOperator} />;
  return <Shell operator={operator} onSignOut={signOut} />;
}

render(<App />, document.getElementById('root')!);
