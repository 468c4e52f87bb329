/**
 * An agent that answers with files (agent kind `temporal`, issue #20). Its result is `{reply, attachments}`:
 * `reply` is Markdown (may be empty), and each attachment is `{kind, mediaId | url, caption?, filename?}` —
 * `kind` one of `image`, `document`, `audio`, `video`; `mediaId` a file in Wharf's media store (one a sender
 * sent, as `input.media.id`, or one stored with `POST /api/media`), `url` a public https URL (the Cloud API
 * sends it as a link Meta fetches; a personal account sends it as a link in a text). Files go out after the
 * text, in order.
 *
 * This one sends a received image, document, audio or video straight back, and answers
 * `link <kind> <https-url>` with that URL as a file.
 */

/** A file reference as Wharf passes it (never the bytes: fetch those with `GET /api/media/:id`). */
export interface AgentMedia {
  id?: string;
  kind: 'image' | 'audio' | 'video' | 'document' | 'sticker';
  mime?: string;
  size?: number;
  sha256?: string;
  caption?: string;
  filename?: string;
  voice?: boolean;
  missing?: string;
}

/** What Wharf passes to an agent workflow (the file agent reads only these fields). */
export interface FileAgentInput {
  text: string;
  media?: AgentMedia;
}

/** A file to send back. */
export interface AgentAttachment {
  kind: 'image' | 'document' | 'audio' | 'video';
  mediaId?: string;
  url?: string;
  caption?: string;
  filename?: string;
}

/** What an agent workflow may return. */
export interface FileAgentOutput {
  reply: string;
  attachments?: AgentAttachment[];
}

/** Sends the sender's file back, or the file a `link <kind> <url>` names. */
export async function fileAgent(input: FileAgentInput): Promise<FileAgentOutput> {
  const m = input.media;
  if (m?.id && m.kind !== 'sticker') {
    return {
      reply: input.text.includes('#fileonly') ? '' : `Here is your ${m.kind} back.`,
      attachments: [
        { kind: m.kind, mediaId: m.id, caption: 'back to you', ...(m.filename ? { filename: m.filename } : {}) },
      ],
    };
  }
  const link = /^link (image|document|audio|video) (\S+)$/.exec(input.text.trim());
  if (link)
    return { reply: '', attachments: [{ kind: link[1] as AgentAttachment['kind'], url: link[2], caption: 'linked' }] };
  return { reply: `No file in "${input.text}".` };
}
