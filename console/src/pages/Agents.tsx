/** Agents: who answers. The built-in echo plus agents an operator adds. */
import { useEffect, useState } from 'preact/hooks';
import { api, ApiError, messageOf } from '../api';
import type { AgentRecord, CreateAgentInput, CredentialRef } from '../types';
import { Field } from '../ui';
import { CredentialPicker } from './CredentialPicker';

/** The Agents page. */
export function AgentsPage() {
  const [agents, setAgents] = useState<AgentRecord[]>([]);
  const [error, setError] = useState<string>();
  const load = (): void => {
    api<AgentRecord[]>('GET', '/api/agents').then(setAgents, (err) => setError(messageOf(err)));
  };
  useEffect(load, []);
  const remove = async (id: string): Promise<void> => {
    try {
      await api('DELETE', `/api/agents/${encodeURIComponent(id)}`);
      load();
    } catch (err) {
      setError(messageOf(err));
    }
  };
  return (
    <section>
      <div class="page-head">
        <h1>Agents</h1>
      </div>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      <table class="list">
        <thead>
          <tr>
            <th scope="col">Agent</th>
            <th scope="col">Kind</th>
            <th scope="col">Settings</th>
            <th scope="col">
              <span class="sr-only">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {agents.map((a) => (
            <tr key={a.id}>
              <td data-label="Agent" class="mono">
                {a.id}
              </td>
              <td data-label="Kind">{a.kind}</td>
              <td data-label="Settings" class="muted">
                {a.kind === 'echo'
                  ? 'Replies with exactly the text it got.'
                  : Object.entries(a.config)
                      .map(
                        ([k, v]) =>
                          `${k}: ${typeof v === 'object' && v ? `${(v as CredentialRef).vault}/${(v as CredentialRef).item}` : String(v)}`,
                      )
                      .join(' · ')}
              </td>
              <td>
                {a.createdAt !== new Date(0).toISOString() && (
                  <button
                    type="button"
                    class="secondary"
                    aria-label={`Delete agent ${a.id}`}
                    onClick={() => void remove(a.id)}
                  >
                    Delete
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <AddAgent onAdded={load} />
    </section>
  );
}

function AddAgent({ onAdded }: { onAdded: () => void }) {
  const [id, setId] = useState('');
  const [kind, setKind] = useState<'openai' | 'temporal' | 'echo'>('openai');
  const [baseUrl, setBaseUrl] = useState('http://127.0.0.1:11434/v1');
  const [model, setModel] = useState('');
  const [apiKey, setApiKey] = useState<CredentialRef | null>(null);
  const [system, setSystem] = useState('');
  const [workflowType, setWorkflowType] = useState('');
  const [taskQueue, setTaskQueue] = useState('');
  const [picking, setPicking] = useState(false);
  const [error, setError] = useState<ApiError | Error | null>(null);

  const submit = async (e: Event): Promise<void> => {
    e.preventDefault();
    setError(null);
    let body: CreateAgentInput;
    if (kind === 'echo') body = { id, kind };
    else if (kind === 'temporal') body = { id, kind, workflowType, taskQueue };
    else {
      if (!apiKey)
        return setError(
          new ApiError(400, 'validation_failed', 'Configure the API key first.', [
            { path: ['apiKey'], message: 'not configured' },
          ]),
        );
      body = { id, kind, baseUrl, model, apiKey, ...(system.trim() ? { system } : {}) };
    }
    try {
      await api('POST', '/api/agents', body);
      setId('');
      onAdded();
    } catch (err) {
      setError(err as Error);
    }
  };
  const fe = (f: string): string | undefined => (error instanceof ApiError ? error.forField(f) : undefined);
  return (
    <form class="card" onSubmit={(e) => void submit(e)}>
      <h2>Add an agent</h2>
      <Field label="Agent id" error={fe('id')} hint='Policies name it as Policy::Agent::"<id>".'>
        {(fid, d) => (
          <input id={fid} required value={id} aria-describedby={d} onInput={(e) => setId(e.currentTarget.value)} />
        )}
      </Field>
      <Field label="Kind">
        {(fid) => (
          <select id={fid} value={kind} onChange={(e) => setKind(e.currentTarget.value as typeof kind)}>
            <option value="openai">OpenAI-compatible chat completions</option>
            <option value="temporal">Temporal workflow</option>
            <option value="echo">Echo</option>
          </select>
        )}
      </Field>
      {kind === 'openai' && (
        <>
          <Field label="Base URL" error={fe('baseUrl')}>
            {(fid) => <input id={fid} type="url" value={baseUrl} onInput={(e) => setBaseUrl(e.currentTarget.value)} />}
          </Field>
          <Field label="Model" error={fe('model')}>
            {(fid) => <input id={fid} value={model} onInput={(e) => setModel(e.currentTarget.value)} />}
          </Field>
          <div class="field secret">
            <span class="label">API key</span>
            <div class="secret-row">
              <span class={apiKey ? 'ref' : 'ref unset'}>
                {apiKey ? `${apiKey.vault} › ${apiKey.item} › ${apiKey.field}` : 'not configured'}
              </span>
              <button type="button" class="secondary" aria-label="Configure API key" onClick={() => setPicking(true)}>
                Configure
              </button>
            </div>
            {fe('apiKey') && <p class="error">{fe('apiKey')}</p>}
          </div>
          <Field label="System prompt (optional)">
            {(fid) => <textarea id={fid} rows={3} value={system} onInput={(e) => setSystem(e.currentTarget.value)} />}
          </Field>
        </>
      )}
      {kind === 'temporal' && (
        <>
          <Field label="Workflow type" error={fe('workflowType')}>
            {(fid) => <input id={fid} value={workflowType} onInput={(e) => setWorkflowType(e.currentTarget.value)} />}
          </Field>
          <Field label="Task queue" error={fe('taskQueue')}>
            {(fid) => <input id={fid} value={taskQueue} onInput={(e) => setTaskQueue(e.currentTarget.value)} />}
          </Field>
        </>
      )}
      {error && !['id', 'baseUrl', 'model', 'apiKey', 'workflowType', 'taskQueue'].some((f) => fe(f)) && (
        <p class="error" role="alert">
          {messageOf(error)}
        </p>
      )}
      <button type="submit">Add agent</button>
      {picking && (
        <CredentialPicker
          field="API key"
          current={apiKey}
          onClose={() => setPicking(false)}
          onPick={(r) => (setApiKey(r), setPicking(false))}
        />
      )}
    </form>
  );
}
