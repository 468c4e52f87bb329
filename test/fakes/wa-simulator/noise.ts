/**
 * The server side of WhatsApp Web's Noise XX handshake and transport, written from the client's side in
 * Baileys (lib/Utils/noise-handler.js, lib/Socket/socket.js `validateConnection`): the client opens with the
 * header `WA 06 03` and its ephemeral key; the server answers with its ephemeral, its static key (encrypted)
 * and a certificate chain (encrypted) whose intermediate is signed by the root and whose leaf is signed by
 * the intermediate; the client answers with its static (noise) key and its login or registration payload.
 * Then both switch to transport keys: the client writes with the first half of the final HKDF, the server
 * with the second.
 */
import { createCipheriv, createDecipheriv, createHash, hkdfSync } from 'node:crypto';
import { proto } from '@whiskeysockets/baileys';
import { curve, type KeyPair } from './signal-crypto.js';

const NOISE_MODE = Buffer.from('Noise_XX_25519_AESGCM_SHA256\0\0\0\0');
/** The first bytes of a WhatsApp Web client's first frame: `W`, `A`, protocol 6, dictionary version 3. */
export const WA_HEADER = Buffer.from([87, 65, 6, 3]);

const sha256 = (b: Buffer): Buffer => createHash('sha256').update(b).digest();
const iv = (counter: number): Buffer => {
  const b = Buffer.alloc(12);
  b.writeUInt32BE(counter, 8);
  return b;
};
function gcmEncrypt(key: Buffer, counter: number, plaintext: Buffer, aad: Buffer): Buffer {
  const c = createCipheriv('aes-256-gcm', key, iv(counter));
  c.setAAD(aad);
  return Buffer.concat([c.update(plaintext), c.final(), c.getAuthTag()]);
}
function gcmDecrypt(key: Buffer, counter: number, ciphertext: Buffer, aad: Buffer): Buffer {
  const d = createDecipheriv('aes-256-gcm', key, iv(counter));
  d.setAAD(aad);
  d.setAuthTag(ciphertext.subarray(ciphertext.length - 16));
  return Buffer.concat([d.update(ciphertext.subarray(0, ciphertext.length - 16)), d.final()]);
}

/** A test certificate authority: a root key and the chain it issues for a server's static key. */
export interface CertAuthority {
  root: KeyPair;
  /** The chain a server presents; signed by `signer` (the root unless a test forges it). */
  chainFor(serverStatic: Buffer, signer?: KeyPair): Buffer;
}

/** Creates a certificate authority with a fresh root key. */
export function createCertAuthority(): CertAuthority {
  const root = curve.generateKeyPair();
  return {
    root,
    chainFor(serverStatic, signer = root) {
      const intermediateKey = curve.generateKeyPair();
      const now = Math.floor(Date.now() / 1000);
      const intermediateDetails = proto.CertChain.NoiseCertificate.Details.encode({
        serial: 1,
        issuerSerial: 0,
        key: intermediateKey.public,
        notBefore: now - 3600,
        notAfter: now + 86_400,
      }).finish();
      const leafDetails = proto.CertChain.NoiseCertificate.Details.encode({
        serial: 2,
        issuerSerial: 1,
        key: serverStatic,
        notBefore: now - 3600,
        notAfter: now + 86_400,
      }).finish();
      return Buffer.from(
        proto.CertChain.encode({
          intermediate: { details: intermediateDetails, signature: curve.sign(signer.private, intermediateDetails) },
          leaf: { details: leafDetails, signature: curve.sign(intermediateKey.private, leafDetails) },
        }).finish(),
      );
    },
  };
}

/** What the client said in its final handshake message. */
export interface ClientFinish {
  /** The client's static (noise) public key. */
  clientStatic: Buffer;
  payload: proto.ClientPayload;
}

/** One connection's Noise state on the server side. */
export class ServerNoise {
  private hash: Buffer = NOISE_MODE;
  private salt: Buffer = NOISE_MODE;
  private key: Buffer = NOISE_MODE;
  private counter = 0;
  private readonly ephemeral = curve.generateKeyPair();
  private clientEphemeral: Buffer | null = null;
  private transport: { enc: Buffer; dec: Buffer; read: number; write: number } | null = null;

  constructor(
    private readonly serverStatic: KeyPair,
    private readonly certChain: Buffer,
  ) {
    this.authenticate(WA_HEADER);
  }

  get ready(): boolean {
    return this.transport !== null;
  }

  private authenticate(data: Buffer): void {
    this.hash = sha256(Buffer.concat([this.hash, data]));
  }
  private mixIntoKey(data: Buffer): void {
    const out = Buffer.from(hkdfSync('sha256', data, this.salt, Buffer.alloc(0), 64));
    this.salt = out.subarray(0, 32);
    this.key = out.subarray(32);
    this.counter = 0;
  }
  private encrypt(plaintext: Buffer): Buffer {
    const out = gcmEncrypt(this.key, this.counter++, plaintext, this.hash);
    this.authenticate(out);
    return out;
  }
  private decrypt(ciphertext: Buffer): Buffer {
    const out = gcmDecrypt(this.key, this.counter++, ciphertext, this.hash);
    this.authenticate(ciphertext);
    return out;
  }

  /** Answers the client's hello (its ephemeral key) with the server hello. */
  serverHello(clientHello: Buffer): Buffer {
    const hello = proto.HandshakeMessage.decode(clientHello);
    const clientEphemeral = hello.clientHello?.ephemeral;
    if (!clientEphemeral || clientEphemeral.length !== 32)
      throw new Error('client hello without a 32-byte ephemeral key');
    this.clientEphemeral = Buffer.from(clientEphemeral);
    this.authenticate(this.clientEphemeral);
    this.authenticate(this.ephemeral.public);
    this.mixIntoKey(curve.sharedKey(this.ephemeral.private, this.clientEphemeral));
    const staticEnc = this.encrypt(this.serverStatic.public);
    this.mixIntoKey(curve.sharedKey(this.serverStatic.private, this.clientEphemeral));
    const payloadEnc = this.encrypt(this.certChain);
    return Buffer.from(
      proto.HandshakeMessage.encode({
        serverHello: { ephemeral: this.ephemeral.public, static: staticEnc, payload: payloadEnc },
      }).finish(),
    );
  }

  /** Reads the client's finish (static key and payload) and switches to transport keys. */
  clientFinish(frame: Buffer): ClientFinish {
    const msg = proto.HandshakeMessage.decode(frame);
    const finish = msg.clientFinish;
    if (!finish?.static || !finish.payload) throw new Error('client finish without static key or payload');
    const clientStatic = this.decrypt(Buffer.from(finish.static));
    this.mixIntoKey(curve.sharedKey(this.ephemeral.private, clientStatic));
    const payload = proto.ClientPayload.decode(this.decrypt(Buffer.from(finish.payload)));
    const out = Buffer.from(hkdfSync('sha256', Buffer.alloc(0), this.salt, Buffer.alloc(0), 64));
    // The client writes with the first half and reads with the second; the server the other way round.
    this.transport = { enc: out.subarray(32), dec: out.subarray(0, 32), read: 0, write: 0 };
    return { clientStatic, payload };
  }

  /** Encrypts one transport frame's payload. */
  seal(plaintext: Buffer): Buffer {
    const t = this.transport!;
    return gcmEncrypt(t.enc, t.write++, plaintext, Buffer.alloc(0));
  }

  /** Decrypts one transport frame's payload. */
  open(ciphertext: Buffer): Buffer {
    const t = this.transport!;
    return gcmDecrypt(t.dec, t.read++, ciphertext, Buffer.alloc(0));
  }
}

/** Splits a byte stream into WhatsApp's 3-byte-length frames (after the client's 4-byte intro header). */
export class FrameReader {
  private buf = Buffer.alloc(0);
  private sawHeader = false;

  /** Adds bytes; returns the complete frames. Throws when the stream does not start with `WA 06 03`. */
  push(data: Buffer): Buffer[] {
    this.buf = Buffer.concat([this.buf, data]);
    if (!this.sawHeader) {
      if (this.buf.length < 4) return [];
      if (!this.buf.subarray(0, 4).equals(WA_HEADER)) throw new Error('not a WhatsApp Web client (bad intro header)');
      this.buf = this.buf.subarray(4);
      this.sawHeader = true;
    }
    const frames: Buffer[] = [];
    while (this.buf.length >= 3) {
      const size = (this.buf[0] << 16) | (this.buf[1] << 8) | this.buf[2];
      if (this.buf.length < size + 3) break;
      frames.push(Buffer.from(this.buf.subarray(3, size + 3)));
      this.buf = this.buf.subarray(size + 3);
    }
    return frames;
  }
}

/** Frames bytes with the 3-byte length prefix. */
export function frame(data: Buffer): Buffer {
  const out = Buffer.alloc(3 + data.length);
  out[0] = (data.length >>> 16) & 0xff;
  out[1] = (data.length >>> 8) & 0xff;
  out[2] = data.length & 0xff;
  data.copy(out, 3);
  return out;
}
