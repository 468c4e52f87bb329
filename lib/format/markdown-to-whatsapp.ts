/**
 * Markdown → WhatsApp text. Agents write CommonMark + GFM; WhatsApp understands only a handful of markers
 * (`*bold*`, `_italic_`, `~strike~`, `` `code` ``, ```` ``` ```` blocks, `- `/`1. ` lists, `> ` quotes). We parse
 * with micromark/mdast and render the tree, so every marker we emit comes from a node that meant formatting.
 *
 * WhatsApp's rule (as observed in the apps): a marker opens only at line start or after whitespace/punctuation and
 * must be followed by a non-space; it closes only when preceded by a non-space and followed by line end,
 * whitespace or punctuation; the pair must enclose at least one character. WhatsApp has no escape character.
 *
 * Decisions, all derived from that rule:
 * - Whitespace just inside emphasis is moved outside the markers (`** a **` would never format otherwise), and
 *   emphasis left empty by that is dropped.
 * - Intraword emphasis (`foo**bar**baz`) cannot be expressed: WhatsApp ignores markers touching letters/digits on the
 *   outside. We drop those markers and keep the text (`foobarbaz`), which reads like Markdown's rendering minus
 *   the weight. Adjacent same-marker spans (`**a****b**`) merge into one.
 * - Emphasis nested in the same marker (a bold word in a heading) is not re-emitted: WhatsApp cannot nest it.
 * - Emphasis spanning a line break is closed before the break and reopened after it, because WhatsApp pairs
 *   markers within one line.
 * - Literal `*`, `_`, `~` and `` ` `` (from text, escapes, HTML) are left exactly as written when the rule above
 *   means WhatsApp could not pair them (`2 * 3 = 6`, `snake_case_name`, `~5 min`). Only a literal marker that could
 *   actually open or close a pair with another same-marker character in the same block is swapped for a
 *   look-alike that WhatsApp does not parse (`*`→`∗` U+2217, `_`→`＿` U+FF3F, `~`→`∼` U+223C, `` ` ``→`ˋ` U+02CB).
 *   We chose a look-alike over an inserted zero-width character because its effect does not depend on how a
 *   client classifies invisible characters, and it never splits a word. The check is deliberately conservative
 *   (any letter/digit counts as "word", anything else as punctuation, and it looks across the whole block).
 *   A literal backtick is swapped only when the block holds another backtick.
 * - Code spans, code blocks and URLs are emitted verbatim and never altered.
 * - Soft line breaks stay newlines: chat has no reflow and agents rarely hard-wrap.
 *
 * Block layout: headings → a bold line; lists → `- ` / `N. ` lines (start number kept, continuation and nested
 * lists indented to the item text), tasks → `- [x] `; quotes → `> ` on every line; code → fenced, language
 * dropped; links → `text (url)` or the bare url when the text is the url (`mailto:` shown without the scheme);
 * images → `alt (url)`; tables → one line per row, cells joined by ` | `, header cells bold, empty cells `–`;
 * thematic breaks → just the blank line between blocks; HTML → its text (`<br>` and block tags become newlines);
 * footnotes → `[label]` and `[label] text`. Literal `- `, `1. ` or `> ` at a line start are not neutralised.
 */
import { fromMarkdown } from 'mdast-util-from-markdown';
import { gfmFromMarkdown } from 'mdast-util-gfm';
import { gfm } from 'micromark-extension-gfm';
import type { Definition, List, ListItem, Nodes, Parents, PhrasingContent, RootContent, Table } from 'mdast';

type Marker = '*' | '_' | '~';

/** One unit of inline output before layout: literal text, an intended marker, verbatim text, or a line break. */
type InlineAtom =
  { k: 'text'; s: string } | { k: 'mark'; c: Marker; open: boolean } | { k: 'raw'; s: string } | { k: 'nl' };

/** Same as InlineAtom, but literal text is split into single code points so layout can look at neighbours. */
type LineAtom = { k: 'char'; c: string } | { k: 'mark'; c: Marker; open: boolean } | { k: 'raw'; s: string };

// Built once: the extension objects are stateless, and rebuilding them per message is measurable.
const PARSE_OPTIONS = { extensions: [gfm()], mdastExtensions: [gfmFromMarkdown()] };
const LOOKALIKE: Record<string, string> = { '*': '\u2217', _: '\uFF3F', '~': '\u223C', '`': '\u02CB' };
const WORD = /[\p{L}\p{N}]/u;
const SPACE = /\s/u;

/** Converts agent Markdown (CommonMark + GFM) into text WhatsApp renders as intended. */
export function toWhatsApp(markdown: string): string {
  const tree = fromMarkdown(markdown, PARSE_OPTIONS);
  const definitions = new Map<string, Definition>();
  collectDefinitions(tree, definitions);
  const renderer = new Renderer(definitions);
  return trimBlankEdges(renderer.blocks(tree.children, '\n\n'));
}

function collectDefinitions(node: Nodes, into: Map<string, Definition>): void {
  if (node.type === 'definition') {
    // First definition wins, as in CommonMark.
    if (!into.has(node.identifier)) into.set(node.identifier, node);
    return;
  }
  if ('children' in node) for (const child of node.children) collectDefinitions(child, into);
}

class Renderer {
  /** Markers currently open while collecting inline atoms; nested same markers are not re-emitted. */
  private active: Marker[] = [];

  constructor(private readonly definitions: Map<string, Definition>) {}

  blocks(nodes: RootContent[], separator: string): string {
    const out: string[] = [];
    for (const node of nodes) {
      const text = this.block(node);
      if (text !== '') out.push(text);
    }
    return out.join(separator);
  }

  private block(node: RootContent): string {
    switch (node.type) {
      case 'paragraph':
        return this.inline(node.children);
      case 'heading':
        return this.inline(node.children, '*');
      case 'code':
        return '```\n' + node.value + '\n```';
      case 'blockquote':
        return prefixLines(this.blocks(node.children, '\n\n'), '> ', '>');
      case 'list':
        return this.list(node);
      case 'table':
        return this.table(node);
      case 'html':
        return layout(htmlText(node.value, true).map(textOrBreak));
      case 'footnoteDefinition': {
        const body = this.blocks(node.children, '\n\n');
        const label = `[${node.label ?? node.identifier}]`;
        return body === '' ? label : hangingIndent(label + ' ', body, '  ');
      }
      case 'thematicBreak':
      case 'definition':
      case 'yaml':
        return '';
      default:
        // Phrasing content at block level only happens in hand-built trees; render it rather than drop words.
        return 'children' in node ? this.inline(node.children as PhrasingContent[]) : textOf(node);
    }
  }

  private list(node: List): string {
    let n = node.start ?? 1;
    const items = node.children.map((item: ListItem) => {
      const bullet = node.ordered ? `${n++}.` : '-';
      const box = item.checked === true ? ' [x]' : item.checked === false ? ' [ ]' : '';
      const body = this.blocks(item.children, item.spread ? '\n\n' : '\n');
      // Continuation lines and nested lists align with the item text after the bullet.
      return body === '' ? bullet + box : hangingIndent(bullet + box + ' ', body, ' '.repeat(bullet.length + 1));
    });
    return items.join(node.spread ? '\n\n' : '\n');
  }

  private table(node: Table): string {
    const rows: string[] = [];
    node.children.forEach((row, r) => {
      // A header row of empty cells says nothing; skip it instead of printing a row of dashes.
      if (r === 0 && row.children.every((cell) => !hasContent(cell))) return;
      const atoms: InlineAtom[] = [];
      row.children.forEach((cell, i) => {
        if (i > 0) atoms.push({ k: 'text', s: ' | ' });
        if (!hasContent(cell)) atoms.push({ k: 'text', s: '\u2013' });
        else if (r === 0) this.wrap('*', cell.children, atoms);
        else this.collect(cell.children, atoms);
      });
      const line = layout(atoms);
      if (line !== '') rows.push(line);
    });
    return rows.join('\n');
  }

  private inline(children: PhrasingContent[], wrapWith?: Marker): string {
    const atoms: InlineAtom[] = [];
    if (wrapWith) this.wrap(wrapWith, children, atoms);
    else this.collect(children, atoms);
    return layout(atoms);
  }

  private collect(nodes: PhrasingContent[], out: InlineAtom[]): void {
    for (const node of nodes) this.phrasing(node, out);
  }

  private wrap(marker: Marker, children: PhrasingContent[], out: InlineAtom[]): void {
    if (this.active.includes(marker)) {
      this.collect(children, out);
      return;
    }
    out.push({ k: 'mark', c: marker, open: true });
    this.active.push(marker);
    this.collect(children, out);
    this.active.pop();
    out.push({ k: 'mark', c: marker, open: false });
  }

  /** WhatsApp pairs markers within a line, so open spans are closed before a newline and reopened after it. */
  private lineBreak(out: InlineAtom[]): void {
    for (let i = this.active.length - 1; i >= 0; i--) out.push({ k: 'mark', c: this.active[i], open: false });
    out.push({ k: 'nl' });
    for (const c of this.active) out.push({ k: 'mark', c, open: true });
  }

  private text(value: string, out: InlineAtom[]): void {
    const lines = value.split(/\r\n?|\n/);
    lines.forEach((line, i) => {
      if (i > 0) this.lineBreak(out);
      if (line !== '') out.push({ k: 'text', s: line });
    });
  }

  private phrasing(node: PhrasingContent, out: InlineAtom[]): void {
    switch (node.type) {
      case 'text':
        return this.text(node.value, out);
      case 'strong':
        return this.wrap('*', node.children, out);
      case 'emphasis':
        return this.wrap('_', node.children, out);
      case 'delete':
        return this.wrap('~', node.children, out);
      case 'inlineCode':
        // A backtick inside the span would end WhatsApp's single-backtick code early; triple backticks survive it.
        out.push({ k: 'raw', s: node.value.includes('`') ? '```' + node.value + '```' : '`' + node.value + '`' });
        return;
      case 'break':
        return this.lineBreak(out);
      case 'link':
        return this.link(node.children, node.url, out);
      case 'linkReference': {
        const def = this.definitions.get(node.identifier);
        if (def) return this.link(node.children, def.url, out);
        return this.collect(node.children, out);
      }
      case 'image':
        return this.image(node.alt ?? '', node.url, out);
      case 'imageReference':
        return this.image(node.alt ?? '', this.definitions.get(node.identifier)?.url ?? '', out);
      case 'html':
        for (const piece of htmlText(node.value, false)) {
          if (piece === '\n') this.lineBreak(out);
          else this.text(piece, out);
        }
        return;
      case 'footnoteReference':
        out.push({ k: 'text', s: `[${node.label ?? node.identifier}]` });
        return;
      default: {
        // Only reachable with syntax extensions we do not load; keep their text rather than drop words.
        const unknown = node as Nodes;
        if ('children' in unknown) return this.collect(unknown.children as PhrasingContent[], out);
        return this.text(textOf(unknown), out);
      }
    }
  }

  private link(children: PhrasingContent[], url: string, out: InlineAtom[]): void {
    if (url === '') return this.collect(children, out);
    const text = plainText(children);
    const shown = url.startsWith('mailto:') ? url.slice('mailto:'.length) : url;
    if (text.trim() === '') {
      out.push({ k: 'raw', s: shown });
      return;
    }
    // GFM literal autolinks (`www.x.com`, `a@b.co`) get a scheme added; showing the address twice would be noise.
    if (text === url || text === shown || url === 'http://' + text || url === 'https://' + text) {
      out.push({ k: 'raw', s: text });
      return;
    }
    this.collect(children, out);
    out.push({ k: 'text', s: ' (' }, { k: 'raw', s: shown }, { k: 'text', s: ')' });
  }

  private image(alt: string, url: string, out: InlineAtom[]): void {
    if (url === '') {
      if (alt !== '') this.text(alt, out);
      return;
    }
    if (alt.trim() === '' || alt === url) {
      out.push({ k: 'raw', s: url });
      return;
    }
    this.text(alt, out);
    out.push({ k: 'text', s: ' (' }, { k: 'raw', s: url }, { k: 'text', s: ')' });
  }
}

function textOrBreak(piece: string): InlineAtom {
  return piece === '\n' ? { k: 'nl' } : { k: 'text', s: piece };
}

/** Text content of phrasing nodes, used to compare a link's text with its url. */
function plainText(nodes: PhrasingContent[]): string {
  let s = '';
  for (const node of nodes) s += textOf(node);
  return s;
}

function textOf(node: Nodes): string {
  if ('value' in node && typeof node.value === 'string' && node.type !== 'html') return node.value;
  if (node.type === 'image' || node.type === 'imageReference') return node.alt ?? '';
  if ('children' in node) return (node as Parents).children.map((child) => textOf(child)).join('');
  return '';
}

function hasContent(node: Nodes): boolean {
  if (node.type === 'image' || node.type === 'imageReference') return true;
  if (node.type === 'html') return htmlText(node.value, false).some((piece) => piece.trim() !== '');
  if ('value' in node && typeof node.value === 'string') return node.value.trim() !== '';
  if ('children' in node) return (node as Parents).children.some(hasContent);
  return false;
}

const HTML_TOKEN =
  /<!--[\s\S]*?(?:-->|$)|<![^>]*>|<\?[\s\S]*?(?:\?>|$)|<\/?([A-Za-z][A-Za-z0-9-]*)(?:[^>"']|"[^"]*"|'[^']*')*>/g;
const HTML_LINE_TAG =
  /^(?:br|p|div|li|tr|ul|ol|table|thead|tbody|h[1-6]|blockquote|pre|hr|section|article|header|footer|dl|dt|dd)$/;
const HTML_ENTITIES: Record<string, string> = {
  amp: '&',
  lt: '<',
  gt: '>',
  quot: '"',
  apos: "'",
  nbsp: ' ',
  '#39': "'",
};

/**
 * Text content of an HTML node as pieces, where `'\n'` marks a line break. Tags are stripped; line-level tags
 * (`<br>`, `<p>`, `<div>`…) break lines and table cells become spaces so words do not run together.
 */
function htmlText(html: string, block: boolean): string[] {
  const pieces: string[] = [];
  let last = 0;
  const push = (s: string): void => {
    if (s === '') return;
    const decoded = s.replace(/&(amp|lt|gt|quot|apos|nbsp|#39);/g, (_m, name: string) => HTML_ENTITIES[name]);
    decoded.split('\n').forEach((line, i) => {
      if (i > 0) pieces.push('\n');
      if (line !== '') pieces.push(line);
    });
  };
  for (const match of html.matchAll(HTML_TOKEN)) {
    push(html.slice(last, match.index));
    last = match.index + match[0].length;
    const tag = match[1]?.toLowerCase();
    if (tag === undefined) continue;
    if (HTML_LINE_TAG.test(tag) && (tag === 'br' || block)) pieces.push('\n');
    else if (tag === 'td' || tag === 'th') pieces.push(' ');
  }
  push(html.slice(last));
  if (!block) return pieces;
  // Block HTML is usually indented source; keep its text, not its layout.
  const lines = pieces
    .join('')
    .split('\n')
    .map((line) => line.trim().replace(/[ \t]+/g, ' '));
  const out: string[] = [];
  for (const line of lines) {
    if (line === '') continue;
    if (out.length > 0) out.push('\n');
    out.push(line);
  }
  return out;
}

function prefixLines(text: string, prefix: string, emptyPrefix: string): string {
  if (text === '') return '';
  return text
    .split('\n')
    .map((line) => (line === '' ? emptyPrefix : prefix + line))
    .join('\n');
}

function hangingIndent(first: string, body: string, indent: string): string {
  return body
    .split('\n')
    .map((line, i) => (i === 0 ? first + line : line === '' ? '' : indent + line))
    .join('\n');
}

function trimBlankEdges(text: string): string {
  return text.replace(/^(?:[ \t]*\n)+/, '').trimEnd();
}

/** Turns inline atoms into WhatsApp text: fixes marker placement, then neutralises accidental literal pairs. */
function layout(atoms: InlineAtom[]): string {
  const lines: LineAtom[][] = [[]];
  for (const atom of atoms) {
    const line = lines[lines.length - 1];
    if (atom.k === 'nl') lines.push([]);
    else if (atom.k === 'text') for (const c of atom.s) line.push({ k: 'char', c });
    else line.push(atom);
  }
  const fixed = lines.map(placeMarkers);
  neutraliseLiterals(fixed);
  const out: string[] = [];
  for (const line of fixed) {
    let s = '';
    for (const atom of line) s += atom.k === 'raw' ? atom.s : atom.c;
    out.push(s.trim());
  }
  return out.join('\n').replace(/^\n+|\n+$/g, '');
}

function isSpaceAtom(atom: LineAtom | undefined): boolean {
  return atom !== undefined && atom.k === 'char' && SPACE.test(atom.c);
}

/** The character WhatsApp sees at the edge of an atom, looking from the left (`fromStart`) or from the right. */
function edgeChar(atom: LineAtom | undefined, fromStart: boolean): string | undefined {
  if (atom === undefined) return undefined;
  if (atom.k === 'raw') return fromStart ? atom.s[0] : atom.s[atom.s.length - 1];
  return atom.c;
}

/** Indices of matching open/close markers; same-marker spans never nest, so matching is sequential per marker. */
function matchPairs(line: LineAtom[]): Array<[number, number]> {
  const pending: Partial<Record<Marker, number>> = {};
  const pairs: Array<[number, number]> = [];
  line.forEach((atom, i) => {
    if (atom.k !== 'mark') return;
    if (atom.open) pending[atom.c] = i;
    else {
      const open = pending[atom.c];
      if (open !== undefined) pairs.push([open, i]);
      pending[atom.c] = undefined;
    }
  });
  return pairs;
}

/** Moves whitespace outside markers and drops markers WhatsApp could not pair, until nothing changes. */
function placeMarkers(input: LineAtom[]): LineAtom[] {
  let line = input;
  if (!line.some((atom) => atom.k === 'mark')) return line;
  for (let changed = true; changed;) {
    changed = false;
    for (let i = 0; i < line.length - 1; i++) {
      const atom = line[i];
      if (atom.k === 'mark' && atom.open && isSpaceAtom(line[i + 1])) {
        line[i] = line[i + 1];
        line[i + 1] = atom;
        changed = true;
      }
    }
    for (let i = line.length - 1; i > 0; i--) {
      const atom = line[i];
      if (atom.k === 'mark' && !atom.open && isSpaceAtom(line[i - 1])) {
        line[i] = line[i - 1];
        line[i - 1] = atom;
        changed = true;
      }
    }
    // Unpairable spans go first; merges are only safe to compute on a line whose pairs all survive.
    const pairs = matchPairs(line);
    const drop = new Set<number>();
    for (const [open, close] of pairs) {
      const empty = line.slice(open + 1, close).every((atom) => atom.k === 'mark');
      const before = edgeChar(line[open - 1], false);
      const after = edgeChar(line[close + 1], true);
      const intraword = (before !== undefined && WORD.test(before)) || (after !== undefined && WORD.test(after));
      if (empty || intraword) drop.add(open).add(close);
    }
    if (drop.size === 0) {
      for (const [, close] of pairs) {
        const next = line[close + 1];
        if (next?.k === 'mark' && next.open && next.c === (line[close] as { c: Marker }).c)
          drop.add(close).add(close + 1);
      }
    }
    if (drop.size > 0) {
      line = line.filter((_atom, i) => !drop.has(i));
      changed = true;
    }
  }
  return line;
}

/**
 * Swaps literal marker characters that WhatsApp could pair (with each other or with our markers) for look-alikes.
 * Looks across all lines of the block at once: conservative if a client ever pairs across newlines.
 */
function neutraliseLiterals(lines: LineAtom[][]): void {
  const flat: LineAtom[] = [];
  lines.forEach((line, i) => {
    if (i > 0) flat.push({ k: 'char', c: '\n' });
    for (const atom of line) flat.push(atom);
  });
  let backticks = 0;
  let literalMarkers = 0;
  for (const atom of flat) {
    const s = atom.k === 'raw' ? atom.s : atom.c;
    for (const c of s) if (c === '`') backticks++;
    if (atom.k === 'char' && (atom.c === '*' || atom.c === '_' || atom.c === '~' || atom.c === '`')) literalMarkers++;
  }
  if (literalMarkers === 0) return;

  const canOpen = (i: number): boolean => {
    const before = edgeChar(flat[i - 1], false);
    const after = edgeChar(flat[i + 1], true);
    return (before === undefined || !WORD.test(before)) && after !== undefined && !SPACE.test(after);
  };
  const canClose = (i: number): boolean => {
    const before = edgeChar(flat[i - 1], false);
    const after = edgeChar(flat[i + 1], true);
    return before !== undefined && !SPACE.test(before) && (after === undefined || !WORD.test(after));
  };
  const firstOpen: Record<string, number> = {};
  const lastClose: Record<string, number> = {};
  flat.forEach((atom, i) => {
    if (atom.k === 'raw' || !(atom.c === '*' || atom.c === '_' || atom.c === '~')) return;
    if (firstOpen[atom.c] === undefined && canOpen(i)) firstOpen[atom.c] = i;
    if (canClose(i)) lastClose[atom.c] = i;
  });

  const replacements = new Map<LineAtom, string>();
  flat.forEach((atom, i) => {
    if (atom.k !== 'char') return;
    const c = atom.c;
    if (c === '`') {
      if (backticks > 1) replacements.set(atom, LOOKALIKE[c]);
      return;
    }
    if (c !== '*' && c !== '_' && c !== '~') return;
    // A pair needs at least one character between its markers, hence the distance of two.
    const opensPair = canOpen(i) && lastClose[c] !== undefined && lastClose[c] >= i + 2;
    const closesPair = canClose(i) && firstOpen[c] !== undefined && firstOpen[c] <= i - 2;
    if (opensPair || closesPair) replacements.set(atom, LOOKALIKE[c]);
  });
  if (replacements.size === 0) return;
  for (const line of lines) {
    line.forEach((atom, i) => {
      const swapped = replacements.get(atom);
      if (swapped !== undefined) line[i] = { k: 'char', c: swapped };
    });
  }
}
