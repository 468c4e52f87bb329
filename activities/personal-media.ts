/**
 * Media on a personal account (Baileys), both ways (issue #20).
 *
 * Inbound: the session downloads a media message's file the moment it arrives (Baileys' `downloadMediaMessage`
 * decrypts it with the key the message carries; that key must not travel into workflow history, so the
 * download cannot wait for the chat workflow), checks its size against the kind's limit and its SHA-256 against
 * the one the message carries, and stores it in the same content-addressed store as Cloud API media. The
 * message then carries only the stored id; a file that cannot be had carries why (`missing`), and the chat
 * workflow handles it as it does a Cloud API failure. Only WhatsApp's own media hosts are fetched from: a
 * message names its download URL, and a hostile sender must not make Wharf fetch from its network.
 *
 * Outbound: a stored file goes through Baileys' `sendMessage` as bytes (`{image}`, `{document, fileName}`,
 * `{audio}`, `{video}`), on the worker that holds the socket, with the same first-contact guard as texts.
 */
import { createHash } from 'node:crypto';
import {
  downloadMediaMessage,
  extractMessageContent,
  getContentType,
  type WAMessage,
  type proto,
} from '@whiskeysockets/baileys';
import { within } from '../lib/deadline.js';
import type { Logger } from '../lib/logger.js';
import { MEDIA_LIMITS, type MediaKind } from '../lib/media.js';
import type { Store } from '../lib/store/store.js';
import type { InboundMessage } from '../lib/types.js';
import type { PersonalMediaSend } from './outbound-media.js';
import type { LiveSession, SessionSocket } from './personal-session/session-registry.js';
import { sendOverSession } from './personal-session/send-text.js';

/** How long one inbound download may take before the message goes on without its file. */
const DOWNLOAD_TIMEOUT_MS = 60_000;

/** Baileys' default media host; a message's `directPath` is fetched from it (or from its `url`'s host). */
const DEFAULT_MEDIA_HOST = 'mmg.whatsapp.net';

/** WhatsApp's media CDN hosts: the only ones a download may go to unless a test says otherwise. */
export function isWhatsAppMediaHost(host: string): boolean {
  const h = host.toLowerCase().replace(/:\d+$/, '');
  return h === 'whatsapp.net' || h.endsWith('.whatsapp.net');
}

/** The URL Baileys would download a media message from (its rule: `directPath` on the `url`'s host, else `url`). */
export function downloadUrlOf(media: { url?: string | null; directPath?: string | null }): URL | null {
  let host: string | undefined;
  try {
    host = media.url ? new URL(media.url).host : undefined;
  } catch {
    host = undefined;
  }
  try {
    return media.directPath
      ? new URL(`https://${host ?? DEFAULT_MEDIA_HOST}${media.directPath}`)
      : media.url
        ? new URL(media.url)
        : null;
  } catch {
    return null;
  }
}

/** The media part of a WhatsApp message Baileys can download. */
type MediaContent = proto.Message.IImageMessage &
  proto.Message.IDocumentMessage &
  proto.Message.IAudioMessage &
  proto.Message.IVideoMessage & { directPath?: string | null; url?: string | null };

/** What the inbound side needs. */
export interface PersonalMediaInboundDeps {
  store: Store;
  log: Logger;
  /** Which download hosts are allowed (default: WhatsApp's CDN, {@link isWhatsAppMediaHost}). */
  mediaHostAllowed?: (host: string) => boolean;
  /** The download (default Baileys' `downloadMediaMessage`); the socket re-requests an expired file. */
  download?: (message: WAMessage, socket: SessionSocket | undefined) => Promise<Buffer>;
}

/** Builds the inbound side: `attach` downloads and stores a normalised message's file. */
export function createPersonalMediaInbound({
  store,
  log,
  mediaHostAllowed = isWhatsAppMediaHost,
  download,
}: PersonalMediaInboundDeps) {
  const fetchFile =
    download ??
    (async (message: WAMessage, socket: SessionSocket | undefined): Promise<Buffer> => {
      const reupload = (socket as { updateMediaMessage?: (m: WAMessage) => Promise<WAMessage> } | undefined)
        ?.updateMediaMessage;
      const ctx = { logger: log as never, reuploadRequest: reupload ?? (async (m: WAMessage) => m) };
      // Baileys' download takes no abort signal: the message goes on without its file after the timeout.
      return await within(downloadMediaMessage(message, 'buffer', {}, ctx), DOWNLOAD_TIMEOUT_MS, () => {
        throw new Error(`no file within ${DOWNLOAD_TIMEOUT_MS / 1000} s`);
      });
    });

  return {
    /**
     * Returns `n` with its file stored (`media.storedId`, `size`, `sha256`) or with `media.missing` saying why
     * not. Never throws: a file that cannot be had must not keep its message from the agent.
     */
    async attach(n: InboundMessage, raw: WAMessage, socket: SessionSocket | undefined): Promise<InboundMessage> {
      if (!n.media) return n;
      const content = extractMessageContent(raw.message);
      const type = content ? getContentType(content) : undefined;
      const m = (type && content ? content[type] : undefined) as MediaContent | undefined;
      const kind = n.media.kind as MediaKind;
      const limit = MEDIA_LIMITS[kind] ?? MEDIA_LIMITS.document;
      const extra = {
        ...(m?.fileName ? { filename: m.fileName } : {}),
        ...(m?.ptt ? { voice: true } : {}),
        ...(typeof m?.seconds === 'number' && m.seconds > 0 && (kind === 'audio' || kind === 'video')
          ? { seconds: m.seconds }
          : {}),
      };
      const missing = (why: string): InboundMessage => {
        log.warn(
          { channelId: n.channelId, messageId: n.id, kind, reason: why },
          'personal-account media could not be fetched; the message is handled without it',
        );
        return { ...n, media: { ...n.media!, ...extra, missing: why } };
      };
      if (!m || typeof m !== 'object') return missing('the message carries no downloadable file');
      const declared = m.fileLength === null || m.fileLength === undefined ? null : Number(m.fileLength);
      if (declared !== null && declared > limit.maxBytes)
        return missing(`the file is ${declared} bytes, over the ${limit.maxBytes}-byte limit for ${kind}`);
      const url = downloadUrlOf(m);
      if (!url) return missing('the message names no download URL');
      if (url.protocol !== 'https:' && url.protocol !== 'http:')
        return missing(`refusing a ${url.protocol} download URL`);
      if (!mediaHostAllowed(url.host)) return missing(`the download host ${url.host} is not WhatsApp's`);
      let bytes: Buffer;
      try {
        bytes = await fetchFile(raw, socket);
      } catch (err) {
        return missing(`the download failed (${(err as Error).message.slice(0, 200)})`);
      }
      if (bytes.length > limit.maxBytes)
        return missing(`the file is ${bytes.length} bytes, over the ${limit.maxBytes}-byte limit for ${kind}`);
      const sha256 = createHash('sha256').update(bytes).digest('hex');
      const expected = m.fileSha256 && m.fileSha256.length === 32 ? Buffer.from(m.fileSha256).toString('hex') : null;
      if (expected && expected !== sha256)
        return missing(
          `the SHA-256 of the download (${sha256.slice(0, 12)}…) is not the one the message gave (${expected.slice(0, 12)}…)`,
        );
      const mime = (m.mimetype ?? n.media.mimeType ?? '').split(';')[0].trim() || 'application/octet-stream';
      try {
        await store.media.put(bytes, mime, sha256);
      } catch (err) {
        return missing(`the file could not be stored (${(err as Error).message.slice(0, 200)})`);
      }
      return { ...n, media: { ...n.media, ...extra, mimeType: mime, storedId: sha256, sha256, size: bytes.length } };
    },
  };
}

/** Builds the outbound side: `sendMedia` sends a file over this process's live socket for the channel. */
export function createPersonalMediaSender({
  sessions,
  store,
  sessionQueue,
  firstContactGuard = true,
}: {
  sessions: Map<string, LiveSession>;
  store: Store;
  sessionQueue: string;
  firstContactGuard?: boolean;
}) {
  const target = { registry: sessions, store, sessionQueue, firstContactGuard };
  return {
    /** Sends one file; its id is recorded so its echo is never taken as inbound. */
    async sendMedia({
      channelId,
      to,
      kind,
      bytes,
      mime,
      caption,
      filename,
    }: PersonalMediaSend): Promise<{ messageId: string }> {
      const content: Record<string, unknown> =
        kind === 'document'
          ? { document: bytes, mimetype: mime, fileName: filename ?? 'file', ...(caption ? { caption } : {}) }
          : kind === 'audio'
            ? { audio: bytes, mimetype: mime }
            : { [kind]: bytes, mimetype: mime, ...(caption ? { caption } : {}) };
      return sendOverSession(target, channelId, to, content, caption ?? '');
    },
  };
}
