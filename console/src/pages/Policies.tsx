/** Policies: the Cedar editor with errors at their line, the guide's template, and "Would this get through?". */
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, ApiError, messageOf, type ErrorDetail } from '../api';
import type { Channel, PolicyCheckInput, PolicyCheckResult, PolicySet, PolicyWarning } from '../types';
import { policyLines, tokenizeCedar } from '../cedar-syntax';
import { Field } from '../ui';

/** The guide's allowlist example with a real agent and channel filled in. */
export function allowlistTemplate(agent: string, channelId: string, sender = '+15551234567'): string {
  return `permit(
  principal == Policy::Agent::"${agent}",
  action == Policy::Action::"receive_message",
  resource in Policy::Channel::"${channelId}"
) when { resource.sender.address == "${sender}" };
`;
}

/** The Policies page. */
export function PoliciesPage() {
  const [text, setText] = useState('');
  // The policies in force (as last read or saved): decisions name their policies by position in this text.
  const [inForce, setInForce] = useState('');
  const [builtin, setBuiltin] = useState('');
  const [errors, setErrors] = useState<ErrorDetail[]>([]);
  const [warnings, setWarnings] = useState<PolicyWarning[]>([]);
  const [message, setMessage] = useState<{ ok: boolean; text: string } | null>(null);
  const [channels, setChannels] = useState<Channel[]>([]);
  const [templateChannel, setTemplateChannel] = useState('');
  // The editor stays read-only until the policies in force have loaded: text typed before then would be replaced
  // by the load, and saving an editor that never loaded would replace the policies with nothing.
  const [loaded, setLoaded] = useState(false);
  const editor = useRef<HTMLTextAreaElement>(null);
  const gutter = useRef<HTMLDivElement>(null);
  const highlight = useRef<HTMLPreElement>(null);

  useEffect(() => {
    api<PolicySet>('GET', '/api/policies').then(
      (p) => (setText(p.policies), setInForce(p.policies), setBuiltin(p.builtin), setLoaded(true)),
      (err) => setMessage({ ok: false, text: `The policies could not be loaded: ${messageOf(err)}` }),
    );
    api<Channel[]>('GET', '/api/channels').then(
      (list) => (setChannels(list), setTemplateChannel(list[0]?.id ?? '')),
      () => undefined,
    );
  }, []);

  const save = async (): Promise<void> => {
    setMessage(null);
    try {
      const saved = await api<PolicySet>('PUT', '/api/policies', { policies: text });
      setInForce(text);
      setErrors([]);
      setWarnings(saved.warnings ?? []);
      setMessage({
        ok: true,
        text: saved.warnings?.length
          ? 'Saved, with warnings (see above).'
          : 'Saved. The new policies apply to the next message.',
      });
    } catch (err) {
      if (err instanceof ApiError && err.code === 'invalid_policy') setErrors(err.details);
      else if (err instanceof ApiError) setErrors(err.details.filter((d) => d.line !== undefined));
      setWarnings([]);
      const atLines = err instanceof ApiError && err.details.some((d) => d.line !== undefined);
      setMessage({
        ok: false,
        text: atLines
          ? 'Cedar refused the policies (see the lines above); the previous policies stay in force.'
          : messageOf(err),
      });
    }
  };
  const insertTemplate = (): void => {
    const ch = channels.find((c) => c.id === templateChannel);
    const tpl = allowlistTemplate(ch?.agent ?? 'echo', ch?.id ?? 'whatsapp_cloud');
    setText((text.trim() ? text.replace(/\s*$/, '\n\n') : '') + tpl);
  };
  const goToLine = (line: number): void => {
    const ta = editor.current!;
    const lines = ta.value.split('\n');
    const start = lines.slice(0, line - 1).reduce((n, l) => n + l.length + 1, 0);
    ta.focus();
    ta.setSelectionRange(start, start + (lines[line - 1]?.length ?? 0));
  };
  const lineCount = Math.max(text.split('\n').length, 12);
  const errorLines = new Set(errors.map((e) => e.line).filter((l): l is number => l !== undefined));
  const warnLines = new Set(warnings.map((w) => w.line));

  return (
    <section>
      <div class="page-head">
        <h1>Policies</h1>
      </div>
      <p>
        Cedar policies decide which messages reach the agent. The built-in default lets paired senders through; add{' '}
        <code>permit</code> policies to let others in, and <code>forbid</code> to keep someone out (a forbid beats every
        permit).
      </p>
      <div class="template">
        <Field label="Channel for the template">
          {(id) => (
            <select id={id} value={templateChannel} onChange={(e) => setTemplateChannel(e.currentTarget.value)}>
              {channels.map((c) => (
                <option value={c.id}>
                  {c.space} ({c.id}, agent {c.agent})
                </option>
              ))}
              {channels.length === 0 && <option value="">no channels yet</option>}
            </select>
          )}
        </Field>
        <button type="button" class="secondary" onClick={insertTemplate} disabled={!loaded}>
          Insert allowlist template
        </button>
      </div>
      <label for="cedar" class="label">
        Cedar policies
      </label>
      <div class="editor">
        <div class="gutter" ref={gutter} aria-hidden="true">
          {Array.from({ length: lineCount }, (_, i) => (
            <div class={errorLines.has(i + 1) ? 'bad' : warnLines.has(i + 1) ? 'warn' : ''}>{i + 1}</div>
          ))}
        </div>
        <div class="cedar-code">
          {/* The coloured copy under the (transparent-text) textarea: screen readers read the textarea only. */}
          <pre class="highlight" ref={highlight} aria-hidden="true">
            {tokenizeCedar(text).map((t) =>
              t.kind === 'text' ? t.text : <span class={`tok-${t.kind}`}>{t.text}</span>,
            )}
            {'\n'}
          </pre>
          <textarea
            id="cedar"
            ref={editor}
            spellcheck={false}
            value={text}
            readOnly={!loaded}
            rows={lineCount}
            aria-describedby="cedar-problems"
            aria-invalid={errors.length ? true : undefined}
            onInput={(e) => setText(e.currentTarget.value)}
            onScroll={(e) => {
              const { scrollTop, scrollLeft } = e.currentTarget;
              if (gutter.current) gutter.current.scrollTop = scrollTop;
              if (highlight.current) {
                highlight.current.scrollTop = scrollTop;
                highlight.current.scrollLeft = scrollLeft;
              }
            }}
          />
        </div>
      </div>
      <div id="cedar-problems">
        {errors.length > 0 && (
          <ul class="problems" aria-label="Policy errors">
            {errors.map((e) => (
              <li class="error">
                {e.line !== undefined ? (
                  <button type="button" class="link" onClick={() => goToLine(e.line!)}>
                    Line {e.line}
                    {e.column !== undefined ? `, column ${e.column}` : ''}
                  </button>
                ) : null}
                {e.line !== undefined ? ': ' : ''}
                {e.message}
              </li>
            ))}
          </ul>
        )}
        {warnings.length > 0 && (
          <ul class="problems" aria-label="Policy warnings">
            {warnings.map((w) => (
              <li class="warning">
                <button type="button" class="link" onClick={() => goToLine(w.line)}>
                  Line {w.line}
                </button>
                : {w.message}
              </li>
            ))}
          </ul>
        )}
      </div>
      {message && (
        <p class={message.ok ? 'ok' : 'error'} role={message.ok ? 'status' : 'alert'}>
          {message.text}
        </p>
      )}
      <div class="actions left">
        <button type="button" onClick={() => void save()} disabled={!loaded}>
          Save
        </button>
      </div>
      <details>
        <summary>Built-in default policy</summary>
        <pre>{builtin}</pre>
      </details>
      <CheckForm channels={channels} inForce={inForce} />
    </section>
  );
}

/** A decision's reason as an operator reads it: which policy, and on which line of the policies in force. */
export function describeReason(reason: string, inForce: string): string {
  if (reason === 'default') return 'the built-in default (the sender is paired)';
  const positional = /^policy(\d+)$/.exec(reason);
  const line = positional ? policyLines(inForce)[Number(positional[1])] : undefined;
  return line ? `${reason} (line ${line})` : reason;
}

function CheckForm({ channels, inForce }: { channels: Channel[]; inForce: string }) {
  const [channel, setChannel] = useState('');
  const [sender, setSender] = useState('+15551234567');
  const [kind, setKind] = useState<'direct' | 'group'>('direct');
  const [result, setResult] = useState<PolicyCheckResult | null>(null);
  const [error, setError] = useState<ApiError | Error | null>(null);
  useEffect(() => setChannel((c) => c || channels[0]?.id || ''), [channels]);

  const check = async (e: Event): Promise<void> => {
    e.preventDefault();
    setError(null);
    setResult(null);
    const body: PolicyCheckInput = {
      channel,
      sender,
      chat: { kind, id: kind === 'direct' ? sender : `group-${sender}` },
    };
    try {
      setResult(await api<PolicyCheckResult>('POST', '/api/policies/check', body));
    } catch (err) {
      setError(err as Error);
    }
  };
  const fieldError = (f: string): string | undefined => (error instanceof ApiError ? error.forField(f) : undefined);
  return (
    <form class="card check" onSubmit={(e) => void check(e)}>
      <h2>Would this get through?</h2>
      <Field label="Channel" error={fieldError('channel')}>
        {(id) => (
          <select id={id} value={channel} onChange={(e) => setChannel(e.currentTarget.value)}>
            {channels.map((c) => (
              <option value={c.id}>
                {c.space} ({c.id})
              </option>
            ))}
          </select>
        )}
      </Field>
      <Field label="Sender" error={fieldError('sender')}>
        {(id) => <input id={id} value={sender} onInput={(e) => setSender(e.currentTarget.value)} />}
      </Field>
      <Field label="Chat kind">
        {(id) => (
          <select id={id} value={kind} onChange={(e) => setKind(e.currentTarget.value as 'direct' | 'group')}>
            <option value="direct">direct</option>
            <option value="group">group</option>
          </select>
        )}
      </Field>
      <button type="submit">Check</button>
      {error && !fieldError('channel') && !fieldError('sender') && (
        <p class="error" role="alert">
          {messageOf(error)}
        </p>
      )}
      {result && (
        <div role="status" class={`decision decision-${result.decision}`}>
          <strong>{result.decision === 'allow' ? 'Allowed' : 'Denied'}</strong> for agent {result.agent}
          {result.paired ? ' (paired sender)' : ''}.
          {result.reasons.length > 0 && (
            <span> Reasons: {result.reasons.map((r) => describeReason(r, inForce)).join('; ')}</span>
          )}
        </div>
      )}
    </form>
  );
}
