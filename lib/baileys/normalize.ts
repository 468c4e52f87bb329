/**
 * Baileys messages → Wharf's normalised inbound messages (SPEC §5), the same shape the Cloud API webhook
 * produces. The rules keep the agent from ever seeing its own words or the owner's other conversations:
 *
 * - Only the owner's messages in their chat with themselves ("Message yourself") are taken from the linked
 *   account (`fromMe`); every other `fromMe` message (the owner writing to someone else, from the phone or
 *   any device) is dropped.
 * - Messages Wharf sent itself (ids in `sentIds`) are dropped, even in the self chat.
 * - Status broadcasts, broadcast lists, newsletters, protocol messages (edits, revokes, key distribution),
 *   reactions, stubs (group notices) and messages without text or media are dropped.
 *
 * The caller passes live (`notify`) and offline-kept (`append`) upserts; history sync never comes here.
 * Addresses are E.164 with `+` when the number is known (phone-number jids, or the LID's `…Alt` twin), else
 * the raw WhatsApp id (`…@lid`). Group chats keep their jid (`<id>@g.us`) as chat id.
 */
import {
  areJidsSameUser,
  getContentType,
  isJidBroadcast,
  isJidGroup,
  isJidNewsletter,
  isJidStatusBroadcast,
  isLidUser,
  isPnUser,
  jidDecode,
  jidNormalizedUser,
  normalizeMessageContent,
  type WAMessage,
  type proto,
} from '@whiskeysockets/baileys';
import type { InboundMessage } from '../types.js';

/** What the normaliser needs to know about the session. */
export interface NormalizeContext {
  /** The linked account's phone-number jid (`sock.user.id`, device suffix allowed). */
  selfJid: string;
  /** The linked account's LID (`sock.user.lid`), when known: the self chat may be addressed by it. */
  selfLid?: string;
  /** Ids of messages Wharf sent (never taken as inbound). */
  sentIds: Set<string> | { has(id: string): boolean };
  /** Known group subjects by group jid (optional, for `chat.name`). */
  groupNames?: { get(jid: string): string | undefined };
}

/** A phone-number or LID jid as a Wharf address: `+<digits>` for phone numbers, else the bare jid. */
export function jidToAddress(jid: string): string {
  const decoded = jidDecode(jid);
  if (!decoded?.user) return jid;
  if (decoded.server === 's.whatsapp.net' || decoded.server === 'c.us') return `+${decoded.user}`;
  return jidNormalizedUser(jid) || jid;
}

/** A Wharf address or chat id as a jid: `+155…` → `155…@s.whatsapp.net`; jids (`…@lid`, `…@g.us`) as they are. */
export function addressToJid(address: string): string {
  const a = address.trim();
  if (a.includes('@')) return a;
  const digits = a.replace(/^\+/, '');
  if (!/^\d{5,20}$/.test(digits)) throw new Error(`"${address}" is neither an E.164 number nor a WhatsApp id.`);
  return `${digits}@s.whatsapp.net`;
}

/** The best address for a user: the phone number when either jid is one, else the LID. */
function bestAddress(jid: string | null | undefined, alt: string | null | undefined): string | null {
  if (jid && isPnUser(jid)) return jidToAddress(jid);
  if (alt && isPnUser(alt)) return jidToAddress(alt);
  if (jid) return jidToAddress(jid);
  if (alt) return jidToAddress(alt);
  return null;
}

function toMillis(ts: WAMessage['messageTimestamp']): number {
  if (ts === null || ts === undefined) return Date.now();
  const seconds =
    typeof ts === 'number'
      ? ts
      : typeof (ts as { toNumber?: () => number }).toNumber === 'function'
        ? (ts as { toNumber: () => number }).toNumber()
        : Number(ts);
  return Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : Date.now();
}

type Content = { text: string; media?: InboundMessage['media']; replyTo?: string };

const MEDIA_KINDS = {
  imageMessage: 'image',
  videoMessage: 'video',
  documentMessage: 'document',
  audioMessage: 'audio',
  stickerMessage: 'sticker',
  ptvMessage: 'video',
} as const;

function omitUndefined<T extends Record<string, unknown>>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined && v !== null && v !== '')) as T;
}

/** Text, media and quoted id of a message, or null when it is nothing to answer. */
function contentOf(message: proto.IMessage): Content | null {
  const type = getContentType(message);
  if (!type) return null;
  const contextId = (ctx: proto.IContextInfo | null | undefined): string | undefined => ctx?.stanzaId ?? undefined;
  switch (type) {
    case 'conversation':
      return message.conversation ? { text: message.conversation } : null;
    case 'extendedTextMessage': {
      const m = message.extendedTextMessage;
      return m?.text ? { text: m.text, replyTo: contextId(m.contextInfo) } : null;
    }
    case 'imageMessage':
    case 'videoMessage':
    case 'documentMessage':
    case 'audioMessage':
    case 'stickerMessage':
    case 'ptvMessage': {
      const m = message[type] as (proto.Message.IImageMessage & proto.Message.IDocumentMessage) | null | undefined;
      if (!m) return null;
      const caption = m.caption ?? undefined;
      return {
        text: caption ?? '',
        media: omitUndefined({ kind: MEDIA_KINDS[type], mimeType: m.mimetype ?? undefined, caption }),
        replyTo: contextId(m.contextInfo),
      };
    }
    case 'locationMessage':
    case 'liveLocationMessage': {
      const loc = (message.locationMessage ?? message.liveLocationMessage) as
        proto.Message.ILocationMessage | null | undefined;
      if (!loc) return null;
      const label = [loc.name, loc.address].filter(Boolean).join(', ');
      return { text: `${loc.degreesLatitude},${loc.degreesLongitude}${label ? ` (${label})` : ''}` };
    }
    case 'contactMessage':
    case 'contactsArrayMessage': {
      const names = message.contactMessage
        ? [message.contactMessage.displayName]
        : (message.contactsArrayMessage?.contacts ?? []).map((c) => c.displayName);
      const cards = names.map((n) => n || 'Unnamed contact');
      return { text: `Shared contact${cards.length === 1 ? '' : 's'}: ${cards.join('; ')}` };
    }
    case 'buttonsResponseMessage': {
      const m = message.buttonsResponseMessage;
      const text = m?.selectedDisplayText || m?.selectedButtonId;
      return text ? { text, replyTo: contextId(m?.contextInfo) } : null;
    }
    case 'templateButtonReplyMessage': {
      const m = message.templateButtonReplyMessage;
      const text = m?.selectedDisplayText || m?.selectedId;
      return text ? { text, replyTo: contextId(m?.contextInfo) } : null;
    }
    case 'listResponseMessage': {
      const m = message.listResponseMessage;
      const text = m?.title || m?.singleSelectReply?.selectedRowId;
      return text ? { text, replyTo: contextId(m?.contextInfo) } : null;
    }
    case 'interactiveResponseMessage': {
      const m = message.interactiveResponseMessage;
      const text = m?.body?.text;
      return text ? { text, replyTo: contextId(m?.contextInfo) } : null;
    }
    default:
      // protocolMessage (edits, revokes, history notices), reactionMessage, pollUpdateMessage, keep-in-chat,
      // call logs, …: nothing for the agent.
      return null;
  }
}

/** Normalises one Baileys message, or returns null when it must not reach the agent. */
export function normalizeWaMessage(channelId: string, msg: WAMessage, ctx: NormalizeContext): InboundMessage | null {
  const key = msg.key;
  const id = key?.id;
  const remoteJid = key?.remoteJid;
  if (!key || !id || !remoteJid) return null;
  if (ctx.sentIds.has(id)) return null;
  if (msg.messageStubType || !msg.message) return null;
  if (isJidStatusBroadcast(remoteJid) || isJidBroadcast(remoteJid) || isJidNewsletter(remoteJid)) return null;

  const message = normalizeMessageContent(msg.message);
  if (!message) return null;
  const content = contentOf(message);
  if (!content || (!content.text.trim() && !content.media)) return null;

  const name = msg.pushName?.trim() || undefined;
  const isSelf = (jid: string | null | undefined): boolean =>
    !!jid && (areJidsSameUser(jid, ctx.selfJid) || (!!ctx.selfLid && areJidsSameUser(jid, ctx.selfLid)));
  const selfAddress = jidToAddress(jidNormalizedUser(ctx.selfJid));

  let chat: InboundMessage['chat'];
  let sender: InboundMessage['sender'];
  if (isJidGroup(remoteJid)) {
    // The owner's own messages in groups are outgoing messages of the account: never the agent's business.
    if (key.fromMe) return null;
    const address = bestAddress(key.participant, key.participantAlt);
    if (!address) return null;
    const groupId = jidNormalizedUser(remoteJid) || remoteJid;
    const groupName = ctx.groupNames?.get(groupId);
    chat = groupName ? { kind: 'group', id: groupId, name: groupName } : { kind: 'group', id: groupId };
    sender = name ? { address, name } : { address };
  } else if (isPnUser(remoteJid) || isLidUser(remoteJid)) {
    const selfChat = isSelf(remoteJid) || isSelf(key.remoteJidAlt);
    if (key.fromMe && !selfChat) return null;
    if (selfChat) {
      // "Message yourself": it comes from the linked number, which passes like a paired sender.
      chat = { kind: 'direct', id: selfAddress };
      sender = name ? { address: selfAddress, name } : { address: selfAddress };
    } else {
      const address = bestAddress(remoteJid, key.remoteJidAlt);
      if (!address) return null;
      chat = name ? { kind: 'direct', id: address, name } : { kind: 'direct', id: address };
      sender = name ? { address, name } : { address };
    }
  } else {
    return null;
  }

  const out: InboundMessage = {
    id,
    channelId,
    chat,
    sender,
    text: content.text,
    timestamp: toMillis(msg.messageTimestamp),
  };
  if (content.media) out.media = content.media;
  if (content.replyTo) out.replyTo = content.replyTo;
  return out;
}
