/**
 * A small lexer for Cedar's surface syntax, for highlighting the policy editor. It only colours: Cedar
 * itself (on the server) validates, so an unknown character is plain text, never an error. Written here
 * rather than pulling in an editor framework: Cedar has a dozen keywords, one string form and one comment
 * form, and the console stays one small script.
 */

/** What a piece of the text is, for its colour. */
export type CedarTokenKind = 'keyword' | 'string' | 'comment' | 'entity' | 'number' | 'annotation' | 'text';

/** A piece of the text; joined in order, the tokens give back the text exactly. */
export interface CedarToken {
  kind: CedarTokenKind;
  text: string;
}

// Cedar's reserved words and the variables a policy's scope and conditions name.
const KEYWORDS = new Set([
  'permit',
  'forbid',
  'when',
  'unless',
  'principal',
  'action',
  'resource',
  'context',
  'in',
  'is',
  'like',
  'has',
  'if',
  'then',
  'else',
  'true',
  'false',
]);

// Tried in order at each position (sticky): the first that matches there wins.
const RULES: Array<[CedarTokenKind | 'ident', RegExp]> = [
  ['comment', /\/\/[^\n]*/y],
  // An unterminated string runs to the end of its line, as the user is still typing it.
  ['string', /"(?:[^"\\\n]|\\.)*"?/y],
  ['annotation', /@[A-Za-z_][A-Za-z0-9_]*/y],
  // An entity type path: `Policy::Agent::` (the id that follows is a string).
  ['entity', /[A-Za-z_][A-Za-z0-9_]*(?:\s*::\s*[A-Za-z_][A-Za-z0-9_]*)*\s*::/y],
  ['ident', /[A-Za-z_][A-Za-z0-9_]*/y],
  ['number', /\d+/y],
];

/** Splits Cedar text into tokens to colour. */
export function tokenizeCedar(src: string): CedarToken[] {
  const out: CedarToken[] = [];
  const push = (kind: CedarTokenKind, text: string): void => {
    const last = out[out.length - 1];
    if (last && last.kind === kind && kind === 'text') last.text += text;
    else out.push({ kind, text });
  };
  let i = 0;
  while (i < src.length) {
    let matched = false;
    for (const [kind, re] of RULES) {
      re.lastIndex = i;
      const m = re.exec(src);
      if (!m || !m[0]) continue;
      push(kind === 'ident' ? (KEYWORDS.has(m[0]) ? 'keyword' : 'text') : kind, m[0]);
      i += m[0].length;
      matched = true;
      break;
    }
    if (!matched) push('text', src[i++]);
  }
  return out;
}

/**
 * The line each policy of `src` starts on (its `permit` or `forbid`), in order: Cedar reports a policy
 * without an `@id` as `policy<N>` by its position, so `policyLines(src)[N]` is where policy N is written.
 */
export function policyLines(src: string): number[] {
  const lines: number[] = [];
  let line = 1;
  for (const t of tokenizeCedar(src)) {
    if (t.kind === 'keyword' && (t.text === 'permit' || t.text === 'forbid')) lines.push(line);
    for (const ch of t.text) if (ch === '\n') line++;
  }
  return lines;
}
