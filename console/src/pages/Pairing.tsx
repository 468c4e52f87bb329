/** The Pairing tab: Pair / Re-pair with the code and its countdown, paired addresses with Un-pair, controls. */
import { useEffect, useState } from 'preact/hooks';
import { api, messageOf } from '../api';
import type { Channel } from '../types';
import { Modal, navigate } from '../ui';

/** Re-renders every second while `active`; returns the current time. */
export function useNow(active: boolean): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    if (!active) return;
    const t = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(t);
  }, [active]);
  return now;
}

/** `m:ss` until `iso`, or null when past. */
export function remaining(iso: string, now: number): string | null {
  const s = Math.floor((Date.parse(iso) - now) / 1000);
  if (s <= 0) return null;
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

/** Pairing and operator controls. `onChanged` gets the new channel (or null: re-read it). */
export function PairingTab({ ch, onChanged }: { ch: Channel; onChanged: (c: Channel | null) => void }) {
  const [pairing, setPairing] = useState(ch.pairing);
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  const [confirmDelete, setConfirmDelete] = useState(false);
  useEffect(() => setPairing(ch.pairing), [ch.pairing?.code]);
  const now = useNow(!!pairing);
  const left = pairing ? remaining(pairing.expiresAt, now) : null;

  const run = async (fn: () => Promise<void>): Promise<void> => {
    setBusy(true);
    setError(undefined);
    try {
      await fn();
    } catch (err) {
      setError(messageOf(err));
    } finally {
      setBusy(false);
    }
  };
  const pair = (): Promise<void> =>
    run(async () => {
      setPairing(await api<{ code: string; expiresAt: string }>('POST', `/api/channels/${ch.id}/pair`));
      onChanged(null);
    });
  const unpair = (address: string): Promise<void> =>
    run(async () =>
      onChanged(await api<Channel>('DELETE', `/api/channels/${ch.id}/paired/${encodeURIComponent(address)}`)),
    );
  const control = (what: 'disconnect' | 'reconnect'): Promise<void> =>
    run(async () => onChanged(await api<Channel>('POST', `/api/channels/${ch.id}/${what}`)));
  const remove = (): Promise<void> =>
    run(async () => {
      await api('DELETE', `/api/channels/${ch.id}`);
      navigate('channels');
    });
  const again = !!(pairing && left) || ch.pairedAddresses.length > 0;

  return (
    <div class="pairing">
      <h2>Pair a phone</h2>
      <p>
        Send the code from your phone to {ch.selfAddress ?? 'the channel’s number'} within 10 minutes. Whoever sends it
        becomes a paired address: their messages reach the agent as messages from you.
      </p>
      <button type="button" onClick={() => void pair()} disabled={busy || ch.status !== 'connected'}>
        {again ? 'Re-pair' : 'Pair'}
      </button>
      {ch.status !== 'connected' && <p class="hint">Pairing needs a Connected channel.</p>}
      {pairing && left && (
        <div class="code-box">
          <span class="code" role="status" aria-label={`Pairing code ${pairing.code}`}>
            {pairing.code}
          </span>
          <span class="countdown">expires in {left}</span>
        </div>
      )}
      {pairing && !left && <p class="hint">The code expired. Use Re-pair for a new one.</p>}

      <h2>Paired addresses</h2>
      {ch.pairedAddresses.length === 0 ? (
        <p class="empty">Nobody is paired yet.</p>
      ) : (
        <ul class="paired" aria-label="Paired addresses">
          {ch.pairedAddresses.map((p) => (
            <li>
              <span class="mono">{p.address}</span>
              <span class="muted">paired {new Date(p.pairedAt).toLocaleString()}</span>
              <button
                type="button"
                class="secondary"
                aria-label={`Un-pair ${p.address}`}
                onClick={() => void unpair(p.address)}
                disabled={busy}
              >
                Un-pair
              </button>
            </li>
          ))}
        </ul>
      )}

      <h2>Connection</h2>
      <div class="actions left">
        {ch.status !== 'disconnected' && (
          <button type="button" class="secondary" onClick={() => void control('disconnect')} disabled={busy}>
            Disconnect
          </button>
        )}
        {(ch.status === 'disconnected' || ch.status === 'failed') && (
          <button type="button" class="secondary" onClick={() => void control('reconnect')} disabled={busy}>
            Reconnect
          </button>
        )}
        <button type="button" class="danger" onClick={() => setConfirmDelete(true)} disabled={busy}>
          Delete
        </button>
      </div>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {confirmDelete && (
        <Modal title="Delete this channel?" onClose={() => setConfirmDelete(false)}>
          <p>
            The channel <strong>{ch.space}</strong> stops, its space is freed and its linked-device state is removed.
            Messages stop reaching the agent. This cannot be undone.
          </p>
          <div class="actions">
            <button type="button" class="secondary" onClick={() => setConfirmDelete(false)}>
              Cancel
            </button>
            <button type="button" class="danger" onClick={() => void remove()} disabled={busy}>
              Delete channel
            </button>
          </div>
        </Modal>
      )}
    </div>
  );
}
