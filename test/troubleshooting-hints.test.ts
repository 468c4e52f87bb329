import { describe, expect, it } from 'vitest';
import { troubleshootingHint, type HintInput } from '../console/src/troubleshooting.js';

const quiet = { lastWebhookAt: null, verificationsRefused: 0, badSignatureEvents: 0 };
const cloud = (status: HintInput['status'], statusReason: string, more: Partial<HintInput> = {}): HintInput => ({
  provider: 'whatsapp_cloud',
  status,
  statusReason,
  webhookUrl: null,
  diagnostics: quiet,
  ...more,
});
const personal = (status: HintInput['status'], statusReason: string): HintInput => ({
  ...cloud(status, statusReason),
  provider: 'whatsapp_user',
});

describe("the guide's troubleshooting hint for a channel's status and reason", () => {
  it.each([
    [
      cloud('failed', 'The access_token was refused by Meta (code 190: Invalid OAuth access token).'),
      /bad access_token/,
    ],
    [
      cloud('failed', 'Meta does not know phone_number_id 123, or this access_token cannot see it (code 100: x).'),
      /wrong phone_number_id/,
    ],
    [
      cloud('failed', 'The access_token lacks whatsapp_business_messaging; it has: whatsapp_business_management'),
      /lacks whatsapp_business_messaging/,
    ],
    [
      cloud('failed', 'access_token points at local › gone › value, which does not exist. Create the vault item'),
      /vault connection/,
    ],
    [
      cloud('setup', 'Config saved', {
        webhookUrl: 'https://x/webhooks/whatsapp/c',
        diagnostics: { ...quiet, verificationsRefused: 2 },
      }),
      /must be identical/,
    ],
    [cloud('setup', 'Config saved', { webhookUrl: 'https://x/webhooks/whatsapp/c' }), /Paste the Webhook URL/],
    [cloud('setup', 'Save a complete config'), /Configure the three credentials/],
    [
      cloud('connected', 'Meta called the webhook', {
        diagnostics: { ...quiet, lastWebhookAt: 'x', badSignatureEvents: 3 },
      }),
      /app_secret is probably wrong/,
    ],
    [cloud('connected', 'Meta called the webhook'), /subscribe the app to the “messages” webhook field/],
    [personal('setup', 'Waiting for a fresh QR code…'), /QR keeps expiring/],
    [personal('setup', 'Requesting a pairing code for +15551234567…'), /Link with phone number instead/],
    [personal('disconnected', 'Logged out: the session was revoked from the phone'), /Disconnected out of nowhere/],
    [personal('disconnected', 'Disconnected by the operator. Use reconnect to resume.'), /no new QR code/],
    [
      personal('disconnected', 'Another client took over this session (WhatsApp reported a conflict'),
      /connected from somewhere else/,
    ],
    [personal('failed', 'WhatsApp refused this account (403 forbidden): it may be banned'), /banned/],
  ])('%o → %s', (ch, hint) => {
    expect(troubleshootingHint(ch)).toMatch(hint);
  });

  it('adds nothing to a healthy channel', () => {
    expect(
      troubleshootingHint(
        cloud('connected', 'ok', { diagnostics: { ...quiet, lastWebhookAt: 'x', subscribedApps: { count: 1 } } }),
      ),
    ).toBeNull();
    expect(troubleshootingHint(personal('connected', 'Linked'))).toBeNull();
  });
});
