/** Vaults: the connections and the Local vault's items (names and field names only — never a value). */
import { useEffect, useState } from 'preact/hooks';
import { api, ApiError, messageOf } from '../api';
import type { CreateVaultItemInput, VaultConnection, VaultItemInfo } from '../types';
import { Field, Modal } from '../ui';

/** The Vaults page. */
export function VaultsPage() {
  const [vaults, setVaults] = useState<VaultConnection[]>([]);
  const [items, setItems] = useState<VaultItemInfo[]>([]);
  const [error, setError] = useState<string>();
  const load = (): void => {
    api<VaultConnection[]>('GET', '/api/vaults').then(setVaults, (err) => setError(messageOf(err)));
    api<VaultItemInfo[]>('GET', '/api/vaults/local/items').then(setItems, (err) => setError(messageOf(err)));
  };
  useEffect(load, []);
  return (
    <section>
      <div class="page-head">
        <h1>Vaults</h1>
      </div>
      <p>
        Channels and agents hold only references to secrets; the values stay in a vault and are read at the moment they
        are used.
      </p>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      <h2>Connections</h2>
      <ul class="plain">
        {vaults.map((v) => (
          <li>
            <strong>{v.label ?? v.id}</strong> <span class="muted">({v.kind})</span>
          </li>
        ))}
      </ul>
      <h2>Local items</h2>
      {items.length === 0 ? (
        <p class="empty">No items yet.</p>
      ) : (
        <table class="list">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Kind</th>
              <th scope="col">Fields</th>
              <th scope="col">Created</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {items.map((i) => (
              <tr key={i.item}>
                <td data-label="Name">
                  {i.name}
                  <div class="muted mono">{i.item}</div>
                </td>
                <td data-label="Kind">{i.kind}</td>
                <td data-label="Fields" class="mono">
                  {i.fields.join(', ')}
                </td>
                <td data-label="Created">{new Date(i.createdAt).toLocaleString()}</td>
                <td data-label="Actions">
                  <ItemActions item={i} onChanged={load} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <NewItem onCreated={load} />
    </section>
  );
}

/**
 * Rotate (a new value for a field, used by channels and agents within seconds, no config re-save) and
 * Delete (refused with 409 while something refers to the item). The value is typed in, never shown.
 */
function ItemActions(props: { item: VaultItemInfo; onChanged: () => void }) {
  const { item } = props;
  const [rotating, setRotating] = useState(false);
  const [confirmDelete, setConfirmDelete] = useState(false);
  const [error, setError] = useState<string>();
  const [field, setField] = useState(item.fields[0] ?? 'value');
  const [value, setValue] = useState('');
  const path = `/api/vaults/local/items/${encodeURIComponent(item.item)}`;
  const rotate = async (e: Event): Promise<void> => {
    e.preventDefault();
    try {
      await api('PUT', path, { fields: { [field]: value } });
      setValue('');
      setRotating(false);
      setError(undefined);
      props.onChanged();
    } catch (err) {
      setError(messageOf(err));
    }
  };
  const remove = async (): Promise<void> => {
    setConfirmDelete(false);
    try {
      await api('DELETE', path);
      props.onChanged();
    } catch (err) {
      // Shown beside this item's buttons: a 409 names what still uses it.
      setError(messageOf(err));
    }
  };
  const errorNote = error && (
    <p class="error" role="alert">
      {error}
    </p>
  );
  if (rotating) {
    return (
      <form class="inline" onSubmit={(e) => void rotate(e)}>
        <Field label={`Field of ${item.name}`}>
          {(id) => (
            <select id={id} value={field} onChange={(e) => setField(e.currentTarget.value)}>
              {item.fields.map((f) => (
                <option value={f}>{f}</option>
              ))}
            </select>
          )}
        </Field>
        <Field label={`New value for ${item.name}`}>
          {(id) => (
            <input
              id={id}
              type="password"
              autoComplete="off"
              required
              value={value}
              onInput={(e) => setValue(e.currentTarget.value)}
            />
          )}
        </Field>
        {errorNote}
        <button type="submit">Save</button>
        <button type="button" class="secondary" onClick={() => setRotating(false)}>
          Cancel
        </button>
      </form>
    );
  }
  return (
    <>
      <div class="actions">
        <button type="button" class="secondary" aria-label={`Rotate ${item.name}`} onClick={() => setRotating(true)}>
          Rotate
        </button>
        <button type="button" class="danger" aria-label={`Delete ${item.name}`} onClick={() => setConfirmDelete(true)}>
          Delete
        </button>
      </div>
      {errorNote}
      {confirmDelete && (
        <Modal title={`Delete the credential “${item.name}”?`} onClose={() => setConfirmDelete(false)}>
          <p>
            Its value is erased from the Local vault. Wharf refuses while a channel, an agent or a vault connection
            still refers to it.
          </p>
          <div class="actions">
            <button type="button" class="secondary" onClick={() => setConfirmDelete(false)}>
              Cancel
            </button>
            <button type="button" class="danger" onClick={() => void remove()}>
              Delete credential
            </button>
          </div>
        </Modal>
      )}
    </>
  );
}

function NewItem({ onCreated }: { onCreated: () => void }) {
  const [name, setName] = useState('');
  const [value, setValue] = useState('');
  const [error, setError] = useState<ApiError | Error | null>(null);
  const submit = async (e: Event): Promise<void> => {
    e.preventDefault();
    setError(null);
    const body: CreateVaultItemInput = { name: name.trim(), kind: 'api_key', fields: { value } };
    try {
      await api('POST', '/api/vaults/local/items', body);
      setName('');
      setValue('');
      onCreated();
    } catch (err) {
      setError(err as Error);
    }
  };
  const fe = (f: string): string | undefined => (error instanceof ApiError ? error.forField(f) : undefined);
  return (
    <form class="card" onSubmit={(e) => void submit(e)}>
      <h2>New credential</h2>
      <Field label="Name" error={fe('name')}>
        {(id) => <input id={id} required value={name} onInput={(e) => setName(e.currentTarget.value)} />}
      </Field>
      <Field label="Value" error={fe('fields')} hint="Stored encrypted; it is never shown again.">
        {(id, d) => (
          <input
            id={id}
            type="password"
            autoComplete="off"
            required
            value={value}
            aria-describedby={d}
            onInput={(e) => setValue(e.currentTarget.value)}
          />
        )}
      </Field>
      {error && !fe('name') && !fe('fields') && (
        <p class="error" role="alert">
          {messageOf(error)}
        </p>
      )}
      <button type="submit">Create</button>
    </form>
  );
}
