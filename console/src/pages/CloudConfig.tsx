/** The Cloud API Config tab: the two ids, a credential picker per secret, Save, then the Webhook URL. */
import { useEffect, useState } from 'preact/hooks';
import { api, ApiError, messageOf } from '../api';
import type { Channel, CloudConfigInput, CredentialRef, VaultItemInfo } from '../types';
import { Field } from '../ui';
import { CredentialPicker } from './CredentialPicker';

const SECRETS = ['access_token', 'verify_token', 'app_secret'] as const;
type Secret = (typeof SECRETS)[number];

const SECRET_HELP: Record<Secret, string> = {
  access_token: 'System User access token with whatsapp_business_messaging.',
  verify_token: 'Any string; type the same value in Meta’s webhook settings.',
  app_secret: 'Meta App Secret; verifies X-Hub-Signature-256 on incoming events.',
};

const asRef = (v: unknown): CredentialRef | null =>
  v && typeof v === 'object' && 'item' in v ? (v as CredentialRef) : null;
const asText = (v: unknown): string => (typeof v === 'string' ? v : '');

/** Config for a `whatsapp_cloud` channel. */
export function CloudConfigTab({ ch, onSaved }: { ch: Channel; onSaved: (c: Channel) => void }) {
  const [phone, setPhone] = useState(asText(ch.config.phone_number_id));
  const [waba, setWaba] = useState(asText(ch.config.business_account_id));
  const [refs, setRefs] = useState<Record<Secret, CredentialRef | null>>({
    access_token: asRef(ch.config.access_token),
    verify_token: asRef(ch.config.verify_token),
    app_secret: asRef(ch.config.app_secret),
  });
  const [picking, setPicking] = useState<Secret | null>(null);
  const [names, setNames] = useState<Record<string, string>>({});
  const [error, setError] = useState<ApiError | Error | null>(null);
  const [saved, setSaved] = useState(false);
  const [busy, setBusy] = useState(false);

  const loadNames = (): void => {
    api<VaultItemInfo[]>('GET', '/api/vaults/local/items').then(
      (items) => setNames(Object.fromEntries(items.map((i) => [`${i.vault}/${i.item}`, i.name]))),
      () => undefined,
    );
  };
  useEffect(loadNames, []);

  const save = async (e: Event): Promise<void> => {
    e.preventDefault();
    setError(null);
    setSaved(false);
    const missing = SECRETS.filter((s) => !refs[s]);
    if (missing.length) {
      setError(
        new ApiError(
          400,
          'validation_failed',
          `Configure ${missing.join(', ')} first.`,
          missing.map((m) => ({ path: [m], message: 'not configured yet: use Configure' })),
        ),
      );
      return;
    }
    const body: CloudConfigInput = {
      phone_number_id: phone.trim(),
      business_account_id: waba.trim(),
      access_token: refs.access_token!,
      verify_token: refs.verify_token!,
      app_secret: refs.app_secret!,
    };
    setBusy(true);
    try {
      onSaved(await api<Channel>('PUT', `/api/channels/${ch.id}/config`, body));
      setSaved(true);
    } catch (err) {
      setError(err as Error);
    } finally {
      setBusy(false);
    }
  };
  const fieldError = (f: string): string | undefined => (error instanceof ApiError ? error.forField(f) : undefined);
  const general =
    error && !['phone_number_id', 'business_account_id', ...SECRETS].some((f) => fieldError(f))
      ? messageOf(error)
      : null;

  return (
    <div class="config">
      <form onSubmit={(e) => void save(e)}>
        <Field
          label="phone_number_id"
          error={fieldError('phone_number_id')}
          hint="Phone Number ID from WhatsApp → API Setup in Meta for Developers."
        >
          {(id, describedBy) => (
            <input
              id={id}
              inputMode="numeric"
              autoComplete="off"
              value={phone}
              aria-describedby={describedBy}
              aria-invalid={fieldError('phone_number_id') ? true : undefined}
              onInput={(e) => setPhone(e.currentTarget.value)}
            />
          )}
        </Field>
        <Field
          label="business_account_id"
          error={fieldError('business_account_id')}
          hint="WhatsApp Business Account ID."
        >
          {(id, describedBy) => (
            <input
              id={id}
              inputMode="numeric"
              autoComplete="off"
              value={waba}
              aria-describedby={describedBy}
              aria-invalid={fieldError('business_account_id') ? true : undefined}
              onInput={(e) => setWaba(e.currentTarget.value)}
            />
          )}
        </Field>
        {SECRETS.map((s) => {
          const ref = refs[s];
          const err = fieldError(s);
          return (
            <div class="field secret">
              <span class="label" id={`lbl-${s}`}>
                {s}
              </span>
              <div class="secret-row">
                <span class={ref ? 'ref' : 'ref unset'}>
                  {ref
                    ? `${ref.vault} › ${names[`${ref.vault}/${ref.item}`] ?? ref.item} › ${ref.field}`
                    : 'not configured'}
                </span>
                <button type="button" class="secondary" aria-label={`Configure ${s}`} onClick={() => setPicking(s)}>
                  Configure
                </button>
              </div>
              <p class="hint">{SECRET_HELP[s]}</p>
              {err && (
                <p class="error" role="alert">
                  {err}
                </p>
              )}
            </div>
          );
        })}
        {general && (
          <p class="error" role="alert">
            {general}
          </p>
        )}
        {saved && ch.status !== 'failed' && (
          <p class="ok" role="status">
            Saved. The credentials were accepted by the Graph API.
          </p>
        )}
        <div class="actions">
          <button type="submit" disabled={busy}>
            Save
          </button>
        </div>
      </form>
      {ch.webhookUrl && <WebhookUrl url={ch.webhookUrl} />}
      {picking && (
        <CredentialPicker
          field={picking}
          current={refs[picking]}
          onClose={() => setPicking(null)}
          onPick={(ref) => {
            setRefs({ ...refs, [picking]: ref });
            setPicking(null);
            loadNames();
          }}
        />
      )}
    </div>
  );
}

function WebhookUrl({ url }: { url: string }) {
  const [copied, setCopied] = useState(false);
  const copy = async (): Promise<void> => {
    try {
      await navigator.clipboard.writeText(url);
    } catch {
      // No clipboard permission (e.g. plain http on another host): select the text so Ctrl+C works.
      const input = document.getElementById('webhook-url') as HTMLInputElement | null;
      input?.select();
      document.execCommand('copy');
    }
    setCopied(true);
    setTimeout(() => setCopied(false), 2000);
  };
  return (
    <div class="webhook">
      <label for="webhook-url">Webhook URL</label>
      <div class="copy-row">
        <input id="webhook-url" readOnly value={url} onFocus={(e) => e.currentTarget.select()} />
        <button type="button" onClick={() => void copy()}>
          Copy
        </button>
        <span role="status" class="ok">
          {copied ? 'Copied' : ''}
        </span>
      </div>
      <p class="hint">
        In Meta for Developers → WhatsApp → Configuration → Webhook: paste this URL as the Callback URL and the{' '}
        <strong>same verify token</strong> you configured here, then subscribe to the
        <strong> messages</strong> webhook field. The status turns Connected when Meta verifies it.
      </p>
    </div>
  );
}
