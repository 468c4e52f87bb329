/**
 * Outgoing message formatting: agent Markdown → WhatsApp text → parts that fit the provider's message limit.
 *
 * @example
 * ```ts
 * import { formatReply } from '../lib/format/index.js';
 *
 * formatReply('# Plan\n\n1. **Fetch** the `report`\n2. See [docs](https://example.com)', { limit: 4096 });
 * // → ['*Plan*\n\n1. *Fetch* the `report`\n2. See docs (https://example.com)']
 * ```
 */
import { toWhatsApp } from './markdown-to-whatsapp.js';
import { splitMessage } from './split-message.js';

export { toWhatsApp } from './markdown-to-whatsapp.js';
export { splitMessage } from './split-message.js';

/** Options for {@link formatReply}. */
export interface FormatReplyOptions {
  /** The provider's maximum message length in UTF-16 code units (4096 for the Cloud API). */
  limit: number;
}

/**
 * One line in which Markdown finds nothing to format, so {@link toWhatsApp} would return it unchanged:
 * letters, digits, spaces and plain punctuation, starting with a letter (no block construct can start)
 * and ending with a non-space, without marker, escape, bracket, entity or HTML characters and without
 * what GFM would turn into a link. A property test holds this to `toWhatsApp(s) === s`.
 */
export function isPlainText(s: string): boolean {
  return PLAIN.test(s) && !LINKISH.test(s);
}
const PLAIN = /^\p{L}(?:[\p{L}\p{M}\p{N} ,.;:?!'"()%/+=-]*[\p{L}\p{M}\p{N}.,;:?!'")%])?$/u;
const LINKISH = /www\.|:\/\/|@/i;

/** Renders agent Markdown for WhatsApp and splits it into sendable parts; `[]` when nothing visible remains. */
export function formatReply(markdown: string, opts: FormatReplyOptions): string[] {
  // Plain chat lines (most replies of a conversation) skip the parser: the result would be the same.
  const text = isPlainText(markdown) ? markdown : toWhatsApp(markdown);
  if (text.trim() === '') return [];
  return splitMessage(text, opts.limit);
}
