/** The Messages tab: the channel's log with direction, type, status and why something was refused. */
import { useEffect, useState } from 'preact/hooks';
import { api, messageOf } from '../api';
import { useChanges } from '../live';
import type { Channel, MessageLogEntry } from '../types';

/** Why an entry was denied, ignored or failed, from its detail. */
export function whyOf(e: MessageLogEntry): string {
  const d = (e.detail ?? {}) as {
    reason?: string;
    reasons?: string[];
    error?: { code?: number; title?: string; message?: string };
  };
  if (d.reason) return d.reason;
  if (d.reasons?.length) return d.reasons.join('; ');
  if (d.error) return [d.error.code, d.error.title ?? d.error.message].filter(Boolean).join(' ');
  return '';
}

/** The message log of one channel, live. */
export function MessagesTab({ ch }: { ch: Channel }) {
  const [entries, setEntries] = useState<MessageLogEntry[] | null>(null);
  const [error, setError] = useState<string>();
  const load = (): void => {
    api<MessageLogEntry[]>('GET', `/api/channels/${ch.id}/messages?limit=100`).then(setEntries, (err) =>
      setError(messageOf(err)),
    );
  };
  useEffect(load, [ch.id]);
  useChanges((c) => c.channelId === ch.id && c.what === 'messages', load);

  if (error) return <p class="error">{error}</p>;
  if (!entries) return <p class="loading">Loading…</p>;
  if (!entries.length) return <p class="empty">No messages yet.</p>;
  return (
    <table class="list messages">
      <caption class="sr-only">Recent messages, newest first</caption>
      <thead>
        <tr>
          <th scope="col">Time</th>
          <th scope="col">Direction</th>
          <th scope="col">Type</th>
          <th scope="col">Address</th>
          <th scope="col">Text</th>
          <th scope="col">Status</th>
          <th scope="col">Why</th>
        </tr>
      </thead>
      <tbody>
        {entries.map((e) => {
          const type = (e as { type?: string }).type ?? ((e.detail as { type?: string } | null)?.type || 'text');
          return (
            <tr key={`${e.direction}-${e.key}`}>
              <td data-label="Time">{new Date(e.createdAt).toLocaleTimeString()}</td>
              <td data-label="Direction">{e.direction === 'in' ? '← in' : '→ out'}</td>
              <td data-label="Type">{type}</td>
              <td data-label="Address" class="mono">
                {e.address ?? e.chatId}
              </td>
              <td data-label="Text" class="text">
                {e.text}
              </td>
              <td data-label="Status">
                <span class={`pill pill-${e.status}`}>{e.status}</span>
              </td>
              <td data-label="Why">{whyOf(e)}</td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}
