/**
 * The Curve25519 signature check Baileys relies on, made to work, and the certificate root it trusts.
 *
 * Baileys 7.0.0-rc14's `Curve.verify` (lib/Utils/crypto.js) returns `false` only when libsignal *throws*;
 * libsignal 6's `verifySignature` *returns* `false` for a bad signature, so every check passes: the Noise
 * certificate chain of the server (is this WhatsApp?) and the account signature checked while pairing. Both
 * read `Curve.verify` from the module's exported object at call time, so replacing that one property fixes
 * them. The replacement is correct whether or not Baileys fixes its own (upstream review of PR #2067), and
 * `installSignatureCheck` proves at start-up that the object it patched is the one Baileys' noise handler
 * imports and that a forged signature is refused.
 */
import { createRequire } from 'node:module';
import { Curve, WA_CERT_DETAILS } from '@whiskeysockets/baileys';
// The file Baileys' noise handler and pairing code import `Curve` from (the package index re-exports it).
import { Curve as CurveAsBaileysReadsIt } from '@whiskeysockets/baileys/lib/Utils/crypto.js';

/** libsignal's curve module, the one Baileys itself loads (`libsignal/src/curve.js`). */
interface LibsignalCurve {
  verifySignature(pubKey: Buffer, msg: Uint8Array, sig: Uint8Array): boolean;
  calculateSignature(privKey: Buffer, msg: Uint8Array): Buffer;
  generateKeyPair(): { pubKey: Buffer; privKey: Buffer };
}

const require = createRequire(import.meta.url);
const curve = require('libsignal/src/curve.js') as LibsignalCurve;

/** WhatsApp's own certificate root, as Baileys ships it (kept to restore the default). */
export const WHATSAPP_CERT_ROOT: Buffer = Buffer.from(WA_CERT_DETAILS.PUBLIC_KEY);

const signalKey = (key: Uint8Array): Buffer =>
  key.length === 33 ? Buffer.from(key) : Buffer.concat([Buffer.from([5]), Buffer.from(key)]);

/** True only for a valid XEdDSA signature of `message` by the Curve25519 key `pubKey` (32 or 33 bytes). */
export function verifyCurveSignature(pubKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  try {
    return curve.verifySignature(signalKey(pubKey), message, signature) === true;
  } catch {
    return false;
  }
}

/**
 * Installs the working check on the `Curve` object Baileys reads and proves it took: the object must be the
 * one Baileys' noise handler imports (same module instance), and a forged signature must be refused.
 * Throws when either fails: a personal session must not start with a check that passes everything.
 */
export function installSignatureCheck(): void {
  Curve.verify = verifyCurveSignature;
  if (CurveAsBaileysReadsIt !== Curve || CurveAsBaileysReadsIt.verify !== verifyCurveSignature) {
    throw new Error(
      'Baileys loads its Curve helpers from another module instance; the signature check could not be installed.',
    );
  }
  const { pubKey, privKey } = curve.generateKeyPair();
  const message = Buffer.from('wharf signature self-test');
  const signature = curve.calculateSignature(privKey, message);
  const forged = Buffer.from(signature);
  forged[0] ^= 0xff;
  if (!Curve.verify(pubKey.subarray(1), message, signature) || Curve.verify(pubKey.subarray(1), message, forged)) {
    throw new Error('The Curve25519 signature check does not tell a valid signature from a forged one.');
  }
}

/**
 * Sets the root key the Noise certificate chain must chain to (process-wide: Baileys reads one exported
 * object at handshake time). `undefined` restores WhatsApp's own root.
 */
export function setCertRoot(root: Buffer | undefined): void {
  if (root !== undefined && root.length !== 32)
    throw new Error('The certificate root must be a 32-byte Curve25519 public key.');
  WA_CERT_DETAILS.PUBLIC_KEY = Buffer.from(root ?? WHATSAPP_CERT_ROOT);
}
