/** `GET /api/media/:id` (SPEC §4): a stored inbound file, with its type. Auth as every `/api` route. */
import { Router } from 'express';
import { WharfError } from '../lib/errors.js';
import type { Store } from '../lib/store/store.js';

/** Types a browser may show inline; anything else is served as a download. */
const INLINE = /^(image\/(jpeg|png|webp)|audio\/[a-z0-9.+-]+|video\/[a-z0-9.+-]+|application\/pdf)$/;

/** Builds the router. */
export function mediaRouter({ store }: { store: Store }): Router {
  const r = Router();
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
