// Accounts (#/accounts): the signed-in operator's own second factor (TOTP) for supervisors and
// admins, started, confirmed with a code and its recovery codes shown once; and for admins every
// operator account: create, change role, disable or enable, reset a lost second factor.
//
// The otpauth:// URI is drawn as a QR code (the qrcode library, bundled: nothing fetched) for the
// authenticator app's camera, and shown as text with the base32 secret for typing or pasting.
import QRCode from 'qrcode';
import { useEffect, useState } from 'preact/hooks';
import { api, ApiError, type Operator, ROLES, type Role, roleAtLeast } from './api';
import { useApi } from './meter';

interface Account {
  username: string;
  displayName: string;
  role: Role;
  createdAt: string;
  disabledAt: string | null;
  lockedUntil: string | null;
  mfaEnrolled: boolean;
}

export interface Me {
  operator: Operator;
  mfa: { enrolled: boolean; session: boolean; recoveryCodesLeft: number; required?: boolean };
}

const asError = (e: unknown) => (e instanceof ApiError ? e : new ApiError(0, 'error', String(e)));

function Enrolment({ operator }: { operator: Operator }) {
  const me = useApi<Me>('/api/operators/me');
  const [started, setStarted] = useState<{ secret: string; uri: string } | null>(null);
  const [code, setCode] = useState('');
  const [codes, setCodes] = useState<string[] | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  if (!roleAtLeast(operator.role, 'supervisor'))
    return (
      <section aria-labelledby="mfa-title">
        <h2 id="mfa-title">Your second factor</h2>
        <p>The second factor is for supervisors and admins; your role signs in with its password.</p>
      </section>
    );
  const start = async () => {
    setError(null);
    try {
      setStarted(await api<{ secret: string; uri: string }>('POST', '/api/operators/me/totp'));
    } catch (e) {
      setError(asError(e));
    }
  };
  const confirm = async (e: Event) => {
    e.preventDefault();
    setError(null);
    try {
      const r = await api<{ recoveryCodes: string[] }>('POST', '/api/operators/me/totp/confirm', { code });
      setCodes(r.recoveryCodes);
      setStarted(null);
      me.reload();
    } catch (e) {
      setError(asError(e));
    }
  };
  const mfa = me.data?.mfa;
  return (
    <section aria-labelledby="mfa-title">
      <h2 id="mfa-title">Your second factor</h2>
      {mfa && (
        <p>
          {mfa.enrolled
            ? `Your authenticator is set up; ${mfa.recoveryCodesLeft} recovery codes left.`
            : mfa.required
              ? 'The platform requires your role to set up an authenticator: supervisor and admin work is refused until you do.'
              : 'No authenticator yet. Once set up, signing in needs its code, and supervisor and admin work needs a session opened with it.'}
        </p>
      )}
      {mfa && !mfa.enrolled && !started && !codes && (
        <button type="button" onClick={start}>
          Set up an authenticator
        </button>
      )}
      {started && (
        <form aria-label="Confirm the authenticator" onSubmit={confirm}>
          <p>Scan this code with your authenticator app, or paste the link into it, or type the secret.</p>
          <TotpQr uri={started.uri} />
          <dl class="facts">
            <div>
              <dt>otpauth link</dt>
              <dd>
                <code data-testid="totp-uri">{started.uri}</code>
              </dd>
            </div>
            <div>
              <dt>Secret (base32)</dt>
              <dd>
                <code data-testid="totp-secret">{started.secret}</code>
              </dd>
            </div>
          </dl>
          <label>
            Code from the app
            <input
              inputMode="numeric"
              autocomplete="one-time-code"
              pattern="[0-9]{6}"
              required
              value={code}
              aria-invalid={error ? 'true' : undefined}
              onInput={(e) => setCode(e.currentTarget.value.trim())}
            />
          </label>
          <button type="submit">Confirm</button>
        </form>
      )}
      {codes && (
        <div role="status" aria-label="Recovery codes">
          <p>
            Your authenticator is on. These recovery codes are shown only now: keep them somewhere safe; each
            signs in once without the app.
          </p>
          <ul class="recovery-codes">
            {codes.map((c) => (
              <li key={c}>
                <code>{c}</code>
              </li>
            ))}
          </ul>
          <button type="button" onClick={() => setCodes(null)}>
            I have kept them
          </button>
        </div>
      )}
      {error && (
        <p role="alert" class="error">
          {error.message}
        </p>
      )}
    </section>
  );
}

function AccountRow({
  account,
  me,
  onChanged,
}: {
  account: Account;
  me: Operator;
  onChanged: (msg: string) => void;
}) {
  const [error, setError] = useState<ApiError | null>(null);
  const patch = async (body: Record<string, unknown>, msg: string) => {
    setError(null);
    try {
      await api('PATCH', `/api/operators/${account.username}`, body);
      onChanged(msg);
    } catch (e) {
      setError(asError(e));
    }
  };
  const resetMfa = async () => {
    setError(null);
    try {
      await api('DELETE', `/api/operators/${account.username}/totp`);
      onChanged(`${account.username}'s second factor removed; they set it up again.`);
    } catch (e) {
      setError(asError(e));
    }
  };
  const self = account.username === me.username;
  return (
    <tr data-account={account.username}>
      <td>{account.username}</td>
      <td>{account.displayName}</td>
      <td>
        <select
          aria-label={`Role of ${account.username}`}
          value={account.role}
          disabled={self}
          onChange={(e) =>
            patch({ role: e.currentTarget.value }, `${account.username} is now ${e.currentTarget.value}.`)
          }
        >
          {ROLES.map((r) => (
            <option key={r} value={r}>
              {r}
            </option>
          ))}
        </select>
      </td>
      <td>
        {account.disabledAt ? 'disabled' : 'enabled'}
        {account.lockedUntil && Date.parse(account.lockedUntil) > Date.now() ? ', locked' : ''}
      </td>
      <td>{account.mfaEnrolled ? 'authenticator' : '—'}</td>
      <td class="actions">
        {!self && (
          <button
            type="button"
            aria-label={`${account.disabledAt ? 'Enable' : 'Disable'} ${account.username}`}
            onClick={() =>
              patch(
                { disabled: !account.disabledAt },
                `${account.username} ${account.disabledAt ? 'enabled' : 'disabled'}.`,
              )
            }
          >
            {account.disabledAt ? 'Enable' : 'Disable'}
          </button>
        )}
        {account.mfaEnrolled && (
          <button type="button" aria-label={`Reset second factor of ${account.username}`} onClick={resetMfa}>
            Reset second factor
          </button>
        )}
        {error && (
          <span role="alert" class="error">
            {error.message}
          </span>
        )}
      </td>
    </tr>
  );
}

function AccountAdmin({ operator }: { operator: Operator }) {
  const list = useApi<{ operators: Account[] }>('/api/operators');
  const [form, setForm] = useState({ username: '', displayName: '', role: 'viewer' as Role, password: '' });
  const [error, setError] = useState<ApiError | null>(null);
  const [done, setDone] = useState<string | null>(null);
  const changed = (msg: string) => {
    setDone(msg);
    list.reload();
  };
  const create = async (e: Event) => {
    e.preventDefault();
    setError(null);
    setDone(null);
    try {
      await api('POST', '/api/operators', {
        username: form.username,
        role: form.role,
        password: form.password,
        ...(form.displayName ? { displayName: form.displayName } : {}),
      });
      changed(`Account ${form.username} created.`);
      setForm({ username: '', displayName: '', role: 'viewer', password: '' });
    } catch (e) {
      setError(asError(e));
    }
  };
  const invalid = (field: string) => (error?.field === field ? 'true' : undefined);
  return (
    <section aria-labelledby="accounts-title">
      <h2 id="accounts-title">Operator accounts</h2>
      {list.error && <p class="error">{list.error}</p>}
      <table aria-label="Operator accounts">
        <thead>
          <tr>
            <th scope="col">User name</th>
            <th scope="col">Name</th>
            <th scope="col">Role</th>
            <th scope="col">State</th>
            <th scope="col">Second factor</th>
            <th scope="col">Actions</th>
          </tr>
        </thead>
        <tbody>
          {list.data?.operators.map((a) => (
            <AccountRow
              key={`${a.username}${a.role}${a.disabledAt}${a.mfaEnrolled}`}
              account={a}
              me={operator}
              onChanged={changed}
            />
          ))}
        </tbody>
      </table>
      {done && <p role="status">{done}</p>}
      <form class="account-form" aria-label="New operator account" onSubmit={create}>
        <h3>New account</h3>
        <label>
          New user name
          <input
            required
            value={form.username}
            aria-invalid={invalid('username')}
            onInput={(e) => setForm({ ...form, username: e.currentTarget.value })}
          />
        </label>
        <label>
          Display name
          <input
            value={form.displayName}
            onInput={(e) => setForm({ ...form, displayName: e.currentTarget.value })}
          />
        </label>
        <label>
          New account's role
          <select
            value={form.role}
            onChange={(e) => setForm({ ...form, role: e.currentTarget.value as Role })}
          >
            {ROLES.map((r) => (
              <option key={r} value={r}>
                {r}
              </option>
            ))}
          </select>
        </label>
        <label>
          Initial password
          <input
            type="password"
            autocomplete="new-password"
            required
            value={form.password}
            aria-invalid={invalid('password')}
            onInput={(e) => setForm({ ...form, password: e.currentTarget.value })}
          />
        </label>
        <button type="submit">Create account</button>
      </form>
      {error && (
        <p role="alert" class="error">
          {error.message}
        </p>
      )}
    </section>
  );
}

export function AccountsScreen({ operator }: { operator: Operator }) {
  return (
    <div class="accounts-page">
      <h1>Accounts</h1>
      <Enrolment operator={operator} />
      {roleAtLeast(operator.role, 'admin') && <AccountAdmin operator={operator} />}
    </div>
  );
}

/** The otpauth:// URI as a QR code (SVG, error correction M). */
function TotpQr({ uri }: { uri: string }) {
  const [svg, setSvg] = useState<string | null>(null);
  useEffect(() => {
    let current = true;
    QRCode.toString(uri, { type: 'svg', errorCorrectionLevel: 'M', margin: 2 }).then(
      (drawn) => current && setSvg(drawn),
      () => current && setSvg(null),
    );
    return () => {
      current = false;
    };
  }, [uri]);
  if (!svg) return null;
  return (
    <div
      class="totp-qr"
      role="img"
      aria-label="QR code of the authenticator link"
      data-testid="totp-qr"
      // The SVG comes from the qrcode library drawing the platform's own otpauth URI.
      dangerouslySetInnerHTML={{ __html: svg }}
    />
  );
}
