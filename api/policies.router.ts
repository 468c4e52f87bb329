/** `/api/policies`: the operator's Cedar policies and the "would this get through?" check (SPEC §6). */
import { Router } from 'express';
import { WharfError } from '../lib/errors.js';
import { DEFAULT_POLICY } from '../lib/policy/schema.js';
import type { PolicyService } from '../lib/policy/service.js';
import type { Store } from '../lib/store/store.js';
import { PROVIDERS } from '../lib/types.js';
import { PolicyCheckSchema, PutPoliciesSchema } from './schemas.js';

const e164 = (s: string): string => (/^\+?\d{6,15}$/.test(s.replace(/[\s()-]/g, '')) ? `+${s.replace(/\D/g, '')}` : s);

/** A saved policy that names an agent or channel Wharf does not know: valid Cedar, but it can never match. */
export interface PolicyWarning {
  line: number;
  message: string;
}

/**
 * Finds `Policy::Agent::"…"` and `Policy::Channel::"…"` names that do not exist (the guide's example names
 * agent "assistant"; an operator using the default `echo` would otherwise get silence). Whole-line `//`
 * comments are skipped.
 */
export async function unknownNames(text: string, store: Store): Promise<PolicyWarning[]> {
  const warnings: PolicyWarning[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (lines[i].trim().startsWith('//')) continue;
    for (const m of lines[i].matchAll(/Policy::(Agent|Channel)::"((?:[^"\\]|\\.)*)"/g)) {
      const [, type, name] = m;
      if (type === 'Agent' && !(await store.agents.get(name))) {
        warnings.push({
          line: i + 1,
          message: `There is no agent "${name}": this policy never applies. GET /api/agents lists the agents (the built-in one is "echo").`,
        });
      }
      if (type === 'Channel' && !(PROVIDERS as readonly string[]).includes(name) && !(await store.channels.get(name))) {
        warnings.push({
          line: i + 1,
          message: `There is no channel "${name}": this policy never applies. Use a channel id (ch_…) or a provider (whatsapp_cloud, whatsapp_user).`,
        });
      }
    }
  }
  return warnings;
}

/** Builds the router. */
export function policiesRouter({ policy, store }: { policy: PolicyService; store: Store }): Router {
  const r = Router();

  r.get('/', async (_req, res) => {
    const cur = await policy.current();
    res.json({ policies: cur.text, updatedAt: cur.updatedAt, builtin: DEFAULT_POLICY });
  });

  // JSON `{policies}`, or the text itself as text/plain or application/cedar (parsed in app.ts); the size
  // limit (POLICY_MAX_BYTES, 413) is the service's, so it holds for every way in.
  r.put('/', async (req, res) => {
    if (req.body === undefined) {
      throw new WharfError(
        'bad_request',
        `Send the policies as application/json {"policies": "<Cedar text>"}, or the Cedar text as text/plain or application/cedar (got ${req.get('content-type') ?? 'no content type'}).`,
      );
    }
    const body = typeof req.body === 'string' ? { policies: req.body } : PutPoliciesSchema.parse(req.body);
    const saved = await policy.save(body.policies);
    res.json({
      policies: body.policies,
      updatedAt: saved.updatedAt,
      builtin: DEFAULT_POLICY,
      warnings: await unknownNames(body.policies, store),
    });
  });

  r.post('/check', async (req, res) => {
    const body = PolicyCheckSchema.parse(req.body);
    const ch = await store.channels.get(body.channel);
    if (!ch) throw new WharfError('not_found', `Channel "${body.channel}" was not found.`);
    const address = e164(body.sender);
    const paired = ch.selfAddress === address || ch.pairedAddresses.some((p) => p.address === address);
    const d = await policy.decide({
      agent: body.agent ?? ch.agent,
      channelId: ch.id,
      provider: ch.provider,
      message: { sender: { address, paired, ...(body.name ? { name: body.name } : {}) }, chat: body.chat },
    });
    res.json({ decision: d.decision, reasons: d.reasons, errors: d.errors, paired, agent: body.agent ?? ch.agent });
  });

  return r;
}
