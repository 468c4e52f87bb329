/**
 * Linking a device while a socket shows QR codes: each QR (or, when the operator gave a phone number,
 * WhatsApp's pairing code instead) is written where the API reads it, with how long it lives, and the
 * channel workflow is told what the operator should do.
 */
import type { StoreAuthState } from '../../lib/store/auth-state.js';
import type { Logger } from '../../lib/logger.js';
import type { SessionReporter } from './session-reporter.js';
import type { SessionSocket } from './session-registry.js';

/** How long a QR lives in Baileys: the first 60 s, each later one 20 s. */
const FIRST_QR_MS = 60_000;
const NEXT_QR_MS = 20_000;

const formatPairingCode = (code: string): string => (code.length === 8 ? `${code.slice(0, 4)}-${code.slice(4)}` : code);

/** What the link flow needs. */
export interface LinkCodesDeps {
  channelId: string;
  /** E.164 number to link with a pairing code (as the operator gave it), if any. */
  phoneNumber?: string;
  reporter: Pick<SessionReporter, 'signal' | 'setLink' | 'extendCode'>;
  slog: Logger;
}

/**
 * Builds the QR handler of one socket: call it with every QR Baileys shows before the socket opens. The
 * first QR of an unlinked device with a phone number asks for a pairing code instead (the QR stays the
 * fallback when that fails).
 */
export function createLinkCodes({ channelId, phoneNumber, reporter, slog }: LinkCodesDeps) {
  const { signal, setLink, extendCode } = reporter;
  const pairingDigits = phoneNumber?.replace(/\D/g, '') || undefined;
  let qrCount = 0;
  let pairing: 'none' | 'requested' | 'failed' = 'none';
  return (sock: SessionSocket, auth: StoreAuthState, qr: string): void => {
    qrCount += 1;
    const now = Date.now();
    if (pairingDigits && pairing === 'none' && !auth.state.creds.registered) {
      pairing = 'requested';
      sock.requestPairingCode(pairingDigits).then(
        (code) => {
          setLink(null, formatPairingCode(code), new Date(Date.now() + FIRST_QR_MS));
          signal({
            status: 'setup',
            reason: `Enter the pairing code for ${phoneNumber} on that phone: WhatsApp → Linked devices → Link a device → Link with phone number instead.`,
          });
        },
        (err: unknown) => {
          pairing = 'failed';
          slog.warn({ err }, 'pairing code request failed; the QR stays available');
          setLink(qr, null, new Date(Date.now() + FIRST_QR_MS));
          signal({
            status: 'setup',
            reason: `Could not get a pairing code for ${phoneNumber} (${(err as Error)?.message ?? err}); scan the QR code instead.`,
          });
        },
      );
    } else if (pairing === 'requested') {
      // Each rotation proves the connection (and so the pairing code) is still alive.
      extendCode(new Date(now + NEXT_QR_MS));
    } else {
      setLink(qr, null, new Date(now + (qrCount === 1 ? FIRST_QR_MS : NEXT_QR_MS)));
      signal({
        status: 'setup',
        reason: `Scan the QR code with WhatsApp on the phone (Settings → Linked devices → Link a device); GET /api/channels/${channelId}/qr shows it.`,
      });
    }
  };
}
