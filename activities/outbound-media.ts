/**
 * Sending an agent's attachments (issue #20), one part of a reply at a time, inside the same claimed,
 * keyed sends as its text (see `sendReplies` in chat-activities.ts): a part that went out is never sent
 * again by a retry; only the one window no system can close remains (the provider accepted the file and the
 * process died before it was recorded).
 *
 * Cloud API: a stored file is uploaded (`POST /{phone_number_id}/media`) and sent by its Meta id; the upload
 * is remembered per phone number, so a retried send, or the same file sent again, reuses it. A URL is sent
 * as `link`: Meta fetches it, Wharf never does. Personal account: a stored file goes through Baileys as bytes;
 * a URL is sent as a link in a text (Wharf fetching an agent-chosen URL from its own network would be an SSRF
 * hole).
 */
import { ApplicationFailure } from '@temporalio/activity';
import { within } from '../lib/deadline.js';
import { FAILURE } from '../lib/errors.js';
import { GraphError, type GraphClient } from '../lib/graph/graph-client.js';
import type { Logger } from '../lib/logger.js';
import { MEDIA_LIMITS, mediaLine, mimeAllowed } from '../lib/media.js';
import type { Store } from '../lib/store/store.js';
import type { AttachmentKind, ChannelState, ReplyAttachment } from '../lib/types.js';

/** A file for a personal-account send: the bytes are read from the store in this process, never carried. */
export interface PersonalMediaSend {
  channelId: string;
  /** The chat id the reply goes to (as for texts). */
  to: string;
  kind: AttachmentKind;
  bytes: Buffer;
  mime: string;
  caption?: string;
  filename?: string;
}

/** The personal-account sends an attachment may need (held by the session worker). */
export interface PersonalSends {
  sendText(input: { channelId: string; to: string; text: string }): Promise<{ messageId: string }>;
  sendMedia?(input: PersonalMediaSend): Promise<{ messageId: string }>;
}

/**
 * How long one send attempt waits for an upload before it lets the activity retry (and the retry join the
 * upload): well inside the send activity's 30 s.
 */
export const UPLOAD_WAIT_MS = 20_000;

/** Meta codes meaning an uploaded media id is not (or no longer) usable: upload again once. */
const STALE_UPLOAD_CODES = new Set([131053, 100]);

/** The log line of an attachment part (`[image] caption`, `[document report.pdf]`). */
export function attachmentLine(a: ReplyAttachment): string {
  return mediaLine({ kind: a.kind === 'video' ? 'video' : a.kind, caption: a.caption, filename: a.filename });
}

/** Refused for good: retrying the same attachment cannot help. */
function refuse(message: string): ApplicationFailure {
  return ApplicationFailure.create({ type: FAILURE.sendRejected, message, nonRetryable: true });
}

/** Builds the attachment sender used by the chat activities. */
export function createAttachmentSender({
  store,
  graph,
  log,
  personal,
  uploadWaitMs = UPLOAD_WAIT_MS,
}: {
  store: Store;
  graph: GraphClient;
  log: Logger;
  personal?: PersonalSends;
  /** How long one send attempt waits for an upload (tests shorten it). @default {@link UPLOAD_WAIT_MS} */
  uploadWaitMs?: number;
}) {
  /**
   * Uploads under way in this process, per phone number and stored file: an attempt that stops waiting
   * leaves its upload running, and the retry (on this worker: a local activity's) joins it instead of
   * sending the file again; it is remembered (`saveUpload`) the moment Meta answers.
   */
  const uploading = new Map<string, Promise<string>>();
  /** Reads a stored file and checks it against what WhatsApp accepts for the kind. */
  async function storedFile(a: ReplyAttachment & { mediaId: string }): Promise<{ bytes: Buffer; mime: string }> {
    const file = await store.media.get(a.mediaId);
    if (!file)
      throw refuse(
        `The stored file ${a.mediaId.slice(0, 12)}… does not exist (never stored, or removed by retention).`,
      );
    const limit = MEDIA_LIMITS[a.kind];
    if (file.bytes.length > limit.maxBytes)
      throw refuse(
        `The file is ${file.bytes.length} bytes, over WhatsApp's ${limit.maxBytes}-byte limit for ${a.kind}.`,
      );
    if (!mimeAllowed(a.kind, file.mime))
      throw refuse(`WhatsApp does not accept ${file.mime} as ${a.kind} (it takes ${limit.types.join(', ')}).`);
    return file;
  }

  /** A name for an uploaded file: the attachment's, or one made from the kind and type. */
  const nameOf = (a: ReplyAttachment, mime: string): string =>
    a.filename ?? `${a.kind}.${(mime.split('/')[1] ?? 'bin').split(/[;+]/)[0]}`;

  async function sendCloud(ch: ChannelState, to: string, a: ReplyAttachment, accessToken: string): Promise<string> {
    const phoneNumberId = String(ch.config.phone_number_id);
    const common = { phoneNumberId, accessToken, to, kind: a.kind, caption: a.caption, filename: a.filename };
    if (a.url) return (await graph.sendMedia({ ...common, link: a.url })).messageId;
    const mediaId = a.mediaId as string;
    const file = await storedFile({ ...a, mediaId });
    const upload = (): Promise<string> => {
      const key = `${phoneNumberId}\u0000${mediaId}`;
      let running = uploading.get(key);
      if (!running) {
        running = (async () => {
          const { id } = await graph.uploadMedia({
            phoneNumberId,
            accessToken,
            bytes: file.bytes,
            mime: file.mime,
            filename: nameOf(a, file.mime),
          });
          await store.outboundMedia.saveUpload(phoneNumberId, mediaId, id);
          return id;
        })();
        // Forgotten once settled; a failure reaches the attempts waiting on it (if none waits, it is not unhandled).
        const forget = (): boolean => uploading.delete(key);
        void running.then(forget, forget);
        uploading.set(key, running);
      }
      // The send activity's own time is bounded (30 s), a large file on a slow link is not: after
      // `uploadWaitMs` this attempt fails to be retried, and the retry joins the upload.
      return within(running, uploadWaitMs, () => {
        throw ApplicationFailure.create({
          type: FAILURE.sendInProgress,
          message: `The file (${file.bytes.length} bytes) is still uploading to Meta; the send is tried again once it is up.`,
          nonRetryable: false,
        });
      });
    };
    const cached = await store.outboundMedia.findUpload(phoneNumberId, mediaId);
    try {
      return (
        await graph.sendMedia({
          ...common,
          mediaId: cached ?? (await upload()),
          filename: a.kind === 'document' ? nameOf(a, file.mime) : undefined,
        })
      ).messageId;
    } catch (err) {
      // A remembered upload Meta no longer knows: forget it and upload once more.
      if (!cached || !(err instanceof GraphError) || err.retryable || !STALE_UPLOAD_CODES.has(err.code)) throw err;
      log.info({ channelId: ch.id, code: err.code }, 'a remembered upload was refused; uploading the file again');
      await store.outboundMedia.dropUpload(phoneNumberId, mediaId);
      return (
        await graph.sendMedia({
          ...common,
          mediaId: await upload(),
          filename: a.kind === 'document' ? nameOf(a, file.mime) : undefined,
        })
      ).messageId;
    }
  }

  async function sendPersonal(ch: ChannelState, chatId: string, a: ReplyAttachment): Promise<string> {
    if (!personal)
      throw ApplicationFailure.create({
        type: FAILURE.sessionUnavailable,
        message: 'This worker holds no WhatsApp session for the channel.',
        nonRetryable: false,
      });
    if (a.url)
      return (
        await personal.sendText({ channelId: ch.id, to: chatId, text: a.caption ? `${a.caption}\n${a.url}` : a.url })
      ).messageId;
    if (!personal.sendMedia) throw refuse('This worker cannot send files over a personal account.');
    const file = await storedFile({ ...a, mediaId: a.mediaId as string });
    return (
      await personal.sendMedia({
        channelId: ch.id,
        to: chatId,
        kind: a.kind,
        bytes: file.bytes,
        mime: file.mime,
        caption: a.caption,
        filename: a.kind === 'document' ? nameOf(a, file.mime) : undefined,
      })
    ).messageId;
  }

  return {
    /**
     * Sends one attachment part (already claimed under `key`) and returns the provider's message id. Meta's
     * refusals are thrown as `GraphError` (the caller records them as for texts); a file WhatsApp cannot take
     * is recorded as failed here and thrown as a non-retryable `WharfSendRejected`.
     */
    async send({
      ch,
      chatId,
      to,
      key,
      attachment,
      accessToken,
    }: {
      ch: ChannelState;
      chatId: string;
      to: string;
      key: string;
      attachment: ReplyAttachment;
      accessToken: () => Promise<string>;
    }): Promise<string> {
      const { kind, mediaId, url, caption, filename } = attachment;
      const described = {
        kind,
        ...(mediaId ? { mediaId, url: `/api/media/${mediaId}` } : { link: url }),
        ...(caption ? { caption } : {}),
        ...(filename ? { filename } : {}),
      };
      await store.outboundMedia.describeOutbound(ch.id, key, kind, { attachment: described });
      try {
        return ch.provider === 'whatsapp_user'
          ? await sendPersonal(ch, chatId, attachment)
          : await sendCloud(ch, to, attachment, await accessToken());
      } catch (err) {
        if (err instanceof ApplicationFailure && err.nonRetryable) {
          await store.messages.recordOutbound({
            channelId: ch.id,
            key,
            chatId,
            address: to,
            text: attachmentLine(attachment),
            status: 'failed',
            detail: { reason: err.message, attachment: described },
          });
          log.warn({ channelId: ch.id, key, reason: err.message }, 'an attachment could not be sent');
        }
        throw err;
      }
    },
  };
}

/** The attachment sender's type. */
export type AttachmentSender = ReturnType<typeof createAttachmentSender>;
