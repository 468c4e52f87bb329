import { describe, expect, it } from 'vitest';
import { policyLines, tokenizeCedar, type CedarToken } from '../console/src/cedar-syntax.js';

const GUIDE_EXAMPLE = `// the guide's allowlist
@id("allow-one")
permit(
  principal == Policy::Agent::"assistant",
  action == Policy::Action::"receive_message",
  resource in Policy::Channel::"whatsapp_cloud"
) when { resource.sender.address == "+15551234567" && context has x || 1 < 2 };
`;

const of = (tokens: CedarToken[], kind: CedarToken['kind']): string[] =>
  tokens.filter((t) => t.kind === kind).map((t) => t.text);

describe('Cedar highlighting (the policy editor)', () => {
  it('colours keywords, entity types, strings, comments, annotations and numbers in the guide’s example', () => {
    const tokens = tokenizeCedar(GUIDE_EXAMPLE);
    expect(of(tokens, 'comment')).toEqual(["// the guide's allowlist"]);
    expect(of(tokens, 'annotation')).toEqual(['@id']);
    expect(of(tokens, 'keyword')).toEqual([
      'permit',
      'principal',
      'action',
      'resource',
      'in',
      'when',
      'resource',
      'context',
      'has',
    ]);
    expect(of(tokens, 'entity')).toEqual(['Policy::Agent::', 'Policy::Action::', 'Policy::Channel::']);
    expect(of(tokens, 'string')).toEqual([
      '"allow-one"',
      '"assistant"',
      '"receive_message"',
      '"whatsapp_cloud"',
      '"+15551234567"',
    ]);
    expect(of(tokens, 'number')).toEqual(['1', '2']);
  });

  it('gives back the text exactly, whatever it holds (half-typed strings, escapes, stray characters)', () => {
    for (const src of [
      GUIDE_EXAMPLE,
      'permit(principal, action, resource) when { "unterminated\n};',
      '"a\\"b" // c\n€ ✓ \t',
      '',
      '::',
      'x::',
    ]) {
      expect(
        tokenizeCedar(src)
          .map((t) => t.text)
          .join(''),
      ).toBe(src);
    }
    // A keyword inside a string or a comment, or as part of a longer name, is not one.
    expect(of(tokenizeCedar('"permit" // forbid\npermitted'), 'keyword')).toEqual([]);
  });

  it('finds the line each policy starts on, so a decision’s policy<N> can name its line', () => {
    const text = `// permit(principal, action, resource);\n${GUIDE_EXAMPLE}\nforbid(principal, action, resource)\n  when { resource.sender.address == "permit" };\n`;
    expect(policyLines(text)).toEqual([4, 10]);
  });
});
