/** Small shared pieces: labelled fields with their errors, status badges, modal dialogs, the route hook. */
import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import type { ChannelStatus, Provider } from './types';
import { PROVIDER_INFO } from '../../lib/types';

let nextId = 0;
/** A stable unique id for label/input pairs. */
export function useId(prefix: string): string {
  const ref = useRef<string>('');
  if (!ref.current) ref.current = `${prefix}-${++nextId}`;
  return ref.current;
}

/** A label, its control (given the id) and, under it, the error about that field. */
export function Field(props: {
  label: string;
  error?: string;
  hint?: ComponentChildren;
  children: (id: string, describedBy?: string) => ComponentChildren;
}) {
  const id = useId('f');
  const errId = `${id}-err`;
  const hintId = `${id}-hint`;
  const describedBy = [props.error ? errId : '', props.hint ? hintId : ''].filter(Boolean).join(' ') || undefined;
  return (
    <div class="field">
      <label for={id}>{props.label}</label>
      {props.children(id, describedBy)}
      {props.hint && (
        <p class="hint" id={hintId}>
          {props.hint}
        </p>
      )}
      {props.error && (
        <p class="error" id={errId} role="alert">
          {props.error}
        </p>
      )}
    </div>
  );
}

const STATUS_LABEL: Record<ChannelStatus, string> = {
  setup: 'Setup',
  connected: 'Connected',
  disconnected: 'Disconnected',
  failed: 'Failed',
};

/** "Connected" etc. as a coloured badge. */
export function StatusBadge({ status }: { status: ChannelStatus }) {
  return <span class={`badge badge-${status}`}>{STATUS_LABEL[status]}</span>;
}

/** A provider's label ("WhatsApp (Meta Cloud API)"). */
export const providerLabel = (p: Provider): string => PROVIDER_INFO[p].label;

/** A modal `<dialog>`: focus moves into it, Escape closes it, focus returns to where it was. */
export function Modal(props: { title: string; onClose: () => void; children: ComponentChildren; wide?: boolean }) {
  const ref = useRef<HTMLDialogElement>(null);
  const titleId = useId('dlg');
  useEffect(() => {
    const dlg = ref.current!;
    const opener = document.activeElement as HTMLElement | null;
    if (!dlg.open) dlg.showModal();
    const onCancel = (e: Event): void => {
      e.preventDefault();
      props.onClose();
    };
    dlg.addEventListener('cancel', onCancel);
    return () => {
      dlg.removeEventListener('cancel', onCancel);
      if (dlg.open) dlg.close();
      opener?.focus?.();
    };
  }, []);
  return (
    <dialog ref={ref} aria-labelledby={titleId} class={props.wide ? 'wide' : ''}>
      <div class="dialog-head">
        <h2 id={titleId}>{props.title}</h2>
        <button type="button" class="icon" aria-label="Close" onClick={props.onClose}>
          ×
        </button>
      </div>
      {props.children}
    </dialog>
  );
}

/** The current hash route, split into parts (`#/channels/ch_x/pairing` → `['channels', 'ch_x', 'pairing']`). */
export function useRoute(): string[] {
  const read = (): string[] => location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  const [parts, setParts] = useState(read);
  useEffect(() => {
    const on = (): void => setParts(read());
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  return parts;
}

/** Goes to a route. */
export const navigate = (path: string): void => {
  location.hash = '#/' + path.replace(/^\//, '');
};

/** "3 min ago" style text for an ISO time. */
export function ago(iso: string | null | undefined): string {
  if (!iso) return 'never';
  const s = Math.round((Date.now() - Date.parse(iso)) / 1000);
  if (s < 60) return `${Math.max(s, 0)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return new Date(iso).toLocaleString();
}
