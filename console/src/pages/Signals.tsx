/** Signals: per space, the tasks waiting for a message and the messages held for the next task. */
import { useEffect, useState } from 'preact/hooks';
import { api, messageOf } from '../api';
import { useChanges } from '../live';
import type { SpaceQueue } from '../types';

/** The Signals page. */
export function SignalsPage() {
  const [rows, setRows] = useState<SpaceQueue[] | null>(null);
  const [error, setError] = useState<string>();
  const load = (): void => {
    api<SpaceQueue[]>('GET', '/api/signals').then(setRows, (err) => setError(messageOf(err)));
  };
  useEffect(load, []);
  useChanges((c) => c.what === 'messages' || c.what === 'channel', load);
  return (
    <section>
      <div class="page-head">
        <h1>Signals</h1>
        <button type="button" class="secondary" onClick={load}>
          Reload
        </button>
      </div>
      <p>
        A channel whose inbound mode is “Hand off to a waiting agent” gives each trusted message to the oldest task
        waiting on its space (a workflow calling <code>waitForChannelSignal</code>, or{' '}
        <code>POST /api/signals/wait</code>). A message that finds no task is held for 5 minutes.
      </p>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {rows && rows.length === 0 && <p class="empty">No spaces yet.</p>}
      {rows?.map((r) => (
        <div class="card" key={r.space}>
          <h2>{r.space}</h2>
          <p class="muted">
            {r.channelId ? (
              <>
                Channel <a href={`#/channels/${r.channelId}`}>{r.channelId}</a> —{' '}
                {r.inbound === 'signal'
                  ? 'hands messages off to waiting tasks'
                  : 'messages go to the agent (not handed off)'}
              </>
            ) : (
              'No channel bound.'
            )}
          </p>
          <h3>Waiting tasks ({r.waiters.length})</h3>
          {r.waiters.length > 0 && (
            <ul class="plain">
              {r.waiters.map((w) => (
                <li>
                  {w.kind === 'workflow' ? `workflow ${w.workflowId}` : 'HTTP long-poll'}
                  {w.from ? ` (only from ${w.from})` : ''} — until {new Date(w.expiresAt).toLocaleTimeString()}
                </li>
              ))}
            </ul>
          )}
          <h3>Held messages ({r.held.length})</h3>
          {r.held.length > 0 && (
            <ul class="plain">
              {r.held.map((h) => (
                <li>
                  <span class="mono">{h.sender}</span>: {h.text} — kept until{' '}
                  {new Date(h.expiresAt).toLocaleTimeString()}
                </li>
              ))}
            </ul>
          )}
        </div>
      ))}
    </section>
  );
}
