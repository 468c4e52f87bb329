/**
 * The policy set in force: the operator's Cedar text from the store, parsed once per change into a
 * {@link PolicyEngine}. A change saved by any process takes effect for the next decision, because each
 * decision first compares the store's policy version (one indexed read) with the loaded one.
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

/** Creates the service over the store. */
export function createPolicyService(store: Store): PolicyService {
  let engine = new PolicyEngine('');
  let loaded = -1;
  let loading: Promise<void> | null = null;

  const refresh = async (): Promise<void> => {
    const version = await store.policies.version();
    if (version === loaded) return;
    const { text } = await store.policies.current();
    engine = new PolicyEngine(text);
    loaded = version;
  };
  const ensure = async (): Promise<void> => {
    // Concurrent decisions share one reload.
    loading ??= refresh().finally(() => (loading = null));
    await loading;
  };

  return {
    async decide(req) {
      await ensure();
      return engine.decide(req);
    },
    current: () => store.policies.current(),
    async save(text) {
      const check = PolicyEngine.check(text);
      if (!check.ok) throw new InvalidPolicyError(check.errors as PolicyError[]);
      const saved = await store.policies.save(text);
      engine = new PolicyEngine(text);
      loaded = saved.id;
      return { updatedAt: saved.updatedAt };
    },
  };
}
