/**
 * What the media tests (test/media*.test.ts) share: file bytes of a given type, what the message log says
 * of a stored file, an inbound media message on the Cloud API, and the agents that answer with files.
 */
import { createHash, randomBytes } from 'node:crypto';
import { expect } from 'vitest';
import { inboundPayload } from '../fakes/graph-server.js';
import type { FakeGraph } from '../fakes/graph-server.js';
import { cloudChannel, phone, postWebhook, wamid, type CloudSetup } from './cloud.js';
import type { TestWharf } from './wharf.js';

/** Bytes that start like a PNG (the type and hash are what is checked, not whether they decode). */
export const pngBytes = (n = 2048): Buffer => Buffer.concat([Buffer.from('89504e470d0a1a0a', 'hex'), randomBytes(n)]);

/** A file's SHA-256 in hex: the id Wharf stores it under. */
export const sha256Hex = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** The media detail the message log keeps for a file stored from `bytes`: its id and URL are its SHA-256. */
export function storedMedia(bytes: Buffer, kind: string, mime: string): Record<string, unknown> {
  const sha = sha256Hex(bytes);
  return { id: sha, kind, mime, size: bytes.length, sha256: sha, url: `/api/media/${sha}` };
}

/** Posts one media message (`type` with its `body`) from `from` as a signed Meta webhook (expects 200); returns its id. */
export async function sendMedia(
  w: TestWharf,
  target: CloudSetup,
  from: string,
  type: string,
  body: Record<string, unknown>,
): Promise<string> {
  const id = wamid();
  const r = await postWebhook(
    w,
    target.id,
    inboundPayload(target.target, [{ from, id, message: { type, [type]: body, text: undefined } }]),
    { secret: target.appSecret },
  );
  expect(r.status, JSON.stringify(r.data)).toBe(200);
  return id;
}

/** Registers the examples' `fileAgent` workflow (examples/file-agent.ts) as agent `files` on `taskQueue`. */
export async function addFileAgent(w: TestWharf, taskQueue: string): Promise<void> {
  const r = await w.api('POST', '/api/agents', { id: 'files', kind: 'temporal', workflowType: 'fileAgent', taskQueue });
  expect(r.status, JSON.stringify(r.data)).toBe(201);
}

/** Registers an OpenAI-compatible agent (expects 201); returns its id. */
async function addOpenAiAgent(
  w: TestWharf,
  agent: { id: string; baseUrl: string; model: string; apiKey: unknown } & Record<string, unknown>,
): Promise<string> {
  const r = await w.api('POST', '/api/agents', { ...agent, kind: 'openai' });
  expect(r.status, JSON.stringify(r.data)).toBe(201);
  return agent.id;
}

/** Registers an OpenAI-compatible agent (expects 201) and binds a new Cloud channel with one paired sender to it. */
export async function openAiChannel(
  w: TestWharf,
  fake: FakeGraph,
  agent: Parameters<typeof addOpenAiAgent>[1],
): Promise<{ ch: CloudSetup; from: string }> {
  const id = await addOpenAiAgent(w, agent);
  const from = phone();
  return { ch: await cloudChannel(w, fake, { agent: id, pair: [from] }), from };
}
