/**
 * `GET /api/media/:id` (SPEC §4): a stored file, with its type; `POST /api/media`: stores a file an agent
 * wants to send (issue #20). Auth as every `/api` route.
 */
import express, { Router } from 'express';
import { WharfError } from '../lib/errors.js';
import { MEDIA_LIMITS } from '../lib/media.js';
import type { Store } from '../lib/store/store.js';

/** Types a stored file may have: those WhatsApp takes for some kind (Cloud API "Supported media types"). */
const STORABLE = new Set(Object.values(MEDIA_LIMITS).flatMap((l) => l.types));
/** The largest file WhatsApp sends (a document). */
const MAX_BYTES = MEDIA_LIMITS.document.maxBytes;

/** Types a browser may show inline; anything else is served as a download. */
const INLINE = /^(image\/(jpeg|png|webp)|audio\/[a-z0-9.+-]+|video\/[a-z0-9.+-]+|application\/pdf)$/;

/** Builds the router. */
export function mediaRouter({ store }: { store: Store }): Router {
  const r = Router();
  r.post('/', express.raw({ type: () => true, limit: MAX_BYTES }), async (req, res) => {
    const mime = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
    if (!STORABLE.has(mime))
      throw new WharfError(
        'validation_failed',
        `Send the file as the body with its content-type, one of: ${[...STORABLE].join(', ')}.`,
        [{ path: ['content-type'], message: mime ? `${mime.slice(0, 100)} is not a type WhatsApp sends` : 'missing' }],
      );
    const bytes = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    if (!bytes.length)
      throw new WharfError('validation_failed', 'The body is empty: send the file itself as the body.');
    const stored = await store.media.put(bytes, mime);
    res
      .status(201)
      .json({ id: stored.id, mime, size: stored.size, sha256: stored.sha256, url: `/api/media/${stored.id}` });
  });
  r.get('/:id', async (req, res) => {
    const file = /^[0-9a-f]{64}$/.test(req.params.id) ? await store.media.get(req.params.id) : null;
    if (!file)
      throw new WharfError(
        'not_found',
        `No stored media "${req.params.id.slice(0, 80)}" (files are kept for WHARF_MEDIA_RETENTION_DAYS).`,
      );
    // A file someone sent us is never run as a page of this origin (the console lives here too).
    res.set({
      'content-type': file.mime,
      'content-length': String(file.bytes.length),
      'x-content-type-options': 'nosniff',
      'content-security-policy': "sandbox; default-src 'none'",
      'cache-control': 'private, max-age=3600',
      'content-disposition': INLINE.test(file.mime) ? 'inline' : 'attachment',
    });
    res.end(file.bytes);
  });
  return r;
}
