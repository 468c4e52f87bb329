/**
 * Attachments of an agent's reply (issue #20): checking what an agent handed back, and taking the images
 * out of an OpenAI-compatible agent's Markdown. Used by activities only (the Markdown parser is not
 * workflow code).
 *
 * SSRF: Wharf never fetches an attachment's URL itself. On the Cloud API it goes to Meta as `link` (Meta's
 * servers fetch it); on a personal account it is sent as a link in a text (WhatsApp shows a preview). Only
 * files already in the media store are uploaded or sent as bytes.
 */
import { fromMarkdown } from 'mdast-util-from-markdown';
import { gfmFromMarkdown } from 'mdast-util-gfm';
import { gfm } from 'micromark-extension-gfm';
import type { Nodes } from 'mdast';
import { ATTACHMENT_KINDS, type AttachmentKind, type ReplyAttachment } from './types.js';

/** Most attachments one reply may carry; the rest are refused (a runaway agent must not flood a chat). */
export const MAX_ATTACHMENTS = 10;
/** Longest caption Meta accepts on a media message. */
export const CAPTION_LIMIT = 1024;
/** Longest URL accepted as a link. */
const URL_LIMIT = 2048;

/** Whether `url` is an absolute `https` URL without credentials, short enough to hand to Meta as `link`. */
export function isSendableUrl(url: string): boolean {
  if (url.length > URL_LIMIT) return false;
  try {
    const u = new URL(url);
    return u.protocol === 'https:' && !u.username && !u.password && !!u.hostname;
  } catch {
    return false;
  }
}

/**
 * Checks the attachments an agent returned (a Temporal agent's result is outside input): well-formed ones
 * are kept, trimmed to what WhatsApp accepts; the others are named in `problems` (recorded on the message
 * log, never thrown: the text of the reply still goes).
 */
export function checkAttachments(raw: unknown): { attachments: ReplyAttachment[]; problems: string[] } {
  const attachments: ReplyAttachment[] = [];
  const problems: string[] = [];
  if (raw === undefined || raw === null) return { attachments, problems };
  if (!Array.isArray(raw)) return { attachments, problems: ['attachments must be an array'] };
  for (const [i, a] of raw.entries()) {
    const at = `attachment ${i + 1}`;
    if (attachments.length >= MAX_ATTACHMENTS) {
      problems.push(`${at}: more than ${MAX_ATTACHMENTS} attachments in one reply`);
      continue;
    }
    if (typeof a !== 'object' || a === null) {
      problems.push(`${at}: not an object`);
      continue;
    }
    const o = a as Record<string, unknown>;
    const kind = o.kind;
    if (typeof kind !== 'string' || !(ATTACHMENT_KINDS as readonly string[]).includes(kind)) {
      problems.push(`${at}: kind must be one of ${ATTACHMENT_KINDS.join(', ')}`);
      continue;
    }
    const mediaId = typeof o.mediaId === 'string' ? o.mediaId : undefined;
    const url = typeof o.url === 'string' ? o.url : undefined;
    if (!!mediaId === !!url) {
      problems.push(`${at}: give exactly one of mediaId and url`);
      continue;
    }
    if (mediaId && !/^[0-9a-f]{64}$/.test(mediaId)) {
      problems.push(`${at}: mediaId must be a stored file's id (64 hex characters)`);
      continue;
    }
    if (url && !isSendableUrl(url)) {
      problems.push(`${at}: url must be an https URL without credentials, at most ${URL_LIMIT} characters`);
      continue;
    }
    const caption =
      typeof o.caption === 'string' && o.caption.trim() ? o.caption.trim().slice(0, CAPTION_LIMIT) : undefined;
    const filename =
      typeof o.filename === 'string' && o.filename.trim()
        ? o.filename
            .trim()
            .replace(/[\\/\p{Cc}]/gu, '_')
            .slice(0, 240)
        : undefined;
    attachments.push({
      kind: kind as AttachmentKind,
      ...(mediaId ? { mediaId } : { url }),
      ...(caption ? { caption } : {}),
      ...(filename ? { filename } : {}),
    });
  }
  return { attachments, problems };
}

const PARSE_OPTIONS = { extensions: [gfm()], mdastExtensions: [gfmFromMarkdown()] };

/**
 * Takes the images out of an OpenAI-compatible agent's Markdown: `![caption](https://…)` becomes an image
 * attachment (alt text as caption) and leaves the text. Found with the Markdown parser, so an image inside a
 * code block or an inline code span stays text. Images whose URL is not `https` stay in the text, where
 * the formatter renders them as `alt (url)`. At most {@link MAX_ATTACHMENTS}.
 */
export function takeMarkdownImages(markdown: string): { text: string; attachments: ReplyAttachment[] } {
  if (!markdown.includes('![')) return { text: markdown, attachments: [] };
  const found: Array<{ start: number; end: number; attachment: ReplyAttachment }> = [];
  const visit = (node: Nodes): void => {
    if (node.type === 'image' && isSendableUrl(node.url) && found.length < MAX_ATTACHMENTS) {
      const start = node.position?.start.offset;
      const end = node.position?.end.offset;
      if (start !== undefined && end !== undefined) {
        const caption = node.alt?.trim().slice(0, CAPTION_LIMIT);
        found.push({ start, end, attachment: { kind: 'image', url: node.url, ...(caption ? { caption } : {}) } });
      }
      return;
    }
    if ('children' in node) for (const child of node.children) visit(child as Nodes);
  };
  visit(fromMarkdown(markdown, PARSE_OPTIONS));
  if (!found.length) return { text: markdown, attachments: [] };
  let text = '';
  let from = 0;
  for (const f of found) {
    text += markdown.slice(from, f.start);
    from = f.end;
  }
  text += markdown.slice(from);
  // Lines the images stood on alone are dropped with them.
  text = text.replace(/\n[ \t]*\n(?:[ \t]*\n)+/g, '\n\n').trim();
  return { text, attachments: found.map((f) => f.attachment) };
}
