/**
 * Who may call `/api`: scripts with `Authorization: Bearer <WHARF_ADMIN_TOKEN>`, and the console with a
 * session cookie it got by logging in with that same token (`POST /api/session`).
 *
 * The cookie is HttpOnly (page scripts never see it), `SameSite=Strict` and `Secure` when the request came
 * over https. SameSite alone does not separate two ports of one host (they are the same *site*), so every
 * cookie-authenticated request that changes something must also carry an `Origin` equal to this server's
 * own; a browser always sends it on such requests and a page elsewhere cannot forge it.
 *
 * Sessions live in this process's memory with an absolute lifetime: a restart logs operators out, which
 * costs one login, and no session secret ever lands on disk (no store migration needed).
 */
import { createHash, randomBytes } from 'node:crypto';
import express, { Router, type Request, type RequestHandler, type Response } from 'express';
import { z } from 'zod';
import { sameSecret } from '../lib/constant-time.js';
import { WharfError } from '../lib/errors.js';

/** Name of the session cookie. */
export const SESSION_COOKIE = 'wharf_session';

/** How long a console session lasts from login: 12 hours. */
export const SESSION_TTL_MS = 12 * 60 * 60 * 1000;

/** Body of `POST /api/session`. */
export const LoginSchema = z.strictObject({ token: z.string().min(1).max(1000) });

const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const MAX_SESSIONS = 10_000;

/** How a request was authenticated (set on `res.locals.auth`). */
export type AuthVia = { via: 'bearer' } | { via: 'session'; expiresAt: number };

const digest = (s: string): string => createHash('sha256').update(s).digest('hex');

function cookieValue(req: Request, name: string): string | null {
  for (const part of (req.header('cookie') ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return null;
}

const isHttps = (req: Request): boolean => req.secure || req.header('x-forwarded-proto') === 'https';

/**
 * True when the request comes from a page of this server: `Origin` is this server's own (as the browser
 * addressed it, or the configured public URL), and `Sec-Fetch-Site`, when sent, says same-origin.
 */
export function sameOrigin(req: Request, publicUrl: string): boolean {
  const fetchSite = req.header('sec-fetch-site');
  if (fetchSite && fetchSite !== 'same-origin') return false;
  const origin = req.header('origin');
  if (!origin) return false;
  const host = req.header('host');
  const own = new Set<string>([new URL(publicUrl).origin]);
  if (host) {
    own.add(`http://${host}`);
    own.add(`https://${host}`);
  }
  return own.has(origin);
}

/** Creates the session registry, the `/api/session` router and the middleware that guards `/api`. */
export function createSessionAuth({
  adminToken,
  publicUrl,
  ttlMs = SESSION_TTL_MS,
}: {
  adminToken: string;
  publicUrl: string;
  ttlMs?: number;
}) {
  const expected = Buffer.from(adminToken);
  // Keyed by the cookie's SHA-256, so the map holds nothing a memory dump could replay directly.
  const sessions = new Map<string, number>();

  const sweep = (now: number): void => {
    for (const [k, exp] of sessions) if (exp <= now) sessions.delete(k);
  };
  const lookup = (req: Request): { key: string; expiresAt: number } | null => {
    const raw = cookieValue(req, SESSION_COOKIE);
    if (!raw) return null;
    const key = digest(raw);
    const expiresAt = sessions.get(key);
    if (expiresAt === undefined) return null;
    if (expiresAt <= Date.now()) {
      sessions.delete(key);
      return null;
    }
    return { key, expiresAt };
  };
  const setCookie = (req: Request, res: Response, value: string, maxAgeS: number): void => {
    const attrs = [`${SESSION_COOKIE}=${value}`, 'Path=/', 'HttpOnly', 'SameSite=Strict', `Max-Age=${maxAgeS}`];
    if (isHttps(req)) attrs.push('Secure');
    res.append('Set-Cookie', attrs.join('; '));
  };
  const refuseCrossSite = (req: Request): void => {
    if (!sameOrigin(req, publicUrl)) {
      throw new WharfError(
        'forbidden',
        'Cross-site request refused: console requests must come from the console’s own origin. Scripts use Authorization: Bearer <token>.',
      );
    }
  };

  /** Guards every `/api` route: a good bearer token, or a live session (plus same origin when mutating). */
  const authenticate: RequestHandler = (req, res, next) => {
    const bearer = /^Bearer\s+(.+)$/i.exec(req.header('authorization') ?? '');
    if (bearer) {
      if (!sameSecret(bearer[1].trim(), expected))
        return next(
          new WharfError('unauthorized', 'Wrong bearer token: send Authorization: Bearer <WHARF_ADMIN_TOKEN>.'),
        );
      res.locals.auth = { via: 'bearer' } satisfies AuthVia;
      return next();
    }
    const session = lookup(req);
    if (!session) {
      return next(
        new WharfError('unauthorized', 'Log in to the console, or send Authorization: Bearer <WHARF_ADMIN_TOKEN>.'),
      );
    }
    if (MUTATING.has(req.method)) refuseCrossSite(req);
    res.locals.auth = { via: 'session', expiresAt: session.expiresAt } satisfies AuthVia;
    next();
  };

  const router = Router();
  router.use(express.json({ limit: '4kb' }));

  // Log in: the admin token for a session cookie.
  router.post('/', (req, res) => {
    refuseCrossSite(req);
    const { token } = LoginSchema.parse(req.body ?? {});
    if (!sameSecret(token, expected))
      throw new WharfError(
        'unauthorized',
        'That is not the admin token. It was printed at first start and is in data/admin-token (or WHARF_ADMIN_TOKEN).',
        [{ path: ['token'], message: 'wrong token' }],
      );
    const now = Date.now();
    sweep(now);
    if (sessions.size >= MAX_SESSIONS) sessions.delete(sessions.keys().next().value as string);
    const value = randomBytes(32).toString('base64url');
    const expiresAt = now + ttlMs;
    sessions.set(digest(value), expiresAt);
    setCookie(req, res, value, Math.floor(ttlMs / 1000));
    res.json({ expiresAt: new Date(expiresAt).toISOString() });
  });

  // Who am I: 200 with the session's expiry, 401 when logged out.
  router.get('/', (req, res) => {
    const session = lookup(req);
    if (!session) throw new WharfError('unauthorized', 'Not logged in.');
    res.set('Cache-Control', 'no-store');
    res.json({ expiresAt: new Date(session.expiresAt).toISOString() });
  });

  // Log out: forget the session and clear the cookie.
  router.delete('/', (req, res) => {
    const session = lookup(req);
    if (session) {
      refuseCrossSite(req);
      sessions.delete(session.key);
    }
    setCookie(req, res, '', 0);
    res.status(204).end();
  });

  return { router, authenticate, sessionCount: (): number => sessions.size };
}

/** The session registry's type. */
export type SessionAuth = ReturnType<typeof createSessionAuth>;
