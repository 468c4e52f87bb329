/**
 * Micro-benchmark of `receive_message` decisions: the engine's preparsed path (policies parsed once, per-message
 * entities only) against the naive call that hands Cedar the schema and policy text on every decision.
 */
import { pathToFileURL } from 'node:url';
import { isAuthorized } from '@cedar-policy/cedar-wasm/nodejs';
import { PolicyEngine, type Decision, type DecisionRequest } from '../lib/policy/engine.js';
import { DEFAULT_POLICY, POLICY_SCHEMA } from '../lib/policy/schema.js';
import { createPolicyService } from '../lib/policy/service.js';
import type { Store } from '../lib/store/store.js';

// The guide's allowlisting example: the policy set an operator is most likely to have.
const EXAMPLE_POLICY = `permit(
  principal == Policy::Agent::"assistant",
  action == Policy::Action::"receive_message",
  resource in Policy::Channel::"whatsapp_cloud"
) when { resource.sender.address == "+15551234567" };`;

/** The result of one policy benchmark run. */
export interface PolicyBenchResult {
  name: string;
  usPerDecision: number;
  decisionsPerSec: number;
  naiveUsPerDecision: number;
}

/** Varied traffic: the allowlisted sender, strangers, paired senders, groups, and personal channels. */
function requests(count: number): DecisionRequest[] {
  return Array.from({ length: count }, (_, i) => {
    const address = i % 5 === 0 ? '+15551234567' : `+1555${String(1_000_000 + i * 7919).slice(-7)}`;
    const group = i % 7 === 3;
    return {
      agent: i % 11 === 0 ? 'other' : 'assistant',
      channelId: `ch_${i % 4}`,
      provider: i % 6 === 5 ? 'whatsapp_user' : 'whatsapp_cloud',
      message: {
        id: `wamid.${i}`,
        sender: { address, paired: i % 3 === 0, ...(i % 2 === 0 ? { name: `Contact ${i}` } : {}) },
        chat: group ? { kind: 'group', id: `1203630000${i}@g.us` } : { kind: 'direct', id: address },
      },
    };
  });
}

/** The naive decision: schema and policies given as text, so Cedar parses both on every call. */
function naiveDecide(req: DecisionRequest): Decision['decision'] {
  const resource = { type: 'Policy::Message', id: req.message.id ?? 'unidentified' };
  const channel = { type: 'Policy::Channel', id: req.channelId };
  const answer = isAuthorized({
    principal: { type: 'Policy::Agent', id: req.agent },
    action: { type: 'Policy::Action', id: 'receive_message' },
    resource,
    context: {},
    schema: POLICY_SCHEMA,
    validateRequest: true,
    policies: { staticPolicies: `${DEFAULT_POLICY}\n${EXAMPLE_POLICY}` },
    entities: [
      {
        uid: resource,
        attrs: { sender: { ...req.message.sender }, chat: { ...req.message.chat } },
        parents: [channel],
      },
      { uid: channel, attrs: {}, parents: [{ type: 'Policy::Channel', id: req.provider }] },
    ],
  });
  if (answer.type === 'failure') throw new Error(answer.errors.map((e) => e.message).join('; '));
  return answer.response.decision;
}

/** Mean microseconds per call of `fn` over `iterations` calls cycling through `reqs`, after a warm-up. */
function measure(reqs: DecisionRequest[], iterations: number, fn: (req: DecisionRequest) => unknown): number {
  // wasm functions start on V8's baseline tier and are optimised only once hot, so warm up before timing.
  const warmup = Math.max(200, Math.floor(iterations / 5));
  for (let i = 0; i < warmup; i++) fn(reqs[i % reqs.length]);
  const start = performance.now();
  for (let i = 0; i < iterations; i++) fn(reqs[i % reqs.length]);
  return ((performance.now() - start) * 1000) / iterations;
}

/** Measures `PolicyEngine.decide` (example policy + default) and, for comparison, the naive per-call parse. */
export function benchPolicy(opts: { iterations?: number } = {}): PolicyBenchResult {
  const iterations = opts.iterations ?? 10_000;
  const reqs = requests(257);
  const engine = new PolicyEngine(EXAMPLE_POLICY);

  // Both paths must reach the same real decisions, or the comparison means nothing.
  for (const req of reqs) {
    const ours = engine.decide(req);
    if (ours.errors.length > 0 || ours.decision !== naiveDecide(req)) {
      throw new Error(`decision mismatch for ${JSON.stringify(req)}: ${JSON.stringify(ours)}`);
    }
  }

  const usPerDecision = measure(reqs, iterations, (req) => engine.decide(req));
  // The naive path is an order of magnitude slower; fewer iterations give a stable mean in reasonable time.
  const naiveUsPerDecision = measure(reqs, Math.max(100, Math.floor(iterations / 10)), naiveDecide);
  return {
    name: 'policy.decide (example + default, preparsed)',
    usPerDecision: round(usPerDecision),
    decisionsPerSec: Math.round(1_000_000 / usPerDecision),
    naiveUsPerDecision: round(naiveUsPerDecision),
  };
}

/**
 * Measures what the product does per message: `PolicyService.decide` (the preparsed engine behind a cache
 * keyed by policy version and request), over the same 257 varied requests cycling — so after the first
 * pass, a sender seen before is answered from the cache.
 */
export async function benchPolicyService(
  opts: { iterations?: number } = {},
): Promise<{ name: string; usPerDecision: number; decisionsPerSec: number }> {
  const iterations = opts.iterations ?? 20_000;
  const reqs = requests(257);
  // Only the policy part of the store is used by the service.
  const store = {
    policies: { version: async () => 1, current: async () => ({ text: EXAMPLE_POLICY, updatedAt: null }) },
    inTransaction: () => false,
  } as unknown as Store;
  const service = createPolicyService(store);
  for (let i = 0; i < Math.max(500, iterations / 5); i++) await service.decide(reqs[i % reqs.length]);
  const start = performance.now();
  for (let i = 0; i < iterations; i++) await service.decide(reqs[i % reqs.length]);
  const us = ((performance.now() - start) * 1000) / iterations;
  return {
    name: 'policy service decide (cached per version)',
    usPerDecision: round(us),
    decisionsPerSec: Math.round(1_000_000 / us),
  };
}

/** Rounds to one decimal place. */
function round(n: number): number {
  return Math.round(n * 10) / 10;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  console.log(JSON.stringify(benchPolicy()));
}
