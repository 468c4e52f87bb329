/** The Channels list and the Add channel dialog. */
import { useEffect, useState } from 'preact/hooks';
import { api, ApiError, messageOf } from '../api';
import { useChanges } from '../live';
import type { AgentRecord, Channel, CreateChannelInput, Provider, Space, SystemInfo } from '../types';
import { Field, Modal, navigate, providerLabel, StatusBadge } from '../ui';
import { PROVIDER_INFO } from '../../../lib/types';
import { channelWorkflowId } from '../../../lib/workflow-ids';

/** The channel workflow's page in the Temporal Web UI, or null when its address is unknown. */
export function temporalLink(system: SystemInfo | null, workflowId: string): string | null {
  if (!system?.temporal.uiUrl) return null;
  return `${system.temporal.uiUrl.replace(/\/$/, '')}/namespaces/${encodeURIComponent(system.temporal.namespace)}/workflows/${encodeURIComponent(workflowId)}`;
}

/** Heading "Channels": every channel with its status, and Add channel. */
export function ChannelsPage({ system }: { system: SystemInfo | null }) {
  const [channels, setChannels] = useState<Channel[] | null>(null);
  const [error, setError] = useState<string>();
  const [adding, setAdding] = useState(false);
  const load = (): void => {
    api<Channel[]>('GET', '/api/channels').then(
      (list) => (setChannels(list), setError(undefined)),
      (err) => setError(messageOf(err)),
    );
  };
  useEffect(load, []);
  useChanges((c) => c.what === 'channel', load);

  return (
    <section>
      <div class="page-head">
        <h1>Channels</h1>
        <button type="button" onClick={() => setAdding(true)}>
          Add channel
        </button>
      </div>
      {error && <p class="error">{error}</p>}
      {channels && channels.length === 0 && <p class="empty">No channels yet. Add one to connect a WhatsApp number.</p>}
      {channels && channels.length > 0 && (
        <table class="list">
          <thead>
            <tr>
              <th scope="col">Space</th>
              <th scope="col">Provider</th>
              <th scope="col">Agent</th>
              <th scope="col">Status</th>
              <th scope="col">Temporal</th>
            </tr>
          </thead>
          <tbody>
            {channels.map((ch) => {
              const link = temporalLink(system, channelWorkflowId(ch.id));
              return (
                <tr key={ch.id}>
                  <td data-label="Space">
                    <a href={`#/channels/${ch.id}`}>{ch.space}</a>
                    <div class="muted mono">{ch.id}</div>
                  </td>
                  <td data-label="Provider">{providerLabel(ch.provider)}</td>
                  <td data-label="Agent">{ch.agent}</td>
                  <td data-label="Status">
                    <StatusBadge status={ch.status} />
                    <div class="reason">{ch.statusReason}</div>
                  </td>
                  <td data-label="Temporal">
                    {link ? (
                      <a
                        href={link}
                        target="_blank"
                        rel="noreferrer"
                        aria-label={`Workflow of ${ch.space} in the Temporal UI`}
                      >
                        Workflow ↗
                      </a>
                    ) : (
                      <span class="muted mono">channel-{ch.id}</span>
                    )}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
      {adding && <AddChannelDialog onClose={() => setAdding(false)} />}
    </section>
  );
}

// The guide's comparison of the two ways to connect WhatsApp.
const PROVIDER_NOTES: Record<Provider, { bestFor: string; publicUrl: string; notes: string }> = {
  whatsapp_cloud: {
    bestFor: 'Production business numbers',
    publicUrl: 'Yes (webhook callback)',
    notes: 'Official, supported by Meta. Requires a Meta Business account.',
  },
  whatsapp_user: {
    bestFor: 'Personal use, testing',
    publicUrl: 'No (QR pairing)',
    notes: 'Unofficial. ⚠ Risk of account ban.',
  },
};

function AddChannelDialog({ onClose }: { onClose: () => void }) {
  const [provider, setProvider] = useState<Provider>('whatsapp_cloud');
  const [space, setSpace] = useState(PROVIDER_INFO.whatsapp_cloud.label);
  const [spaceTouched, setSpaceTouched] = useState(false);
  const [agent, setAgent] = useState('echo');
  const [inbound, setInbound] = useState<'message' | 'signal'>('message');
  const [agents, setAgents] = useState<AgentRecord[]>([]);
  const [spaces, setSpaces] = useState<Space[]>([]);
  const [error, setError] = useState<ApiError | Error | null>(null);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    api<AgentRecord[]>('GET', '/api/agents').then(setAgents, setError);
    api<Space[]>('GET', '/api/spaces?unbound=true').then(setSpaces, setError);
  }, []);
  const pickProvider = (p: Provider): void => {
    setProvider(p);
    if (!spaceTouched) setSpace(PROVIDER_INFO[p].label);
  };
  const create = async (e: Event): Promise<void> => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    const body: CreateChannelInput = { provider, agent, space: space.trim() || undefined, inbound };
    try {
      const ch = await api<Channel>('POST', '/api/channels', body);
      onClose();
      navigate(`channels/${ch.id}`);
    } catch (err) {
      setError(err as Error);
    } finally {
      setBusy(false);
    }
  };
  const fieldError = (f: string): string | undefined => (error instanceof ApiError ? error.forField(f) : undefined);
  const spaceError =
    fieldError('space') ?? (error instanceof ApiError && error.code === 'conflict' ? error.message : undefined);

  return (
    <Modal title="Add channel" onClose={onClose} wide>
      <form onSubmit={(e) => void create(e)}>
        <fieldset>
          <legend>Provider</legend>
          <div class="provider-options">
            {(Object.keys(PROVIDER_NOTES) as Provider[]).map((p) => (
              <label class={`option ${provider === p ? 'selected' : ''}`}>
                <input
                  type="radio"
                  name="provider"
                  value={p}
                  checked={provider === p}
                  onChange={() => pickProvider(p)}
                />
                <span class="option-title">{PROVIDER_INFO[p].label}</span>
                <dl>
                  <dt>Best for</dt>
                  <dd>{PROVIDER_NOTES[p].bestFor}</dd>
                  <dt>Public URL needed</dt>
                  <dd>{PROVIDER_NOTES[p].publicUrl}</dd>
                  <dt>Notes</dt>
                  <dd>{PROVIDER_NOTES[p].notes}</dd>
                </dl>
              </label>
            ))}
          </div>
          {provider === 'whatsapp_user' && (
            <p class="warning" role="note">
              ⚠ Using a personal WhatsApp account through an unofficial client may violate WhatsApp's Terms of Service
              and could result in your account being banned. You are responsible for any actions taken against your
              account.
            </p>
          )}
        </fieldset>
        <Field
          label="Space"
          error={spaceError}
          hint="Where the conversation lives. Pick a free space or type a new name to create one."
        >
          {(id, describedBy) => (
            <>
              <input
                id={id}
                list={`${id}-list`}
                value={space}
                required
                aria-describedby={describedBy}
                onInput={(e) => (setSpace(e.currentTarget.value), setSpaceTouched(true))}
              />
              <datalist id={`${id}-list`}>
                {spaces.map((s) => (
                  <option value={s.name} />
                ))}
              </datalist>
            </>
          )}
        </Field>
        <Field label="Agent" error={fieldError('agent')}>
          {(id, describedBy) => (
            <select
              id={id}
              value={agent}
              aria-describedby={describedBy}
              onChange={(e) => setAgent(e.currentTarget.value)}
            >
              {(agents.length ? agents : [{ id: 'echo', kind: 'echo' }]).map((a) => (
                <option value={a.id}>
                  {a.id} ({a.kind})
                </option>
              ))}
            </select>
          )}
        </Field>
        <fieldset>
          <legend>When a message arrives</legend>
          <label class="radio">
            <input type="radio" name="inbound" checked={inbound === 'message'} onChange={() => setInbound('message')} />
            Treat as a message from you
          </label>
          <label class="radio">
            <input type="radio" name="inbound" checked={inbound === 'signal'} onChange={() => setInbound('signal')} />
            Hand off to a waiting agent
          </label>
        </fieldset>
        {error && !spaceError && !fieldError('agent') && (
          <p class="error" role="alert">
            {error.message}
          </p>
        )}
        <div class="actions">
          <button type="button" class="secondary" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" disabled={busy}>
            Create
          </button>
        </div>
      </form>
    </Modal>
  );
}
