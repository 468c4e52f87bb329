/**
 * Webhook signature checks and normalisation of Meta's WhatsApp Cloud API payloads.
 */
import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parseWebhookPayload, verifySignature } from '../lib/graph/webhook.js';
import { inboundPayload, signPayload, statusPayload } from './fakes/graph-server.js';

const SECRET = 'app-secret-for-tests';
const CHANNEL = 'ch_1';
const PHONE_ID = '106540352242922';
const META = { display_phone_number: '15550783881', phone_number_id: PHONE_ID };

const hex = (body: Buffer | string, secret = SECRET): string => createHmac('sha256', secret).update(body).digest('hex');

/** One `messages` change value wrapped in Meta's envelope. */
function envelope(...values: Record<string, unknown>[]): Record<string, unknown> {
  return {
    object: 'whatsapp_business_account',
    entry: [
      {
        id: '102290129340398',
        changes: values.map((value) => ({
          field: 'messages',
          value: { messaging_product: 'whatsapp', metadata: META, ...value },
        })),
      },
    ],
  };
}

const contact = (waId: string, name: string) => ({ profile: { name }, wa_id: waId });

function parseOk(body: unknown) {
  const res = parseWebhookPayload(CHANNEL, body);
  if (!res.ok) throw new Error(`expected ok, got ${JSON.stringify(res.issues)}`);
  return res;
}

describe('verifySignature', () => {
  const body = Buffer.from(JSON.stringify({ object: 'whatsapp_business_account', entry: [] }));

  it('accepts the HMAC of the raw bytes', () => {
    expect(verifySignature(body, `sha256=${hex(body)}`, SECRET)).toBe(true);
    expect(verifySignature(body, signPayload(body, SECRET), SECRET)).toBe(true);
  });

  it('rejects a signature made with another secret or over other bytes', () => {
    expect(verifySignature(body, `sha256=${hex(body, 'other-secret')}`, SECRET)).toBe(false);
    const reformatted = Buffer.from(JSON.stringify(JSON.parse(body.toString()), null, 2));
    expect(verifySignature(reformatted, `sha256=${hex(body)}`, SECRET)).toBe(false);
  });

  it('rejects a missing or empty header, and refuses to vouch with an empty secret', () => {
    expect(verifySignature(body, undefined, SECRET)).toBe(false);
    expect(verifySignature(body, '', SECRET)).toBe(false);
    expect(verifySignature(body, `sha256=${hex(body, '')}`, '')).toBe(false);
  });

  it('rejects wrong lengths and formats without throwing', () => {
    const good = hex(body);
    for (const header of [
      `sha256=${good.slice(0, 63)}`,
      `sha256=${good}00`,
      `sha256=${good.slice(0, 62)}zz`,
      good,
      `sha1=${good}`,
      `sha256=`,
      `sha256=${Buffer.from(good, 'hex').toString('base64')}`,
    ]) {
      expect(() => verifySignature(body, header, SECRET)).not.toThrow();
      expect(verifySignature(body, header, SECRET)).toBe(false);
    }
  });

  it('accepts upper-case hex and prefix, and surrounding whitespace (the same bytes)', () => {
    expect(verifySignature(body, `sha256=${hex(body).toUpperCase()}`, SECRET)).toBe(true);
    expect(verifySignature(body, `SHA256=${hex(body)}`, SECRET)).toBe(true);
    expect(verifySignature(body, ` sha256=${hex(body)} `, SECRET)).toBe(true);
  });
});

describe('parseWebhookPayload', () => {
  it('normalises a text message with the sender name from contacts', () => {
    const res = parseOk(
      envelope({
        contacts: [contact('16505551234', 'Sheena Nelson')],
        messages: [
          {
            from: '16505551234',
            id: 'wamid.TEXT1',
            timestamp: '1749416383',
            type: 'text',
            text: { body: 'Does it come in another color?' },
          },
        ],
      }),
    );
    expect(res.messages).toEqual([
      {
        id: 'wamid.TEXT1',
        channelId: CHANNEL,
        chat: { kind: 'direct', id: '+16505551234', name: 'Sheena Nelson' },
        sender: { address: '+16505551234', name: 'Sheena Nelson' },
        text: 'Does it come in another color?',
        timestamp: 1749416383000,
      },
    ]);
    expect(res.statuses).toEqual([]);
    expect(res.phoneNumberIds).toEqual([PHONE_ID]);
  });

  it('keeps every message of a batched payload in order (3 messages across 2 changes and 2 entries)', () => {
    const first = envelope({
      contacts: [contact('111111111', 'Ann'), contact('222222222', 'Bob')],
      messages: [
        { from: '111111111', id: 'wamid.A', timestamp: '1700000001', type: 'text', text: { body: 'one' } },
        { from: '222222222', id: 'wamid.B', timestamp: '1700000002', type: 'text', text: { body: 'two' } },
      ],
    });
    const second = envelope({
      contacts: [contact('333333333', 'Cy')],
      messages: [{ from: '333333333', id: 'wamid.C', timestamp: '1700000003', type: 'text', text: { body: 'three' } }],
    });
    const entries = [...(first.entry as unknown[]), ...(second.entry as unknown[])];
    const res = parseOk({ object: 'whatsapp_business_account', entry: entries });
    expect(res.messages.map((m) => [m.id, m.sender.name, m.text])).toEqual([
      ['wamid.A', 'Ann', 'one'],
      ['wamid.B', 'Bob', 'two'],
      ['wamid.C', 'Cy', 'three'],
    ]);
    expect(res.phoneNumberIds).toEqual([PHONE_ID]);
  });

  it('handles two changes in one entry', () => {
    const res = parseOk(
      envelope(
        { messages: [{ from: '111111111', id: 'wamid.1', timestamp: '1', type: 'text', text: { body: 'a' } }] },
        { messages: [{ from: '111111111', id: 'wamid.2', timestamp: '2', type: 'text', text: { body: 'b' } }] },
      ),
    );
    expect(res.messages.map((m) => m.id)).toEqual(['wamid.1', 'wamid.2']);
    expect(res.messages[0].sender).toEqual({ address: '+111111111' });
  });

  it('normalises statuses, including a failure with its error', () => {
    const res = parseOk(
      envelope({
        statuses: [
          { id: 'wamid.OUT1', status: 'sent', timestamp: '1700000010', recipient_id: '16505551234' },
          { id: 'wamid.OUT1', status: 'delivered', timestamp: '1700000011', recipient_id: '16505551234' },
          { id: 'wamid.OUT1', status: 'read', timestamp: '1700000012', recipient_id: '16505551234' },
          {
            id: 'wamid.OUT2',
            status: 'failed',
            timestamp: '1700000013',
            recipient_id: '16505551234',
            errors: [
              {
                code: 131047,
                title: 'Re-engagement message',
                message: 'Re-engagement message',
                error_data: { details: 'Message failed to send because more than 24 hours have passed.' },
                href: 'https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/',
              },
            ],
          },
        ],
      }),
    );
    expect(res.messages).toEqual([]);
    expect(res.statuses.map((s) => s.status)).toEqual(['sent', 'delivered', 'read', 'failed']);
    expect(res.statuses[0]).toEqual({
      id: 'wamid.OUT1',
      channelId: CHANNEL,
      status: 'sent',
      recipient: '+16505551234',
      timestamp: 1700000010000,
    });
    expect(res.statuses[3].error).toEqual({
      code: 131047,
      title: 'Re-engagement message',
      message: 'Message failed to send because more than 24 hours have passed.',
    });
  });

  it('agrees with the fake server payload builders', () => {
    const inbound = parseOk(
      inboundPayload({ phoneNumberId: PHONE_ID }, [
        { from: '+16505551234', name: 'Sam', text: 'hi', replyTo: 'wamid.X' },
      ]),
    );
    expect(inbound.messages[0]).toMatchObject({
      sender: { address: '+16505551234', name: 'Sam' },
      text: 'hi',
      replyTo: 'wamid.X',
    });
    const status = parseOk(
      statusPayload({ phoneNumberId: PHONE_ID }, [
        {
          id: 'wamid.O',
          status: 'failed',
          recipient: '+16505551234',
          error: { code: 131026, title: 'Message undeliverable' },
        },
      ]),
    );
    expect(status.statuses[0]).toMatchObject({ status: 'failed', recipient: '+16505551234', error: { code: 131026 } });
  });

  it("uses the caption as text for media and keeps the media reference (with Meta's hash, file name, voice flag)", () => {
    const res = parseOk(
      envelope({
        messages: [
          {
            from: '16505551234',
            id: 'wamid.IMG',
            timestamp: '1700000000',
            type: 'image',
            image: { caption: 'my cat', mime_type: 'image/jpeg', sha256: 'abc', id: '1234567890' },
          },
          {
            from: '16505551234',
            id: 'wamid.DOC',
            timestamp: '1700000001',
            type: 'document',
            document: { filename: 'a.pdf', mime_type: 'application/pdf', sha256: 'def', id: '222' },
          },
        ],
      }),
    );
    expect(res.messages[0].text).toBe('my cat');
    expect(res.messages[0].media).toEqual({
      kind: 'image',
      id: '1234567890',
      mimeType: 'image/jpeg',
      caption: 'my cat',
      sha256: 'abc',
    });
    expect(res.messages[1].text).toBe('');
    expect(res.messages[1].media).toEqual({
      kind: 'document',
      id: '222',
      mimeType: 'application/pdf',
      sha256: 'def',
      filename: 'a.pdf',
    });
  });

  it('takes the title of interactive replies, the text of buttons and a readable location', () => {
    const base = { from: '16505551234', timestamp: '1700000000' };
    const res = parseOk(
      envelope({
        messages: [
          {
            ...base,
            id: 'wamid.I1',
            type: 'interactive',
            interactive: { type: 'button_reply', button_reply: { id: 'yes', title: 'Yes please' } },
          },
          {
            ...base,
            id: 'wamid.I2',
            type: 'interactive',
            interactive: {
              type: 'list_reply',
              list_reply: { id: 'row-2', title: 'Tuesday', description: 'afternoon' },
            },
          },
          { ...base, id: 'wamid.B1', type: 'button', button: { payload: 'STOP', text: 'Stop promotions' } },
          {
            ...base,
            id: 'wamid.L1',
            type: 'location',
            location: {
              latitude: 52.5163,
              longitude: 13.3777,
              name: 'Brandenburg Gate',
              address: 'Pariser Platz, Berlin',
            },
          },
        ],
      }),
    );
    expect(res.messages.map((m) => m.text)).toEqual([
      'Yes please',
      'Tuesday',
      'Stop promotions',
      '52.5163,13.3777 (Brandenburg Gate, Pariser Platz, Berlin)',
    ]);
  });

  it('carries the replied-to wamid from context', () => {
    const res = parseOk(
      envelope({
        messages: [
          {
            context: { from: '15550783881', id: 'wamid.ORIGINAL' },
            from: '16505551234',
            id: 'wamid.REPLY',
            timestamp: '1700000000',
            type: 'text',
            text: { body: 'answering that' },
          },
        ],
      }),
    );
    expect(res.messages[0].replyTo).toBe('wamid.ORIGINAL');
  });

  it('records reactions, unsupported, system notices and unknown types as unhandled, with a reason, without throwing', () => {
    const base = { from: '16505551234', timestamp: '1700000000' };
    const body = envelope({
      messages: [
        { ...base, id: 'wamid.R', type: 'reaction', reaction: { message_id: 'wamid.OUT', emoji: '👍' } },
        {
          ...base,
          id: 'wamid.U',
          type: 'unsupported',
          errors: [{ code: 131051, title: 'Message type unknown', message: 'Message type unknown' }],
        },
        {
          ...base,
          id: 'wamid.S',
          type: 'system',
          system: { body: 'User changed number', type: 'user_changed_number' },
        },
        { ...base, id: 'wamid.F', type: 'hologram', hologram: { depth: 3 } },
        { ...base, id: 'wamid.T', type: 'text', text: { body: 'still here' } },
      ],
    });
    expect(() => parseWebhookPayload(CHANNEL, body)).not.toThrow();
    const res = parseOk(body);
    expect(res.messages.map((m) => m.id)).toEqual(['wamid.T']);
    expect(res.unhandled.map((s) => [s.id, s.type, s.status])).toEqual([
      ['wamid.R', 'reaction', 'ignored'],
      ['wamid.U', 'unsupported', 'ignored'],
      ['wamid.S', 'system', 'ignored'],
      ['wamid.F', 'hologram', 'ignored'],
    ]);
    expect(res.unhandled[1].reason).toContain('131051');
    expect(res.unhandled[0].reason).toContain('👍');
  });

  it('records changes of other webhook fields as account events and tolerates unknown extra fields', () => {
    const body = {
      object: 'whatsapp_business_account',
      extra: true,
      entry: [
        {
          id: '1',
          time: 1700000000,
          changes: [
            { field: 'message_template_status_update', value: { event: 'APPROVED', message_template_id: 9 } },
            {
              field: 'messages',
              value: { messaging_product: 'whatsapp', metadata: { ...META, new_thing: 1 }, novel: [] },
            },
          ],
        },
      ],
    };
    const res = parseOk(body);
    expect(res.messages).toEqual([]);
    expect(res.phoneNumberIds).toEqual([PHONE_ID]);
    expect(res.unhandled).toEqual([
      expect.objectContaining({
        type: 'message_template_status_update',
        status: 'ignored',
        detail: { event: { event: 'APPROVED', message_template_id: 9 } },
      }),
    ]);
  });

  it('reports account-level errors', () => {
    const res = parseOk(envelope({ errors: [{ code: 130429, title: 'Rate limit hit', message: 'Rate limit hit' }] }));
    expect(res.errors).toEqual([{ phoneNumberId: PHONE_ID, code: 130429, title: 'Rate limit hit' }]);
  });

  it('rejects payloads that are not Meta-shaped', () => {
    for (const body of [
      {},
      null,
      'whatsapp',
      [],
      { object: 'page', entry: [] },
      { object: 'whatsapp_business_account' },
      { object: 'whatsapp_business_account', entry: {} },
      { object: 'whatsapp_business_account', entry: [{ id: '1', changes: 'x' }] },
    ]) {
      const res = parseWebhookPayload(CHANNEL, body);
      expect(res.ok, JSON.stringify(body)).toBe(false);
    }
  });

  it('records a message or status missing what Wharf relies on as failed, with the problem, and keeps the rest', () => {
    const cases: Record<string, unknown>[] = [
      { messages: [{ id: 'wamid.1', timestamp: '1', type: 'text', text: { body: 'no sender' } }] },
      { messages: [{ from: '1', id: 'wamid.1', timestamp: '1', type: 'text' }] },
      { messages: [{ from: '1', id: 'wamid.1', timestamp: 'yesterday', type: 'text', text: { body: 'x' } }] },
      { messages: [{ from: '1', timestamp: '1', type: 'text', text: { body: 'x' } }] },
      { statuses: [{ id: 'wamid.1', status: 'sent' }] },
    ];
    const good = {
      from: '16505551234',
      id: 'wamid.GOOD',
      timestamp: '1700000000',
      type: 'text',
      text: { body: 'fine' },
    };
    for (const value of cases) {
      const withGood = { ...value, messages: [...((value.messages as unknown[]) ?? []), good] };
      const res = parseOk(envelope(withGood));
      expect(
        res.messages.map((m) => m.id),
        JSON.stringify(value),
      ).toEqual(['wamid.GOOD']);
      expect(res.unhandled, JSON.stringify(value)).toHaveLength(1);
      expect(res.unhandled[0]).toMatchObject({
        status: 'failed',
        reason: expect.stringMatching(/(cannot|could not) read/),
      });
    }
  });

  it('refuses a messages change without metadata (the envelope is strict)', () => {
    const noMetadata = parseWebhookPayload(CHANNEL, {
      object: 'whatsapp_business_account',
      entry: [{ id: '1', changes: [{ field: 'messages', value: { messaging_product: 'whatsapp' } }] }],
    });
    expect(noMetadata.ok).toBe(false);
  });
});
