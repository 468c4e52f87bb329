/** The login page: the admin token for a session cookie. */
import { useState } from 'preact/hooks';
import { api, ApiError, messageOf } from '../api';
import { Field } from '../ui';

/** Shown to anyone without a session. */
export function LoginPage({ onLoggedIn }: { onLoggedIn: () => void }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event): Promise<void> => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      await api('POST', '/api/session', { token: token.trim() });
      setToken('');
      onLoggedIn();
    } catch (err) {
      setError(err instanceof ApiError && err.status === 401 ? 'That is not the admin token.' : messageOf(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="login">
      <form onSubmit={(e) => void submit(e)} class="card">
        <h1>Wharf</h1>
        <p>
          Log in with the admin token. The first start printed it; it is also in <code>data/admin-token</code> (or
          WHARF_ADMIN_TOKEN).
        </p>
        <Field label="Admin token" error={error}>
          {(id, describedBy) => (
            <input
              id={id}
              type="password"
              autoComplete="current-password"
              required
              value={token}
              aria-describedby={describedBy}
              aria-invalid={error ? true : undefined}
              onInput={(e) => setToken(e.currentTarget.value)}
            />
          )}
        </Field>
        <button type="submit" disabled={busy}>
          Log in
        </button>
      </form>
    </main>
  );
}
