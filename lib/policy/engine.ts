/**
 * The Cedar policy engine behind `receive_message` (SPEC §6): validates operators' policy text against the schema
 * and decides whether an inbound message may reach its agent. Pure (no I/O), so the product calls it from an
 * activity and from the API alike.
 *
 * Policy ids: the built-in default is `default`. An operator policy annotated `@id("...")` is reported under that
 * id; any other operator policy gets the id Cedar gives it by position in the text (`policy0`, `policy1`, …, counting
 * every policy, annotated or not). Ids must be unique and `default` is reserved.
 *
 * Parsing happens once per policy change: `setPolicies` validates the text and hands the parsed set to cedar-wasm's
 * stateful cache (`preparsePolicySet`); `decide` only sends the per-message entities (`statefulIsAuthorized`).
 */
import { Buffer } from 'node:buffer';
// The package's default entry is a bundler build that imports the .wasm file as a module; the nodejs build is
// CommonJS that instantiates the wasm synchronously on import, so no async init is needed.
import * as cedarWasm from '@cedar-policy/cedar-wasm/nodejs';
import {
  preparsePolicySet,
  statefulIsAuthorized,
  type DetailedError,
  type EntityJson,
  type PolicyToJsonAnswer,
  type PolicySetTextToPartsAnswer,
  type TypeAndId,
  type ValidationAnswer,
} from '@cedar-policy/cedar-wasm/nodejs';
import { DEFAULT_POLICY, DEFAULT_POLICY_ID, POLICY_NAMESPACE, POLICY_SCHEMA } from './schema.js';

/** One problem with a policy text, in Cedar's words, located in the operator's text when Cedar says where. */
export interface PolicyError {
  /** Cedar's message. */
  message: string;
  /** Cedar's hint and the label of the offending span (e.g. the tokens it expected), when it gives them. */
  help?: string;
  /** 1-based line in the operator's text. */
  line?: number;
  /** 1-based column (in characters) in the operator's text. */
  column?: number;
  /** The id of the policy at fault, as decisions would report it. */
  policyId?: string;
}

/** The outcome of checking a policy text. */
export type PolicyCheck = { ok: true } | { ok: false; errors: PolicyError[] };

/** The WhatsApp provider a channel uses; also the id of the channel's parent in the policy hierarchy. */
export type PolicyProvider = 'whatsapp_cloud' | 'whatsapp_user';

/** What a `receive_message` decision is about. */
export interface DecisionRequest {
  /** The channel's agent id (the principal). */
  agent: string;
  /** The channel id (the message's parent channel). */
  channelId: string;
  /** The channel's provider (the parent of the channel). */
  provider: PolicyProvider;
  /** The normalised inbound message; `id` is optional so "would this get through?" checks need not invent one. */
  message: {
    id?: string;
    sender: { address: string; paired: boolean; name?: string; userId?: string };
    chat: { kind: 'direct' | 'group'; id: string; name?: string };
  };
}

/** A `receive_message` decision. */
export interface Decision {
  /** Whether the message may reach the agent. */
  decision: 'allow' | 'deny';
  /** Ids of the determining policies: the satisfied permits on allow, the satisfied forbids on deny. */
  reasons: string[];
  /** Evaluation errors (`<policy id>: <message>`); a failed evaluation denies. */
  errors: string[];
}

/** Thrown when a policy text does not parse or validate; the previous policies stay in force. */
export class InvalidPolicyError extends Error {
  override readonly name = 'InvalidPolicyError';
  constructor(readonly errors: PolicyError[]) {
    super(describe(errors));
  }
}

const AGENT_TYPE = `${POLICY_NAMESPACE}::Agent`;
const CHANNEL_TYPE = `${POLICY_NAMESPACE}::Channel`;
const MESSAGE_TYPE = `${POLICY_NAMESPACE}::Message`;
const RECEIVE_MESSAGE: TypeAndId = { type: `${POLICY_NAMESPACE}::Action`, id: 'receive_message' };
const POSITIONAL_ID = /^policy(\d+)$/;

/** A compiled policy text: the operator's policies keyed by the ids decisions report, or why it was refused. */
export type Compiled = { ok: true; policies: Record<string, string> } | { ok: false; errors: PolicyError[] };

/** Most errors reported for one text: each is located in the text, and a flood of them says no more. */
const MAX_REPORTED_ERRORS = 100;

let engineCount = 0;
let unnamedMessageCount = 0;

// cedar-wasm's cache has no delete; overwriting a dead engine's slot with an empty set frees its policies.
const releaseSlot = new FinalizationRegistry<string>((setId) => {
  preparsePolicySet(setId, { staticPolicies: {} });
});

/** Decides `receive_message` for one set of operator policies plus the built-in default. */
export class PolicyEngine {
  private readonly setId = `wharf-policies-${++engineCount}`;
  private text = '';

  /** Validates a policy text against the schema without changing any engine; empty text is valid. */
  static check(text: string): PolicyCheck {
    const compiled = compile(text);
    return compiled.ok ? { ok: true } : { ok: false, errors: compiled.errors };
  }

  /** Loads the operator's policies (none by default); throws `InvalidPolicyError` if they are invalid. */
  constructor(operatorPolicies = '', compiled?: Compiled) {
    this.setPolicies(operatorPolicies, compiled);
    releaseSlot.register(this, this.setId);
  }

  /** The operator's policy text currently in force. */
  get policies(): string {
    return this.text;
  }

  /**
   * Replaces the operator's policies; on invalid text throws `InvalidPolicyError` and keeps the previous ones.
   * `compiled` is this text already compiled (e.g. off the event loop by {@link compileOffThread}).
   */
  setPolicies(text: string, compiled: Compiled = compile(text)): void {
    if (!compiled.ok) throw new InvalidPolicyError(compiled.errors);
    const answer = preparsePolicySet(this.setId, {
      staticPolicies: { ...compiled.policies, [DEFAULT_POLICY_ID]: DEFAULT_POLICY },
    });
    // Cannot happen after a successful compile; preparse leaves the old set in place on failure, and so must we.
    if (answer.type === 'failure') throw new InvalidPolicyError(answer.errors.map((e) => ({ message: e.message })));
    this.text = text;
  }

  /** Decides whether a message may reach its agent; fails closed (deny) if Cedar cannot evaluate. */
  decide(req: DecisionRequest): Decision {
    const { sender, chat } = req.message;
    const resource: TypeAndId = { type: MESSAGE_TYPE, id: req.message.id ?? `unidentified-${++unnamedMessageCount}` };
    const channel: TypeAndId = { type: CHANNEL_TYPE, id: req.channelId };
    // A channel whose id equals its provider's would be its own parent, which Cedar rejects as a cycle.
    const channelParents = req.channelId === req.provider ? [] : [{ type: CHANNEL_TYPE, id: req.provider }];
    // The Agent and provider entities have no attributes or parents, and Cedar treats entities absent from the
    // store exactly so; leaving them out keeps the per-decision payload small.
    const entities: EntityJson[] = [
      {
        uid: resource,
        attrs: {
          sender: withOptional(
            withOptional({ address: sender.address, paired: sender.paired }, 'name', sender.name),
            'userId',
            sender.userId,
          ),
          chat: withOptional({ kind: chat.kind, id: chat.id }, 'name', chat.name),
        },
        parents: [channel],
      },
      { uid: channel, attrs: {}, parents: channelParents },
    ];
    // No schema here on purpose: the policies were validated against it when set, and these entities are built
    // from typed fields, so per-call schema conformance checking would only add cost.
    const answer = statefulIsAuthorized({
      principal: { type: AGENT_TYPE, id: req.agent },
      action: RECEIVE_MESSAGE,
      resource,
      context: {},
      preparsedPolicySetId: this.setId,
      entities,
    });
    if (answer.type === 'failure') {
      return { decision: 'deny', reasons: [], errors: answer.errors.map((e) => e.message) };
    }
    const { decision, diagnostics } = answer.response;
    return {
      decision,
      reasons: diagnostics.reason,
      errors: diagnostics.errors.map((e) => `${e.policyId}: ${e.error.message}`),
    };
  }
}

/** What cedar-wasm says about a policy text: everything {@link compileFacts} needs, as plain data. */
export interface CedarFacts {
  validation: ValidationAnswer;
  parts?: PolicySetTextToPartsAnswer;
  json?: PolicyToJsonAnswer[];
}

/**
 * Asks cedar-wasm about a text: validation against the schema, the text split into policies, each policy as
 * JSON (for its annotations). These calls are nearly all of the cost of compiling a large text (measured for
 * 1 MB: 1.3 s + 0.2–0.7 s + ~2.5 s), so {@link compileOffThread} runs this same function in a worker
 * thread: it must stay plain JavaScript once its parameter types are stripped (it is sent as source text)
 * and use nothing but its arguments.
 */
export function gatherCedarFacts(
  cedar: Pick<typeof cedarWasm, 'validate' | 'policySetTextToParts' | 'policyToJson'>,
  schema: string,
  text: string,
): CedarFacts {
  const validation = cedar.validate({
    schema,
    policies: { staticPolicies: text },
    validationSettings: { mode: 'strict' },
  });
  if (validation.type === 'failure') return { validation };
  const parts = cedar.policySetTextToParts(text);
  const json = parts.type === 'success' ? parts.policies.map((p) => cedar.policyToJson(p)) : [];
  return { validation, parts, json };
}

/** Parses, validates and names the operator's policies (on this thread). */
function compile(text: string): Compiled {
  return compileFacts(text, gatherCedarFacts(cedarWasm, POLICY_SCHEMA, text));
}

/** Turns cedar-wasm's answers about `text` into a compiled set or located errors; cheap (no Cedar calls). */
export function compileFacts(text: string, facts: CedarFacts): Compiled {
  const { validation } = facts;
  if (validation.type === 'failure')
    return { ok: false, errors: validation.errors.slice(0, MAX_REPORTED_ERRORS).map((e) => toPolicyError(text, e)) };

  const named = namePolicies(text, facts);
  if (!named.ok) return named;
  const errors = validation.validationErrors
    .slice(0, MAX_REPORTED_ERRORS)
    .map(({ policyId, error }) => toPolicyError(text, error, named.idOf.get(policyId) ?? policyId));
  errors.push(...named.errors);
  return errors.length > 0
    ? { ok: false, errors: errors.slice(0, MAX_REPORTED_ERRORS) }
    : { ok: true, policies: named.policies };
}

type Named =
  | { ok: true; policies: Record<string, string>; idOf: Map<string, string>; errors: PolicyError[] }
  | { ok: false; errors: PolicyError[] };

/** Splits a (parseable) policy text into policies keyed by the ids decisions will report. */
function namePolicies(text: string, facts: CedarFacts): Named {
  const parts = facts.parts!;
  if (parts.type === 'failure')
    return { ok: false, errors: parts.errors.slice(0, MAX_REPORTED_ERRORS).map((e) => toPolicyError(text, e)) };
  if (parts.policy_templates.length > 0) {
    return { ok: false, errors: [{ message: 'policy templates are not supported; write static policies' }] };
  }

  // Cedar returns the parts sorted by their positional id as strings (policy0, policy1, policy10, policy2, …), so
  // sorting the same ids the same way recovers each part's position.
  const sortedIds = parts.policies.map((_, i) => `policy${i}`).sort();
  const inOrder: string[] = [];
  const jsonInOrder: PolicyToJsonAnswer[] = [];
  sortedIds.forEach((positional, k) => {
    const position = Number(POSITIONAL_ID.exec(positional)![1]);
    inOrder[position] = parts.policies[k];
    jsonInOrder[position] = facts.json![k];
  });

  const policies: Record<string, string> = {};
  const idOf = new Map<string, string>();
  const errors: PolicyError[] = [];
  let cursor = 0;
  inOrder.forEach((policy, position) => {
    const positional = `policy${position}`;
    // Parts are verbatim slices of the text in order, so a forward search finds where each one starts.
    const start = text.indexOf(policy, cursor);
    cursor = start >= 0 ? start + policy.length : cursor;
    // Located only for an error: locating every policy of a large text cost O(policies × length).
    const where = (): { line?: number; column?: number } =>
      start >= 0 && errors.length < MAX_REPORTED_ERRORS ? locate(text.slice(0, start)) : {};

    const json = jsonInOrder[position];
    const annotated = json.type === 'success' ? json.json.annotations?.id : undefined;
    if (annotated === '' || annotated === null) {
      errors.push({ message: '@id needs a non-empty value, e.g. @id("friends")', policyId: positional, ...where() });
      return;
    }
    const id = annotated ?? positional;
    if (id === DEFAULT_POLICY_ID) {
      errors.push({
        message: `policy id \`${id}\` is reserved for the built-in default policy`,
        policyId: id,
        ...where(),
      });
    } else if (id in policies) {
      errors.push({ message: `policy id \`${id}\` is used by more than one policy`, policyId: id, ...where() });
    } else {
      policies[id] = policy;
    }
    idOf.set(positional, id);
  });
  return { ok: true, policies, idOf, errors };
}

/** Turns Cedar's error into ours, converting its UTF-8 byte offset into a line and column of `text`. */
function toPolicyError(text: string, error: DetailedError, policyId?: string): PolicyError {
  const span = error.sourceLocations?.[0];
  const help = [span?.label, error.help].filter((s): s is string => !!s).join('; ');
  return {
    message: error.message,
    ...(help ? { help } : {}),
    ...(span ? locate(Buffer.from(text, 'utf8').subarray(0, span.start).toString('utf8')) : {}),
    ...(policyId ? { policyId } : {}),
  };
}

/** The 1-based line and column just after `prefix`, columns counted in characters (code points). */
function locate(prefix: string): { line: number; column: number } {
  const lastBreak = prefix.lastIndexOf('\n');
  const line = prefix.split('\n').length;
  return { line, column: [...prefix.slice(lastBreak + 1)].length + 1 };
}

/** Adds an optional attribute only when present: Cedar has no `undefined`, and `has` must see it as absent. */
function withOptional<T extends Record<string, string | boolean>>(
  record: T,
  key: string,
  value: string | undefined,
): Record<string, string | boolean> {
  return value === undefined ? record : { ...record, [key]: value };
}

/** A one-line summary of policy errors for the exception message. */
function describe(errors: PolicyError[]): string {
  const first = errors[0];
  if (!first) return 'The policy text is invalid.';
  const at = first.line !== undefined ? ` (line ${first.line}, column ${first.column})` : '';
  const more = errors.length > 1 ? ` (and ${errors.length - 1} more)` : '';
  return `The policy text is invalid: ${first.message}${at}${more}.`;
}
