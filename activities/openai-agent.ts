/**
 * The OpenAI-compatible chat-completions agent (SPEC §7): any endpoint speaking `POST {baseUrl}/chat/completions`
 * — OpenAI, a hosted gateway, or a local server such as llama.cpp, vLLM or Ollama. Plain fetch, no SDK: the
 * wire format is small and stable, and retries belong to the activity's retry policy, not to a client.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { z } from 'zod';
import { FAILURE } from '../lib/errors.js';
import type { Turn } from '../workflows/chat-messages.js';

/** The agent's stored config, read back from the store (the key is a credential ref, resolved at the moment of use). */
export const OpenAiAgentConfigSchema = z.object({
  baseUrl: z.string().min(1),
  model: z.string().min(1),
  system: z.string().optional(),
  apiKey: z.object({ vault: z.string(), item: z.string(), field: z.string() }),
  /** Speech to text for audio (activities/transcription.ts); off when absent. */
  transcription: z
    .object({
      baseUrl: z.string().min(1).optional(),
      model: z.string().min(1),
      apiKey: z.object({ vault: z.string(), item: z.string(), field: z.string() }).optional(),
    })
    .optional(),
});

/** The parts of the stored config a chat-completions call uses. */
export type OpenAiAgentConfig = Omit<z.infer<typeof OpenAiAgentConfigSchema>, 'apiKey' | 'transcription'>;

/** What is read of an error answer: Meta-style `{error: {message}}`; anything else gives no detail. */
const ErrorAnswerSchema = z.object({ error: z.object({ message: z.string() }) });

/** What is read of a chat-completions answer: the first choice's text; the rest is the endpoint's business. */
const CompletionSchema = z.object({
  choices: z.array(z.object({ message: z.object({ content: z.string() }) })).min(1),
});

/** JSON.parse that answers `undefined` for text that is not JSON. */
function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** One chat-completions call: the system prompt, the conversation window, then the new message. */
export async function completeChat(
  cfg: OpenAiAgentConfig,
  apiKey: string,
  history: Turn[],
  text: string,
  opts: { timeoutMs?: number; fetch?: typeof fetch; image?: string } = {},
): Promise<string> {
  // With an image (a data URL), the new message is OpenAI's content-part form: text, then the image.
  const newTurn = opts.image
    ? [
        { type: 'text', text },
        { type: 'image_url', image_url: { url: opts.image } },
      ]
    : text;
  const messages = [
    ...(cfg.system ? [{ role: 'system', content: cfg.system }] : []),
    ...history.map((t) => ({ role: t.role, content: t.text })),
    { role: 'user', content: newTurn },
  ];
  const url = `${cfg.baseUrl.replace(/\/+$/, '')}/chat/completions`;
  let res: Response;
  try {
    res = await (opts.fetch ?? fetch)(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${apiKey}` },
      body: JSON.stringify({ model: cfg.model, messages }),
      signal: AbortSignal.timeout(opts.timeoutMs ?? 90_000),
    });
  } catch (err) {
    // Network errors and timeouts: retried by the activity's policy.
    throw ApplicationFailure.create({
      type: FAILURE.agentUnavailable,
      message: `The model endpoint ${cfg.baseUrl} could not be reached (${(err as Error).name}).`,
      nonRetryable: false,
    });
  }
  const body = await res.text();
  if (!res.ok) {
    const error = ErrorAnswerSchema.safeParse(parseJson(body));
    const detail = (error.success ? error.data.error.message : '').split(apiKey).join('[redacted]').slice(0, 300);
    if (res.status === 401 || res.status === 403) {
      throw ApplicationFailure.create({
        type: FAILURE.agentFailed,
        message: `The model endpoint refused the API key (HTTP ${res.status}${detail ? `: ${detail}` : ''}). Check the agent's apiKey credential.`,
        nonRetryable: true,
      });
    }
    const retryable = res.status === 408 || res.status === 409 || res.status === 429 || res.status >= 500;
    throw ApplicationFailure.create({
      type: retryable ? FAILURE.agentUnavailable : FAILURE.agentFailed,
      message: `The model endpoint answered HTTP ${res.status}${detail ? `: ${detail}` : ''}.`,
      nonRetryable: !retryable,
    });
  }
  const parsed = parseJson(body);
  if (parsed === undefined) {
    throw ApplicationFailure.create({
      type: FAILURE.agentFailed,
      message: 'The model endpoint answered with something that is not JSON.',
      nonRetryable: true,
    });
  }
  const answer = CompletionSchema.safeParse(parsed);
  if (!answer.success)
    throw ApplicationFailure.create({
      type: FAILURE.agentFailed,
      message: 'The model endpoint answered without choices[0].message.content.',
      nonRetryable: true,
    });
  return answer.data.choices[0].message.content;
}
