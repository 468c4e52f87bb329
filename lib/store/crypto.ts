/** AES-256-GCM sealing of small secrets (vault items, Baileys auth state) with the instance's secret key. */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

/**
 * Encrypts `plaintext`, binding it to `aad` (e.g. `vault/item`) so a ciphertext cannot be moved to another
 * row. Output: `v1.<iv>.<tag>.<data>` in base64url.
 */
export function seal(key: Buffer, plaintext: string, aad: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(aad));
  const data = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return ['v1', iv.toString('base64url'), cipher.getAuthTag().toString('base64url'), data.toString('base64url')].join(
    '.',
  );
}

/** Decrypts what `seal` produced; throws if the key, the aad or the data do not match. */
export function unseal(key: Buffer, sealed: string, aad: string): string {
  const [v, iv, tag, data] = sealed.split('.');
  if (v !== 'v1' || !iv || !tag || data === undefined) throw new Error('unrecognised ciphertext format');
  const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'));
  decipher.setAAD(Buffer.from(aad));
  decipher.setAuthTag(Buffer.from(tag, 'base64url'));
  return Buffer.concat([decipher.update(Buffer.from(data, 'base64url')), decipher.final()]).toString('utf8');
}
