/**
 * `/api/vaults`: the local vault and the operator's vault connections (SPEC §4, §8) — list, connect
 * (checked first: reach, authenticate, list), change, remove; items with their field names, new
 * credentials, rotation and deletion. No value ever appears in an answer or an error.
 */
import { Router } from 'express';
import { idParam } from './params.js';
import { z } from 'zod';
import { WharfError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import type { Store } from '../lib/store/store.js';
import {
  findReferences,
  openConnection,
  VaultError,
  vaultRegistry,
  type VaultConnection,
} from '../lib/vaults/index.js';
import { CreateConnectionSchema, PatchConnectionSchema, SETTINGS_SCHEMAS } from '../lib/vaults/settings.js';
import { CreateVaultItemSchema } from './schemas.js';

/** PUT /api/vaults/:vault/items/:item — the fields to replace (or add). */
export const RotateItemSchema = z.strictObject({
  fields: z
    .record(z.string().min(1).max(100), z.string().max(65_536))
    .refine((f) => Object.keys(f).length > 0, 'give at least one field, e.g. {"value": "..."}'),
});

/** Turns a vault failure into the API's error shape (the message is Wharf's own, never the vendor's body). */
export function vaultHttpError(err: unknown): unknown {
  if (!(err instanceof VaultError)) return err;
  switch (err.problem) {
    case 'not_found':
      return new WharfError('not_found', `${err.message}.`);
    case 'exists':
      return new WharfError('conflict', `${err.message}.`);
    case 'read_only':
      return new WharfError(
        'not_possible_now',
        `${err.message}: set "writable": true on the connection (and give its credential write access) to write from Wharf.`,
      );
    case 'bad_config':
      return new WharfError(
        'not_possible_now',
        `${err.message}. Fix the connection's settings (PATCH /api/vaults/${err.vault}).`,
      );
    case 'unreachable':
    case 'sealed':
      return new WharfError('unavailable', `${err.message}. Try again when the vault is back.`);
    default:
      return new WharfError('provider_refused', `${err.message}.`);
  }
}

/** Builds the router mounted at `/api/vaults`. */
export function vaultsRouter({ store, log }: { store: Store; log: Logger }): Router {
  const r = Router();
  r.param('vault', idParam('Vault'));
  const vaults = vaultRegistry(store);
  // Every handler: vault failures become API errors with a safe message.
  const run = async <T>(fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (err) {
      throw vaultHttpError(err);
    }
  };
  const external = async (id: string) => {
    if (id === 'local')
      throw new WharfError('conflict', 'The local vault is built in: it cannot be changed or removed.');
    const record = await store.vaultConnections.get(id);
    if (!record)
      throw new WharfError('not_found', `Vault "${id}" is not connected. GET /api/vaults lists the connections.`);
    return record;
  };
  // Adding or changing a connection checks it first: a connection that cannot work is never saved.
  const checked = async (record: { id: string; kind: string; settings: Record<string, unknown> }): Promise<void> => {
    let conn: VaultConnection | undefined;
    try {
      conn = openConnection(store, record);
      await conn.check();
    } catch (err) {
      if (!(err instanceof VaultError)) throw err;
      log.info({ vault: record.id, kind: record.kind, problem: err.problem }, 'vault connection check failed');
      throw new WharfError('not_possible_now', `The connection was not saved: ${err.message}.`, [
        { problem: err.problem },
      ]);
    } finally {
      conn?.close?.();
    }
  };
  const itemParam = (p: unknown): string => (Array.isArray(p) ? p.join('/') : String(p));

  r.get('/', async (_req, res) => {
    res.json(await vaults.list());
  });

  r.post('/', async (req, res) => {
    const body = CreateConnectionSchema.parse(req.body);
    if (await store.vaultConnections.get(body.id))
      throw new WharfError('conflict', `Vault connection "${body.id}" already exists; choose another id or PATCH it.`);
    await checked(body);
    await store.vaultConnections.create(body);
    vaults.forget(body.id);
    res.status(201).json(await vaults.view(body.id));
  });

  r.get('/:vault', async (req, res) => {
    res.json(await vaults.view(req.params.vault));
  });

  r.patch('/:vault', async (req, res) => {
    const record = await external(req.params.vault);
    const { settings: patch } = PatchConnectionSchema.parse(req.body);
    const schema = SETTINGS_SCHEMAS[record.kind as keyof typeof SETTINGS_SCHEMAS];
    const settings = z.object({ settings: schema }).parse({ settings: { ...record.settings, ...patch } })
      .settings as Record<string, unknown>;
    await checked({ id: record.id, kind: record.kind, settings });
    await store.vaultConnections.update(record.id, settings);
    vaults.forget(record.id);
    res.json(await vaults.view(record.id));
  });

  r.delete('/:vault', async (req, res) => {
    const record = await external(req.params.vault);
    const users = await findReferences(store, record.id);
    if (users.length)
      throw new WharfError(
        'conflict',
        `Vault "${record.id}" is still used by ${users.join(', ')}; point them at another vault first.`,
      );
    await store.vaultConnections.remove(record.id);
    vaults.forget(record.id);
    res.status(204).end();
  });

  r.get('/:vault/items', async (req, res) => {
    const conn = await vaults.get(req.params.vault);
    if (conn.kind === 'local') {
      // The local listing keeps its extra columns (kind, createdAt); still never a value.
      res.json(await store.vault.list('local'));
      return;
    }
    res.json(await run(() => conn.listItems()));
  });

  r.post('/:vault/items', async (req, res) => {
    const conn = await vaults.get(req.params.vault);
    const body = CreateVaultItemSchema.parse(req.body);
    if (!conn.create || !(await vaults.view(conn.id)).writable) {
      throw new WharfError(
        'not_possible_now',
        `Vault "${conn.id}" is read-only in Wharf: create the credential in the vault itself${conn.kind === 'keepass' ? ' (KeePassXC)' : ', or set "writable": true on the connection'}.`,
      );
    }
    const created = await run(() => conn.create!(body));
    res
      .status(201)
      .json({ vault: conn.id, item: created.item, name: created.name, kind: body.kind, fields: created.fields });
  });

  r.put('/:vault/items/*item', async (req, res) => {
    const conn = await vaults.get(req.params.vault);
    const item = itemParam(req.params.item);
    const { fields } = RotateItemSchema.parse(req.body);
    if (!conn.rotate || !(await vaults.view(conn.id)).writable) {
      throw new WharfError(
        'not_possible_now',
        `Vault "${conn.id}" is read-only in Wharf: rotate the value in the vault itself; Wharf reads it again within seconds.`,
      );
    }
    const done = await run(() => conn.rotate!(item, fields));
    vaults.forget(conn.id, done.item);
    vaults.forget(conn.id, item);
    log.info({ vault: conn.id, item: done.item, fields: Object.keys(fields) }, 'vault item rotated');
    res.json({ vault: conn.id, item: done.item, name: done.name, fields: done.fields });
  });

  r.delete('/:vault/items/*item', async (req, res) => {
    const conn = await vaults.get(req.params.vault);
    const item = itemParam(req.params.item);
    if (!conn.remove || !(await vaults.view(conn.id)).writable) {
      throw new WharfError(
        'not_possible_now',
        `Vault "${conn.id}" is read-only in Wharf: delete the credential in the vault itself.`,
      );
    }
    // Refs may name a local item by id or by name: both count.
    const names = [item];
    if (conn.kind === 'local') {
      const info = await store.vault.get('local', item);
      if (!info) throw new WharfError('not_found', `The local vault has no item "${item}".`);
      names.push(info.item, info.name);
    }
    const users = await findReferences(store, conn.id, names);
    if (users.length)
      throw new WharfError(
        'conflict',
        `Item "${item}" of vault "${conn.id}" is still used by ${users.join(', ')}; point them at another credential first.`,
      );
    await run(() => conn.remove!(item));
    vaults.forget(conn.id, item);
    log.info({ vault: conn.id, item }, 'vault item deleted');
    res.status(204).end();
  });

  return r;
}
