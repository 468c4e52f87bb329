import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatReply, isPlainText, splitMessage, toWhatsApp } from '../lib/format/index.js';

const CLOUD_LIMIT = 4096;

/** Maximal ASCII letter/digit runs: the "words" a reader must still find in the output. */
function words(text: string): string[] {
  return text.match(/[A-Za-z0-9]+/g) ?? [];
}

/** True when every non-whitespace, non-backtick character of `a` appears in `b` in the same order. */
function isSubsequenceIgnoringLayout(a: string, b: string): boolean {
  const strip = (s: string): string => s.replace(/[\s`]+/g, '');
  const needle = strip(a);
  const hay = strip(b);
  let j = 0;
  for (let i = 0; i < hay.length && j < needle.length; i++) if (hay[i] === needle[j]) j++;
  return j === needle.length;
}

describe('toWhatsApp', () => {
  it.each([
    ['bold, strike', 'ping **bold** and ~~gone~~', 'ping *bold* and ~gone~'],
    ['underscore bold', '__b__', '*b*'],
    ['both italics', '*i* and _i_', '_i_ and _i_'],
    ['nesting kept', '**bold _and italic_**', '*bold _and italic_*'],
    ['bold italic', '***both***', '_*both*_'],
    ['literal asterisk with spaces', '2 * 3 = 6', '2 * 3 = 6'],
    ['snake case', 'snake_case_name', 'snake_case_name'],
    ['snake case inside bold', '**snake_case_name**', '*snake_case_name*'],
    ['lone tilde and backtick', 'about ~5 min, a ` tick', 'about ~5 min, a ` tick'],
    ['escaped pair would format: broken with look-alikes', 'say \\*hi\\* now', 'say \u2217hi\u2217 now'],
    ['escaped underscores pair', '\\_x\\_', '\uFF3Fx\uFF3F'],
    ['literal star inside bold that could close it', '**a \\*b**', '*a \u2217b*'],
    ['two literal backticks', 'a \\`b\\` c', 'a \u02CBb\u02CB c'],
    ['intraword emphasis drops markers, keeps text', 'foo**bar**baz', 'foobarbaz'],
    ['intraword italic', 'un*frigging*believable', 'unfriggingbelievable'],
    ['adjacent bold spans merge', '**a**<!---->**b**', '*ab*'],
    ['whitespace inside emphasis moves outside', 'a **&#32;x** b', 'a  *x* b'],
    ['emphasis of only whitespace disappears', 'a **&#32;** b', 'a   b'],
    ['emphasis then italic touching', '**a**_b_', '*a*_b_'],
    ['emphasis over a hard break reopens per line', '**one\\\ntwo**', '*one*\n*two*'],
    ['not emphasis in Markdown stays literal but cannot pair', '** a **', '\u2217* a *\u2217'],
    ['empty emphasis', '** **', ''],
    ['h1', '# Title', '*Title*'],
    ['h2 with bold inside', '## Sub **bold** x', '*Sub bold x*'],
    ['setext', 'Title\n=====\n\nbody', '*Title*\n\nbody'],
    ['unordered list', '* a\n* b', '- a\n- b'],
    ['nested list', '- a\n  - b\n    - c\n- d', '- a\n  - b\n    - c\n- d'],
    ['ordered list keeps start', '3. x\n4. y\n   1. z', '3. x\n4. y\n   1. z'],
    ['loose list', '- a\n\n- b', '- a\n\n- b'],
    ['task list', '- [x] done\n- [ ] todo', '- [x] done\n- [ ] todo'],
    ['quote', '> quoted **text**\n> more', '> quoted *text*\n> more'],
    ['nested quote', '> a\n>\n> > b', '> a\n>\n> > b'],
    ['link, different text', 'see [the docs](https://example.com/d)', 'see the docs (https://example.com/d)'],
    ['link, same text', '[https://example.com](https://example.com)', 'https://example.com'],
    ['autolink', '<https://example.com/a_b_c>', 'https://example.com/a_b_c'],
    ['literal autolinks', 'www.example.com or me@example.com', 'www.example.com or me@example.com'],
    ['mailto link', '[mail me](mailto:me@example.com)', 'mail me (me@example.com)'],
    ['reference link', '[ref] here\n\n[ref]: https://r.example', 'ref (https://r.example) here'],
    ['image', '![a chart](https://img.example/c.png)', 'a chart (https://img.example/c.png)'],
    ['image without alt', '![](https://img.example/c.png)', 'https://img.example/c.png'],
    ['table', '| Name | Qty |\n| --- | ---: |\n| apple | 3 |\n| pear |  |', '*Name* | *Qty*\napple | 3\npear | \u2013'],
    ['thematic break', 'above\n\n---\n\nbelow', 'above\n\nbelow'],
    ['inline html', 'a <b>bold</b> word<br>next', 'a bold word\nnext'],
    ['block html', '<div>\n  <p>Hello <i>there</i></p>\n</div>', 'Hello there'],
    ['fenced code, tag dropped', '```ts\nconst x = **x**;\n```', '```\nconst x = **x**;\n```'],
    ['indented code', 'para\n\n    a_b_c\n    *x*', 'para\n\n```\na_b_c\n*x*\n```'],
    ['inline code untouched', 'use `**x**` here', 'use `**x**` here'],
    ['inline code with backtick', '`` a`b ``', '```a`b```'],
    ['hard break', 'one  \ntwo', 'one\ntwo'],
    ['paragraphs', 'one\n\n\n\ntwo\nthree', 'one\n\ntwo\nthree'],
    ['footnote', 'claim[^1]\n\n[^1]: source', 'claim[1]\n\n[1] source'],
    ['entities', 'fish &amp; chips', 'fish & chips'],
    ['trailing whitespace trimmed', '\n\nhello   \n\n\n', 'hello'],
  ])('%s', (_name, markdown, expected) => {
    expect(toWhatsApp(markdown)).toBe(expected);
  });

  it('renders tables without a delimiter row', () => {
    const out = toWhatsApp('| a | b |\n|---|---|\n| 1 | 2 |');
    expect(out).not.toContain('|---');
    expect(out).not.toContain('---');
  });

  it('keeps code block contents byte for byte inside lists', () => {
    expect(toWhatsApp('- step\n\n  ```sh\n  echo *a* _b_\n  ```')).toBe('- step\n\n  ```\n  echo *a* _b_\n  ```');
  });
});

describe('splitMessage', () => {
  const paragraph = (tag: string, n: number): string => Array.from({ length: n }, (_, i) => `${tag}${i}`).join(' ');

  it('returns short text as one part and nothing for blank text', () => {
    expect(splitMessage('hello', 10)).toEqual(['hello']);
    expect(splitMessage(' \n ', 10)).toEqual([]);
  });

  it('splits a 9,000-character reply at paragraphs and keeps the code block whole', () => {
    const code =
      '```\n' + Array.from({ length: 50 }, (_, i) => `let v${i} = f(${i}); // **kept**`).join('\n') + '\n```';
    const text = [paragraph('alpha', 450), code, paragraph('beta', 300), paragraph('gamma', 250)].join('\n\n');
    expect(code.length).toBeGreaterThan(1400);
    expect(text.length).toBeGreaterThan(9000);

    const parts = splitMessage(text, CLOUD_LIMIT);

    expect(parts.length).toBeGreaterThan(2);
    for (const part of parts) expect(part.length).toBeLessThanOrEqual(CLOUD_LIMIT);
    expect(parts.filter((part) => part.includes(code))).toHaveLength(1);
    expect(parts.join('\n\n')).toBe(text);
  });

  it('splits an over-long code block into valid fenced parts at line boundaries', () => {
    const lines = Array.from({ length: 400 }, (_, i) => `line ${i}: ${'x'.repeat(i % 40)}`);
    const body = lines.join('\n');
    const parts = splitMessage('```\n' + body + '\n```', CLOUD_LIMIT);

    expect(body.length).toBeGreaterThan(10_000);
    expect(parts.length).toBeGreaterThan(2);
    for (const part of parts) {
      expect(part.length).toBeLessThanOrEqual(CLOUD_LIMIT);
      expect(part.startsWith('```\n')).toBe(true);
      expect(part.endsWith('\n```')).toBe(true);
    }
    expect(parts.map((part) => part.slice(4, -4)).join('\n')).toBe(body);
  });

  it('hard-cuts a single 5,000-character word', () => {
    const word = 'w'.repeat(5000);
    const parts = splitMessage(`before\n\n${word}\n\nafter`, CLOUD_LIMIT);
    expect(parts).toEqual(['before', word.slice(0, 4096), word.slice(4096) + '\n\nafter']);
  });

  it('never splits a surrogate pair', () => {
    const parts = splitMessage('😀'.repeat(3000), 4095);
    for (const part of parts) {
      expect(part.length).toBeLessThanOrEqual(4095);
      expect(/^[\uDC00-\uDFFF]|[\uD800-\uDBFF]$/.test(part)).toBe(false);
    }
    expect(parts.join('')).toBe('😀'.repeat(3000));
  });

  it('rejects a limit that cannot make progress', () => {
    expect(() => splitMessage('abc', 1)).toThrow(RangeError);
  });
});

describe('formatReply', () => {
  it('formats then splits, and returns nothing for empty output', () => {
    expect(formatReply('**hi**', { limit: CLOUD_LIMIT })).toEqual(['*hi*']);
    expect(formatReply('  \n\n---\n', { limit: CLOUD_LIMIT })).toEqual([]);
    const parts = formatReply(
      Array.from({ length: 30 }, (_, i) => `## Part ${i}\n\n${'word '.repeat(60)}`).join('\n\n'),
      {
        limit: 500,
      },
    );
    expect(parts.length).toBeGreaterThan(1);
    for (const part of parts) expect(part.length).toBeLessThanOrEqual(500);
  });
});

describe('properties', () => {
  const word = fc.stringMatching(/^[A-Za-z][A-Za-z0-9]{0,7}$/);
  /**
   * Markdown-ish input built from fragments agents produce. Fences only appear as bare lines and tildes only as
   * strikethrough or a spaced literal, so no word can land in a fence info string (which Markdown consumes).
   */
  const markdownish = fc
    .array(
      fc.oneof(
        word,
        word,
        fc.constantFrom(' ', ' ', '\n', '\n\n', '**', '*', '_', '__', ' ~ ', '# ', '- ', '1. ', '> ', '\\', '|', '.'),
        fc.constantFrom('\n| --- | --- |\n', '\n```\n', ' ` ', '  \n', '***'),
        word.map((w) => `~~${w}~~`),
        word.map((w) => `\`${w}\``),
        fc.tuple(word, word).map(([a, b]) => `[${a}](${b})`),
        fc.tuple(word, word).map(([a, b]) => `![${a}](${b})`),
      ),
      { maxLength: 40 },
    )
    .map((fragments) => fragments.join(''));

  it('toWhatsApp never throws', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.string({ unit: 'grapheme' }), markdownish), (input) => {
        expect(typeof toWhatsApp(input)).toBe('string');
      }),
      { numRuns: 300 },
    );
  });

  it('toWhatsApp never loses a word', () => {
    fc.assert(
      fc.property(markdownish, (input) => {
        const out = toWhatsApp(input);
        for (const w of words(input)) expect(out).toContain(w);
      }),
      { numRuns: 300 },
    );
  });

  it('splitMessage respects the limit and keeps every word, in order', () => {
    const longWord = fc.stringMatching(/^[a-z]{30,600}$/);
    const text = fc
      .array(fc.oneof(word, word, word, longWord, fc.constantFrom(' ', ' ', '  ', '\n', '\n\n', '\n```\n', '😀')), {
        maxLength: 300,
      })
      .map((fragments) => fragments.join(''));
    fc.assert(
      fc.property(text, fc.integer({ min: 20, max: 500 }), (input, limit) => {
        const parts = splitMessage(input, limit);
        for (const part of parts) {
          expect(part.length).toBeLessThanOrEqual(limit);
          expect(part).toBe(part.trim());
          expect(part).not.toBe('');
        }
        expect(isSubsequenceIgnoringLayout(input, parts.join('\n'))).toBe(true);
        // Splits happen at whitespace; only a whitespace-free token longer than the room is cut (a code part spends
        // 8 characters on its fences).
        for (const token of input.split(/\s+/).filter((t) => t !== '')) {
          if (token.length <= limit - 8) expect(parts.some((p) => p.includes(token))).toBe(true);
        }
      }),
      { numRuns: 200 },
    );
  });

  const plainText = fc
    .array(
      fc.array(
        fc.array(fc.tuple(word, fc.constantFrom('', '', '', '.', ',', '!', '?', ';', ':')), {
          minLength: 1,
          maxLength: 8,
        }),
        { minLength: 1, maxLength: 3 },
      ),
      { minLength: 1, maxLength: 4 },
    )
    .map((paragraphs) =>
      paragraphs.map((lines) => lines.map((line) => line.map(([w, p]) => w + p).join(' ')).join('\n')).join('\n\n'),
    );

  it('leaves plain text unchanged', () => {
    fc.assert(
      fc.property(plainText, (input) => {
        expect(toWhatsApp(input)).toBe(input);
      }),
      { numRuns: 200 },
    );
  });

  it('never lets escaped markers pair up under WhatsApp rules', () => {
    const literalText = fc
      .array(fc.oneof(word, fc.constantFrom(' ', ' ', '\\*', '\\_', '\\~', '.', '(', ')', '\n')), { maxLength: 30 })
      .map((fragments) => fragments.join(''));
    // WhatsApp: an opener follows start/space/punctuation and precedes a non-space; a closer mirrors that.
    const letterOrDigit = /[\p{L}\p{N}]/u;
    const formats = (line: string, marker: string): boolean => {
      const chars = Array.from(line);
      const canOpen = (i: number): boolean =>
        (i === 0 || !letterOrDigit.test(chars[i - 1])) && i + 1 < chars.length && !/\s/.test(chars[i + 1]);
      const canClose = (i: number): boolean =>
        i > 0 && !/\s/.test(chars[i - 1]) && (i + 1 === chars.length || !letterOrDigit.test(chars[i + 1]));
      for (let i = 0; i < chars.length; i++) {
        if (chars[i] !== marker || !canOpen(i)) continue;
        for (let j = i + 2; j < chars.length; j++) if (chars[j] === marker && canClose(j)) return true;
      }
      return false;
    };
    fc.assert(
      fc.property(literalText, (input) => {
        for (const line of toWhatsApp(input).split('\n')) {
          for (const marker of ['*', '_', '~']) expect(formats(line, marker)).toBe(false);
        }
      }),
      { numRuns: 200 },
    );
  });

  it('is stable on its own output', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          plainText,
          markdownish.filter((s) => !/[*_~`\\[\]|#>!-]/.test(s)),
        ),
        (input) => {
          const once = toWhatsApp(input);
          expect(toWhatsApp(once)).toBe(once);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('skips the parser only for text the parser would leave unchanged', () => {
    // Built from the characters the fast path accepts plus the ones near its edge, so both sides are hit.
    const near = fc
      .array(
        fc.oneof(
          fc.constantFrom(...'aZé1 .,;:?!\'"()%/+=-'),
          fc.constantFrom('0', ' ', '  ', 'www.', '://', '@', 'ñ', '日本', 'e\u0301', '*', '#', '&amp;', '\n', '😀'),
        ),
        { maxLength: 24 },
      )
      .map((xs) => xs.join(''));
    let plain = 0;
    fc.assert(
      fc.property(fc.oneof(near, fc.string(), fc.string({ unit: 'grapheme' })), (input) => {
        if (!isPlainText(input)) return;
        plain++;
        expect(toWhatsApp(input)).toBe(input);
      }),
      { numRuns: 3000 },
    );
    expect(plain).toBeGreaterThan(100);
    for (const s of [
      'Hello there.',
      'bench abc123 hello from the load generator',
      'Ça va? Oui (merci)!',
      '日本語のテキスト',
    ])
      expect(isPlainText(s)).toBe(true);
    for (const s of ['1. list', '- item', 'see www.example.com', 'mail me@x.io', 'a  ', 'x *y*', 'https://x.y', ''])
      expect(isPlainText(s)).toBe(false);
  });
});
