/**
 * The guide's troubleshooting table made specific: for a channel's status *and its reason*, the likely cause
 * and what to do. The reason says what happened (Meta's code, WhatsApp's disconnect); the hint says which
 * row of the guide that is. Self-contained (no imports) so the tests run it as it ships.
 */

/** What a hint is chosen from: a channel as `GET /api/channels/:id` returns it. */
export interface HintInput {
  provider: 'whatsapp_cloud' | 'whatsapp_user';
  status: 'setup' | 'connected' | 'disconnected' | 'failed';
  statusReason: string;
  webhookUrl: string | null;
  diagnostics: {
    lastWebhookAt: string | null;
    verificationsRefused: number;
    badSignatureEvents: number;
    subscribedApps?: { count: number } | null;
  };
}

/** The hint for a channel's current state, or null when there is nothing to add to its reason. */
export function troubleshootingHint(ch: HintInput): string | null {
  return ch.provider === 'whatsapp_cloud' ? cloudHint(ch) : personalHint(ch);
}

function cloudHint(ch: HintInput): string | null {
  const d = ch.diagnostics;
  const reason = ch.statusReason;
  switch (ch.status) {
    case 'failed':
      if (/vault|credential ref|which does not exist/i.test(reason) && !/refused by Meta/i.test(reason))
        return 'A credential could not be read: check its vault connection on the Vaults page, or pick the credential again with Configure, then Save.';
      if (/access_token was refused|code 190\b/i.test(reason))
        return 'Guide: “Channel Failed right after creation” — a bad access_token. Generate a System User token (it does not expire), store it with Configure access_token, and Save again.';
      if (/does not know phone_number_id/i.test(reason))
        return 'Guide: “Channel Failed right after creation” — a wrong phone_number_id. It is the Phone Number ID from WhatsApp → API Setup in Meta for Developers, not the phone number itself.';
      if (/whatsapp_business_messaging|may not use|scope/i.test(reason))
        return 'Guide: “Channel Failed right after creation” — the token lacks whatsapp_business_messaging. Give the System User that permission on this WhatsApp Business Account and generate a new token.';
      return 'Likely cause: a bad access_token, a wrong phone_number_id, or a token without whatsapp_business_messaging. Fix the config and Save again.';
    case 'setup':
      if (d.verificationsRefused > 0)
        return 'Guide: “Webhook verification fails in Meta dashboard” — the verify token typed in Meta does not match the verify_token saved here. They must be identical.';
      if (ch.webhookUrl)
        return 'Paste the Webhook URL and the same verify token in Meta (WhatsApp → Configuration → Webhook); the channel turns Connected when Meta verifies it.';
      return 'Fill in phone_number_id and business_account_id, Configure the three credentials, then Save: the Webhook URL appears once Meta accepts them.';
    case 'connected':
      if (d.badSignatureEvents > 0)
        return 'Guide: “Outbound works, inbound doesn’t” — events were rejected for a bad signature: app_secret is probably wrong, so every inbound event is refused.';
      if (d.subscribedApps?.count === 0 || !d.lastWebhookAt)
        return 'Guide: “Outbound works, inbound doesn’t” — subscribe the app to the “messages” webhook field in Meta (WhatsApp → Configuration → Webhook fields), and check app_secret.';
      return null;
    case 'disconnected':
      return 'Disconnected: Meta’s events are refused and nothing is sent. Reconnect (Pairing tab) resumes with the saved config.';
  }
}

function personalHint(ch: HintInput): string | null {
  const reason = ch.statusReason;
  switch (ch.status) {
    case 'setup':
      if (/pairing code/i.test(reason))
        return 'On the phone: WhatsApp → Settings → Linked devices → Link a device → Link with phone number instead, then type the code shown here.';
      return 'Guide: “QR keeps expiring” — scan it faster: it rotates about every 30 seconds (WhatsApp → Settings → Linked devices → Link a device). Use Refresh to get a new one.';
    case 'disconnected':
      if (/operator/i.test(reason))
        return 'Reconnect (Pairing tab) resumes the same linked session; no new QR code is needed.';
      if (/took over|conflict/i.test(reason))
        return 'The same linked device connected from somewhere else (another Wharf or another tool using its saved session). Stop that one, then Reconnect.';
      if (/Reconnecting|restarts/i.test(reason)) return null;
      return 'Guide: “Channel Disconnected out of nowhere” — the linked-device session was revoked from the phone (Settings → Linked devices) or WhatsApp invalidated it. Re-link with the QR code (Refresh).';
    case 'failed':
      if (/403|forbidden|banned|restricted/i.test(reason))
        return 'WhatsApp refused this account: personal accounts that behave like bots can be restricted or banned. Check the phone; for business traffic use the Meta Cloud API instead.';
      return 'The session stopped: Reconnect, or Refresh the QR code to link again.';
    case 'connected':
      return null;
  }
}
