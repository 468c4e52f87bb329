/**
 * The personal-account (Baileys) session: one long-running, heartbeating activity per `whatsapp_user`
 * channel holds the WhatsApp Web socket (SPEC §2, §5). It reports every state change to the channel
 * workflow with the `sessionUpdate` signal, keeps the current QR (or pairing code) in `session_link` for the
 * API, keeps the auth state in the store (encrypted, written on every `creds.update`), hands inbound
 * messages to the per-chat workflows exactly like the Cloud webhook does, and reconnects by itself on
 * transient drops with capped exponential backoff and full jitter. Sends for the channel run on the worker
 * that holds the socket: `deliverReplies` on this process's own queue (`sessionQueue`, which the session
 * reports when it connects) calls {@link createSessionActivities}' `sendText` in process.
 *
 * Layout: issue #17's sketch, in layers as Baileys builds its socket (`makeSocket` → `makeChatsSocket` → …):
 * each file is a small factory that takes the layers below and adds one concern, types derived from them.
 * Imports point up this list only (no cycles: `npx madge --circular --extensions ts .`).
 *
 * - `close-policy.ts` — PURE: close error → end / restart / fresh QR / backoff, and the update to report;
 * - `session-registry.ts` — socket types, live sessions of this process, recent sends, the activity types;
 * - `session-lifetime.ts` — one attempt's stop / cancellation / pauses / heartbeat (added to the sketch:
 *   every layer above asks it "stopping?");
 * - `session-reporter.ts` — ordered effects (ownership check first): signals, QR and pairing-code writes;
 * - `inbound-pump.ts` — inbound messages, in order, to the chat workflows, then released to WhatsApp;
 * - `link-codes.ts` — QR and pairing codes while a socket is unlinked (added: keeps socket-run small);
 * - `socket-run.ts` — one socket from connect to close;
 * - `send-text.ts` — a send over an open session (first-contact guard, echo ids);
 * - `index.ts` — the activities and the reconnect loop that carries out the close policy;
 * - `lazy.ts` — what the worker registers: these activities, loaded (with Baileys) by the first session.
 */
import { randomUUID } from 'node:crypto';
import { Context } from '@temporalio/activity';
import makeWASocket, { type WAMessage } from '@whiskeysockets/baileys';
import { createStoreAuthState, type StoreAuthState } from '../../lib/store/auth-state.js';
import { installSignalLogGuard } from '../../lib/baileys/signal-log-guard.js';
import { installSignatureCheck, setCertRoot } from '../../lib/baileys/signature-check.js';
import type { Logger } from '../../lib/logger.js';
import type { InboundMessage } from '../../lib/types.js';
import { createReconnectPacer, decideAfterClose, isNetworkError, statusCodeOf } from './close-policy.js';
import { createPersonalMediaInbound } from '../personal-media.js';
import { createInboundPump } from './inbound-pump.js';
import { createSendText } from './send-text.js';
import { createSessionLifetime } from './session-lifetime.js';
import {
  RecentSends,
  type MakeSocket,
  type RunSessionInput,
  type RunSessionResult,
  type SessionActivityDeps,
  type SessionRegistry,
} from './session-registry.js';
import { createSessionReporter } from './session-reporter.js';
import { createSocketRun } from './socket-run.js';

/** Builds the session activities: `runSession` (any worker) and `sendText` (over this process's sockets). */
export function createSessionActivities(deps: SessionActivityDeps) {
  const { store, db, secretKey, client, sessionQueue, log } = deps;
  const makeSocket: MakeSocket = deps.makeSocket ?? makeWASocket;
  const backoff = deps.backoff ?? { initialMs: 1000, maxMs: 60_000 };
  const heartbeatMs = deps.heartbeatMs ?? 5000;
  const random = deps.random ?? Math.random;
  const firstContactGuard = deps.firstContactGuard ?? true;
  // Before any socket: a signature check that refuses forged certificate chains and pairing signatures.
  installSignatureCheck();
  setCertRoot(deps.waCertRoot);
  // libsignal prints whole Signal sessions (private keys) through the console; keep them out of the output.
  installSignalLogGuard(log);
  /** Open sessions of this process, by channel id. */
  const sessionRegistry: SessionRegistry = new Map();
  const personalMedia = createPersonalMediaInbound({ store, log, mediaHostAllowed: deps.mediaHostAllowed });

  const baileysLogger = (channelId: string): Logger => {
    const values = log.levels.values;
    const level = (values[log.level] ?? 30) > values.warn ? log.level : 'warn';
    return log.child({ component: 'baileys', channelId }, { level });
  };

  /** Runs the channel's socket until the session ends for good or the activity is cancelled. */
  async function runSession({ channelId, phoneNumber }: RunSessionInput): Promise<RunSessionResult> {
    const ctx = Context.current();
    const slog = log.child({ component: 'whatsapp-session', channelId, attempt: ctx.info.attempt });
    const token = `${ctx.info.activityId}/${ctx.info.attempt}/${randomUUID()}`;
    const handle = client.workflow.getHandle(`channel-${channelId}`);
    const sentIds = new RecentSends();
    const chats = new Set<string>();

    // The layers of this attempt, each on the ones before it.
    const lifetime = createSessionLifetime(ctx, slog, { heartbeatMs, gate: deps.heartbeatGate });
    const { progress, stopping } = lifetime;
    const reporter = createSessionReporter({ store, db, secretKey, channelId, token, handle, slog, lifetime });
    const { signal, clearLink } = reporter;
    const attachMedia = (n: InboundMessage, raw: WAMessage): Promise<InboundMessage> =>
      personalMedia.attach(n, raw, sessionRegistry.get(channelId)?.socket);
    const pump = createInboundPump({ ...deps, channelId, sentIds, chats, slog, stopping, random, attachMedia });
    const runSocket = createSocketRun({
      ...deps,
      makeSocket,
      channelId,
      phoneNumber,
      registry: sessionRegistry,
      sentIds,
      chats,
      slog,
      baileysLogger: baileysLogger(channelId),
      lifetime,
      reporter,
      pump,
    });

    // ---- the reconnect loop ------------------------------------------------------------------------------
    const pacer = createReconnectPacer(backoff, random);
    let claimed = false;
    let auth: StoreAuthState | null = null;
    const newAuth = async (): Promise<StoreAuthState> =>
      createStoreAuthState({
        db,
        secretKey,
        channelId,
        fence: {
          token,
          claim: !claimed,
          onFenced: () => {
            slog.warn('another session took over this channel (or its auth state was cleared); stopping');
            lifetime.stop({
              ended: 'superseded',
              reason: 'Another session took over this channel, or its auth state was cleared.',
            });
          },
        },
      });

    try {
      while (!stopping()) {
        auth = await newAuth();
        claimed = true;
        if (auth.state.creds.me && !auth.isLinked()) {
          // A pairing code was requested earlier but never entered: those creds cannot log in; start fresh.
          slog.info('discarding an unfinished link attempt');
          await auth.clear();
          auth.close();
          auth = await newAuth();
        }
        progress.phase = 'connecting';
        const outcome = await runSocket(auth);
        lifetime.onEnd(() => undefined);
        auth.close();
        if (stopping()) break;
        progress.reconnects += 1;
        if (outcome.opened) pacer.opened();
        slog.info(
          {
            code: statusCodeOf(outcome.error),
            network: isNetworkError(outcome.error),
            opened: outcome.opened,
            message: outcome.error?.message,
          },
          'WhatsApp socket closed',
        );

        // (Linked now: the creds object is the one the socket updated, so a scan during this socket counts.)
        const decision = decideAfterClose({ ...outcome, linked: auth.isLinked() }, pacer.nextDelay);
        if (decision.clearAuth) {
          await auth.clear().catch((err: unknown) => slog.warn({ err }, 'could not clear the auth state'));
        }
        if (decision.clearLink) clearLink();
        if (decision.update) signal(decision.update);
        if (decision.next === 'end') {
          lifetime.settle({ ended: decision.ended, reason: decision.update.reason });
          break;
        }
        if (decision.next === 'restart') {
          // Immediate restarts are what Baileys asks for; a few in a row without an open fall back to backoff.
          const delay = pacer.restartDelay();
          if (delay !== null) await lifetime.pause(delay);
        } else if (decision.next === 'fresh-qr') {
          await lifetime.pause(Math.min(backoff.initialMs, 1000));
        } else {
          progress.phase = 'backoff';
          await lifetime.pause(decision.delayMs);
        }
      }
    } finally {
      lifetime.close();
      auth?.close();
      if (sessionRegistry.get(channelId)?.sentIds === sentIds) sessionRegistry.delete(channelId);
      const why = lifetime.cancelled?.message;
      if (why === 'WORKER_SHUTDOWN') {
        // This worker is going away: sends must stop coming here until the session is back elsewhere.
        clearLink();
        signal({
          status: 'disconnected',
          reason: 'The worker holding the WhatsApp session is shutting down; the session restarts on another worker.',
        });
      } else if (why !== 'TIMED_OUT' && why !== 'NOT_FOUND' && lifetime.result?.ended !== 'superseded') {
        // (A timed-out or superseded attempt leaves session_link alone: a newer attempt may be writing it.)
        clearLink();
      }
      // Let queued store writes, signals and deliveries finish (bounded, so cancellation stays prompt).
      await Promise.race([
        Promise.all([reporter.idle(), pump.idle()]),
        new Promise((r) => setTimeout(r, 5000).unref()),
      ]);
    }
    if (lifetime.cancelled) throw lifetime.cancelled;
    return lifetime.result ?? { ended: 'superseded', reason: 'The session stopped.' };
  }

  const sendText = createSendText({ registry: sessionRegistry, store, sessionQueue, firstContactGuard });

  return { runSession, sendText, sessionRegistry };
}

/** The session activity workflows schedule (`sendText` is called in process by `deliverReplies`, never scheduled). */
export type SessionActivities = Pick<ReturnType<typeof createSessionActivities>, 'runSession'>;
