/** `/api/channels`: create, list, read, configure, pair, control and delete channels (SPEC §4). */
import { Router } from 'express';
import { WharfError } from '../lib/errors.js';
import type { Store } from '../lib/store/store.js';
import { vaultRegistry } from '../lib/vaults/index.js';
import type { ChannelDiagnostics, ChannelState } from '../lib/types.js';
import {
  deleteChannel,
  disconnect,
  patchChannel,
  reconnect,
  saveConfig,
  startPairing,
  unpair,
} from '../workflows/channel-messages.js';
import { newPairingCode, type ChannelGateway } from './channel-gateway.js';
import { diagnosticWarnings } from './diagnostics.router.js';
import { idParam, quoteId } from './params.js';
import type { RefusalCounter } from './refusal-counter.js';
import {
  CloudConfigSchema,
  CreateChannelSchema,
  ListChannelsQuery,
  MessagesQuery,
  PatchChannelSchema,
} from './schemas.js';
import { pairingAttempts } from '../lib/metrics.js';

const withWarnings = (ch: ChannelState, d: ChannelDiagnostics): ChannelDiagnostics => ({
  ...d,
  warnings: diagnosticWarnings(ch, d),
});

/** The API view of a channel (no secret values: config holds plain values and refs). */
export async function channelView(ch: ChannelState, store: Store, publicUrl: string, diagnostics?: ChannelDiagnostics) {
  return {
    id: ch.id,
    provider: ch.provider,
    status: ch.status,
    statusReason: ch.statusReason,
    space: ch.space,
    agent: ch.agent,
    inbound: ch.inbound,
    config: ch.config,
    webhookUrl: ch.provider === 'whatsapp_cloud' && ch.configured ? `${publicUrl}/webhooks/whatsapp/${ch.id}` : null,
    selfAddress: ch.selfAddress,
    pairedAddresses: ch.pairedAddresses,
    pairing: ch.pairing && Date.parse(ch.pairing.expiresAt) > Date.now() ? ch.pairing : null,
    diagnostics: withWarnings(ch, diagnostics ?? (await store.diagnostics.get(ch.id))),
    createdAt: ch.createdAt,
    updatedAt: ch.updatedAt,
  };
}

/** Builds the router. */
export function channelsRouter({
  gateway,
  store,
  publicUrl,
  refusals,
}: {
  gateway: ChannelGateway;
  store: Store;
  publicUrl: string;
  refusals?: RefusalCounter;
}): Router {
  const r = Router();
  r.param('id', idParam('Channel'));
  // Refused webhook calls are counted in memory and written in summaries: show the stored count plus those.
  const diagnosticsOf = (id: string, stored: ChannelDiagnostics): ChannelDiagnostics =>
    refusals?.withPending(id, stored) ?? stored;
  const view = async (ch: ChannelState) =>
    channelView(ch, store, publicUrl, diagnosticsOf(ch.id, await store.diagnostics.get(ch.id)));
  // Every change made through the API: run the update, then let caches forget the channel.
  const update = async <T>(id: string, run: () => Promise<T>): Promise<T> => {
    try {
      return await run();
    } finally {
      gateway.changed(id);
    }
  };

  r.post('/', async (req, res) => {
    const body = CreateChannelSchema.parse(req.body);
    if (!(await store.agents.get(body.agent))) {
      throw new WharfError(
        'validation_failed',
        `There is no agent "${body.agent}". GET /api/agents lists them; POST /api/agents adds one.`,
        [{ path: ['agent'], message: 'unknown agent' }],
      );
    }
    res.status(201).json(await view(await gateway.create(body)));
  });

  r.get('/', async (req, res) => {
    const q = ListChannelsQuery.parse(req.query);
    const list = await store.channels.list(q);
    const diags = await store.diagnostics.getMany(list.map((c) => c.id));
    res.json(
      await Promise.all(list.map((c) => channelView(c, store, publicUrl, diagnosticsOf(c.id, diags.get(c.id)!)))),
    );
  });

  r.get('/:id', async (req, res) => {
    res.json(await view(await gateway.get(req.params.id)));
  });

  r.patch('/:id', async (req, res) => {
    const body = PatchChannelSchema.parse(req.body);
    await gateway.get(req.params.id);
    if (body.agent && !(await store.agents.get(body.agent)))
      throw new WharfError('validation_failed', `There is no agent "${body.agent}".`);
    res.json(
      await view(
        await update(req.params.id, () => gateway.handle(req.params.id).executeUpdate(patchChannel, { args: [body] })),
      ),
    );
  });

  r.put('/:id/config', async (req, res) => {
    const ch = await gateway.get(req.params.id);
    if (ch.provider !== 'whatsapp_cloud')
      throw new WharfError(
        'validation_failed',
        'Personal-account channels take no config: link them by scanning the QR code (GET /api/channels/:id/qr).',
      );
    const config = CloudConfigSchema.parse(req.body);
    for (const field of ['access_token', 'verify_token', 'app_secret'] as const) {
      const ref = config[field];
      // A vault that cannot be asked now ('unknown') is let through: the credential check reports it.
      if ((await vaultRegistry(store).refExists(ref)) === false) {
        throw new WharfError(
          'validation_failed',
          `${field} points at ${ref.vault}/${ref.item}/${ref.field}, which does not exist. Create it with POST /api/vaults/:vault/items or fix the ref.`,
          [{ path: [field], message: 'dangling credential ref' }],
        );
      }
    }
    res.json(
      await view(await update(ch.id, () => gateway.handle(ch.id).executeUpdate(saveConfig, { args: [{ config }] }))),
    );
  });

  r.post('/:id/pair', async (req, res) => {
    const ch = await gateway.get(req.params.id);
    const pairing = await gateway.handle(ch.id).executeUpdate(startPairing, { args: [newPairingCode()] });
    pairingAttempts.inc({ outcome: 'code_issued' });
    res.json(pairing);
  });

  r.delete('/:id/paired/:address', async (req, res) => {
    const ch = await gateway.get(req.params.id);
    // Express has decoded the parameter already; decoding it again misread a literal "%" (a 500 for "100%25").
    const address = req.params.address.trim();
    const known = ch.pairedAddresses.find(
      (p) => p.address === address || p.address === `+${address.replace(/^\+/, '')}`,
    );
    if (!known) throw new WharfError('not_found', `${quoteId(address)} is not paired with channel ${ch.id}.`);
    res.json(await view(await gateway.handle(ch.id).executeUpdate(unpair, { args: [{ address: known.address }] })));
  });

  r.post('/:id/disconnect', async (req, res) => {
    const ch = await gateway.get(req.params.id);
    res.json(await view(await update(ch.id, () => gateway.handle(ch.id).executeUpdate(disconnect, { args: [{}] }))));
  });

  r.post('/:id/reconnect', async (req, res) => {
    const ch = await gateway.get(req.params.id);
    res.json(await view(await update(ch.id, () => gateway.handle(ch.id).executeUpdate(reconnect, { args: [{}] }))));
  });

  r.delete('/:id', async (req, res) => {
    const ch = await gateway.get(req.params.id);
    await update(ch.id, () => gateway.handle(ch.id).executeUpdate(deleteChannel, { args: [{}] }));
    res.status(204).end();
  });

  r.get('/:id/messages', async (req, res) => {
    const ch = await gateway.get(req.params.id);
    const { limit } = MessagesQuery.parse(req.query);
    res.json(await store.messages.recent(ch.id, limit));
  });

  return r;
}
