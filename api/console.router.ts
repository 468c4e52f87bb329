/**
 * `GET /`: the operators' console, a static single-page app built by `npm run build` (Vite, from
 * `console/`) into `dist/console`. Pages talk to `/api` with the session cookie (see session-auth.ts).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import express, { Router, type RequestHandler } from 'express';
import { projectRoot } from '../lib/paths.js';

/** Where `npm run build` puts the console. */
export const CONSOLE_DIR = join(projectRoot, 'dist', 'console');

// Only this origin's scripts, styles and API; QR codes arrive as data: URLs; no framing (clickjacking).
const CSP = [
  "default-src 'self'",
  "img-src 'self' data:",
  "style-src 'self'",
  "script-src 'self'",
  "connect-src 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'self'",
].join('; ');

const securityHeaders: RequestHandler = (_req, res, next) => {
  res.set({
    'Content-Security-Policy': CSP,
    'X-Frame-Options': 'DENY',
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
  });
  next();
};

/** Builds the router mounted at `/` (after `/api` and `/webhooks`). */
export function consoleRouter({ dir = CONSOLE_DIR }: { dir?: string } = {}): Router {
  const r = Router();
  r.use(securityHeaders);
  r.get('/', (_req, res) => {
    if (!existsSync(join(dir, 'index.html'))) {
      res
        .status(503)
        .type('text/plain')
        .send('The console is not built yet: run `npm run build` (npm start does it when sources changed).');
      return;
    }
    res.set('Cache-Control', 'no-cache');
    res.sendFile(join(dir, 'index.html'));
  });
  // File names under assets/ carry a content hash: they never change, so browsers may keep them.
  r.use(
    '/assets',
    express.static(join(dir, 'assets'), { immutable: true, maxAge: '365d', index: false, fallthrough: true }),
  );
  r.use(express.static(dir, { index: false, maxAge: 0 }));
  return r;
}
