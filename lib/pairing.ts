/** Pairing codes: `XYZ-123`, matched case-insensitively, ignoring spaces and the dash (SPEC §1). */

/** How long a pairing code lives. */
export const PAIRING_TTL_MS = 10 * 60 * 1000;

/** Canonical form of a code or of a message that might be one: upper case, no spaces or dashes. */
export function normalizePairingCode(text: string): string {
  return text.replace(/[\s\-‐-―]/g, '').toUpperCase();
}

/** Whether `text` could be a pairing code at all (cheap pre-check before asking the channel). */
export function looksLikePairingCode(text: string): boolean {
  return /^[A-Z]{3}\d{3}$/.test(normalizePairingCode(text));
}
