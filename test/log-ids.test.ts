/**
 * Every structured log line about a message names its channel, its chat and the chat's workflow, so an
 * operator follows one message with one filter. The logs of a few messages' lives — a pairing code, an
 * echo answered, its redelivery, a reply Meta refuses — are captured at `trace` from a running Wharf,
 * and every line that mentions one of those messages (by id, by the id of its reply, or as `messageId`) is
 * checked for `channelId`, `chatId` and `workflowId`.
 */
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeGraph, type FakeGraph } from './fakes/graph-server.js';
import {
  cloudChannel,
  echoRoundTrip,
  pairPhone,
  phone,
  sendText,
  waitForChannel,
  waitForOutcome,
} from './support/cloud.js';
import { startWharf, type TestWharf } from './support/wharf.js';

type Line = Record<string, unknown> & { msg?: string };
const lines: Line[] = [];
let fake: FakeGraph;
let w: TestWharf;

beforeAll(async () => {
  fake = await startFakeGraph();
  const log = pino(
    { level: 'trace', base: { service: 'wharf' } },
    { write: (l: string) => void lines.push(JSON.parse(l)) },
  );
  w = await startWharf({ graphUrl: fake.url, log });
});

afterAll(async () => {
  await w?.close({ purge: true });
  await fake?.close();
});

describe('log lines about a message', () => {
  it('carry channelId, chatId and workflowId from the webhook to the reply', async () => {
    const p = phone();
    const ch = await cloudChannel(w, fake, { stage: 'connected' });
    const code = await pairPhone(w, fake, ch, p);
    const echo = await echoRoundTrip(w, fake, ch, p, 'follow me through the logs');
    // Meta sends the same message again (dropped as a redelivery: if that is logged, with the ids too).
    await sendText(w, ch, p, 'follow me through the logs', echo.id);
    // The token is revoked: Meta refuses the next reply.
    fake.revokeToken(ch.accessToken);
    const refused = await sendText(w, ch, p, 'no token for this one');
    await waitForOutcome(w, ch.id, refused);
    await waitForChannel(w, ch.id, 'failed', (c) => c.status === 'failed');

    const ids = [echo.id, refused, echo.reply.wamid, code.wamid];
    const about = lines.filter(
      (l) => 'messageId' in l || 'providerId' in l || ids.some((id) => JSON.stringify(l).includes(id)),
    );
    const chatId = p;
    const workflowId = `chat-${ch.id}-${chatId}`;
    const missing = about.filter((l) => l.channelId !== ch.id || l.chatId !== chatId || l.workflowId !== workflowId);
    expect(missing, JSON.stringify(missing, null, 2)).toEqual([]);

    // The lines are there to check: the life of the echoed message, the redelivery, the refused reply.
    const msgs = (id: string) => about.filter((l) => l.messageId === id).map((l) => l.msg);
    expect(msgs(echo.id)).toEqual(expect.arrayContaining(['inbound message admitted', 'reply part sent']));
    expect(msgs(refused)).toEqual(
      expect.arrayContaining(['inbound message admitted', 'send refused by the Graph API']),
    );
    expect(about.some((l) => l.msg === 'sender paired')).toBe(true);
  });
});
