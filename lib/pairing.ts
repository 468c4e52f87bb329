/** Pairing codes: `XYZ-123`, matched case-insensitively, ignoring spaces and the dash (SPEC §1). */

/** How long a pairing code lives. */
export const PAIRING_TTL_MS = 10 * 60 * 1000;

/** Canonical form of a code or of a message that might be one: upper case, no spaces or dashes. */
export function normalizePairingCode(text: string): string {
  return text.replace(/[\s\-‐-―]/g, '').toUpperCase();
}

/** The part of a channel's state that pairing decisions read. */
interface PairingView {
  pairing: { code: string; expiresAt: string } | null;
  selfAddress: string | null;
  pairedAddresses: Array<{ address: string }>;
}

/** Whether `text` is the channel's live (unexpired at `now`) pairing code. */
export function isLiveCode(ch: PairingView, text: string, now: number): boolean {
  return (
    !!ch.pairing &&
    Date.parse(ch.pairing.expiresAt) > now &&
    normalizePairingCode(text) === normalizePairingCode(ch.pairing.code)
  );
}

/** Whether a sender counts as paired: the channel's own number, or a paired address (by number or BSUID). */
export function isPairedSender(ch: PairingView, sender: { address: string; userId?: string }): boolean {
  return (
    ch.selfAddress === sender.address ||
    ch.pairedAddresses.some(
      (p) => p.address === sender.address || (sender.userId !== undefined && p.address === sender.userId),
    )
  );
}
