/**
 * What a closed socket means, decided without touching anything: Baileys' close error (a Boom carrying a
 * `DisconnectReason` status, or a plain network error) plus what the socket saw (did it log in, did it show
 * a QR, is the device linked) → end the session for good, restart at once, connect again for fresh QR
 * codes, or back off; and the update the channel workflow is told. The reconnect loop (index.ts) carries
 * the decision out, so every case is covered by a table-driven test (test/close-policy.test.ts).
 */
import { DisconnectReason } from '@whiskeysockets/baileys';
import type { SessionUpdate } from '../../workflows/channel-messages.js';

/** A Baileys close error: a Boom with `output.statusCode`, or a plain error. */
export type CloseError = (Error & { output?: { statusCode?: number }; data?: unknown }) | undefined;

/** The status code of a close error (a `DisconnectReason`), when it has one. */
export const statusCodeOf = (err: CloseError): number | undefined => err?.output?.statusCode;

/** True when the close came from the network (DNS, TCP, TLS, WebSocket), not from WhatsApp's servers. */
export function isNetworkError(err: CloseError): boolean {
  if (!err) return false;
  if (/^WebSocket Error/.test(err.message)) return true;
  const data = err.data as { code?: unknown } | undefined;
  return data instanceof Error || (typeof data?.code === 'string' && /^E[A-Z]+$/.test(data.code));
}

/** True when the Noise handshake refused the server's certificate chain (Baileys' noise handler, status 400). */
function isCertificateFailure(err: CloseError): boolean {
  return statusCodeOf(err) === 400 && /certificate|certification/i.test(err?.message ?? '');
}

/** A short, human cause of a close. */
export function describeClose(err: CloseError): string {
  const code = statusCodeOf(err);
  const msg = (err?.message ?? 'connection closed').replace(/^WebSocket Error \((.*)\)$/, '$1');
  // Network errors say it best themselves ("getaddrinfo ENOTFOUND web.whatsapp.com").
  if (isNetworkError(err)) return msg;
  if (isCertificateFailure(err)) {
    return `the server failed WhatsApp's certificate check (${msg}): it is not WhatsApp, or WHARF_WA_CERT_ROOT does not match it; nothing was sent to it`;
  }
  switch (code) {
    case DisconnectReason.connectionClosed:
      return `connection closed (${msg})`;
    case DisconnectReason.connectionLost:
      return `connection lost or timed out (${msg})`;
    case DisconnectReason.unavailableService:
      return `WhatsApp service unavailable (${msg})`;
    default:
      return code ? `${msg}, status ${code}` : msg;
  }
}

/** Backoff settings for transient reconnects. */
export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
}

/** The delay before reconnect number `attempt` (0-based): full jitter over a capped exponential. */
export function backoffDelay(
  attempt: number,
  { initialMs, maxMs }: BackoffOptions,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
  return Math.round(random() * ceiling);
}

/** Immediate reconnects (restart required, bad session) allowed in a row before backoff applies. */
export const MAX_QUICK_RESTARTS = 3;

/**
 * The pace of reconnects: a transient close waits the next backoff delay; the immediate restarts Baileys
 * asks for are immediate only a few in a row without an open, then back off too. An open starts over.
 */
export function createReconnectPacer(backoff: BackoffOptions, random: () => number) {
  let attempt = 0;
  let quickRestarts = 0;
  return {
    /** The socket logged in: the next close starts from the shortest delay again. */
    opened(): void {
      attempt = 0;
      quickRestarts = 0;
    },
    /** The delay before the next transient reconnect. */
    nextDelay(): number {
      return backoffDelay(attempt++, backoff, random);
    },
    /** The delay before an immediate restart: none until too many came in a row, then the next backoff. */
    restartDelay(): number | null {
      quickRestarts += 1;
      return quickRestarts > MAX_QUICK_RESTARTS ? backoffDelay(attempt++, backoff, random) : null;
    },
  };
}

/** What a socket's life ended with, as the close policy needs it. */
export interface SocketClose {
  error: CloseError;
  /** The socket logged in. */
  opened: boolean;
  /** The socket showed a QR code. */
  sawQr: boolean;
  /** The auth state is linked to an account now (a scan during this socket counts). */
  linked: boolean;
}

/** How the session ended for good (the `ended` of `runSession`'s result). */
export type FinalEnd = 'logged_out' | 'replaced' | 'forbidden';

/** What to do after a close. `clearAuth`/`clearLink`/`update` happen first, in that order. */
export type CloseDecision = {
  /** Delete the saved auth state (WhatsApp will not accept it again). */
  clearAuth: boolean;
  /** Remove the QR / pairing code shown to the operator. */
  clearLink: boolean;
  /** What the channel workflow is told (nothing when absent). */
  update?: SessionUpdate;
} & (
  | { next: 'end'; ended: FinalEnd; update: SessionUpdate }
  /** Connect again at once (through {@link createReconnectPacer}'s `restartDelay`). */
  | { next: 'restart' }
  /** Every QR expired unscanned: connect again soon for fresh ones. */
  | { next: 'fresh-qr' }
  /** A transient drop: wait `delayMs`, then connect again. */
  | { next: 'backoff'; delayMs: number; update: SessionUpdate }
);

const seconds = (ms: number): string => `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)}s`;

/**
 * Decides what follows a close. `nextDelay` is asked only when the decision is a backoff (each call moves
 * the backoff on, so it is a callback rather than a number).
 */
export function decideAfterClose(close: SocketClose, nextDelay: () => number): CloseDecision {
  const code = statusCodeOf(close.error);
  const network = isNetworkError(close.error);
  const { opened, sawQr, linked } = close;

  if (code === DisconnectReason.loggedOut && !network && (linked || opened)) {
    const reason =
      'Logged out: the session was revoked from the phone (WhatsApp → Linked devices), and its auth state was deleted. Refresh the QR code to link again.';
    const update: SessionUpdate = { status: 'disconnected', reason, final: true };
    return { next: 'end', ended: 'logged_out', clearAuth: true, clearLink: true, update };
  }
  if (code === DisconnectReason.connectionReplaced) {
    const reason =
      'Another client took over this session (WhatsApp reported a conflict: the same linked device connected elsewhere). Reconnect the channel to take it back.';
    const update: SessionUpdate = { status: 'disconnected', reason, final: true };
    return { next: 'end', ended: 'replaced', clearAuth: false, clearLink: false, update };
  }
  if (code === DisconnectReason.forbidden && !network) {
    const reason =
      'WhatsApp refused this account (403 forbidden): it may be banned or restricted. Check the phone, then link again.';
    return {
      next: 'end',
      ended: 'forbidden',
      clearAuth: false,
      clearLink: false,
      update: { status: 'failed', reason, final: true },
    };
  }
  if (code === DisconnectReason.restartRequired) return { next: 'restart', clearAuth: false, clearLink: false };
  if (!network && (code === DisconnectReason.badSession || code === DisconnectReason.loggedOut)) {
    // A session WhatsApp no longer accepts (or an unfinished link): clear it and show a new QR.
    const reason = 'Bad session: WhatsApp did not accept the saved session, so it was cleared; scan a new QR code.';
    return { next: 'restart', clearAuth: true, clearLink: true, update: { status: 'setup', reason } };
  }
  if (!network && code === DisconnectReason.timedOut && sawQr && !opened && !linked) {
    // Every QR of this connection expired unscanned: connect again for fresh ones.
    return { next: 'fresh-qr', clearAuth: false, clearLink: true };
  }

  // Transient: connection lost / closed / timed out / WhatsApp unreachable or unavailable.
  const delayMs = nextDelay();
  const cause = describeClose(close.error);
  const reason =
    network && !opened
      ? `WhatsApp unreachable: ${cause}; retrying in ${seconds(delayMs)}.`
      : `Disconnected from WhatsApp: ${cause}; reconnecting in ${seconds(delayMs)}.`;
  return {
    next: 'backoff',
    delayMs,
    clearAuth: false,
    clearLink: !linked,
    update: { status: linked ? 'disconnected' : 'setup', reason },
  };
}
