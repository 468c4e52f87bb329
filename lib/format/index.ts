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

/** Renders agent Markdown for WhatsApp and splits it into sendable parts; `[]` when nothing visible remains. */
export function formatReply(markdown: string, opts: FormatReplyOptions): string[] {
  const text = toWhatsApp(markdown);
  if (text.trim() === '') return [];
  return splitMessage(text, opts.limit);
}
