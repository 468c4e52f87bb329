/**
 * Domain types shared by workflows, activities and the API. Pure types and constants only: this file is
 * imported by workflow code, so it must stay free of I/O and Node built-ins.
 */

/** The two ways to connect WhatsApp. */
export const PROVIDERS = ['whatsapp_cloud', 'whatsapp_user'] as const;
/** A provider id. */
export type Provider = (typeof PROVIDERS)[number];

/** What happens to a message that passed pairing and policy. */
export const INBOUND_MODES = ['message', 'signal'] as const;
/** `message` runs the agent and replies; `signal` hands the text to a task waiting on the space. */
export type InboundMode = (typeof INBOUND_MODES)[number];

/** Channel lifecycle states. */
export const CHANNEL_STATUSES = ['setup', 'connected', 'disconnected', 'failed'] as const;
/** A channel's status. */
export type ChannelStatus = (typeof CHANNEL_STATUSES)[number];

/** A pointer at a secret in a vault connection; the only form in which secrets travel through Wharf. */
export interface CredentialRef {
  vault: string;
  item: string;
  field: string;
}

/** A chat: a one-to-one conversation or a group. */
export interface ChatRef {
  kind: 'direct' | 'group';
  id: string;
  name?: string;
}

/** Who sent a message: E.164 address with `+` when the number is known, else WhatsApp's raw id. */
export interface SenderRef {
  address: string;
  name?: string;
  /**
   * Meta's business-scoped user id (BSUID, e.g. `US.13491208655302741918`) when the webhook carried one. A
   * user who adopted a WhatsApp username may arrive with it alone; `address` is then the BSUID too.
   */
  userId?: string;
}

/** One inbound message, normalised from either provider (SPEC §5). */
export interface InboundMessage {
  /** Provider message id (Meta's `wamid.…`); unique per channel, used for dedupe. */
  id: string;
  channelId: string;
  chat: ChatRef;
  sender: SenderRef;
  text: string;
  /** The provider's message type (`text`, `image`, `order`, `edit`, …); absent means `text`. */
  type?: string;
  /** Set when this message edits an earlier one: the agent gets the new text as an edit of that message. */
  edit?: { originalId: string };
  /** As the provider described it (`id` is Meta's media id); the chat workflow fetches and stores the file. */
  media?: {
    kind: string;
    id?: string;
    mimeType?: string;
    caption?: string;
    sha256?: string;
    filename?: string;
    voice?: boolean;
    /** Personal accounts: the file was already downloaded by the session and stored under this id (its SHA-256). */
    storedId?: string;
    size?: number;
    seconds?: number;
    /** Personal accounts: why the session could not download the file. */
    missing?: string;
  };
  replyTo?: string;
  /** Milliseconds since the epoch, as the provider stamped it. */
  timestamp: number;
}

/** The kinds of file an agent may send back. */
export const ATTACHMENT_KINDS = ['image', 'document', 'audio', 'video'] as const;
/** An attachment kind. */
export type AttachmentKind = (typeof ATTACHMENT_KINDS)[number];

/**
 * A file an agent sends with its reply: a file in Wharf's media store (`mediaId`, e.g. one a sender sent, or
 * one stored with `POST /api/media`) or a public `https` URL (`url`). Exactly one of the two. `caption` goes
 * with images, videos and documents (WhatsApp shows none on audio); `filename` names a document.
 */
export interface ReplyAttachment {
  kind: AttachmentKind;
  mediaId?: string;
  url?: string;
  caption?: string;
  filename?: string;
}

/** What an agent answers: Markdown text (may be empty) and, optionally, files sent after the text. */
export interface AgentReply {
  text: string;
  attachments?: ReplyAttachment[];
}

/** A delivery status for an outbound message, as Meta reports it. */
export interface DeliveryStatus {
  /** The outbound provider message id. */
  id: string;
  channelId: string;
  status: 'sent' | 'delivered' | 'read' | 'played' | 'failed' | 'deleted' | 'warning';
  recipient: string;
  timestamp: number;
  error?: { code: number; title: string; message?: string };
}

/**
 * An inbound event recorded on the message log without going to a chat workflow — a reaction, a deletion,
 * an event for another number, an item Wharf cannot read — with its type, outcome and the reason.
 */
export interface UnhandledInbound {
  /** The provider's id, or a stable digest of the item when it has none. */
  id: string;
  chatId: string;
  address: string | null;
  type: string;
  text: string;
  /** `applied` for a notice Wharf acted on (a number change), `ignored` for one it deliberately did not. */
  status: 'ignored' | 'failed' | 'applied' | 'denied';
  reason: string;
  detail?: Record<string, unknown>;
}

/** Meta's notice that a user moved to a new number (`system` / `user_changed_number`). */
export interface NumberChange {
  /** The notice's message id. */
  id: string;
  from: string;
  to: string;
  body: string;
}

/** A config value of a provider field: a plain string or a credential ref (for secret fields). */
export type ConfigValue = string | CredentialRef;

/** A provider's config field, as shown to operators. */
export interface ProviderField {
  name: string;
  required: boolean;
  secret: boolean;
  description: string;
}

/** Static description of a provider. */
export interface ProviderInfo {
  id: Provider;
  label: string;
  publicUrlRequired: boolean;
  /** Longest text message the provider accepts, in characters. */
  textLimit: number;
  fields: ProviderField[];
}

/** The providers Wharf knows, with their config fields (SPEC §4, guide "Configuration fields"). */
export const PROVIDER_INFO: Record<Provider, ProviderInfo> = {
  whatsapp_cloud: {
    id: 'whatsapp_cloud',
    label: 'WhatsApp (Meta Cloud API)',
    publicUrlRequired: true,
    textLimit: 4096,
    fields: [
      {
        name: 'phone_number_id',
        required: true,
        secret: false,
        description: 'Phone Number ID from the WhatsApp app in Meta for Developers.',
      },
      { name: 'business_account_id', required: true, secret: false, description: 'WhatsApp Business Account ID.' },
      {
        name: 'access_token',
        required: true,
        secret: true,
        description: 'System User access token with the whatsapp_business_messaging scope.',
      },
      {
        name: 'verify_token',
        required: true,
        secret: true,
        description: 'Any string; paste the same value here and in the Meta dashboard.',
      },
      {
        name: 'app_secret',
        required: true,
        secret: true,
        description: 'Meta App Secret, used to verify X-Hub-Signature-256 on incoming events.',
      },
    ],
  },
  whatsapp_user: {
    id: 'whatsapp_user',
    label: 'WhatsApp (Personal account)',
    publicUrlRequired: false,
    // WhatsApp clients accept far longer texts; 65,536 is the documented ceiling of a text message.
    textLimit: 65536,
    fields: [],
  },
};

/** A pairing code in flight. */
export interface PairingState {
  code: string;
  /** ISO timestamp. */
  expiresAt: string;
}

/** A paired address and when it was paired. */
export interface PairedAddress {
  address: string;
  pairedAt: string;
}

/** Counters and timestamps that answer the guide's troubleshooting table. */
export interface ChannelDiagnostics {
  lastWebhookAt: string | null;
  lastVerificationAt: string | null;
  verificationsRefused: number;
  badSignatureEvents: number;
  lastSendError: { at: string; code?: number; message: string } | null;
  /** Apps subscribed to the WABA's webhooks when last checked (Cloud API); null when never checked or unreadable. */
  subscribedApps?: { count: number; checkedAt: string } | null;
  /** Problems worth an operator's attention, worded for them (computed when the channel is read). */
  warnings?: string[];
}

/** The full state of a channel, as its workflow holds it (no secret values: refs only). */
export interface ChannelState {
  id: string;
  provider: Provider;
  space: string;
  agent: string;
  inbound: InboundMode;
  status: ChannelStatus;
  statusReason: string;
  config: Record<string, ConfigValue>;
  /** True once a complete config passed the credential check. */
  configured: boolean;
  /** The channel's own number (business number / linked number), E.164. */
  selfAddress: string | null;
  pairedAddresses: PairedAddress[];
  pairing: PairingState | null;
  /** Personal accounts: the task queue of the worker holding the session's socket (sends go there). */
  sessionQueue?: string | null;
  /** Personal accounts: true while the session must not run (operator disconnect, logout, replaced). */
  sessionStopped?: boolean;
  /** The last code used, who used it and in which message, so a retried admission of that message is answered the same way. */
  lastPairing: { code: string; address: string; messageId?: string } | null;
  createdAt: string;
  updatedAt: string;
  /** Bumped on every change; lets the store projection ignore stale writes. */
  version: number;
}
