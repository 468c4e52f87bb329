/**
 * Files an agent names, and download URLs a WhatsApp message names, are outside input. Wharf never fetches an
 * agent's URL (it goes to Meta as `link`, or as a link in a text); an attachment that is not well-formed is
 * left out with a reason; a personal-account download goes to WhatsApp's media hosts only. Pure functions:
 * no server needed.
 */
import { describe, expect, it } from 'vitest';
import { downloadUrlOf, isWhatsAppMediaHost } from '../../activities/personal-media.js';
import { checkAttachments, isSendableUrl, MAX_ATTACHMENTS, takeMarkdownImages } from '../../lib/attachments.js';

const id = 'a'.repeat(64);

describe('attachments an agent returns', () => {
  it('keep only https URLs without credentials, stored ids, and known kinds; the rest are named, never thrown', () => {
    const { attachments, problems } = checkAttachments([
      { kind: 'image', url: 'https://cdn.example.com/a.png', caption: '  hi  ' },
      { kind: 'document', mediaId: id, filename: '../../etc/passwd\u0000.pdf' },
      { kind: 'image', url: 'http://169.254.169.254/latest/meta-data' },
      { kind: 'image', url: 'file:///etc/passwd' },
      { kind: 'image', url: 'https://user:pass@example.com/x.png' },
      { kind: 'document', mediaId: '../secret' },
      { kind: 'sticker', mediaId: id },
      { kind: 'image', mediaId: id, url: 'https://example.com/x.png' },
      'not an object',
      null,
    ]);
    expect(attachments).toEqual([
      { kind: 'image', url: 'https://cdn.example.com/a.png', caption: 'hi' },
      { kind: 'document', mediaId: id, filename: '.._.._etc_passwd_.pdf' },
    ]);
    expect(problems).toHaveLength(8);
    expect(checkAttachments('nope').problems).toEqual(['attachments must be an array']);
    expect(checkAttachments(undefined)).toEqual({ attachments: [], problems: [] });
  });

  it('at most ten per reply, captions cut at Meta’s 1,024 characters, URLs at 2,048', () => {
    const many = Array.from({ length: MAX_ATTACHMENTS + 3 }, () => ({
      kind: 'image',
      mediaId: id,
      caption: 'x'.repeat(5000),
    }));
    const { attachments, problems } = checkAttachments(many);
    expect(attachments).toHaveLength(MAX_ATTACHMENTS);
    expect(attachments[0].caption).toHaveLength(1024);
    expect(problems).toHaveLength(3);
    expect(isSendableUrl(`https://example.com/${'a'.repeat(2100)}`)).toBe(false);
  });
});

describe('Markdown images in an OpenAI-compatible agent’s answer', () => {
  it('become image attachments only when https and outside code; the text keeps the rest', () => {
    const md = [
      'Look:',
      '',
      '![a cat](https://cdn.example.com/cat.png)',
      '',
      '`![not me](https://cdn.example.com/code.png)`',
      '',
      '```',
      '![nor me](https://cdn.example.com/block.png)',
      '```',
      '',
      'Inline ![dog](https://cdn.example.com/dog.jpg) too, but ![local](http://10.0.0.1/x.png) stays.',
    ].join('\n');
    const { text, attachments } = takeMarkdownImages(md);
    expect(attachments).toEqual([
      { kind: 'image', url: 'https://cdn.example.com/cat.png', caption: 'a cat' },
      { kind: 'image', url: 'https://cdn.example.com/dog.jpg', caption: 'dog' },
    ]);
    expect(text).toContain('`![not me](https://cdn.example.com/code.png)`');
    expect(text).toContain('![nor me](https://cdn.example.com/block.png)');
    expect(text).toContain('![local](http://10.0.0.1/x.png) stays.');
    expect(text).not.toContain('cat.png');
    expect(text.startsWith('Look:\n\n`')).toBe(true);
    expect(takeMarkdownImages('plain text')).toEqual({ text: 'plain text', attachments: [] });
  });
});

describe('download URLs a personal-account message names', () => {
  it('are fetched from WhatsApp’s media hosts only, as Baileys builds them', () => {
    expect(isWhatsAppMediaHost('mmg.whatsapp.net')).toBe(true);
    expect(isWhatsAppMediaHost('media-fra5-1.cdn.whatsapp.net:443')).toBe(true);
    expect(isWhatsAppMediaHost('whatsapp.net.evil.example')).toBe(false);
    expect(isWhatsAppMediaHost('169.254.169.254')).toBe(false);
    // directPath is fetched from the host of `url` (Baileys' rule), so the host check covers both.
    expect(downloadUrlOf({ directPath: '/v/t62/x.enc', url: 'https://10.0.0.5/whatever' })?.host).toBe('10.0.0.5');
    expect(downloadUrlOf({ directPath: '/v/t62/x.enc' })?.href).toBe('https://mmg.whatsapp.net/v/t62/x.enc');
    expect(downloadUrlOf({ url: 'not a url' })).toBeNull();
    expect(downloadUrlOf({})).toBeNull();
  });
});
