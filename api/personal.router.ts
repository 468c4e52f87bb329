/**
 * Linking a personal account (`whatsapp_user`), mounted at `/api/channels`:
 *
 * - `GET /:id/qr` → `{qr, dataUrl, expiresAt}` while a QR is pending (`?format=png`: the image itself);
 *   404 when none is pending (linked, reconnecting, a pairing code instead, or not a personal channel).
 * - `POST /:id/qr/refresh` → restarts the link attempt (fresh auth state, new QR); 202.
 * - `POST /:id/link-code` `{phoneNumber}` → restarts the attempt with WhatsApp's phone-number pairing code
 *   and waits (up to ~15 s) for the code: `{code, expiresAt}`; `GET /:id/link-code` reads the pending one
 *   (it changes when the session has to reconnect before the code was entered).
 *
 * The session activity writes the current QR / pairing code to `session_link`; this router only reads it.
 */
import type QRCode from 'qrcode';
import { Router, type Request } from 'express';
import { z } from 'zod';
import { WharfError } from '../lib/errors.js';
import type { Store } from '../lib/store/store.js';
import type { ChannelState } from '../lib/types.js';
import { relink } from '../workflows/channel-messages.js';
import type { ChannelGateway } from './channel-gateway.js';
import { idParam } from './params.js';

/** What the router needs of the gateway (the real `ChannelGateway` fits; tests pass a stub). */
export type PersonalGateway = Pick<ChannelGateway, 'get' | 'handle'>;

/** Body of `POST /:id/link-code`. */
export const LinkCodeSchema = z.object({
  phoneNumber: z
    .string()
    .trim()
    .transform((s) => s.replace(/[\s().-]/g, ''))
    .pipe(z.string().regex(/^\+[1-9]\d{6,14}$/, 'an E.164 number with country code, e.g. +15551234567')),
});

/** The QR code library, loaded with the first QR shown (most processes never link a personal account). */
const qrcode = async (): Promise<typeof QRCode> => (await import('qrcode')).default;

/** Builds the router. `linkCodeTimeoutMs` bounds the wait for a pairing code (default 15 s). */
export function personalRouter({
  store,
  gateway,
  linkCodeTimeoutMs = 15_000,
}: {
  store: Store;
  gateway: PersonalGateway;
  linkCodeTimeoutMs?: number;
}): Router {
  const r = Router();
  r.param('id', idParam('Channel'));

  const personalChannel = async (req: Request): Promise<ChannelState> => {
    const id = String(req.params.id);
    const ch = await gateway.get(id);
    if (ch.provider !== 'whatsapp_user') {
      throw new WharfError(
        'not_found',
        `Channel "${id}" uses the Cloud API; only personal-account channels (whatsapp_user) are linked by QR code or pairing code.`,
      );
    }
    return ch;
  };

  r.get('/:id/qr', async (req, res) => {
    const ch = await personalChannel(req);
    const row = await store.sessionLinks.get(ch.id);
    const expiresAt = row?.expiresAt;
    if (!row?.qr || !expiresAt || expiresAt.getTime() <= Date.now()) {
      const why =
        ch.status === 'connected'
          ? 'the channel is linked and connected'
          : row?.pairingCode
            ? 'a phone-number pairing code is pending instead (POST /link-code)'
            : `the session is not showing one right now (status ${ch.status}: ${ch.statusReason})`;
      throw new WharfError(
        'not_found',
        `No QR code is pending for channel "${ch.id}": ${why}. POST /api/channels/${ch.id}/qr/refresh starts a new link attempt.`,
      );
    }
    res.set('Cache-Control', 'no-store');
    res.set('X-QR-Expires-At', expiresAt.toISOString());
    const qr = await qrcode();
    if (req.query.format === 'png') {
      const png = await qr.toBuffer(row.qr, { type: 'png', errorCorrectionLevel: 'M', margin: 2, width: 320 });
      res.type('image/png').send(png);
      return;
    }
    const dataUrl = await qr.toDataURL(row.qr, { errorCorrectionLevel: 'M', margin: 2, width: 320 });
    res.json({ qr: row.qr, dataUrl, expiresAt: expiresAt.toISOString() });
  });

  r.post('/:id/qr/refresh', async (req, res) => {
    const ch = await personalChannel(req);
    await gateway.handle(ch.id).executeUpdate(relink, { args: [{}] });
    res.status(202).json({ ok: true });
  });

  r.get('/:id/link-code', async (req, res) => {
    const ch = await personalChannel(req);
    const row = await store.sessionLinks.get(ch.id);
    const expiresAt = row?.expiresAt;
    if (!row?.pairingCode || !expiresAt || expiresAt.getTime() <= Date.now()) {
      throw new WharfError(
        'not_found',
        `No pairing code is pending for channel "${ch.id}". POST /api/channels/${ch.id}/link-code with {"phoneNumber": "+<number>"} requests one.`,
      );
    }
    res.set('Cache-Control', 'no-store');
    res.json({ code: row.pairingCode, expiresAt: expiresAt.toISOString() });
  });

  r.post('/:id/link-code', async (req, res) => {
    const ch = await personalChannel(req);
    const { phoneNumber } = LinkCodeSchema.parse(req.body ?? {});
    // The database's clock, so "newer than the request" holds even when the API and the database disagree.
    const since = await store.sessionLinks.now();
    await gateway.handle(ch.id).executeUpdate(relink, { args: [{ phoneNumber }] });
    const deadline = Date.now() + linkCodeTimeoutMs;
    for (;;) {
      const row = await store.sessionLinks.get(ch.id);
      const updatedAt = row?.updatedAt;
      const expiresAt = row?.expiresAt;
      if (
        row?.pairingCode &&
        updatedAt &&
        updatedAt.getTime() >= since.getTime() &&
        expiresAt &&
        expiresAt.getTime() > Date.now()
      ) {
        res.set('Cache-Control', 'no-store');
        res.json({ code: row.pairingCode, expiresAt: expiresAt.toISOString() });
        return;
      }
      if (Date.now() >= deadline) break;
      await new Promise((done) => setTimeout(done, 200));
    }
    const latest = await store.channels.get(ch.id);
    throw new WharfError(
      'unavailable',
      `WhatsApp did not issue a pairing code for ${phoneNumber} within ${Math.round(linkCodeTimeoutMs / 1000)} s` +
        (latest ? ` (channel status ${latest.status}: ${latest.statusReason})` : '') +
        `. Check that WhatsApp is reachable from this server, then POST /api/channels/${ch.id}/link-code again.`,
    );
  });

  return r;
}
