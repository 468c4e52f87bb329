/** The credential picker: a vault connection, then an existing item or a New credential, then the field. */
import { useEffect, useState } from 'preact/hooks';
import { api, ApiError, messageOf } from '../api';
import type { CreateVaultItemInput, CredentialRef, VaultConnection, VaultItemInfo } from '../types';
import { Field, Modal } from '../ui';

/** Picks (or creates) the credential a secret config field points at; the value never comes back. */
export function CredentialPicker(props: {
  field: string;
  current: CredentialRef | null;
  onPick: (ref: CredentialRef) => void;
  onClose: () => void;
}) {
  const [vaults, setVaults] = useState<VaultConnection[]>([]);
  const [vault, setVault] = useState(props.current?.vault ?? 'local');
  const [items, setItems] = useState<VaultItemInfo[]>([]);
  const [item, setItem] = useState(props.current?.item ?? '');
  const [field, setField] = useState(props.current?.field ?? 'value');
  const [creating, setCreating] = useState(false);
  const [name, setName] = useState('');
  const [value, setValue] = useState('');
  const [error, setError] = useState<ApiError | Error | null>(null);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    api<VaultConnection[]>('GET', '/api/vaults').then(setVaults, setError);
  }, []);
  useEffect(() => {
    setItems([]);
    api<VaultItemInfo[]>('GET', `/api/vaults/${encodeURIComponent(vault)}/items`).then((list) => {
      setItems(list);
      if (!list.some((i) => i.item === item)) {
        setItem(list[0]?.item ?? '');
        setCreating(list.length === 0 && (vaults.find((v) => v.id === vault)?.writable ?? vault === 'local'));
      }
    }, setError);
  }, [vault]);

  const chosen = items.find((i) => i.item === item);
  const fields = creating ? ['value'] : (chosen?.fields ?? []);
  useEffect(() => {
    if (fields.length && !fields.includes(field)) setField(fields[0]);
  }, [item, creating, items]);
  const writable = vaults.find((v) => v.id === vault)?.writable ?? vault === 'local';

  const save = async (e: Event): Promise<void> => {
    e.preventDefault();
    setError(null);
    if (!creating) {
      if (!item) return setError(new Error('Pick a credential, or create a new one.'));
      props.onPick({ vault, item, field });
      return;
    }
    setBusy(true);
    try {
      const body: CreateVaultItemInput = { name: name.trim(), kind: 'api_key', fields: { value } };
      const made = await api<{ vault: string; item: string; fields: string[] }>(
        'POST',
        `/api/vaults/${encodeURIComponent(vault)}/items`,
        body,
      );
      setValue('');
      props.onPick({ vault: made.vault, item: made.item, field: 'value' });
    } catch (err) {
      setError(err as Error);
    } finally {
      setBusy(false);
    }
  };
  const fieldError = (f: string): string | undefined => (error instanceof ApiError ? error.forField(f) : undefined);

  return (
    <Modal title={`Credential for ${props.field}`} onClose={props.onClose}>
      <form onSubmit={(e) => void save(e)}>
        <Field label="Vault">
          {(id) => (
            <select id={id} value={vault} onChange={(e) => setVault(e.currentTarget.value)}>
              {(vaults.length ? vaults : [{ id: 'local', kind: 'local', label: 'Local' }]).map((v) => (
                <option value={v.id}>{v.label ?? v.id}</option>
              ))}
            </select>
          )}
        </Field>
        {!creating && (
          <>
            <Field label="Credential" hint={items.length === 0 ? 'This vault has no items yet.' : undefined}>
              {(id, describedBy) => (
                <select
                  id={id}
                  value={item}
                  aria-describedby={describedBy}
                  onChange={(e) => setItem(e.currentTarget.value)}
                >
                  {items.map((i) => (
                    <option value={i.item}>{i.name}</option>
                  ))}
                </select>
              )}
            </Field>
            {writable && (
              <button type="button" class="link" onClick={() => setCreating(true)}>
                New credential
              </button>
            )}
          </>
        )}
        {creating && (
          <fieldset>
            <legend>New credential (API key)</legend>
            <Field label="Name" error={fieldError('name')}>
              {(id, describedBy) => (
                <input
                  id={id}
                  required
                  value={name}
                  aria-describedby={describedBy}
                  onInput={(e) => setName(e.currentTarget.value)}
                />
              )}
            </Field>
            <Field
              label="Value"
              error={fieldError('fields')}
              hint="Stored encrypted in the Local vault; Wharf never shows it again."
            >
              {(id, describedBy) => (
                <input
                  id={id}
                  type="password"
                  autoComplete="off"
                  required
                  value={value}
                  aria-describedby={describedBy}
                  onInput={(e) => setValue(e.currentTarget.value)}
                />
              )}
            </Field>
            {items.length > 0 && (
              <button type="button" class="link" onClick={() => setCreating(false)}>
                Use an existing credential
              </button>
            )}
          </fieldset>
        )}
        <Field label="Field">
          {(id) => (
            <select id={id} value={field} onChange={(e) => setField(e.currentTarget.value)}>
              {fields.map((f) => (
                <option value={f}>{f}</option>
              ))}
            </select>
          )}
        </Field>
        {error && !fieldError('name') && !fieldError('fields') && (
          <p class="error" role="alert">
            {messageOf(error)}
          </p>
        )}
        <div class="actions">
          <button type="button" class="secondary" onClick={props.onClose}>
            Cancel
          </button>
          <button type="submit" disabled={busy}>
            Save
          </button>
        </div>
      </form>
    </Modal>
  );
}
