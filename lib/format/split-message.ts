/**
 * Splits outgoing text into parts that fit a provider's per-message limit (4096 for the Cloud API; passed in).
 *
 * Parts are packed greedily from blocks (paragraphs separated by blank lines, and fenced code blocks kept whole),
 * falling back to lines, then whitespace-separated words, and only then hard-cutting a single over-long word.
 * A fenced code block larger than the limit is cut at line boundaries (then words, then hard) and every part is
 * re-fenced so it stays a valid code block. Lengths are UTF-16 code units, and surrogate pairs are never split.
 */

/** A piece of text and the separator that preceded it in the source (dropped when a part boundary falls there). */
interface Unit {
  text: string;
  sep: string;
  code?: { open: string; close: string; body: string };
}

const FENCE_OPEN = /^\s*```/;
const FENCE_CLOSE = /^\s*```\s*$/;
const BLANK = /^\s*$/;
/** The two newlines joining the fence lines to the body of a re-fenced part. */
const FENCE_NEWLINES = 2;

/** Splits `text` into ordered, trimmed, non-empty parts of at most `limit` UTF-16 code units each. */
export function splitMessage(text: string, limit: number): string[] {
  if (!Number.isInteger(limit) || limit < 2) throw new RangeError(`limit must be an integer >= 2, got ${limit}`);
  // Parts are always trimmed, including a text that fits whole: leading/trailing blank space is never content.
  const trimmed = text.trim();
  if (trimmed === '') return [];
  if (trimmed.length <= limit) return [trimmed];
  return pack(blocks(trimmed), limit, splitBlock)
    .map((part) => part.trim())
    .filter((part) => part !== '');
}

/**
 * Greedy packing: as many units per part as fit; a unit too large on its own is split by `split`, whose last
 * piece stays open so following units can still join it.
 */
function pack(units: Unit[], limit: number, split: (unit: Unit, limit: number) => string[]): string[] {
  const parts: string[] = [];
  let current: string | undefined;
  for (const unit of units) {
    if (current !== undefined && current.length + unit.sep.length + unit.text.length <= limit) {
      current += unit.sep + unit.text;
      continue;
    }
    if (current !== undefined) parts.push(current);
    if (unit.text.length <= limit) {
      current = unit.text;
      continue;
    }
    const pieces = split(unit, limit);
    parts.push(...pieces.slice(0, -1));
    current = pieces[pieces.length - 1];
  }
  if (current !== undefined) parts.push(current);
  return parts;
}

/** Paragraphs and closed fenced code blocks, each remembering whether a blank line or a newline preceded it. */
function blocks(text: string): Unit[] {
  const lines = text.split('\n');
  // Index of the nearest closing-fence line at or after each line, so finding a block's end is O(1).
  const nextClose = new Array<number>(lines.length + 1).fill(-1);
  for (let i = lines.length - 1; i >= 0; i--) nextClose[i] = FENCE_CLOSE.test(lines[i]) ? i : nextClose[i + 1];

  const units: Unit[] = [];
  let sep = '';
  let paragraph: string[] = [];
  const flush = (): void => {
    if (paragraph.length === 0) return;
    units.push({ text: paragraph.join('\n'), sep });
    sep = '\n';
    paragraph = [];
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (BLANK.test(line)) {
      flush();
      if (units.length > 0) sep = '\n\n';
      continue;
    }
    const close = isFenceOpen(line) ? nextClose[i + 1] : -1;
    if (close === -1) {
      paragraph.push(line);
      continue;
    }
    flush();
    const body = lines.slice(i + 1, close).join('\n');
    units.push({ text: lines.slice(i, close + 1).join('\n'), sep, code: { open: line, close: lines[close], body } });
    sep = '\n';
    i = close;
  }
  flush();
  return units;
}

/** A line starting with ``` opens a block, unless it also closes inline monospace (```like this```). */
function isFenceOpen(line: string): boolean {
  if (!FENCE_OPEN.test(line)) return false;
  const start = line.indexOf('```');
  return !line.slice(start + 3).includes('```');
}

function splitBlock(unit: Unit, limit: number): string[] {
  const code = unit.code;
  if (code) {
    const room = limit - code.open.length - code.close.length - FENCE_NEWLINES;
    // Room for at least one surrogate pair is needed to always make progress; below that a valid fenced part
    // cannot be built, so degrade to plain lines rather than exceed the limit.
    if (room >= 2) return splitLines(code.body, room).map((body) => `${code.open}\n${body}\n${code.close}`);
  }
  return splitLines(unit.text, limit);
}

function splitLines(text: string, limit: number): string[] {
  const units = text.split('\n').map((line, i) => ({ text: line, sep: i === 0 ? '' : '\n' }));
  return pack(units, limit, (unit, max) => splitWords(unit.text, max));
}

function splitWords(line: string, limit: number): string[] {
  // split with a capture group alternates word, whitespace, word…; each word carries the whitespace before it.
  const tokens = line.split(/(\s+)/);
  const units: Unit[] = [];
  for (let i = 0; i < tokens.length; i += 2) units.push({ text: tokens[i], sep: i === 0 ? '' : tokens[i - 1] });
  return pack(units, limit, (unit, max) => hardCut(unit.text, max));
}

function hardCut(word: string, limit: number): string[] {
  const pieces: string[] = [];
  let start = 0;
  while (start < word.length) {
    let end = Math.min(start + limit, word.length);
    // Never end a piece on a high surrogate: its low half would start the next piece.
    if (end < word.length && isHighSurrogate(word.charCodeAt(end - 1))) end--;
    pieces.push(word.slice(start, end));
    start = end;
  }
  return pieces;
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}
