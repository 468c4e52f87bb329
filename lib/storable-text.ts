/**
 * Text as PostgreSQL can store it. Postgres' `text` refuses the NUL character (SQLSTATE 22021) and `jsonb`
 * refuses `\u0000` and lone surrogates, so outside input carrying them would fail every retry of the
 * statement that records it and stall the chat behind it. Pure string functions: imported by the store and
 * by the parsers of outside input.
 */

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const LONE_SURROGATE_ALL = new RegExp(LONE_SURROGATE.source, 'g');

/**
 * `s` with each NUL replaced by U+FFFD and each lone surrogate made U+FFFD — visibly changed, never silently
 * dropped. The same input always gives the same output, so a look-up with an odd string finds what was
 * stored under it.
 */
export function storable(s: string): string {
  const clean = s.includes('\u0000') ? s.replaceAll('\u0000', '\uFFFD') : s;
  return LONE_SURROGATE.test(clean) ? clean.replace(LONE_SURROGATE_ALL, '\uFFFD') : clean;
}
