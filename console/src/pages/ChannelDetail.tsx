/** One channel: status with the guide's troubleshooting hint, and the Config, Messages and Pairing tabs. */
import { useEffect, useState } from 'preact/hooks';
import { channelWorkflowId } from '../../../lib/workflow-ids';
import { api, messageOf } from '../api';
import { useChanges } from '../live';
import type { Channel, SystemInfo } from '../types';
import { ago, navigate, providerLabel, StatusBadge } from '../ui';
import { temporalLink } from './Channels';
import { CloudConfigTab } from './CloudConfig';
import { MessagesTab } from './Messages';
import { PairingTab } from './Pairing';
import { PersonalLinkTab } from './PersonalLink';
import { troubleshootingHint } from '../troubleshooting';

const TABS = [
  ['config', 'Config'],
  ['messages', 'Messages'],
  ['pairing', 'Pairing'],
] as const;
type Tab = (typeof TABS)[number][0];

/** The channel detail page. */
export function ChannelDetailPage({ id, tab, system }: { id: string; tab?: string; system: SystemInfo | null }) {
  const [ch, setCh] = useState<Channel | null>(null);
  const [error, setError] = useState<string>();
  const load = (): void => {
    api<Channel>('GET', `/api/channels/${encodeURIComponent(id)}`).then(
      (c) => (setCh(c), setError(undefined)),
      (err) => setError(messageOf(err)),
    );
  };
  useEffect(load, [id]);
  useChanges((c) => c.channelId === id && (c.what === 'channel' || c.what === 'diagnostics'), load);

  if (error && !ch) return <p class="error">{error}</p>;
  if (!ch) return <p class="loading">Loading…</p>;
  const current: Tab = TABS.some(([t]) => t === tab) ? (tab as Tab) : 'config';
  const hint = troubleshootingHint(ch);
  const link = temporalLink(system, channelWorkflowId(ch.id));
  const warnings = ch.diagnostics.warnings ?? [];

  return (
    <section>
      <p class="crumbs">
        <a href="#/channels">Channels</a> › {ch.space}
      </p>
      <div class="page-head">
        <h1>{ch.space}</h1>
        {link && (
          <a href={link} target="_blank" rel="noreferrer">
            Open the workflow in the Temporal UI ↗
          </a>
        )}
      </div>
      <div class="status-card" aria-live="polite">
        <div>
          <span class="label">Status</span> <StatusBadge status={ch.status} />
        </div>
        <p class="reason">{ch.statusReason}</p>
        {hint && <p class="hint-box">{hint}</p>}
        {warnings.map((w) => (
          <p class="warning">⚠ {w}</p>
        ))}
        {ch.diagnostics.subscribedApps?.count === 0 && <SubscribeApp id={ch.id} onDone={load} />}
        <dl class="facts">
          <dt>Provider</dt>
          <dd>{providerLabel(ch.provider)}</dd>
          <dt>Agent</dt>
          <dd>{ch.agent}</dd>
          <dt>When a message arrives</dt>
          <dd>{ch.inbound === 'message' ? 'Treat as a message from you' : 'Hand off to a waiting agent'}</dd>
          <dt>Number</dt>
          <dd>{ch.selfAddress ?? '—'}</dd>
          <dt>Channel id</dt>
          <dd class="mono">{ch.id}</dd>
          {ch.provider === 'whatsapp_cloud' && (
            <>
              <dt>Last webhook</dt>
              <dd>{ago(ch.diagnostics.lastWebhookAt)}</dd>
            </>
          )}
        </dl>
      </div>
      <div role="tablist" aria-label="Channel" class="tabs">
        {TABS.map(([t, label]) => (
          <button
            type="button"
            role="tab"
            id={`tab-${t}`}
            aria-selected={current === t}
            aria-controls={`panel-${t}`}
            tabIndex={current === t ? 0 : -1}
            onClick={() => navigate(`channels/${ch.id}/${t}`)}
            onKeyDown={(e) => {
              const i = TABS.findIndex(([x]) => x === current);
              const to: Record<string, number> = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: TABS.length - 1 };
              if (!(e.key in to)) return;
              e.preventDefault();
              const next = TABS[(to[e.key] + TABS.length) % TABS.length][0];
              navigate(`channels/${ch.id}/${next}`);
              requestAnimationFrame(() => document.getElementById(`tab-${next}`)?.focus());
            }}
          >
            {label}
          </button>
        ))}
      </div>
      <div role="tabpanel" id={`panel-${current}`} aria-labelledby={`tab-${current}`} class="panel">
        {current === 'config' &&
          (ch.provider === 'whatsapp_cloud' ? <CloudConfigTab ch={ch} onSaved={setCh} /> : <PersonalLinkTab ch={ch} />)}
        {current === 'messages' && <MessagesTab ch={ch} />}
        {current === 'pairing' && <PairingTab ch={ch} onChanged={(c) => (c ? setCh(c) : load())} />}
      </div>
    </section>
  );
}

function SubscribeApp({ id, onDone }: { id: string; onDone: () => void }) {
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  const subscribe = async (): Promise<void> => {
    setBusy(true);
    setError(undefined);
    try {
      await api('POST', `/api/channels/${id}/subscribe-app`);
      onDone();
    } catch (err) {
      setError(messageOf(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <div class="actions left">
      <button type="button" onClick={() => void subscribe()} disabled={busy}>
        Subscribe the app
      </button>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
    </div>
  );
}
