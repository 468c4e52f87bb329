/**
 * Inbound media (SPEC §5): the kinds WhatsApp carries, the types and sizes Meta documents for each, the
 * reference a message carries instead of the bytes, and the line the echo agent answers with. Pure: imported
 * by workflows as well as activities.
 */

/** The media kinds of a WhatsApp message. */
export const MEDIA_KINDS = ['image', 'audio', 'video', 'document', 'sticker'] as const;
/** A media kind. */
export type MediaKind = (typeof MEDIA_KINDS)[number];

/** What a message carries about its file: never the bytes (those are in the store, by `id`). */
export interface MediaRef {
  /** The stored file's id (`GET /api/media/:id`); absent when the file could not be fetched. */
  id?: string;
  kind: MediaKind;
  mime?: string;
  size?: number;
  /** Hex SHA-256 of the bytes. */
  sha256?: string;
  caption?: string;
  filename?: string;
  /** A voice note (audio recorded in WhatsApp) rather than an audio file. */
  voice?: boolean;
  /** Length of audio or video, when known. */
  seconds?: number;
  /** Why the file is missing (download failed, too big, wrong type, hash mismatch); the message is still handled. */
  missing?: string;
}

const MB = 1024 * 1024;

/**
 * Meta's documented limits per kind (Cloud API "Supported media types"): the MIME types accepted and the
 * largest file. A sticker may be animated (500 KB) or static (100 KB); both are accepted up to 500 KB.
 */
export const MEDIA_LIMITS: Record<MediaKind, { maxBytes: number; types: readonly string[] }> = {
  image: { maxBytes: 5 * MB, types: ['image/jpeg', 'image/png'] },
  audio: { maxBytes: 16 * MB, types: ['audio/aac', 'audio/amr', 'audio/mpeg', 'audio/mp4', 'audio/ogg'] },
  video: { maxBytes: 16 * MB, types: ['video/3gpp', 'video/mp4'] },
  document: {
    maxBytes: 100 * MB,
    types: [
      'text/plain',
      'application/pdf',
      'application/vnd.ms-powerpoint',
      'application/msword',
      'application/vnd.ms-excel',
      'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
      'application/vnd.openxmlformats-officedocument.presentationml.presentation',
      'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
    ],
  },
  sticker: { maxBytes: 500 * 1024, types: ['image/webp'] },
};

/** Whether `mime` (parameters such as `; codecs=opus` ignored) is one Meta documents for `kind`. */
export function mimeAllowed(kind: MediaKind, mime: string): boolean {
  const base = mime.split(';')[0].trim().toLowerCase();
  // Documents may be any type in practice (Meta delivers what the user attached); the list is what it sends.
  return kind === 'document' || MEDIA_LIMITS[kind].types.includes(base);
}

/** `0:07`-style length. */
export function formatSeconds(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

/**
 * The echo agent's one-line answer to a media message (SPEC §5): `[image] look at this`, `[voice note 0:07]`,
 * `[document invoice.pdf]`. Deterministic: checks rely on it.
 */
export function mediaLine(media: Pick<MediaRef, 'kind' | 'caption' | 'voice' | 'seconds' | 'filename'>): string {
  const label = media.kind === 'audio' && media.voice ? 'voice note' : media.kind;
  const extra =
    media.seconds !== undefined
      ? ` ${formatSeconds(media.seconds)}`
      : media.kind === 'document' && media.filename
        ? ` ${media.filename}`
        : '';
  const caption = media.caption?.trim();
  return `[${label}${extra}]${caption ? ` ${caption}` : ''}`;
}

/** The text an agent other than echo gets for a media message: the caption, and a note when the file is missing. */
export function mediaText(media: MediaRef): string {
  const caption = media.caption?.trim() ?? '';
  const what = media.kind === 'audio' && media.voice ? 'a voice note' : `a ${media.kind}`;
  if (media.missing)
    return `${caption ? `${caption}\n` : ''}(The sender attached ${what}, but the file could not be fetched: ${media.missing}.)`;
  return caption || `(The sender sent ${what}${media.filename ? ` named ${media.filename}` : ''}.)`;
}
