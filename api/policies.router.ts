/** `/api/policies`: the operator's Cedar policies and the "would this get through?" check (SPEC §6). */
import { Router } from 'express';
import { WharfError } from '../lib/errors.js';
import { DEFAULT_POLICY } from '../lib/policy/schema.js';
import type { PolicyService } from '../lib/policy/service.js';
import type { Store } from '../lib/store/store.js';
import { PolicyCheckSchema, PutPoliciesSchema } from './schemas.js';

const e164 = (s: string): string => (/^\+?\d{6,15}$/.test(s.replace(/[\s()-]/g, '')) ? `+${s.replace(/\D/g, '')}` : s);

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
      throw new WharfError('bad_request', `Send the policies as application/json {"policies": "<Cedar text>"}, or the Cedar text as text/plain or application/cedar (got ${req.get('content-type') ?? 'no content type'}).`);
    }
    const body = typeof req.body === 'string' ? { policies: req.body } : PutPoliciesSchema.parse(req.body);
    const saved = await policy.save(body.policies);
    res.json({ policies: body.policies, updatedAt: saved.updatedAt, builtin: DEFAULT_POLICY });
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
