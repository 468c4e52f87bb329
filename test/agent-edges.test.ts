/**
 * What an agent endpoint answers and what the store holds for an agent are parsed at the edge: an answer
 * that is not chat-completions, or a stored config that is not an OpenAI-compatible one, fails the turn for
 * good with a reason, never with a TypeError that would be retried.
 */
import { ApplicationFailure } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { OpenAiAgentConfigSchema, completeChat } from '../activities/openai-agent.js';
import { FAILURE } from '../lib/errors.js';

const cfg = { baseUrl: 'http://model.invalid/v1', model: 'm' };

/** A fetch that answers every call with `status` and `body`. */
const answering =
  (status: number, body: string): typeof fetch =>
  async () =>
    new Response(body, { status, headers: { 'content-type': 'application/json' } });

/** The failure `completeChat` throws for an endpoint answering `status` and `body`. */
async function failureFor(status: number, body: string): Promise<ApplicationFailure> {
  const err = await completeChat(cfg, 'sk-secret', [], 'hi', { fetch: answering(status, body) }).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ApplicationFailure);
  return err as ApplicationFailure;
}

describe('an OpenAI-compatible answer', () => {
  it('gives the first choice’s text', async () => {
    const body = JSON.stringify({ id: 'x', choices: [{ index: 0, message: { role: 'assistant', content: 'hello' } }] });
    expect(await completeChat(cfg, 'k', [], 'hi', { fetch: answering(200, body) })).toBe('hello');
  });

  it.each([
    ['null', 'null'],
    ['no choices', '{"choices": []}'],
    ['a null content', '{"choices": [{"message": {"content": null}}]}'],
    ['a number for content', '{"choices": [{"message": {"content": 42}}]}'],
    ['choices that is not a list', '{"choices": {"0": {"message": {"content": "x"}}}}'],
  ])('fails for good when it has %s', async (_what, body) => {
    const f = await failureFor(200, body);
    expect(f).toMatchObject({ type: FAILURE.agentFailed, nonRetryable: true });
    expect(f.message).toBe('The model endpoint answered without choices[0].message.content.');
  });

  it('fails for good when it is not JSON', async () => {
    expect(await failureFor(200, '<html>')).toMatchObject({ type: FAILURE.agentFailed, nonRetryable: true });
  });

  it('quotes an error answer’s message without the key, and ignores an error body of another shape', async () => {
    expect((await failureFor(400, '{"error": {"message": "bad model sk-secret"}}')).message).toBe(
      'The model endpoint answered HTTP 400: bad model [redacted].',
    );
    expect((await failureFor(400, '{"error": "flat string"}')).message).toBe('The model endpoint answered HTTP 400.');
    expect(await failureFor(503, '')).toMatchObject({ type: FAILURE.agentUnavailable, nonRetryable: false });
  });
});

describe('a stored OpenAI agent config', () => {
  it('is read with its credential ref', () => {
    const stored = {
      baseUrl: 'https://api.example.com/v1',
      model: 'm',
      apiKey: { vault: 'local', item: 'itm_1', field: 'value' },
    };
    expect(OpenAiAgentConfigSchema.parse(stored)).toEqual(stored);
  });

  it('without a model or a ref is refused', () => {
    expect(OpenAiAgentConfigSchema.safeParse({ baseUrl: 'https://x', apiKey: 'sk-inline' }).success).toBe(false);
  });
});
