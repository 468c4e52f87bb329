/**
 * `POST /api/signals/wait`: a long-poll for tasks outside Temporal (SPEC §7). The wait itself is a
 * `waitForMessage` update on the channel workflow, so waiters share one FIFO with workflow waiters. A client
 * that goes away stops waiting, and a message it was given but could not receive is put back.
 */
import { randomUUID } from 'node:crypto';
import { Router } from 'express';
import { WharfError } from '../lib/errors.js';
import { messageLogIds } from '../lib/log-ids.js';
import type { Logger } from '../lib/logger.js';
import type { Store } from '../lib/store/store.js';
import {
  cancelWaiter,
  returnMessage,
  signalQueue,
  waitForMessage,
  type HandedOffMessage,
  type SignalQueueView,
} from '../workflows/channel-messages.js';
import type { ChannelGateway } from './channel-gateway.js';
import { SignalWaitSchema } from './schemas.js';

/** Builds the router mounted at `/api/signals`. */
export function signalsRouter({ gateway, store, log }: { gateway: ChannelGateway; store: Store; log: Logger }): Router {
  const r = Router();

  // Per space: its channel, the tasks waiting on it and the messages held for the next one (console's Signals page).
  r.get('/', async (_req, res) => {
    const spaces = await store.spaces.list();
    const out = await Promise.all(
      spaces.map(async (sp) => {
        const ch = sp.channelId ? await store.channels.get(sp.channelId) : null;
        let queue: SignalQueueView | null = null;
        if (ch)
          queue = await gateway
            .handle(ch.id)
            .query(signalQueue)
            .catch(() => null);
        return {
          space: sp.name,
          channelId: ch?.id ?? null,
          inbound: ch?.inbound ?? null,
          waiters: queue?.waiters ?? [],
          held: queue?.held ?? [],
        };
      }),
    );
    res.json(out);
  });

  r.post('/wait', async (req, res) => {
    const body = SignalWaitSchema.extend({ from: SignalWaitSchema.shape.space.optional() }).parse(req.body);
    const space = await store.spaces.get(body.space);
    if (!space) throw new WharfError('not_found', `There is no space "${body.space}". GET /api/spaces lists them.`);
    if (!space.channelId)
      throw new WharfError(
        'not_found',
        `Space "${body.space}" has no channel bound to it, so nothing can arrive there.`,
      );
    const handle = gateway.handle(space.channelId);
    const waiterId = randomUUID();

    let clientGone = false;
    const putBack = async (message: HandedOffMessage | null): Promise<void> => {
      if (!message) return;
      await handle.signal(returnMessage, { message });
      log.info(
        { ...messageLogIds(message.channelId, message.chat.id), space: body.space, messageId: message.id },
        'waiter went away; message kept for the next one',
      );
    };
    res.on('close', () => {
      if (res.writableFinished) return;
      clientGone = true;
      handle
        .executeUpdate(cancelWaiter, { args: [{ waiterId }] })
        .then(({ message }) => putBack(message))
        .catch((err) => log.warn({ err, waiterId }, 'could not withdraw a waiter'));
    });

    const { message } = await handle.executeUpdate(waitForMessage, {
      args: [{ waiterId, from: body.from, timeoutMs: Math.round(body.timeoutSeconds * 1000) }],
    });
    if (clientGone) return putBack(message);
    if (!message) {
      res.status(204).end();
      return;
    }
    res.json(message);
  });

  return r;
}
