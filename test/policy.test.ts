import { describe, expect, it } from 'vitest';
import {
  InvalidPolicyError,
  PolicyEngine,
  type DecisionRequest,
  type PolicyError,
  type PolicyProvider,
} from '../lib/policy/engine.js';
import { DEFAULT_POLICY, DEFAULT_POLICY_ID } from '../lib/policy/schema.js';

// The guide's "Allowlisting senders" example, verbatim.
const GUIDE_EXAMPLE = `permit(
  principal == Policy::Agent::"assistant",
  action == Policy::Action::"receive_message",
  resource in Policy::Channel::"whatsapp_cloud"
) when { resource.sender.address == "+15551234567" };`;

const ALLOWED = '+15551234567';
const STRANGER = '+15559999999';
const GROUP_ID = '120363000000@g.us';

interface MessageOptions {
  agent?: string;
  channelId?: string;
  provider?: PolicyProvider;
  paired?: boolean;
  name?: string;
  group?: string;
}

function message(address: string, opts: MessageOptions = {}): DecisionRequest {
  return {
    agent: opts.agent ?? 'assistant',
    channelId: opts.channelId ?? 'ch_abc',
    provider: opts.provider ?? 'whatsapp_cloud',
    message: {
      sender: { address, paired: opts.paired ?? false, ...(opts.name !== undefined ? { name: opts.name } : {}) },
      chat: opts.group ? { kind: 'group', id: opts.group } : { kind: 'direct', id: address },
    },
  };
}

function errorsOf(text: string): PolicyError[] {
  const result = PolicyEngine.check(text);
  if (result.ok) throw new Error('expected the policy text to be rejected');
  return result.errors;
}

describe('the built-in default policy', () => {
  const engine = new PolicyEngine();

  it('lets paired senders through in direct chats', () => {
    expect(engine.decide(message(STRANGER, { paired: true }))).toEqual({
      decision: 'allow',
      reasons: [DEFAULT_POLICY_ID],
      errors: [],
    });
  });

  it('denies unpaired senders, naming no policy', () => {
    expect(engine.decide(message(STRANGER))).toEqual({ decision: 'deny', reasons: [], errors: [] });
  });

  it('does not let group messages through, even from paired senders', () => {
    expect(engine.decide(message(STRANGER, { paired: true, group: GROUP_ID })).decision).toBe('deny');
  });

  it('is valid against the schema and shown as text', () => {
    expect(PolicyEngine.check(DEFAULT_POLICY)).toEqual({ ok: true });
    expect(DEFAULT_POLICY).toContain('resource.sender.paired');
  });

  it('accepts empty and comment-only operator text', () => {
    expect(PolicyEngine.check('')).toEqual({ ok: true });
    expect(PolicyEngine.check('// no policies yet\n')).toEqual({ ok: true });
  });
});

describe("the guide's allowlisting example", () => {
  const engine = new PolicyEngine(GUIDE_EXAMPLE);

  it('validates as written', () => {
    expect(PolicyEngine.check(GUIDE_EXAMPLE)).toEqual({ ok: true });
  });

  it('lets the listed sender reach the assistant on any Cloud API channel', () => {
    for (const channelId of ['ch_abc', 'ch_other']) {
      expect(engine.decide(message(ALLOWED, { channelId }))).toEqual({
        decision: 'allow',
        reasons: ['policy0'],
        errors: [],
      });
    }
  });

  it('does not apply on personal (whatsapp_user) channels', () => {
    expect(engine.decide(message(ALLOWED, { provider: 'whatsapp_user' })).decision).toBe('deny');
  });

  it('does not apply to other agents', () => {
    expect(engine.decide(message(ALLOWED, { agent: 'other' })).decision).toBe('deny');
  });

  it('still denies other unpaired senders', () => {
    expect(engine.decide(message(STRANGER)).decision).toBe('deny');
  });

  it('keeps the default in force alongside it', () => {
    expect(engine.decide(message(STRANGER, { paired: true }))).toMatchObject({
      decision: 'allow',
      reasons: [DEFAULT_POLICY_ID],
    });
    expect(engine.decide(message(ALLOWED, { paired: true })).reasons.sort()).toEqual([DEFAULT_POLICY_ID, 'policy0']);
  });

  it('works for personal channels when whatsapp_user is named instead', () => {
    const personal = new PolicyEngine(GUIDE_EXAMPLE.replace('whatsapp_cloud', 'whatsapp_user'));
    expect(personal.decide(message(ALLOWED, { provider: 'whatsapp_user' })).decision).toBe('allow');
    expect(personal.decide(message(ALLOWED, { provider: 'whatsapp_cloud' })).decision).toBe('deny');
  });
});

describe('forbid', () => {
  const forbidAllowed = `forbid(principal, action == Policy::Action::"receive_message", resource)
  when { resource.sender.address == "${ALLOWED}" };`;

  it('beats the example permit', () => {
    const engine = new PolicyEngine(`${GUIDE_EXAMPLE}\n${forbidAllowed}`);
    expect(engine.decide(message(ALLOWED))).toEqual({ decision: 'deny', reasons: ['policy1'], errors: [] });
  });

  it('beats the built-in default', () => {
    const engine = new PolicyEngine(forbidAllowed);
    expect(engine.decide(message(ALLOWED, { paired: true }))).toEqual({
      decision: 'deny',
      reasons: ['policy0'],
      errors: [],
    });
    expect(engine.decide(message(STRANGER, { paired: true })).decision).toBe('allow');
  });
});

describe('groups', () => {
  const groupPolicy = `permit(principal, action == Policy::Action::"receive_message", resource) when { resource.chat.kind == "group" && resource.chat.id == "${GROUP_ID}" };`;

  it('are let through by a policy naming the group', () => {
    const engine = new PolicyEngine(groupPolicy);
    expect(engine.decide(message(STRANGER, { group: GROUP_ID }))).toEqual({
      decision: 'allow',
      reasons: ['policy0'],
      errors: [],
    });
    expect(engine.decide(message(STRANGER, { group: '120363999999@g.us' })).decision).toBe('deny');
  });
});

describe('the channel hierarchy', () => {
  it('lets a policy name one channel', () => {
    const engine = new PolicyEngine(
      'permit(principal, action == Policy::Action::"receive_message", resource in Policy::Channel::"ch_abc");',
    );
    expect(engine.decide(message(STRANGER, { channelId: 'ch_abc' })).decision).toBe('allow');
    expect(engine.decide(message(STRANGER, { channelId: 'ch_abc', provider: 'whatsapp_user' })).decision).toBe('allow');
    expect(engine.decide(message(STRANGER, { channelId: 'ch_xyz' })).decision).toBe('deny');
  });

  it('places every channel under its provider', () => {
    const engine = new PolicyEngine(
      'permit(principal, action, resource in Policy::Channel::"whatsapp_user") when { resource.chat.kind == "direct" };',
    );
    expect(engine.decide(message(STRANGER, { provider: 'whatsapp_user', channelId: 'ch_1' })).decision).toBe('allow');
    expect(engine.decide(message(STRANGER, { provider: 'whatsapp_cloud', channelId: 'ch_1' })).decision).toBe('deny');
  });

  it('copes with a channel whose id is its provider’s name', () => {
    const engine = new PolicyEngine(GUIDE_EXAMPLE);
    expect(engine.decide(message(ALLOWED, { channelId: 'whatsapp_cloud' }))).toMatchObject({
      decision: 'allow',
      errors: [],
    });
  });

  it('exposes optional names only when present', () => {
    const engine = new PolicyEngine(
      'permit(principal, action, resource) when { resource.sender has name && resource.sender.name == "Ana" };',
    );
    expect(engine.decide(message(STRANGER, { name: 'Ana' })).decision).toBe('allow');
    expect(engine.decide(message(STRANGER)).decision).toBe('deny');
  });
});

describe('policy ids in reasons', () => {
  it('uses an @id annotation as the reason', () => {
    const engine = new PolicyEngine(`@id("friends")\n${GUIDE_EXAMPLE}`);
    expect(engine.decide(message(ALLOWED)).reasons).toEqual(['friends']);
  });

  it('numbers unannotated policies by position, counting annotated ones', () => {
    const policies = Array.from(
      { length: 12 },
      (_, i) =>
        `${i === 0 ? '@id("first") ' : ''}permit(principal, action, resource) when { resource.sender.address == "+1555000${String(i).padStart(4, '0')}" };`,
    ).join('\n');
    const engine = new PolicyEngine(policies);
    expect(engine.decide(message('+15550000000')).reasons).toEqual(['first']);
    expect(engine.decide(message('+15550000002')).reasons).toEqual(['policy2']);
    expect(engine.decide(message('+15550000010')).reasons).toEqual(['policy10']);
    expect(engine.decide(message('+15550000011')).reasons).toEqual(['policy11']);
  });

  it('rejects duplicate ids and the reserved `default` id', () => {
    expect(errorsOf(`@id("a") ${GUIDE_EXAMPLE}\n@id("a") ${GUIDE_EXAMPLE}`)).toEqual([
      expect.objectContaining({ policyId: 'a', line: 6, column: 1, message: expect.stringContaining('more than one') }),
    ]);
    expect(errorsOf(`@id("default") ${GUIDE_EXAMPLE}`)).toEqual([
      expect.objectContaining({ policyId: 'default', message: expect.stringContaining('reserved') }),
    ]);
  });
});

describe('checking policy text', () => {
  it('reports syntax errors in Cedar’s words with line and column', () => {
    const badLine = '  when { resource.sender.paired && };';
    const errors = errorsOf(`${GUIDE_EXAMPLE}\npermit(principal, action, resource)\n${badLine}`);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({
      message: expect.stringContaining('unexpected token `}`'),
      line: 7,
      column: badLine.indexOf('}') + 1,
    });
    expect(errors[0].help).toContain('expected');
  });

  it('counts columns in characters, not bytes', () => {
    const text = 'permit(principal, action, resource) when { resource.sender.address == "José 😀" && };';
    const charsBefore = Array.from(text.slice(0, text.indexOf('};'))).length;
    expect(errorsOf(text)[0]).toMatchObject({ line: 1, column: charsBefore + 1 });
  });

  it('reports schema errors: unknown attributes', () => {
    const errors = errorsOf(GUIDE_EXAMPLE.replace('sender.address', 'sender.phone'));
    expect(errors).toEqual([
      {
        message: expect.stringContaining('attribute `sender.phone` on entity type `Policy::Message` not found'),
        help: expect.any(String),
        line: 5,
        column: 10,
        policyId: 'policy0',
      },
    ]);
  });

  it('reports schema errors: unknown entity types, under the policy’s @id', () => {
    const errors = errorsOf(`@id("typo")\n${GUIDE_EXAMPLE.replace('Policy::Channel', 'Policy::Chanel')}`);
    expect(errors).toEqual([
      expect.objectContaining({
        message: expect.stringContaining('unrecognized entity type `Policy::Chanel`'),
        policyId: 'typo',
        line: 5,
      }),
    ]);
  });

  it('reports type errors and unguarded optional attributes', () => {
    expect(
      errorsOf('permit(principal, action, resource) when { resource.sender.paired == "yes" };')[0].message,
    ).toMatch(/not compatible/);
    expect(errorsOf('permit(principal, action, resource) when { resource.chat.name == "Family" };')[0].message).toMatch(
      /optional attribute `chat.name`/,
    );
  });
});

describe('changing policies', () => {
  it('keeps the previous set in force when the new text is invalid', () => {
    const engine = new PolicyEngine(GUIDE_EXAMPLE);
    expect(() => engine.setPolicies('permit(principal, action, resource')).toThrow(InvalidPolicyError);
    expect(engine.policies).toBe(GUIDE_EXAMPLE);
    expect(engine.decide(message(ALLOWED)).decision).toBe('allow');
  });

  it('carries Cedar’s errors on the thrown error', () => {
    const engine = new PolicyEngine();
    try {
      engine.setPolicies(GUIDE_EXAMPLE.replace('sender.address', 'sender.phone'));
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(InvalidPolicyError);
      expect((e as InvalidPolicyError).message).toMatch(/line 5, column 10/);
      expect((e as InvalidPolicyError).errors[0]).toMatchObject({ line: 5, policyId: 'policy0' });
    }
  });

  it('refuses invalid text at construction', () => {
    expect(() => new PolicyEngine('forbid(principal, action, resource) when { resource.nope };')).toThrow(
      InvalidPolicyError,
    );
  });

  it('applies a valid replacement, and an empty text leaves only the default', () => {
    const engine = new PolicyEngine(GUIDE_EXAMPLE);
    engine.setPolicies('');
    expect(engine.decide(message(ALLOWED)).decision).toBe('deny');
    expect(engine.decide(message(ALLOWED, { paired: true })).reasons).toEqual([DEFAULT_POLICY_ID]);
  });

  it('keeps engines independent', () => {
    const a = new PolicyEngine(GUIDE_EXAMPLE);
    const b = new PolicyEngine();
    expect(a.decide(message(ALLOWED)).decision).toBe('allow');
    expect(b.decide(message(ALLOWED)).decision).toBe('deny');
  });
});
