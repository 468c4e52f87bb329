/**
 * The policy set in force: the operator's Cedar text from the store, parsed once per change into a
 * {@link PolicyEngine}. A change saved through this service applies to the next decision; one saved by
 * another process applies within VERSION_CHECK_MS (decisions re-read the store's policy version).
 */
import { WharfError } from '../errors.js';
import type { Store } from '../store/store.js';
import { InvalidPolicyError, PolicyEngine, type Compiled, type Decision, type DecisionRequest } from './engine.js';
import { compileOffThread } from './off-thread.js';

/**
 * The largest policy text accepted, in UTF-8 bytes (256 KiB): some 1,500 one-number policies, or one policy
 * listing thousands of numbers in a set. Compiling runs off the event loop, but installing the compiled set
 * in the engine (cedar-wasm's preparse) cannot: measured 0.4 s for 256 KB against 3.3 s for 1 MB.
 */
export const POLICY_MAX_BYTES = 256 * 1024;

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
  return JSON.stringify([
    r.agent,
    r.channelId,
    r.provider,
    sender.address,
    sender.paired,
    sender.name ?? null,
    sender.userId ?? null,
    chat.kind,
    chat.id,
    chat.name ?? null,
  ]);
}

/** Creates the service over the store. */
export function createPolicyService(store: Store): PolicyService {
  // Made by the first decision, not here: installing even the default set costs cedar-wasm a few hundred ms,
  // which a start need not wait for (issue #22).
  let engine: PolicyEngine | undefined;
  let loaded = -1;
  let loading: Promise<void> | null = null;
  let cache = new Map<string, Decision>();

  const install = (text: string, version: number, compiled: Compiled): void => {
    engine = new PolicyEngine(text, compiled);
    loaded = version;
    cache = new Map();
  };
  // Compiles off the event loop (lib/policy/off-thread.ts), one text at a time: each compile is a thread
  // with its own cedar-wasm heap.
  let compiling: Promise<unknown> = Promise.resolve();
  const compile = (text: string): Promise<Compiled> => {
    // The empty text (no operator policies) is the common case at start-up: no thread for it.
    const next = compiling.then(() =>
      text.trim() === '' ? ({ ok: true, policies: {} } as Compiled) : compileOffThread(text),
    );
    compiling = next.catch(() => undefined);
    return next;
  };
  const refresh = async (): Promise<void> => {
    const version = await store.policies.version();
    if (version === loaded) return;
    const { text } = await store.policies.current();
    install(text, version, await compile(text));
  };
  // The stored version is checked at most every VERSION_CHECK_MS: a save through this process applies at
  // once (it installs the new set itself); one saved by another process applies within that interval. On a
  // store shared by several nodes (PostgreSQL) it is checked for every decision: one tiny query.
  const VERSION_CHECK_MS = store.shared ? 0 : 250;
  let checkedAt = 0;
  const ensure = async (): Promise<PolicyEngine> => {
    if (!engine || Date.now() - checkedAt >= VERSION_CHECK_MS) {
      if (store.inTransaction()) {
        // A decision inside a transaction on the embedded store (admission decides inside `store.together`)
        // checks on its own, within that transaction: a reload another caller started may be waiting behind
        // this very transaction for its reads, and waiting for it here would hold both for ever (it did: the
        // webhook's stranger screen started one while a chat's admission held the store).
        await refresh();
        checkedAt = Date.now();
      } else {
        // Concurrent decisions share one reload.
        loading ??= refresh()
          .then(() => void (checkedAt = Date.now()))
          .finally(() => (loading = null));
        await loading;
      }
    }
    if (!engine) throw new Error('the policy set could not be loaded'); // refresh installs one or throws
    return engine;
  };

  return {
    async decide(req) {
      const current = await ensure();
      const key = cacheKey(req);
      const hit = cache.get(key);
      if (hit) return hit;
      const d = current.decide(req);
      if (cache.size >= DECISION_CACHE_SIZE) cache.delete(cache.keys().next().value as string);
      cache.set(key, d);
      return d;
    },
    current: () => store.policies.current(),
    async save(text) {
      const bytes = Buffer.byteLength(text, 'utf8');
      if (bytes > POLICY_MAX_BYTES) {
        throw new WharfError(
          'too_large',
          `The policy text is ${bytes} bytes; at most ${POLICY_MAX_BYTES} are accepted. List many numbers in one policy's set instead of one policy each.`,
        );
      }
      const compiled = await compile(text);
      if (!compiled.ok) throw new InvalidPolicyError(compiled.errors);
      const saved = await store.policies.save(text);
      install(text, saved.id, compiled);
      return { updatedAt: saved.updatedAt };
    },
  };
}
