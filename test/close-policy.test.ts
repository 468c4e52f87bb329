/**
 * The personal session's close policy, case by case: every `DisconnectReason` Baileys defines, network
 * failures, and the signature check refusing a server's certificate chain — what follows (end for good,
 * restart, fresh QR codes, backoff), what is cleared, and what the channel workflow is told. The errors are
 * shaped and worded as Baileys raises them (lib/Socket/socket.js, lib/Utils/noise-handler.js).
 */
import { DisconnectReason } from '@whiskeysockets/baileys';
import { describe, expect, it } from 'vitest';
import {
  backoffDelay,
  createReconnectPacer,
  decideAfterClose,
  MAX_QUICK_RESTARTS,
  type CloseDecision,
  type CloseError,
  type SocketClose,
} from '../activities/personal-session/close-policy.js';
import { boom } from './fakes/baileys-socket.js';

/** Baileys' `mapWebSocketError`: a Boom around the socket's own error, which stays in `data`. */
const wsError = (message: string, code?: string): CloseError => {
  const cause = Object.assign(new Error(message), code ? { code } : {});
  return boom(`WebSocket Error (${message})`, code?.startsWith('E') ? 408 : 500, cause);
};

type Expected = Pick<CloseDecision, 'next' | 'clearAuth' | 'clearLink'> & {
  ended?: string;
  status?: string;
  final?: boolean;
  /** A part of the reason reported (none reported when `status` is absent). */
  reason?: string | RegExp;
};

interface Row {
  name: string;
  /** The DisconnectReason this row covers, if any. */
  covers?: keyof typeof DisconnectReason;
  close: SocketClose;
  expected: Expected;
}

const linked = { opened: true, sawQr: false, linked: true };
const unlinkedQr = { opened: false, sawQr: true, linked: false };
const DELAY = 2000; // what the backoff yields in these rows ("2.0s")

const rows: Row[] = [
  {
    name: 'logged out from the phone (linked session)',
    covers: 'loggedOut',
    close: { error: boom('Stream Errored (conflict)', DisconnectReason.loggedOut), ...linked },
    expected: {
      next: 'end',
      ended: 'logged_out',
      clearAuth: true,
      clearLink: true,
      status: 'disconnected',
      final: true,
      reason: /^Logged out: the session was revoked from the phone/,
    },
  },
  {
    name: 'logged out right after the scan (opened, not yet marked linked)',
    close: { error: boom('Intentional Logout', DisconnectReason.loggedOut), opened: true, sawQr: true, linked: false },
    expected: {
      next: 'end',
      ended: 'logged_out',
      clearAuth: true,
      clearLink: true,
      status: 'disconnected',
      final: true,
    },
  },
  {
    name: 'logged out before ever linking (an unfinished link): treated as a bad session',
    close: {
      error: boom('Connection Failure', DisconnectReason.loggedOut),
      opened: false,
      sawQr: false,
      linked: false,
    },
    expected: { next: 'restart', clearAuth: true, clearLink: true, status: 'setup', reason: /^Bad session:/ },
  },
  {
    name: 'a 401 carried by a network error is transient',
    close: {
      error: boom(
        'WebSocket Error (Unexpected server response: 401)',
        401,
        new Error('Unexpected server response: 401'),
      ),
      ...linked,
    },
    expected: {
      next: 'backoff',
      clearAuth: false,
      clearLink: false,
      status: 'disconnected',
      reason: 'Disconnected from WhatsApp: Unexpected server response: 401; reconnecting in 2.0s.',
    },
  },
  {
    name: 'restart required (after the scan, WhatsApp asks for a new connection)',
    covers: 'restartRequired',
    close: {
      error: boom('Stream Errored (restart required)', DisconnectReason.restartRequired),
      opened: false,
      sawQr: true,
      linked: true,
    },
    expected: { next: 'restart', clearAuth: false, clearLink: false },
  },
  {
    name: 'connection replaced (the same device connected elsewhere)',
    covers: 'connectionReplaced',
    close: { error: boom('Stream Errored (conflict)', DisconnectReason.connectionReplaced), ...linked },
    expected: {
      next: 'end',
      ended: 'replaced',
      clearAuth: false,
      clearLink: false,
      status: 'disconnected',
      final: true,
      reason: /^Another client took over this session/,
    },
  },
  {
    name: 'bad session (WhatsApp does not accept the saved session)',
    covers: 'badSession',
    close: { error: boom('Stream Errored (bad-mac)', DisconnectReason.badSession), ...linked },
    expected: {
      next: 'restart',
      clearAuth: true,
      clearLink: true,
      status: 'setup',
      reason: 'Bad session: WhatsApp did not accept the saved session, so it was cleared; scan a new QR code.',
    },
  },
  {
    name: 'a 500 from the network (an unknown websocket error) is transient',
    close: { error: wsError('socket hang up'), ...linked },
    expected: {
      next: 'backoff',
      clearAuth: false,
      clearLink: false,
      status: 'disconnected',
      reason: 'Disconnected from WhatsApp: socket hang up; reconnecting in 2.0s.',
    },
  },
  {
    name: 'multi-device mismatch is transient',
    covers: 'multideviceMismatch',
    close: { error: boom('Multi-device beta not joined', DisconnectReason.multideviceMismatch), ...linked },
    expected: {
      next: 'backoff',
      clearAuth: false,
      clearLink: false,
      status: 'disconnected',
      reason: 'Disconnected from WhatsApp: Multi-device beta not joined, status 411; reconnecting in 2.0s.',
    },
  },
  {
    name: 'connection closed (linked): reconnect after backoff, the link is kept',
    covers: 'connectionClosed',
    close: { error: boom('Connection Terminated', DisconnectReason.connectionClosed), ...linked },
    expected: {
      next: 'backoff',
      clearAuth: false,
      clearLink: false,
      status: 'disconnected',
      reason: 'Disconnected from WhatsApp: connection closed (Connection Terminated); reconnecting in 2.0s.',
    },
  },
  {
    name: 'connection closed while linking: back to setup, the stale QR goes',
    close: { error: boom('Connection Terminated by Server', DisconnectReason.connectionClosed), ...unlinkedQr },
    expected: {
      next: 'backoff',
      clearAuth: false,
      clearLink: true,
      status: 'setup',
      reason: /connection closed \(Connection Terminated by Server\)/,
    },
  },
  {
    name: 'connection lost (keep-alive missed)',
    covers: 'connectionLost',
    close: { error: boom('Connection was lost', DisconnectReason.connectionLost), ...linked },
    expected: {
      next: 'backoff',
      clearAuth: false,
      clearLink: false,
      status: 'disconnected',
      reason: 'Disconnected from WhatsApp: connection lost or timed out (Connection was lost); reconnecting in 2.0s.',
    },
  },
  {
    name: 'timed out after every QR expired unscanned: connect again for fresh QR codes',
    covers: 'timedOut',
    close: { error: boom('QR refs attempts ended', DisconnectReason.timedOut), ...unlinkedQr },
    expected: { next: 'fresh-qr', clearAuth: false, clearLink: true },
  },
  {
    name: 'timed out on a linked session is transient',
    close: { error: boom('Timed Out', DisconnectReason.timedOut), opened: false, sawQr: false, linked: true },
    expected: {
      next: 'backoff',
      clearAuth: false,
      clearLink: false,
      status: 'disconnected',
      reason: /connection lost or timed out \(Timed Out\)/,
    },
  },
  {
    name: 'forbidden (the account is banned or restricted)',
    covers: 'forbidden',
    close: { error: boom('Connection Failure', DisconnectReason.forbidden), ...linked },
    expected: {
      next: 'end',
      ended: 'forbidden',
      clearAuth: false,
      clearLink: false,
      status: 'failed',
      final: true,
      reason: /^WhatsApp refused this account \(403 forbidden\)/,
    },
  },
  {
    name: 'a 403 from a proxy (network) is transient',
    close: { error: wsError('Unexpected server response: 403'), opened: false, sawQr: false, linked: true },
    expected: {
      next: 'backoff',
      clearAuth: false,
      clearLink: false,
      status: 'disconnected',
      reason: 'WhatsApp unreachable: Unexpected server response: 403; retrying in 2.0s.',
    },
  },
  {
    name: 'service unavailable',
    covers: 'unavailableService',
    close: { error: boom('Stream Errored (unavailable)', DisconnectReason.unavailableService), ...linked },
    expected: {
      next: 'backoff',
      clearAuth: false,
      clearLink: false,
      status: 'disconnected',
      reason:
        'Disconnected from WhatsApp: WhatsApp service unavailable (Stream Errored (unavailable)); reconnecting in 2.0s.',
    },
  },
  {
    name: 'DNS failure before connecting: unreachable, retried',
    close: {
      error: wsError('getaddrinfo ENOTFOUND web.whatsapp.com', 'ENOTFOUND'),
      opened: false,
      sawQr: false,
      linked: false,
    },
    expected: {
      next: 'backoff',
      clearAuth: false,
      clearLink: true,
      status: 'setup',
      reason: 'WhatsApp unreachable: getaddrinfo ENOTFOUND web.whatsapp.com; retrying in 2.0s.',
    },
  },
  {
    name: 'a reset after the session was open: disconnected, not unreachable',
    close: { error: wsError('read ECONNRESET', 'ECONNRESET'), ...linked },
    expected: {
      next: 'backoff',
      clearAuth: false,
      clearLink: false,
      status: 'disconnected',
      reason: 'Disconnected from WhatsApp: read ECONNRESET; reconnecting in 2.0s.',
    },
  },
  {
    name: 'signature check: the server failed the certificate chain (not WhatsApp, or another cert root)',
    close: { error: boom('certification match failed', 400), opened: false, sawQr: false, linked: true },
    expected: {
      next: 'backoff',
      clearAuth: false,
      clearLink: false,
      status: 'disconnected',
      reason:
        "Disconnected from WhatsApp: the server failed WhatsApp's certificate check (certification match failed): it is not WhatsApp, or WHARF_WA_CERT_ROOT does not match it; nothing was sent to it; reconnecting in 2.0s.",
    },
  },
  {
    name: 'signature check: a forged leaf certificate, while linking',
    close: { error: boom('invalid noise leaf certificate', 400), opened: false, sawQr: false, linked: false },
    expected: {
      next: 'backoff',
      clearAuth: false,
      clearLink: true,
      status: 'setup',
      reason: /certificate check \(invalid noise leaf certificate\)/,
    },
  },
  {
    name: 'a socket closed without an error (ended by a stalled close): transient',
    close: { error: undefined, ...linked },
    expected: {
      next: 'backoff',
      clearAuth: false,
      clearLink: false,
      status: 'disconnected',
      reason: 'Disconnected from WhatsApp: connection closed; reconnecting in 2.0s.',
    },
  },
];

describe('close policy', () => {
  it.each(rows)('$name', ({ close, expected }) => {
    let delays = 0;
    const d = decideAfterClose(close, () => (delays++, DELAY));
    expect({ next: d.next, clearAuth: d.clearAuth, clearLink: d.clearLink }).toEqual({
      next: expected.next,
      clearAuth: expected.clearAuth,
      clearLink: expected.clearLink,
    });
    if (d.next === 'end') expect(d.ended).toBe(expected.ended);
    // The backoff moves on only when the decision waits on it.
    expect(delays).toBe(d.next === 'backoff' ? 1 : 0);
    if (d.next === 'backoff') expect(d.delayMs).toBe(DELAY);
    if (!expected.status) {
      expect(d.update).toBeUndefined();
      return;
    }
    expect(d.update?.status).toBe(expected.status);
    expect(d.update?.final).toBe(expected.final);
    if (typeof expected.reason === 'string') expect(d.update?.reason).toBe(expected.reason);
    else if (expected.reason) expect(d.update?.reason).toMatch(expected.reason);
  });

  it('covers every DisconnectReason Baileys defines', () => {
    const defined = Object.keys(DisconnectReason).filter((k) => Number.isNaN(Number(k)));
    const covered = new Set(rows.map((r) => r.covers).filter(Boolean));
    expect(defined.filter((name) => !covered.has(name as keyof typeof DisconnectReason))).toEqual([]);
  });
});

describe('reconnect pacing', () => {
  const backoff = { initialMs: 1000, maxMs: 60_000 };

  it('backs off exponentially with full jitter under a cap', () => {
    expect([0, 1, 2, 3, 6, 7, 40].map((a) => backoffDelay(a, backoff, () => 1))).toEqual([
      1000, 2000, 4000, 8000, 60_000, 60_000, 60_000,
    ]);
    expect(backoffDelay(5, backoff, () => 0)).toBe(0);
    expect(backoffDelay(2, backoff, () => 0.5)).toBe(2000);
  });

  it(`restarts at once ${MAX_QUICK_RESTARTS} times in a row, then backs off; an open starts over`, () => {
    const pacer = createReconnectPacer(backoff, () => 1);
    const quick = Array.from({ length: MAX_QUICK_RESTARTS }, () => pacer.restartDelay());
    expect(quick).toEqual(Array(MAX_QUICK_RESTARTS).fill(null));
    expect([pacer.restartDelay(), pacer.restartDelay(), pacer.nextDelay()]).toEqual([1000, 2000, 4000]);
    pacer.opened();
    expect([pacer.restartDelay(), pacer.nextDelay(), pacer.nextDelay()]).toEqual([null, 1000, 2000]);
  });
});
