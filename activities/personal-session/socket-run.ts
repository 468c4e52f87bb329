/**
 * One socket, from connect to close: builds the Baileys socket on the stored auth state, holds inbound
 * receipts until the messages are durable, enters the session in the registry (and reports it connected)
 * once it is logged in, shows QR / pairing codes while it is not, and resolves with what the close policy
 * needs to know. Reconnecting is not its business: the loop in index.ts decides that.
 */
import {
  isJidBroadcast,
  isJidNewsletter,
  jidDecode,
  makeCacheableSignalKeyStore,
  type proto,
} from '@whiskeysockets/baileys';
import { AckGate } from '../../lib/baileys/ack-gate.js';
import type { StoreAuthState } from '../../lib/store/auth-state.js';
import type { Logger } from '../../lib/logger.js';
import type { CloseError } from './close-policy.js';
import type { InboundPump } from './inbound-pump.js';
import { createLinkCodes } from './link-codes.js';
import type { SessionLifetime } from './session-lifetime.js';
import type { SessionReporter } from './session-reporter.js';
import type {
  MakeSocket,
  RecentSends,
  SessionActivityDeps,
  SessionRegistry,
  SessionSocket,
} from './session-registry.js';

/** How a socket's life ended. */
export interface SocketOutcome {
  error: CloseError;
  /** It logged in. */
  opened: boolean;
  /** It showed a QR code. */
  sawQr: boolean;
}

/** What a socket run needs: the attempt's parts and the layers below. */
export interface SocketRunDeps extends Pick<SessionActivityDeps, 'waUrl' | 'socketConfig' | 'sessionQueue'> {
  makeSocket: MakeSocket;
  channelId: string;
  phoneNumber?: string;
  registry: SessionRegistry;
  sentIds: RecentSends;
  chats: Set<string>;
  slog: Logger;
  /** Baileys' own logger for this channel. */
  baileysLogger: Logger;
  lifetime: Pick<SessionLifetime, 'stopping' | 'onEnd' | 'endSocket' | 'progress'>;
  reporter: SessionReporter;
  pump: InboundPump;
}

const addressOfJid = (jid: string): string => {
  const user = jidDecode(jid)?.user;
  return user ? `+${user}` : jid;
};

/** Builds `runSocket(auth)`: runs one socket on `auth` until it closes. */
export function createSocketRun(deps: SocketRunDeps) {
  const { channelId, registry, sentIds, chats, slog, lifetime, reporter, pump } = deps;
  const { signal, clearLink, effect } = reporter;
  const progress = lifetime.progress;
  return (auth: StoreAuthState): Promise<SocketOutcome> =>
    new Promise<SocketOutcome>((resolve, reject) => {
      let opened = false;
      let sawQr = false;
      let settled = false;
      const finish = (o: SocketOutcome): void => {
        if (settled) return;
        settled = true;
        resolve(o);
      };

      if (lifetime.stopping()) {
        finish({ error: undefined, opened, sawQr });
        return;
      }
      let sock: SessionSocket;
      try {
        sock = deps.makeSocket(
          {
            auth: { creds: auth.state.creds, keys: makeCacheableSignalKeyStore(auth.state.keys, deps.baileysLogger) },
            logger: deps.baileysLogger,
            printQRInTerminal: false,
            browser: ['Wharf', 'Chrome', '1.0'],
            markOnlineOnConnect: false,
            syncFullHistory: false,
            generateHighQualityLinkPreview: false,
            shouldIgnoreJid: (jid: string) => !!isJidBroadcast(jid) || !!isJidNewsletter(jid),
            // Lets Baileys re-send our own messages to a device that could not decrypt them.
            getMessage: async (key: proto.IMessageKey) => {
              const text = key.id ? sentIds.text(key.id) : undefined;
              return text ? { conversation: text } : undefined;
            },
            ...(deps.waUrl ? { waWebSocketUrl: deps.waUrl } : {}),
            ...deps.socketConfig,
          },
          { channelId },
        );
      } catch (err) {
        reject(err);
        return;
      }

      // Receipts for inbound messages leave only once the messages are durable (lib/baileys/ack-gate.ts).
      const gate = new AckGate({
        ignore: (jid) => !!isJidBroadcast(jid) || !!isJidNewsletter(jid),
        onExpired: (id) =>
          slog.warn({ messageId: id }, 'an inbound message was not handed on in time; its receipt is sent anyway'),
        // Wharf reads no history, so Baileys' buffering (meant to merge history with chats) may end early.
        unstick: () => sock.ev.flush?.(),
      });
      gate.attach(sock.ws);

      lifetime.onEnd(() => {
        Promise.resolve(sock.end(undefined)).catch((err: unknown) => slog.debug({ err }, 'socket end failed'));
        // A socket that never reports its close is not waited for.
        setTimeout(() => finish({ error: undefined, opened, sawQr }), 5000).unref();
      });

      // Inbound messages go to Temporal only once the channel knows where this session's sends go, or
      // their replies would find no session (messages kept offline arrive during login).
      let markConnected: (ok: boolean) => void = () => undefined;
      const connectedReported = new Promise<boolean>((r) => (markConnected = r));
      /** The socket is logged in: the session is open for sends and reported connected. */
      const reportOpen = (): void => {
        if (opened) return;
        opened = true;
        progress.phase = 'open';
        const selfJid = sock.user?.id ?? auth.state.creds.me?.id;
        if (!selfJid) {
          slog.error('socket opened without a user id; closing it');
          lifetime.endSocket();
          return;
        }
        const selfAddress = addressOfJid(selfJid);
        registry.set(channelId, {
          channelId,
          socket: sock,
          sentIds,
          selfJid,
          selfAddress,
          chats,
          openedAt: new Date().toISOString(),
        });
        clearLink();
        signal({
          status: 'connected',
          reason: `Linked to ${selfAddress}; WhatsApp is connected.`,
          selfAddress,
          sessionQueue: deps.sessionQueue,
        });
        effect('connected reported', async () => markConnected(true));
        slog.info({ selfAddress }, 'WhatsApp session open');
      };
      // WhatsApp's `<success>` (login done) comes before Baileys' `open`, which waits on a few queries;
      // messages kept offline arrive in between, and their receipts are held (ack gate) until they are
      // durable — so the session must count as open from `<success>`, or the two would wait on each other.
      (sock.ws as { on?(event: string, listener: () => void): unknown } | undefined)?.on?.('CB:success', () =>
        reportOpen(),
      );

      sock.ev.on('creds.update', () => {
        auth.saveCreds().catch((err: unknown) => slog.warn({ err }, 'could not save the auth state'));
      });

      const onQr = createLinkCodes({ channelId, phoneNumber: deps.phoneNumber, reporter, slog });
      sock.ev.on('connection.update', (u) => {
        if (u.qr && !opened) {
          sawQr = true;
          progress.phase = 'qr';
          onQr(sock, auth, u.qr);
        }
        if (u.connection === 'open') reportOpen();
        if (u.connection === 'close') {
          gate.discard();
          markConnected(false);
          if (registry.get(channelId)?.socket === sock) registry.delete(channelId);
          finish({ error: u.lastDisconnect?.error as CloseError, opened, sawQr });
        }
      });

      sock.ev.on('groups.upsert', (groups) => groups.forEach((g) => pump.noteGroup(g.id, g.subject)));
      sock.ev.on('groups.update', (groups) => groups.forEach((g) => pump.noteGroup(g.id, g.subject)));
      sock.ev.on('chats.upsert', (list) => list.forEach((c) => pump.noteGroup(c.id, c.name)));

      sock.ev.on('messages.upsert', ({ messages }) => {
        // `notify` is live; `append` is what WhatsApp kept for this device while it was offline (and our
        // own sends echoed locally, which the normaliser drops by id). History sync comes as
        // `messaging-history.set`, never here.
        const selfJid = sock.user?.id ?? auth.state.creds.me?.id;
        if (!selfJid) return;
        const lidMapping = sock.signalRepository?.lidMapping;
        const live = {
          selfJid,
          selfLid: sock.user?.lid ?? auth.state.creds.me?.lid,
          pnForLid: lidMapping ? (lid: string) => lidMapping.getPNForLID(lid) : undefined,
        };
        pump.push(messages, live, connectedReported, (ids) => gate.release(ids));
      });
    });
}
