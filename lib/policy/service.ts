/**
 * The policy set in force: the operator's Cedar text from the store, parsed once per change into a
 * {@link PolicyEngine}. A change saved through this service applies to the next decision; one saved by
 * another process applies within VERSION_CHECK_MS (decisions re-read the store's policy version).
 */
import type { Store } from '../store/store.js';
import { InvalidPolicyError, PolicyEngine, type Decision, type DecisionRequest, type PolicyError } from './engine.js';

/** Decisions and edits of the policy set. */
export interface PolicyService {
  /** Evaluates `receive_message` for one message. */
  decide(req: DecisionRequest): Promise<Decision>;
  /** The operator's current text. */
  current(): Promise<{ text: string; updatedAt: string | null }>;
  /** Validates and saves a new text; throws InvalidPolicyError (previous set stays in force). */
  save(text: string): Promise<{ updatedAt: string }>;
}

/** How many recent decisions are remembered per policy version. */
const DECISION_CACHE_SIZE = 10_000;

/**
 * A decision is a pure function of the policy set and the request (the schema allows policies to read
 * nothing else), so identical requests under the same policy version get the cached answer. The cache
 * is dropped whenever the policy set changes.
 */
function cacheKey(r: DecisionRequest): string {
  const { sender, chat } = r.message;
  return JSON.stringify([r.agent, r.channelId, r.provider, sender.address, sender.paired, sender.name ?? null, chat.kind, chat.id, chat.name ?? null]);
}

/** Creates the service over the store. */
export function createPolicyService(store: Store): PolicyService {
  let engine = new PolicyEngine('');
  let loaded = -1;
  let loading: Promise<void> | null = null;
  let cache = new Map<string, Decision>();

  const install = (text: string, version: number): void => {
    engine = new PolicyEngine(text);
    loaded = version;
    cache = new Map();
  };
  const refresh = async (): Promise<void> => {
    const version = await store.policies.version();
    if (version === loaded) return;
    const { text } = await store.policies.current();
    install(text, version);
  };
  // The stored version is checked at most every VERSION_CHECK_MS: a save through this process applies at
  // once (it installs the new set itself); one saved by another process applies within that interval. On a
  // store shared by several nodes (PostgreSQL) it is checked for every decision: one tiny query.
  const VERSION_CHECK_MS = store.shared ? 0 : 250;
  let checkedAt = 0;
  const ensure = async (): Promise<void> => {
    if (loaded >= 0 && Date.now() - checkedAt < VERSION_CHECK_MS) return;
    // Concurrent decisions share one reload.
    loading ??= refresh()
      .then(() => void (checkedAt = Date.now()))
      .finally(() => (loading = null));
    await loading;
  };

  return {
    async decide(req) {
      await ensure();
      const key = cacheKey(req);
      const hit = cache.get(key);
      if (hit) return hit;
      const d = engine.decide(req);
      if (cache.size >= DECISION_CACHE_SIZE) cache.delete(cache.keys().next().value as string);
      cache.set(key, d);
      return d;
    },
    current: () => store.policies.current(),
    async save(text) {
      const check = PolicyEngine.check(text);
      if (!check.ok) throw new InvalidPolicyError(check.errors as PolicyError[]);
      const saved = await store.policies.save(text);
      install(text, saved.id);
      return { updatedAt: saved.updatedAt };
    },
  };
}
