/**
 * Meta's WhatsApp Cloud API webhooks: signature verification and a parser that turns a (possibly batched)
 * `whatsapp_business_account` payload into Wharf's normalised inbound messages and delivery statuses.
 *
 * The envelope (object, entry, changes, metadata) is checked strictly: a body that is not Meta's is refused
 * whole. Inside it, every message and status is parsed on its own, strict on the fields Wharf relies on and
 * lenient about the rest (Meta adds fields without notice): one item Wharf cannot read, or one that is for
 * another phone number, is reported in `unhandled` with its type and the reason, and never refuses the
 * others — a refused batch is retried by Meta and then dropped, taking the good messages with it.
 */
import { createHash, createHmac } from 'node:crypto';
import { sameSecret } from '../constant-time.js';
import { z } from 'zod';
import { storable } from '../storable-text.js';
import type { DeliveryStatus, InboundMessage, NumberChange, UnhandledInbound } from '../types.js';

const SIGNATURE_RE = /^sha256=([0-9a-f]{64})$/i;

/** Checks `X-Hub-Signature-256` (`sha256=<hex HMAC-SHA256 of the raw body>`) in constant time; never throws. */
export function verifySignature(rawBody: Buffer, header: string | undefined, appSecret: string): boolean {
  // An empty secret would make the HMAC computable by anyone, so it can never vouch for a request.
  if (!appSecret || typeof header !== 'string') return false;
  const match = SIGNATURE_RE.exec(header.trim());
  if (!match) return false;
  const given = Buffer.from(match[1], 'hex');
  const expected = createHmac('sha256', appSecret).update(rawBody).digest();
  return sameSecret(given, expected);
}

const timestampSchema = z.union([z.string().regex(/^\d+$/, 'expected seconds since the epoch'), z.number().int()]);

const mediaSchema = z.looseObject({
  id: z.string(),
  mime_type: z.string().optional(),
  caption: z.string().optional(),
  filename: z.string().optional(),
  sha256: z.string().optional(),
  voice: z.boolean().optional(),
});

const errorSchema = z.looseObject({
  code: z.number(),
  title: z.string().optional(),
  message: z.string().optional(),
  error_data: z.looseObject({ details: z.string().optional() }).optional(),
});

const MEDIA_TYPES = ['image', 'document', 'audio', 'video', 'sticker'] as const;

/** The content objects of the message types Wharf reads, keyed by type. */
const contentSchemas = {
  text: z.looseObject({ body: z.string() }),
  ...Object.fromEntries(MEDIA_TYPES.map((t) => [t, mediaSchema])),
  location: z.looseObject({
    latitude: z.number(),
    longitude: z.number(),
    name: z.string().optional(),
    address: z.string().optional(),
  }),
  contacts: z.array(
    z.looseObject({
      name: z.looseObject({ formatted_name: z.string().optional() }).optional(),
      phones: z.array(z.looseObject({ phone: z.string().optional() })).optional(),
    }),
  ),
  interactive: z.looseObject({
    type: z.string(),
    button_reply: z.looseObject({ id: z.string(), title: z.string() }).optional(),
    list_reply: z.looseObject({ id: z.string(), title: z.string() }).optional(),
    nfm_reply: z.looseObject({ body: z.string().optional(), name: z.string().optional() }).optional(),
  }),
  button: z.looseObject({ text: z.string(), payload: z.string().optional() }),
  reaction: z.looseObject({ message_id: z.string(), emoji: z.string().optional() }),
  order: z.looseObject({
    catalog_id: z.string().optional(),
    text: z.string().optional(),
    product_items: z
      .array(
        z.looseObject({
          product_retailer_id: z.string().optional(),
          quantity: z.union([z.number(), z.string()]).optional(),
          item_price: z.union([z.number(), z.string()]).optional(),
          currency: z.string().optional(),
        }),
      )
      .optional(),
  }),
  system: z.looseObject({ body: z.string().optional(), wa_id: z.string().optional(), type: z.string().optional() }),
  revoke: z.looseObject({ original_message_id: z.string() }),
  edit: z.looseObject({ original_message_id: z.string(), message: z.looseObject({ type: z.string() }) }),
} as const;

type ContentType = keyof typeof contentSchemas;
const isContentType = (t: string): t is ContentType => Object.hasOwn(contentSchemas, t);

/** The message types Meta's webhooks carry that Wharf tells apart; `unsupported` is Meta's own, for one it cannot show. */
export const CLOUD_MESSAGE_TYPES: readonly string[] = [...Object.keys(contentSchemas), 'unsupported'];

/** The fields every message shares; its content object is parsed by type (`contentSchemas`). */
const messageSchema = z
  .looseObject({
    // Bounded: ids become database keys and workflow ids, which have size limits of their own.
    id: z.string().min(1).max(512),
    // A user who adopted a WhatsApp username may arrive with `from` empty or absent and only the
    // business-scoped user id (BSUID) in `from_user_id`.
    from: z.string().max(64).optional(),
    from_user_id: z.string().min(1).max(160).optional(),
    group_id: z.string().min(1).max(128).optional(),
    timestamp: timestampSchema,
    type: z.string().min(1),
    context: z.looseObject({ id: z.string().optional(), from: z.string().optional() }).optional(),
    errors: z.array(errorSchema).optional(),
  })
  .refine((m) => !!m.from || !!m.from_user_id, { path: ['from'], message: 'a message needs `from` or `from_user_id`' });

type MetaMessage = z.infer<typeof messageSchema> & Record<string, unknown>;

const statusSchema = z.looseObject({
  id: z.string().min(1).max(512),
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
type Contact = z.infer<typeof contactSchema>;

/**
 * The `value` of a change whose `field` is `messages`. Its metadata is part of the envelope (checked
 * strictly); its messages, statuses and contacts are only arrays here and are read one by one.
 */
export const messagesValueSchema = z.looseObject({
  messaging_product: z.literal('whatsapp'),
  metadata: z.looseObject({ display_phone_number: z.string().optional(), phone_number_id: z.string().min(1) }),
  contacts: z.array(z.unknown()).optional(),
  messages: z.array(z.unknown()).optional(),
  statuses: z.array(z.unknown()).optional(),
  errors: z.array(z.unknown()).optional(),
});

/** The envelope Meta posts. Changes of other fields (template status, account updates, …) are recorded, not read. */
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

/** An account-level error Meta reported in a change instead of messages (e.g. a throughput problem). */
export interface WebhookError {
  phoneNumberId: string;
  code: number;
  title: string;
  message?: string;
}

/** The parse result: what goes to chats, what is only recorded, and what the channel must act on. */
export type ParsedWebhook =
  | {
      ok: true;
      /** Messages for the agent (after pairing and policy), in payload order. */
      messages: InboundMessage[];
      statuses: DeliveryStatus[];
      /** Events recorded on the message log only, each with its type and the reason. */
      unhandled: UnhandledInbound[];
      /** Users who moved to a new number (Meta's signed `system` notice). */
      numberChanges: NumberChange[];
      /** Distinct `metadata.phone_number_id`s seen. */
      phoneNumberIds: string[];
      errors: WebhookError[];
    }
  | { ok: false; issues: PayloadIssue[] };

/** Options of {@link parseWebhookPayload}. */
export interface ParseOptions {
  /**
   * The channel's own `phone_number_id`. Events of a change addressed to another number are not for this
   * channel (two numbers of one Meta app share its app secret, so the signature cannot tell): they are
   * reported as unhandled. Unset: every number is accepted (unit tests of the normalisation).
   */
  phoneNumberId?: string;
}

/**
 * Validates a webhook body and normalises it for `channelId`. Reactions, deletions, `unsupported` and
 * unknown types are reported in `unhandled`: they carry nothing an agent should answer (answering a 👍
 * would be noise), but the operator sees each of them on the message log.
 */
export function parseWebhookPayload(channelId: string, body: unknown, opts: ParseOptions = {}): ParsedWebhook {
  const envelope = webhookPayloadSchema.safeParse(body);
  if (!envelope.success) return { ok: false, issues: toIssues(envelope.error.issues, []) };

  const issues: PayloadIssue[] = [];
  const out = {
    messages: [] as InboundMessage[],
    statuses: [] as DeliveryStatus[],
    unhandled: [] as UnhandledInbound[],
    numberChanges: [] as NumberChange[],
    phoneNumberIds: [] as string[],
    errors: [] as WebhookError[],
  };

  envelope.data.entry.forEach((entry, e) => {
    entry.changes.forEach((change, c) => {
      if (change.field !== 'messages') {
        out.unhandled.push({
          id: `event:${change.field}:${digest(change.value)}`,
          chatId: '',
          address: null,
          type: change.field,
          text: '',
          status: 'ignored',
          reason: `An account event (${change.field}), not a message: recorded, no action taken.`,
          detail: { event: summarise(change.value) },
        });
        return;
      }
      const parsed = messagesValueSchema.safeParse(change.value);
      if (!parsed.success) {
        issues.push(...toIssues(parsed.error.issues, ['entry', e, 'changes', c, 'value']));
        return;
      }
      const value = parsed.data;
      const phoneNumberId = value.metadata.phone_number_id;
      if (!out.phoneNumberIds.includes(phoneNumberId)) out.phoneNumberIds.push(phoneNumberId);
      const elsewhere = opts.phoneNumberId !== undefined && phoneNumberId !== opts.phoneNumberId;
      const contacts = (value.contacts ?? []).flatMap((x) => {
        const r = contactSchema.safeParse(x);
        return r.success ? [r.data] : [];
      });

      for (const raw of value.messages ?? []) {
        if (elsewhere) out.unhandled.push(notOurs(raw, 'message', phoneNumberId, opts.phoneNumberId!));
        else readMessage(channelId, raw, contacts, out);
      }
      for (const raw of value.statuses ?? []) {
        if (elsewhere) {
          out.unhandled.push(notOurs(raw, 'status', phoneNumberId, opts.phoneNumberId!));
          continue;
        }
        const s = statusSchema.safeParse(raw);
        if (!s.success) out.unhandled.push(unreadable(raw, 'status', s.error.issues));
        else out.statuses.push(normaliseStatus(channelId, s.data));
      }
      for (const raw of value.errors ?? []) {
        const err = errorSchema.safeParse(raw);
        if (err.success) out.errors.push({ phoneNumberId, ...errorFields(err.data) });
      }
    });
  });

  if (issues.length > 0) return { ok: false, issues };
  return { ok: true, ...out };
}

/** Reads one message into `out`: a message for the chats, a number change, or an unhandled entry. */
function readMessage(
  channelId: string,
  raw: unknown,
  contacts: Contact[],
  out: { messages: InboundMessage[]; unhandled: UnhandledInbound[]; numberChanges: NumberChange[] },
): void {
  const parsed = messageSchema.safeParse(raw);
  if (!parsed.success) {
    out.unhandled.push(unreadable(raw, 'message', parsed.error.issues));
    return;
  }
  const m = parsed.data as MetaMessage;
  const sender = senderOf(m, contacts);
  const chatId = m.group_id ?? sender.address;
  const unhandled = (status: 'ignored' | 'failed', reason: string, detail?: Record<string, unknown>): void => {
    out.unhandled.push({
      id: m.id,
      chatId,
      address: sender.address,
      type: m.type,
      text: '',
      status,
      reason,
      ...(detail ? { detail } : {}),
    });
  };

  // The content object named by the type; a type Wharf knows with a content object it cannot read is
  // recorded with what Meta said about it (e.g. `interactive` with error 131000 and no `interactive`).
  let content: unknown;
  if (isContentType(m.type)) {
    const c = contentSchemas[m.type].safeParse(m[m.type]);
    if (!c.success) {
      const err = m.errors?.[0];
      const said = err ? ` Meta reported ${err.code}: ${err.title ?? err.message ?? ''}.` : '';
      unhandled(
        err ? 'ignored' : 'failed',
        `A ${m.type} message Wharf cannot read (${issueText(c.error.issues, m.type)}).${said}`,
        err ? { error: errorFields(err) } : undefined,
      );
      return;
    }
    content = c.data;
  }

  switch (m.type) {
    case 'reaction': {
      const r = content as z.infer<(typeof contentSchemas)['reaction']>;
      unhandled(
        'ignored',
        r.emoji
          ? `Reaction ${r.emoji} to ${r.message_id}; reactions are not sent to the agent.`
          : `Reaction to ${r.message_id} removed.`,
        { reactsTo: r.message_id },
      );
      return;
    }
    case 'revoke': {
      const r = content as z.infer<(typeof contentSchemas)['revoke']>;
      unhandled('ignored', `The sender deleted message ${r.original_message_id}; the agent is not told.`, {
        deletes: r.original_message_id,
      });
      return;
    }
    case 'system': {
      const sys = content as z.infer<(typeof contentSchemas)['system']>;
      if (sys.type === 'user_changed_number' && sys.wa_id && m.from) {
        out.numberChanges.push({ id: m.id, from: sender.address, to: toAddress(sys.wa_id), body: sys.body ?? '' });
        return;
      }
      unhandled('ignored', `System notice${sys.type ? ` (${sys.type})` : ''}: ${sys.body ?? 'no text'}.`);
      return;
    }
    case 'unsupported': {
      const err = m.errors?.[0];
      unhandled(
        'ignored',
        `Unsupported by the Cloud API${err ? ` (${err.code}: ${err.title ?? err.message ?? ''})` : ''}; nothing reached the agent.`,
        err ? { error: errorFields(err) } : undefined,
      );
      return;
    }
  }

  const text =
    m.type === 'edit' ? editText(content as z.infer<(typeof contentSchemas)['edit']>) : contentText(m.type, content);
  if (text === undefined) {
    unhandled('ignored', `Message type ${m.type} is not handled by Wharf; nothing reached the agent.`);
    return;
  }

  const msg: InboundMessage = {
    id: m.id,
    channelId,
    chat: m.group_id
      ? { kind: 'group', id: m.group_id }
      : { kind: 'direct', id: chatId, ...(sender.name ? { name: sender.name } : {}) },
    sender,
    text: storable(text.text),
    timestamp: toMillis(m.timestamp),
  };
  if (m.type !== 'text') msg.type = m.type;
  if (text.media) msg.media = text.media;
  if (m.type === 'edit') msg.edit = { originalId: (content as { original_message_id: string }).original_message_id };
  if (m.context?.id) msg.replyTo = m.context.id;
  out.messages.push(msg);
}

/** Who sent `m`: the phone number when Meta shares it (E.164), else the business-scoped user id. */
function senderOf(m: MetaMessage, contacts: Contact[]): InboundMessage['sender'] {
  const from = m.from || undefined;
  const contact = contacts.find(
    (c) => (from !== undefined && c.wa_id === from) || (m.from_user_id !== undefined && c.user_id === m.from_user_id),
  );
  const name = contact?.profile?.name ? storable(contact.profile.name) : undefined;
  const userId = m.from_user_id ?? contact?.user_id;
  return {
    address: storable(toAddress(from ?? m.from_user_id ?? '')),
    ...(name ? { name } : {}),
    ...(userId ? { userId: storable(userId) } : {}),
  };
}

type Content = { text: string; media?: InboundMessage['media'] };

/** The text (and media) an agent gets for a message of `type`, or undefined for a type Wharf does not read. */
function contentText(type: string, content: unknown): Content | undefined {
  switch (type) {
    case 'text':
      return { text: (content as { body: string }).body };
    case 'image':
    case 'document':
    case 'audio':
    case 'video':
    case 'sticker': {
      const media = content as z.infer<typeof mediaSchema>;
      return {
        text: media.caption ?? '',
        media: omitUndefined({
          kind: type,
          id: media.id,
          mimeType: media.mime_type,
          caption: media.caption,
          sha256: media.sha256,
          filename: media.filename,
          voice: media.voice,
        }),
      };
    }
    case 'location': {
      const loc = content as z.infer<(typeof contentSchemas)['location']>;
      const label = [loc.name, loc.address].filter(Boolean).join(', ');
      return { text: `${loc.latitude},${loc.longitude}${label ? ` (${label})` : ''}` };
    }
    case 'contacts': {
      const cards = (content as z.infer<(typeof contentSchemas)['contacts']>).map((card) => {
        const phones = (card.phones ?? []).map((p) => p.phone).filter(Boolean);
        const cardName = card.name?.formatted_name ?? 'Unnamed contact';
        return phones.length ? `${cardName} (${phones.join(', ')})` : cardName;
      });
      return { text: `Shared contact${cards.length === 1 ? '' : 's'}: ${cards.join('; ')}` };
    }
    case 'interactive': {
      const i = content as z.infer<(typeof contentSchemas)['interactive']>;
      if (i.button_reply) return { text: i.button_reply.title };
      if (i.list_reply) return { text: i.list_reply.title };
      if (i.nfm_reply) return { text: i.nfm_reply.body ?? '' };
      return undefined;
    }
    case 'button':
      return { text: (content as { text: string }).text };
    case 'order': {
      const o = content as z.infer<(typeof contentSchemas)['order']>;
      const items = (o.product_items ?? []).map(
        (p) =>
          `${p.quantity ?? 1} × ${p.product_retailer_id ?? 'item'}${p.item_price !== undefined ? ` (${p.item_price}${p.currency ? ` ${p.currency}` : ''})` : ''}`,
      );
      const lines = [o.text, items.length ? `Order: ${items.join(', ')}` : 'Order'].filter(Boolean);
      return { text: lines.join('\n') };
    }
    default:
      return undefined;
  }
}

/** An edit carries the new message inside it; its text is what the agent gets. */
function editText(edit: z.infer<(typeof contentSchemas)['edit']>): Content | undefined {
  const inner = edit.message as Record<string, unknown> & { type: string };
  if (!isContentType(inner.type)) return undefined;
  const c = contentSchemas[inner.type].safeParse(inner[inner.type]);
  return c.success ? contentText(inner.type, c.data) : undefined;
}

/** The unhandled entry for an item of a change addressed to another phone number. */
function notOurs(raw: unknown, kind: 'message' | 'status', theirs: string, ours: string): UnhandledInbound {
  const r = (raw && typeof raw === 'object' ? raw : {}) as Record<string, unknown>;
  const id =
    typeof r.id === 'string' && r.id
      ? kind === 'status'
        ? `status:${r.id}:${String(r.status)}`
        : r.id
      : `${kind}:${digest(raw)}`;
  const from =
    typeof r.from === 'string' && r.from
      ? toAddress(r.from)
      : typeof r.from_user_id === 'string'
        ? r.from_user_id
        : null;
  return {
    id,
    chatId: from ?? '',
    address: from,
    type: kind === 'status' ? 'status' : typeof r.type === 'string' ? r.type : 'unknown',
    text: '',
    status: 'ignored',
    reason: `Addressed to phone_number_id ${theirs}, not this channel's (${ours}): not processed. Point that number's webhook at its own channel.`,
  };
}

/** The unhandled entry for an item Wharf cannot read, with the schema's complaint. */
function unreadable(
  raw: unknown,
  kind: 'message' | 'status',
  zodIssues: readonly z.core.$ZodIssue[],
): UnhandledInbound {
  const r = (raw && typeof raw === 'object' ? raw : {}) as Record<string, unknown>;
  const hasId = typeof r.id === 'string' && r.id.length > 0 && r.id.length <= 512;
  const from = typeof r.from === 'string' && r.from ? toAddress(r.from).slice(0, 64) : null;
  return {
    id: hasId
      ? kind === 'status'
        ? `status:${r.id as string}:${String(r.status)}`
        : (r.id as string)
      : `${kind}:${digest(raw)}`,
    chatId: from ?? '',
    address: from,
    type: kind === 'status' ? 'status' : typeof r.type === 'string' && r.type.length <= 64 ? r.type : 'unknown',
    text: '',
    status: 'failed',
    reason: `Wharf could not read this ${kind} (${issueText(zodIssues)}); it was recorded and skipped.`,
  };
}

function issueText(zodIssues: readonly z.core.$ZodIssue[], root = ''): string {
  return zodIssues
    .slice(0, 3)
    .map((i) => `${[root, ...i.path].filter((p) => p !== '').join('.') || 'value'}: ${i.message}`)
    .join('; ');
}

/** A stable short digest of an item, as the key of one that has no usable id. */
function digest(v: unknown): string {
  return createHash('sha256')
    .update(JSON.stringify(v) ?? 'undefined')
    .digest('hex')
    .slice(0, 32);
}

/** The top-level scalar fields of an account event, for its log entry (bounded). */
function summarise(v: unknown): Record<string, unknown> {
  if (!v || typeof v !== 'object') return {};
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v).slice(0, 12)) {
    if (typeof x === 'string') out[k] = x.slice(0, 200);
    else if (typeof x === 'number' || typeof x === 'boolean') out[k] = x;
  }
  return out;
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

const DELIVERY_STATUSES: ReadonlySet<string> = new Set([
  'sent',
  'delivered',
  'read',
  'played',
  'failed',
  'deleted',
  'warning',
]);

type MetaStatus = z.infer<typeof statusSchema>;

function normaliseStatus(channelId: string, s: MetaStatus): DeliveryStatus {
  const recipientId = s.recipient_id ?? s.recipient_user_id ?? '';
  const out: DeliveryStatus = {
    id: s.id,
    channelId,
    // A status outside the known set is applied as Meta named it (the log shows it; it never moves a reply back).
    status: (DELIVERY_STATUSES.has(s.status) ? s.status : storable(s.status.slice(0, 32))) as DeliveryStatus['status'],
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
