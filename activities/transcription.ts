/**
 * Speech to text for OpenAI-compatible agents (issue #20; optional per agent, off by default): a voice note or
 * audio file is sent to `POST {baseUrl}/audio/transcriptions` (OpenAI's multipart shape: `file`, `model`) and
 * the agent gets the transcript instead of a description. Plain fetch, as for chat completions; retries belong
 * to the activity's retry policy.
 */
import { FAILURE } from '../lib/errors.js';
import { ApplicationFailure } from '@temporalio/activity';
import type { CredentialRef } from '../lib/types.js';

/** An agent's transcription settings: `baseUrl` and `apiKey` default to the agent's own. */
export interface TranscriptionConfig {
  baseUrl?: string;
  model: string;
  apiKey?: CredentialRef;
}

/** Longest file OpenAI's endpoint takes (25 MB); WhatsApp audio stops at 16 MB anyway. */
export const TRANSCRIPTION_MAX_BYTES = 25 * 1024 * 1024;

/** A file name the endpoint recognises by extension (it guesses the format from it). */
function fileNameFor(mime: string): string {
  const base = mime.split(';')[0].trim().toLowerCase();
  const ext: Record<string, string> = {
    'audio/ogg': 'ogg',
    'audio/mpeg': 'mp3',
    'audio/mp4': 'm4a',
    'audio/aac': 'aac',
    'audio/amr': 'amr',
    'audio/wav': 'wav',
    'audio/webm': 'webm',
  };
  return `audio.${ext[base] ?? 'ogg'}`;
}

/**
 * Transcribes one file. Unreachable, 429 and 5xx throw retryable failures (the activity retries); any other
 * refusal returns `{ error }`, and the agent then gets the description with the reason.
 */
export async function transcribe(
  baseUrl: string,
  model: string,
  apiKey: string,
  file: { bytes: Buffer; mime: string },
  opts: { timeoutMs?: number; fetch?: typeof fetch } = {},
): Promise<{ text: string } | { error: string }> {
  const form = new FormData();
  form.append('model', model);
  form.append(
    'file',
    new Blob([new Uint8Array(file.bytes)], { type: file.mime.split(';')[0].trim() }),
    fileNameFor(file.mime),
  );
  const url = `${baseUrl.replace(/\/+$/, '')}/audio/transcriptions`;
  let res: Response;
  try {
    res = await (opts.fetch ?? fetch)(url, {
      method: 'POST',
      headers: { authorization: `Bearer ${apiKey}` },
      body: form,
      signal: AbortSignal.timeout(opts.timeoutMs ?? 90_000),
    });
  } catch (err) {
    throw ApplicationFailure.create({
      type: FAILURE.agentUnavailable,
      message: `The transcription endpoint ${baseUrl} could not be reached (${(err as Error).name}).`,
      nonRetryable: false,
    });
  }
  const body = await res.text();
  if (!res.ok) {
    let detail = '';
    try {
      detail = (JSON.parse(body) as { error?: { message?: string } }).error?.message ?? '';
    } catch {
      detail = '';
    }
    detail = detail.split(apiKey).join('[redacted]').slice(0, 300);
    if (res.status === 429 || res.status >= 500) {
      throw ApplicationFailure.create({
        type: FAILURE.agentUnavailable,
        message: `The transcription endpoint answered HTTP ${res.status}${detail ? `: ${detail}` : ''}.`,
        nonRetryable: false,
      });
    }
    return { error: `the transcription endpoint answered HTTP ${res.status}${detail ? `: ${detail}` : ''}` };
  }
  try {
    const text = (JSON.parse(body) as { text?: unknown }).text;
    return typeof text === 'string'
      ? { text: text.trim() }
      : { error: 'the transcription endpoint answered without text' };
  } catch {
    return { error: 'the transcription endpoint answered with something that is not JSON' };
  }
}
