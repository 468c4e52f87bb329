/**
 * Inbound media (SPEC §5, issue #20): look the file up with the channel's token, download it from the URL
 * Meta returned (the token goes there and nowhere else), check its type, size and SHA-256, and store the
 * bytes outside workflow history. The chat workflow gets a `MediaRef` — never the bytes. A file that cannot
 * be had (expired URL after retries, too big, wrong type, hash mismatch) leaves the message handled anyway,
 * with the reason on its log entry and in the ref (`missing`).
 */
import { ApplicationFailure } from '@temporalio/activity';
import { createHash } from 'node:crypto';
import { FAILURE } from '../lib/errors.js';
import { GraphError, MediaDownloadError, type GraphClient } from '../lib/graph/graph-client.js';
import type { Logger } from '../lib/logger.js';
import { MEDIA_KINDS, MEDIA_LIMITS, mimeAllowed, type MediaKind, type MediaRef } from '../lib/media.js';
import type { Store } from '../lib/store/store.js';
import type { InboundMessage } from '../lib/types.js';
import { resolveSecret } from './secrets.js';

/** How many fresh download URLs are tried when one has expired by the time it is used. */
const URL_ATTEMPTS = 3;

/** Meta's `sha256` as hex: the lookup answers hex, webhooks carry base64. */
function hexOf(sha: string): string | null {
  if (/^[0-9a-f]{64}$/i.test(sha)) return sha.toLowerCase();
  const b = Buffer.from(sha, 'base64');
  return b.length === 32 ? b.toString('hex') : null;
}

/** Builds the media activities. */
export function createMediaActivities({ store, graph, log }: { store: Store; graph: GraphClient; log: Logger }) {
  return {
    /**
     * Fetches and stores the file of an inbound media message; records the outcome on its log entry.
     * Retryable failures (Meta unreachable, 5xx) throw, so the activity's retry policy applies; everything
     * else ends in a ref with `missing` set.
     */
    async fetchInboundMedia({
      channelId,
      messageId,
      media,
    }: {
      channelId: string;
      messageId: string;
      media: NonNullable<InboundMessage['media']>;
    }): Promise<MediaRef> {
      const kind: MediaKind = (MEDIA_KINDS as readonly string[]).includes(media.kind)
        ? (media.kind as MediaKind)
        : 'document';
      const base: MediaRef = {
        kind,
        ...(media.caption ? { caption: media.caption } : {}),
        ...(media.filename ? { filename: media.filename } : {}),
        ...(media.voice ? { voice: true } : {}),
      };
      const done = async (ref: MediaRef): Promise<MediaRef> => {
        const logged = ref.id ? { ...ref, url: `/api/media/${ref.id}` } : ref;
        await store.messages.mergeInboundDetail(channelId, messageId, { media: logged });
        if (ref.missing)
          log.warn(
            { channelId, messageId, kind, reason: ref.missing },
            'inbound media could not be fetched; the message is handled without it',
          );
        return ref;
      };
      const ch = await store.channels.getRecent(channelId);
      if (!ch) return base;
      if (ch.provider === 'whatsapp_user') {
        // The session downloaded and stored the file when it arrived (activities/personal-media.ts).
        const personal = { ...base, ...(media.seconds ? { seconds: media.seconds } : {}) };
        if (media.storedId)
          return done({
            ...personal,
            id: media.storedId,
            mime: media.mimeType,
            size: media.size,
            sha256: media.sha256,
          });
        return done({ ...personal, missing: media.missing ?? 'the session could not download the file' });
      }
      if (!media.id) return done({ ...base, missing: 'the message names no media id' });
      const limit = MEDIA_LIMITS[kind];
      const accessToken = await resolveSecret(store, 'access_token', ch.config.access_token);

      let lastReason = '';
      for (let attempt = 1; attempt <= URL_ATTEMPTS; attempt++) {
        let info;
        try {
          info = await graph.getMedia({ mediaId: media.id, accessToken });
        } catch (err) {
          if (err instanceof GraphError && !err.retryable)
            return done({ ...base, missing: `Meta refused the media lookup (${err.code}: ${err.title})` });
          throw ApplicationFailure.create({
            type: FAILURE.graphUnavailable,
            message: `Looking up the media failed: ${(err as Error).message}`,
            nonRetryable: false,
          });
        }
        const mime = (info.mimeType ?? media.mimeType ?? '').trim();
        if (mime && !mimeAllowed(kind, mime))
          return done({ ...base, mime, missing: `type ${mime} is not one Meta documents for ${kind}` });
        if (info.fileSize !== null && info.fileSize > limit.maxBytes)
          return done({
            ...base,
            mime,
            size: info.fileSize,
            missing: `the file is ${info.fileSize} bytes, over the ${limit.maxBytes}-byte limit for ${kind}`,
          });
        let file;
        try {
          file = await graph.downloadMedia({ url: info.url, accessToken, maxBytes: limit.maxBytes });
        } catch (err) {
          if (err instanceof MediaDownloadError && err.reason === 'expired') {
            lastReason = err.message;
            continue; // the URL lives minutes: look the media up again for a fresh one
          }
          if (err instanceof MediaDownloadError && err.reason === 'too_big')
            return done({ ...base, mime, missing: err.message });
          throw ApplicationFailure.create({
            type: FAILURE.graphUnavailable,
            message: `Downloading the media failed: ${(err as Error).message}`,
            nonRetryable: false,
          });
        }
        const sha256 = createHash('sha256').update(file.bytes).digest('hex');
        const expected = hexOf(info.sha256 ?? media.sha256 ?? '');
        if (expected && expected !== sha256)
          return done({
            ...base,
            mime,
            size: file.bytes.length,
            missing: `the SHA-256 of the download (${sha256.slice(0, 12)}…) is not the one Meta gave (${expected.slice(0, 12)}…)`,
          });
        const storedMime = mime || file.mimeType || 'application/octet-stream';
        const stored = await store.media.put(file.bytes, storedMime, sha256);
        return done({ ...base, id: stored.id, mime: storedMime, size: stored.size, sha256 });
      }
      return done({ ...base, missing: `the download URL kept expiring (${lastReason})` });
    },
  };
}

/** The media activities' type, for `proxyActivities`. */
export type MediaActivities = ReturnType<typeof createMediaActivities>;
