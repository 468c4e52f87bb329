/**
 * Meta's WhatsApp Cloud API webhooks: signature verification and a parser that turns a (possibly batched)
 * `whatsapp_business_account` payload into Wharf's normalised inbound messages and delivery statuses.
 *
 * The schema is strict on the fields Wharf relies on (ids, senders, timestamps, the body of the message type
 * at hand) and lenient about everything else, because Meta adds fields without notice.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import type { DeliveryStatus, InboundMessage } from '../types.js';

const SIGNATURE_RE = /^sha256=([0-9a-f]{64})$/i;

/** Checks `X-Hub-Signature-256` (`sha256=<hex HMAC-SHA256 of the raw body>`) in constant time; never throws. */
export function verifySignature(rawBody: Buffer, header: string | undefined, appSecret: string): boolean {
  // An empty secret would make the HMAC computable by anyone, so it can never vouch for a request.
  if (!appSecret || typeof header !== 'string') return false;
  const match = SIGNATURE_RE.exec(header.trim());
  if (!match) return false;
  const given = Buffer.from(match[1], 'hex');
  const expected = createHmac('sha256', appSecret).update(rawBody).digest();
  return given.length === expected.length && timingSafeEqual(given, expected);
}

const timestampSchema = z.union([z.string().regex(/^\d+$/, 'expected seconds since the epoch'), z.number().int()]);

const mediaSchema = z.looseObject({
  id: z.string(),
  mime_type: z.string().optional(),
  caption: z.string().optional(),
  filename: z.string().optional(),
});

const errorSchema = z.looseObject({
  code: z.number(),
  title: z.string().optional(),
  message: z.string().optional(),
  error_data: z.looseObject({ details: z.string().optional() }).optional(),
});

const MEDIA_TYPES = ['image', 'document', 'audio', 'video', 'sticker'] as const;

const messageSchema = z
  .looseObject({
    id: z.string().min(1),
    // With WhatsApp usernames, `from` (the phone number) can be absent; the business-scoped id then stands in.
    from: z.string().min(1).optional(),
    from_user_id: z.string().min(1).optional(),
    group_id: z.string().min(1).optional(),
    timestamp: timestampSchema,
    type: z.string(),
    context: z.looseObject({ id: z.string().optional(), from: z.string().optional() }).optional(),
    text: z.looseObject({ body: z.string() }).optional(),
    image: mediaSchema.optional(),
    document: mediaSchema.optional(),
    audio: mediaSchema.optional(),
    video: mediaSchema.optional(),
    sticker: mediaSchema.optional(),
    location: z
      .looseObject({
        latitude: z.number(),
        longitude: z.number(),
        name: z.string().optional(),
        address: z.string().optional(),
      })
      .optional(),
    contacts: z
      .array(
        z.looseObject({
          name: z.looseObject({ formatted_name: z.string().optional() }).optional(),
          phones: z.array(z.looseObject({ phone: z.string().optional() })).optional(),
        }),
      )
      .optional(),
    interactive: z
      .looseObject({
        type: z.string(),
        button_reply: z.looseObject({ id: z.string(), title: z.string() }).optional(),
        list_reply: z.looseObject({ id: z.string(), title: z.string() }).optional(),
        nfm_reply: z.looseObject({ body: z.string().optional(), name: z.string().optional() }).optional(),
      })
      .optional(),
    button: z.looseObject({ text: z.string(), payload: z.string().optional() }).optional(),
    reaction: z.looseObject({ message_id: z.string(), emoji: z.string().optional() }).optional(),
    errors: z.array(errorSchema).optional(),
  })
  .superRefine((m, ctx) => {
    if (!m.from && !m.from_user_id) {
      ctx.addIssue({ code: 'custom', path: ['from'], message: 'a message needs `from` or `from_user_id`' });
    }
    // The object named by `type` carries the content; without it the message cannot be normalised.
    const bodyKey = contentKey(m.type);
    if (bodyKey && m[bodyKey] === undefined) {
      ctx.addIssue({ code: 'custom', path: [bodyKey], message: `a ${m.type} message needs a \`${bodyKey}\` object` });
    }
    if (m.type === 'interactive' && m.interactive) {
      const sub = m.interactive.type;
      if ((sub === 'button_reply' || sub === 'list_reply') && m.interactive[sub] === undefined) {
        ctx.addIssue({ code: 'custom', path: ['interactive', sub], message: `a ${sub} needs a \`${sub}\` object` });
      }
    }
  });

type MetaMessage = z.infer<typeof messageSchema>;
type ContentKey =
  'text' | 'location' | 'contacts' | 'interactive' | 'button' | 'reaction' | (typeof MEDIA_TYPES)[number];

function contentKey(type: string): ContentKey | undefined {
  switch (type) {
    case 'text':
    case 'location':
    case 'contacts':
    case 'interactive':
    case 'button':
    case 'reaction':
      return type;
    default:
      return (MEDIA_TYPES as readonly string[]).includes(type) ? (type as ContentKey) : undefined;
  }
}

const statusSchema = z.looseObject({
  id: z.string().min(1),
  status: z.string(),
  timestamp: timestampSchema,
  recipient_id: z.string().optional(),
  recipient_user_id: z.string().optional(),
  recipient_type: z.string().optional(),
  errors: z.array(errorSchema).optional(),
});

const contactSchema = z.looseObject({
  wa_id: z.string().optional(),
  user_id: z.string().optional(),
  profile: z.looseObject({ name: z.string().optional() }).optional(),
});

/** The `value` of a change whose `field` is `messages`: inbound messages, statuses and account-level errors. */
export const messagesValueSchema = z.looseObject({
  messaging_product: z.literal('whatsapp'),
  metadata: z.looseObject({ display_phone_number: z.string().optional(), phone_number_id: z.string().min(1) }),
  contacts: z.array(contactSchema).optional(),
  messages: z.array(messageSchema).optional(),
  statuses: z.array(statusSchema).optional(),
  errors: z.array(errorSchema).optional(),
});

/**
 * The envelope Meta posts. `value` is only checked for `messages` changes: other fields a WABA can subscribe to
 * (template updates, account alerts, …) have their own shapes and are ignored, not rejected.
 */
export const webhookPayloadSchema = z.looseObject({
  object: z.literal('whatsapp_business_account'),
  entry: z.array(
    z.looseObject({
      id: z.string(),
      changes: z.array(z.looseObject({ field: z.string(), value: z.unknown() })),
    }),
  ),
});

/** One problem with a payload, as a path into it and a sentence. */
export interface PayloadIssue {
  path: (string | number)[];
  message: string;
}

/** A message Meta delivered that Wharf deliberately does not hand on, and why. */
export interface SkippedMessage {
  id: string;
  type: string;
  reason: string;
}

/** An account-level error Meta reported in a change instead of messages (e.g. a throughput problem). */
export interface WebhookError {
  phoneNumberId: string;
  code: number;
  title: string;
  message?: string;
}

/** The parse result: normalised messages and statuses in payload order, or the schema issues. */
export type ParsedWebhook =
  | {
      ok: true;
      messages: InboundMessage[];
      statuses: DeliveryStatus[];
      /** Distinct `metadata.phone_number_id`s seen, so the caller can check the payload is for its channel. */
      phoneNumberIds: string[];
      skipped: SkippedMessage[];
      errors: WebhookError[];
    }
  | { ok: false; issues: PayloadIssue[] };

/**
 * Validates a webhook body and normalises it for `channelId`. Reactions, `system` notices (number changes),
 * `unsupported` and unknown message types are reported in `skipped` instead of `messages`: they carry nothing
 * an agent should answer, and answering a 👍 would be noise.
 */
export function parseWebhookPayload(channelId: string, body: unknown): ParsedWebhook {
  const envelope = webhookPayloadSchema.safeParse(body);
  if (!envelope.success) return { ok: false, issues: toIssues(envelope.error.issues, []) };

  const issues: PayloadIssue[] = [];
  const messages: InboundMessage[] = [];
  const statuses: DeliveryStatus[] = [];
  const phoneNumberIds: string[] = [];
  const skipped: SkippedMessage[] = [];
  const errors: WebhookError[] = [];

  envelope.data.entry.forEach((entry, e) => {
    entry.changes.forEach((change, c) => {
      if (change.field !== 'messages') return;
      const parsed = messagesValueSchema.safeParse(change.value);
      if (!parsed.success) {
        issues.push(...toIssues(parsed.error.issues, ['entry', e, 'changes', c, 'value']));
        return;
      }
      const value = parsed.data;
      const phoneNumberId = value.metadata.phone_number_id;
      if (!phoneNumberIds.includes(phoneNumberId)) phoneNumberIds.push(phoneNumberId);

      for (const m of value.messages ?? []) {
        const result = normaliseMessage(channelId, m, value.contacts ?? []);
        if ('skip' in result) skipped.push({ id: m.id, type: m.type, reason: result.skip });
        else messages.push(result);
      }
      for (const s of value.statuses ?? []) {
        const status = normaliseStatus(channelId, s);
        if (status) statuses.push(status);
      }
      for (const err of value.errors ?? []) errors.push({ phoneNumberId, ...errorFields(err) });
    });
  });

  if (issues.length > 0) return { ok: false, issues };
  return { ok: true, messages, statuses, phoneNumberIds, skipped, errors };
}

function toIssues(zodIssues: readonly z.core.$ZodIssue[], prefix: (string | number)[]): PayloadIssue[] {
  return zodIssues.map((i) => ({
    path: [...prefix, ...i.path.map((p) => (typeof p === 'number' ? p : String(p)))],
    message: i.message,
  }));
}

/** `+` and the digits for a phone number; anything else (a business-scoped user id) stays raw. */
function toAddress(id: string): string {
  return /^\d+$/.test(id) ? `+${id}` : id;
}

const toMillis = (ts: string | number): number => Number(ts) * 1000;

type Contact = z.infer<typeof contactSchema>;

function normaliseMessage(channelId: string, m: MetaMessage, contacts: Contact[]): InboundMessage | { skip: string } {
  const content = messageContent(m);
  if ('skip' in content) return content;

  const senderId = m.from ?? m.from_user_id ?? '';
  const contact = contacts.find(
    (c) =>
      (m.from !== undefined && c.wa_id === m.from) || (m.from_user_id !== undefined && c.user_id === m.from_user_id),
  );
  const name = contact?.profile?.name || undefined;
  const address = toAddress(senderId);

  const out: InboundMessage = {
    id: m.id,
    channelId,
    chat: m.group_id ? { kind: 'group', id: m.group_id } : { kind: 'direct', id: address, ...(name ? { name } : {}) },
    sender: name ? { address, name } : { address },
    text: content.text,
    timestamp: toMillis(m.timestamp),
  };
  if (content.media) out.media = content.media;
  if (m.context?.id) out.replyTo = m.context.id;
  return out;
}

type Content = { text: string; media?: InboundMessage['media'] } | { skip: string };

function messageContent(m: MetaMessage): Content {
  switch (m.type) {
    case 'text':
      return { text: m.text?.body ?? '' };
    case 'image':
    case 'document':
    case 'audio':
    case 'video':
    case 'sticker': {
      const media = m[m.type];
      if (!media) return { skip: `no ${m.type} object` };
      return {
        text: media.caption ?? '',
        media: omitUndefined({ kind: m.type, id: media.id, mimeType: media.mime_type, caption: media.caption }),
      };
    }
    case 'location': {
      const loc = m.location;
      if (!loc) return { skip: 'no location object' };
      const label = [loc.name, loc.address].filter(Boolean).join(', ');
      return { text: `${loc.latitude},${loc.longitude}${label ? ` (${label})` : ''}` };
    }
    case 'contacts': {
      const cards = (m.contacts ?? []).map((card) => {
        const phones = (card.phones ?? []).map((p) => p.phone).filter(Boolean);
        const cardName = card.name?.formatted_name ?? 'Unnamed contact';
        return phones.length ? `${cardName} (${phones.join(', ')})` : cardName;
      });
      return { text: `Shared contact${cards.length === 1 ? '' : 's'}: ${cards.join('; ')}` };
    }
    case 'interactive': {
      const i = m.interactive;
      if (i?.button_reply) return { text: i.button_reply.title };
      if (i?.list_reply) return { text: i.list_reply.title };
      if (i?.nfm_reply) return { text: i.nfm_reply.body ?? '' };
      return { skip: `interactive reply of type ${i?.type ?? 'unknown'}` };
    }
    case 'button':
      return { text: m.button?.text ?? '' };
    case 'reaction':
      return { skip: 'reactions are not messages to answer' };
    case 'system':
      return { skip: 'system notice (e.g. the customer changed number)' };
    case 'unsupported': {
      const err = m.errors?.[0];
      return {
        skip: err ? `unsupported by the Cloud API (${err.code}: ${err.title ?? err.message ?? ''})` : 'unsupported',
      };
    }
    default:
      return { skip: `message type ${m.type} is not handled` };
  }
}

const DELIVERY_STATUSES: ReadonlySet<string> = new Set(['sent', 'delivered', 'read', 'failed', 'deleted', 'warning']);

type MetaStatus = z.infer<typeof statusSchema>;

function normaliseStatus(channelId: string, s: MetaStatus): DeliveryStatus | undefined {
  // Statuses outside Wharf's set (e.g. `played` for voice notes, which Wharf never sends) carry nothing for the log.
  if (!DELIVERY_STATUSES.has(s.status)) return undefined;
  const recipientId = s.recipient_id ?? s.recipient_user_id ?? '';
  const out: DeliveryStatus = {
    id: s.id,
    channelId,
    status: s.status as DeliveryStatus['status'],
    recipient: s.recipient_type === 'group' ? recipientId : toAddress(recipientId),
    timestamp: toMillis(s.timestamp),
  };
  const err = s.errors?.[0];
  if (err) out.error = errorFields(err);
  return out;
}

function errorFields(err: z.infer<typeof errorSchema>): { code: number; title: string; message?: string } {
  const title = err.title ?? err.message ?? `Error ${err.code}`;
  const message = err.error_data?.details ?? err.message;
  return message && message !== title ? { code: err.code, title, message } : { code: err.code, title };
}

function omitUndefined<T extends Record<string, unknown>>(obj: T): T {
  return Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== undefined)) as T;
}
