/**
 * `npm run bench -- --only=flood` (issue #15): strangers flood one channel with texts shaped like pairing
 * codes while its code is live; a paired sender on another channel keeps talking. Reports the paired
 * sender's end-to-end latency before, during and after the flood, how fast the strangers' webhooks were
 * acknowledged, how long until every stranger's text had its outcome, and how many events the flooded
 * channel's workflow gained (the design says: none).
 */
import { channelWorkflowId, chatWorkflowId } from '../lib/workflow-ids.js';
import { percentile, round, runOpenLoop, sleep, type StepResult } from './load.js';
import {
  benchText,
  configureAndConnect,
  createChannel,
  createSecrets,
  productTemporal,
  signedWebhook,
  ReplyTracker,
  type Product,
  type ReadyChannel,
} from './product.js';
import type { FakeGraph } from '../test/fakes/graph-server.js';

/** Sizes of one flood run. */
export interface FloodOptions {
  strangers: number;
  textsEach: number;
  /** Offered rate of the strangers' webhooks, msgs/s. */
  rate: number;
  /** The paired sender's rate on the other channel, msgs/s, and the length of the before/after phases. */
  friendRate: number;
  phaseSec: number;
  /** How long to wait for the strangers' texts to be processed once the flood ended. */
  drainMs: number;
}

/** Latency of the paired sender's echo in one phase. */
interface Phase {
  phase: string;
  sent: number;
  answered: number;
  e2eP50: number | null;
  e2eP99: number | null;
  e2eMax: number | null;
}

const codeShaped = (i: number, k: number): string =>
  [
    `KQZ-${String(i % 1000).padStart(3, '0')}`,
    `abc ${String((i + k) % 1000).padStart(3, '0')}`,
    `msg 1${k}-${i % 10}`,
    `Q Z X ${k}${k}${i % 10}`,
    `zzz-${String(k).repeat(3)}`,
  ][k % 5];

/** Pairs `from` on `ch`: starts pairing, sends the code as a signed webhook, waits for the confirmation. */
async function pair(p: Product, fake: FakeGraph, ch: ReadyChannel, from: string): Promise<void> {
  const r = await p.api<{ code: string }>('POST', `/api/channels/${ch.id}/pair`);
  if (r.status !== 200) throw new Error(`pairing ${ch.id}: HTTP ${r.status} ${JSON.stringify(r.data)}`);
  const req = signedWebhook(ch.appSecret, { from, text: r.data.code });
  const res = await fetch(ch.webhookUrl, {
    method: 'POST',
    body: new Uint8Array(req.body),
    headers: { 'content-type': 'application/json', ...req.headers },
  });
  if (res.status !== 200) throw new Error(`pairing webhook: HTTP ${res.status}`);
  await fake.waitForSent((s) => s.to === from && s.text.startsWith('Paired.'), 30_000);
}

/** Runs the flood; `progress` gets one line per phase. */
export async function runFlood(
  p: Product,
  fake: FakeGraph,
  o: FloodOptions,
  progress: (line: string) => void,
): Promise<Record<string, unknown>> {
  const target = await configureAndConnect(
    p,
    (await createChannel(p, `flood-target-${Date.now()}`)).id,
    await createSecrets(p, `flood-target-${Date.now()}`),
  );
  const other = await configureAndConnect(
    p,
    (await createChannel(p, `flood-other-${Date.now()}`)).id,
    await createSecrets(p, `flood-other-${Date.now()}`),
  );
  const friend = '15559990001';
  await pair(p, fake, other, friend);
  // A completed pairing on the target and a live code: both once made every code-shaped text reach its workflow.
  await pair(p, fake, target, '15559990002');
  const live = await p.api('POST', `/api/channels/${target.id}/pair`);
  if (live.status !== 200) throw new Error(`starting pairing on the target: HTTP ${live.status}`);

  const { client, connection } = await productTemporal(p);
  const historyLength = async (): Promise<number> =>
    (await client.workflow.getHandle(channelWorkflowId(target.id)).fetchHistory()).events?.length ?? 0;

  const tracker = new ReplyTracker(fake);
  let friendSeq = 0;
  /** The paired sender talks at `friendRate` for `seconds`; returns the tokens sent. */
  const friendTalks = async (label: string, seconds: number): Promise<string[]> => {
    const tokens: string[] = [];
    await runOpenLoop({
      url: other.webhookUrl,
      rate: o.friendRate,
      seconds,
      makeRequest: () => {
        const token = `f${label}${friendSeq++}`;
        tokens.push(token);
        tracker.sent(token, Date.now());
        return signedWebhook(other.appSecret, { from: friend, text: benchText(token) });
      },
    });
    return tokens;
  };
  const phase = async (name: string, tokens: string[]): Promise<Phase> => {
    await tracker.waitAll(tokens, 30_000);
    const lat = tracker.e2e(tokens);
    const row = {
      phase: name,
      sent: tokens.length,
      answered: lat.length,
      e2eP50: lat.length ? round(percentile(lat, 0.5)) : null,
      e2eP99: lat.length ? round(percentile(lat, 0.99)) : null,
      e2eMax: lat.length ? round(Math.max(...lat)) : null,
    };
    progress(
      `flood: ${name}: paired sender on the other channel: ${row.answered}/${row.sent} answered, e2e p50/p99 ${row.e2eP50}/${row.e2eP99} ms`,
    );
    return row;
  };

  const phases: Phase[] = [];
  phases.push(await phase('before', await friendTalks('b', o.phaseSec)));

  const historyBefore = await historyLength();
  const total = o.strangers * o.textsEach;
  const floodSeconds = total / o.rate;
  progress(
    `flood: ${o.strangers} strangers × ${o.textsEach} code-shaped texts at ${o.rate}/s (${round(floodSeconds)} s) on one channel, paired sender at ${o.friendRate}/s on another`,
  );
  const t0 = performance.now();
  const strangerIds: string[] = [];
  const [strangers, during] = await Promise.all([
    runOpenLoop({
      url: target.webhookUrl,
      rate: o.rate,
      seconds: floodSeconds,
      maxSockets: 128,
      makeRequest: (i) => {
        const stranger = `1556${String(1_000_000 + (i % o.strangers)).padStart(7, '0')}`;
        const req = signedWebhook(target.appSecret, {
          from: stranger,
          text: codeShaped(i % o.strangers, Math.floor(i / o.strangers)),
        });
        strangerIds.push(req.id);
        return req;
      },
    }),
    friendTalks('d', floodSeconds),
  ]);
  phases.push(await phase('during', during));

  // Strangers are denied at the webhook (no chat workflow): their texts are on the log once acked. The log
  // answers 500 entries at most, so the newest 500 texts are checked there, and a sample of the strangers'
  // would-be chat workflows must not exist.
  const drainDeadline = performance.now() + o.drainMs;
  const newest = new Set(strangerIds.slice(-500));
  let onLog = 0;
  for (;;) {
    const log = await p.api<Array<{ key: string; status: string }>>(
      'GET',
      `/api/channels/${target.id}/messages?limit=500`,
    );
    onLog = (log.data ?? []).filter((e) => newest.has(e.key) && e.status === 'denied').length;
    if (onLog >= newest.size || performance.now() > drainDeadline) break;
    await sleep(500);
  }
  const drainedSec = round((performance.now() - t0) / 1000, 1);
  const sample = Array.from({ length: Math.min(25, o.strangers) }, (_, i) =>
    chatWorkflowId(target.id, `+1556${String(1_000_000 + i).padStart(7, '0')}`),
  );
  const exists = (id: string): Promise<number> =>
    client.workflow
      .getHandle(id)
      .describe()
      .then(() => 1)
      .catch(() => 0);
  const started = (await Promise.all(sample.map(exists))).reduce((a, b) => a + b, 0);
  progress(
    `flood: the newest ${newest.size} strangers' texts on the log as denied: ${onLog}; stranger chat workflows started (of ${sample.length} sampled): ${started}`,
  );
  const historyAfter = await historyLength();
  phases.push(await phase('after', await friendTalks('a', o.phaseSec)));
  await connection.close();

  return {
    strangers: o.strangers,
    textsEach: o.textsEach,
    offeredRate: o.rate,
    ack: summarise(strangers),
    newestDeniedOnLog: onLog,
    newestChecked: newest.size,
    allOnLogWithinSec: onLog >= newest.size ? drainedSec : null,
    strangerChatsStarted: started,
    strangerChatsSampled: sample.length,
    targetWorkflowEventsAdded: historyAfter - historyBefore,
    phases,
  };
}

function summarise(r: StepResult): Record<string, unknown> {
  return {
    sent: r.sent,
    ok: r.ok,
    errors: r.errors,
    sustained: r.sustained,
    ackP50: r.ackP50,
    ackP99: r.ackP99,
    aborted: r.aborted,
  };
}
