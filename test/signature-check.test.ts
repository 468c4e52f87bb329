/**
 * The Curve25519 check Baileys relies on (Noise certificate chain, pairing account signature) refuses forged
 * signatures once Wharf installs it, and the two WhatsApp Web settings are validated at start.
 */
import { createRequire } from 'node:module';
import { Curve, WA_CERT_DETAILS } from '@whiskeysockets/baileys';
import { describe, expect, it } from 'vitest';
import { installSignatureCheck, setCertRoot, WHATSAPP_CERT_ROOT } from '../lib/baileys/signature-check.js';
import { ConfigError, parseEnv } from '../lib/config.js';

const curve = createRequire(import.meta.url)('libsignal/src/curve.js') as {
  generateKeyPair(): { pubKey: Buffer; privKey: Buffer };
  calculateSignature(privKey: Buffer, msg: Buffer): Buffer;
};

describe('signature check', () => {
  it('refuses a signature made by another key and a tampered one, accepts the real one', () => {
    installSignatureCheck();
    const signer = curve.generateKeyPair();
    const other = curve.generateKeyPair();
    const msg = Buffer.from('certificate details');
    const sig = curve.calculateSignature(signer.privKey, msg);
    expect(Curve.verify(signer.pubKey.subarray(1), msg, sig)).toBe(true);
    expect(Curve.verify(other.pubKey.subarray(1), msg, sig)).toBe(false);
    expect(Curve.verify(signer.pubKey.subarray(1), Buffer.from('other details'), sig)).toBe(false);
    expect(Curve.verify(signer.pubKey.subarray(1), msg, Buffer.alloc(64))).toBe(false);
    expect(Curve.verify(signer.pubKey.subarray(1), msg, Buffer.alloc(3))).toBe(false);
  });

  it('sets and restores the certificate root Baileys reads at handshake time', () => {
    const root = curve.generateKeyPair().pubKey.subarray(1);
    setCertRoot(root);
    expect(Buffer.compare(WA_CERT_DETAILS.PUBLIC_KEY, root)).toBe(0);
    setCertRoot(undefined);
    expect(Buffer.compare(WA_CERT_DETAILS.PUBLIC_KEY, WHATSAPP_CERT_ROOT)).toBe(0);
    expect(() => setCertRoot(Buffer.alloc(31))).toThrow(/32-byte/);
  });
});

describe('WHARF_WA_URL and WHARF_WA_CERT_ROOT', () => {
  it('take a ws(s) URL and a 32-byte base64 key, and name the variable when wrong', () => {
    const ok = parseEnv({
      WHARF_WA_URL: 'ws://127.0.0.1:7999/ws/chat',
      WHARF_WA_CERT_ROOT: Buffer.alloc(32, 7).toString('base64'),
    });
    expect(ok.WHARF_WA_URL).toBe('ws://127.0.0.1:7999/ws/chat');
    expect(() => parseEnv({ WHARF_WA_URL: 'https://web.whatsapp.com' })).toThrow(/WHARF_WA_URL: must be a ws/);
    expect(() => parseEnv({ WHARF_WA_CERT_ROOT: Buffer.alloc(31).toString('base64') })).toThrow(ConfigError);
    expect(() => parseEnv({ WHARF_WA_CERT_ROOT: 'not base64 at all!' })).toThrow(/WHARF_WA_CERT_ROOT/);
  });
});
