/** Providers, spaces, agents and vaults: what an operator picks from when creating a channel (SPEC §4). */
import { Router } from 'express';
import { WharfError } from '../lib/errors.js';
import type { Store } from '../lib/store/store.js';
import { PROVIDER_INFO } from '../lib/types.js';
import { idParam } from './params.js';
import { CreateAgentSchema, CreateVaultItemSchema, ListSpacesQuery } from './schemas.js';

/** Builds the router mounted at `/api`. */
export function catalogRouter({ store }: { store: Store }): Router {
  const r = Router();
  r.param('id', idParam('Agent'));
  r.param('vault', idParam('Vault'));

  r.get('/providers', (_req, res) => {
    res.json(Object.values(PROVIDER_INFO).map(({ id, label, publicUrlRequired, textLimit, fields }) => ({ id, label, publicUrlRequired, textLimit, fields })));
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
    if (body.kind === 'openai' && !(await store.vault.refExists(body.apiKey))) {
      throw new WharfError('validation_failed', `apiKey points at ${body.apiKey.vault}/${body.apiKey.item}/${body.apiKey.field}, which does not exist. Create it with POST /api/vaults/local/items.`, [{ path: ['apiKey'], message: 'dangling credential ref' }]);
    }
    const { id, kind, ...config } = body;
    res.status(201).json(await store.agents.create({ id, kind, config }));
  });

  r.delete('/agents/:id', async (req, res) => {
    const users = await store.channels.usingAgent(req.params.id);
    if (users.length) throw new WharfError('conflict', `Agent "${req.params.id}" is used by channel(s) ${users.join(', ')}; bind them to another agent first.`);
    if (!(await store.agents.remove(req.params.id))) throw new WharfError('not_found', `Agent "${req.params.id}" was not found (built-in agents cannot be deleted).`);
    res.status(204).end();
  });

  r.get('/vaults', (_req, res) => {
    res.json([{ id: 'local', kind: 'local', label: 'Local (encrypted in the Wharf store)', writable: true }]);
  });

  r.get('/vaults/:vault/items', async (req, res) => {
    if (req.params.vault !== 'local') throw new WharfError('not_found', `Vault "${req.params.vault}" is not connected. GET /api/vaults lists the connections.`);
    res.json(await store.vault.list('local'));
  });

  r.post('/vaults/local/items', async (req, res) => {
    const body = CreateVaultItemSchema.parse(req.body);
    const item = await store.vault.createLocal(body);
    res.status(201).json({ vault: item.vault, item: item.item, name: item.name, kind: item.kind, fields: item.fields });
  });

  return r;
}
