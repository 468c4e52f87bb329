/**
 * What the session tells the outside world, in the order the events happened: `sessionUpdate` signals to the
 * channel workflow and the QR / pairing code the API shows (`session_link`). Each effect first checks that
 * this attempt still owns the channel: a stale attempt (its worker hung, a newer attempt took over) must
 * never overwrite the current session's QR or reported state, and stops when it finds it does not.
 */
import { WorkflowNotFoundError, type WorkflowHandle } from '@temporalio/client';
import { ownsAuthState } from '../../lib/store/auth-state.js';
import type { Logger } from '../../lib/logger.js';
import type { Db } from '../../lib/store/db.js';
import type { Store } from '../../lib/store/store.js';
import { sessionUpdate, type SessionUpdate } from '../../workflows/channel-messages.js';
import type { SessionLifetime } from './session-lifetime.js';

/** What the reporter needs: the attempt's identity (`token` fences it) and the layer below. */
export interface SessionReporterDeps {
  store: Store;
  db: Db;
  secretKey: Buffer;
  channelId: string;
  /** This attempt's fencing token in the auth state. */
  token: string;
  /** The channel workflow. */
  handle: WorkflowHandle;
  slog: Logger;
  lifetime: Pick<SessionLifetime, 'stop' | 'stopping' | 'pause'>;
}

/** The ordered effects of a session attempt (see {@link createSessionReporter}). */
export type SessionReporter = ReturnType<typeof createSessionReporter>;

/** Builds the reporter of one session attempt. */
export function createSessionReporter({
  store,
  db,
  secretKey,
  channelId,
  token,
  handle,
  slog,
  lifetime,
}: SessionReporterDeps) {
  let effects: Promise<void> = Promise.resolve();
  const owns = async (): Promise<boolean> =>
    ownsAuthState({ db, secretKey, channelId, token }).catch((err: unknown) => {
      slog.warn({ err }, 'could not check session ownership; assuming it is still ours');
      return true;
    });
  /** Queues `fn` after every earlier effect; it runs only while this attempt owns the channel. */
  const effect = (what: string, fn: () => Promise<void>): void => {
    effects = effects
      .then(async () => {
        if (!(await owns())) {
          slog.info({ what }, 'this session no longer owns the channel; nothing reported, stopping');
          lifetime.stop({
            ended: 'superseded',
            reason: 'Another session took over this channel, or its auth state was cleared.',
          });
          return;
        }
        await fn();
      })
      .catch((err: unknown) => slog.warn({ err }, `session side effect failed: ${what}`));
  };
  let lastSignal = '';
  /** Tells the channel workflow (an update equal to the last one sent is not sent again). */
  const signal = (u: SessionUpdate): void =>
    effect('signal', async () => {
      const key = JSON.stringify(u);
      if (key === lastSignal) return;
      for (let i = 0; ; i++) {
        try {
          await handle.signal(sessionUpdate, u);
          lastSignal = key;
          slog.debug({ status: u.status, reason: u.reason }, 'session update signalled');
          return;
        } catch (err) {
          if (err instanceof WorkflowNotFoundError) {
            slog.info('channel workflow is gone; ending the session');
            lifetime.stop({ ended: 'channel_gone', reason: 'The channel workflow no longer exists.' });
            return;
          }
          if (i >= 4 || lifetime.stopping()) throw err;
          await lifetime.pause(250 * 2 ** i);
        }
      }
    });
  /** Shows a QR or a pairing code until `expiresAt`. */
  const setLink = (qr: string | null, code: string | null, expiresAt: Date): void =>
    effect('write session_link', async () => {
      await store.sessionLinks.set(channelId, { qr, pairingCode: code, expiresAt });
    });
  /** Keeps a pending pairing code valid until at least `expiresAt`. */
  const extendCode = (expiresAt: Date): void =>
    effect('extend pairing code', async () => {
      await store.sessionLinks.extendCode(channelId, expiresAt);
    });
  /** Removes the QR or pairing code shown. */
  const clearLink = (): void =>
    effect('clear session_link', async () => {
      await store.sessionLinks.clear(channelId);
    });
  /** Settles once every effect queued so far ran. */
  const idle = (): Promise<void> => effects;
  return { effect, signal, setLink, extendCode, clearLink, idle };
}
