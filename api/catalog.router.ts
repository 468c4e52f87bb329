/** Providers, spaces and agents: what an operator picks from when creating a channel (SPEC §4). Vaults: vaults.router.ts. */
import { Router } from 'express';
import { WharfError } from '../lib/errors.js';
import type { Store } from '../lib/store/store.js';
import { PROVIDER_INFO } from '../lib/types.js';
import { vaultRegistry } from '../lib/vaults/index.js';
import { idParam } from './params.js';
import { CreateAgentSchema, ListSpacesQuery } from './schemas.js';

/** Builds the router mounted at `/api`. */
export function catalogRouter({ store }: { store: Store }): Router {
  const r = Router();
  r.param('id', idParam('Agent'));

  r.get('/providers', (_req, res) => {
    res.json(
      Object.values(PROVIDER_INFO).map(({ id, label, publicUrlRequired, textLimit, fields }) => ({
        id,
        label,
        publicUrlRequired,
        textLimit,
        fields,
      })),
    );
  });

  r.get('/spaces', async (req, res) => {
    const q = ListSpacesQuery.parse(req.query);
    res.json(await store.spaces.list({ unbound: q.unbound === 'true' }));
  });

  r.get('/agents', async (_req, res) => {
    res.json(await store.agents.list());
  });

  r.post('/agents', async (req, res) => {
    const body = CreateAgentSchema.parse(req.body);
    if (body.kind === 'openai' && (await vaultRegistry(store).refExists(body.apiKey)) === false) {
      throw new WharfError(
        'validation_failed',
        `apiKey points at ${body.apiKey.vault}/${body.apiKey.item}/${body.apiKey.field}, which does not exist. Create it with POST /api/vaults/:vault/items or fix the ref.`,
        [{ path: ['apiKey'], message: 'dangling credential ref' }],
      );
    }
    if (
      body.kind === 'openai' &&
      body.transcription?.apiKey &&
      (await vaultRegistry(store).refExists(body.transcription.apiKey)) === false
    ) {
      throw new WharfError(
        'validation_failed',
        'transcription.apiKey points at a credential that does not exist. Create it with POST /api/vaults/:vault/items or fix the ref.',
        [{ path: ['transcription', 'apiKey'], message: 'dangling credential ref' }],
      );
    }
    const { id, kind, ...config } = body;
    res.status(201).json(await store.agents.create({ id, kind, config }));
  });

  r.delete('/agents/:id', async (req, res) => {
    const users = await store.channels.usingAgent(req.params.id);
    if (users.length)
      throw new WharfError(
        'conflict',
        `Agent "${req.params.id}" is used by channel(s) ${users.join(', ')}; bind them to another agent first.`,
      );
    if (!(await store.agents.remove(req.params.id)))
      throw new WharfError('not_found', `Agent "${req.params.id}" was not found (built-in agents cannot be deleted).`);
    res.status(204).end();
  });

  return r;
}
