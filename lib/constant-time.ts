/**
 * Comparing secrets (tokens, signatures, verify tokens) without leaking through timing how much of a guess
 * was right. The one helper every check of a secret uses.
 */
import { timingSafeEqual } from 'node:crypto';

/**
 * True when `given` equals `expected`, compared in constant time for equal lengths (a length mismatch answers
 * at once: lengths are not secret here — tokens and digests have fixed, published sizes). Strings are
 * compared as their UTF-8 bytes.
 */
export function sameSecret(given: string | Buffer, expected: string | Buffer): boolean {
  const a = typeof given === 'string' ? Buffer.from(given) : given;
  const b = typeof expected === 'string' ? Buffer.from(expected) : expected;
  return a.length === b.length && timingSafeEqual(a, b);
}
