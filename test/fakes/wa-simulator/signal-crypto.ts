/**
 * The simulator's cryptography, on the same libsignal package Baileys uses: Curve25519 keys (32-byte
 * public keys on the wire, 33 with the type byte inside Signal), XEdDSA signatures, and a Signal device
 * (identity, signed pre-key, one-time pre-keys, sessions) that encrypts to and decrypts from Baileys.
 */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/** A Curve25519 key pair; `public` without the type byte (32 bytes), as WhatsApp's wire carries it. */
export interface KeyPair {
  public: Buffer;
  private: Buffer;
}

interface LibCurve {
  generateKeyPair(): { pubKey: Buffer; privKey: Buffer };
  calculateAgreement(pubKey: Buffer, privKey: Buffer): Buffer;
  calculateSignature(privKey: Buffer, msg: Buffer): Buffer;
  verifySignature(pubKey: Buffer, msg: Buffer, sig: Buffer): boolean;
}
interface SignalKeyPair {
  pubKey: Buffer;
  privKey: Buffer;
}
interface ProtocolAddressCtor {
  new (id: string, deviceId: number): { toString(): string };
}
interface SessionRecordLike {
  serialize(): unknown;
}
interface SessionRecordStatic {
  deserialize(data: unknown): SessionRecordLike;
}
/** A bundle as libsignal's `SessionBuilder.initOutgoing` takes it. */
export interface PreKeyBundle {
  registrationId: number;
  identityKey: Buffer;
  signedPreKey: { keyId: number; publicKey: Buffer; signature: Buffer };
  preKey?: { keyId: number; publicKey: Buffer };
}
interface LibSignal {
  curve: LibCurve;
  keyhelper: {
    generateRegistrationId(): number;
    generateSignedPreKey(
      identity: SignalKeyPair,
      keyId: number,
    ): { keyId: number; keyPair: SignalKeyPair; signature: Buffer };
    generatePreKey(keyId: number): { keyId: number; keyPair: SignalKeyPair };
  };
  ProtocolAddress: ProtocolAddressCtor;
  SessionBuilder: new (store: unknown, addr: unknown) => { initOutgoing(bundle: PreKeyBundle): Promise<void> };
  SessionCipher: new (
    store: unknown,
    addr: unknown,
  ) => {
    encrypt(data: Buffer): Promise<{ type: number; body: string; registrationId: number }>;
    decryptPreKeyWhisperMessage(data: Buffer): Promise<Buffer>;
    decryptWhisperMessage(data: Buffer): Promise<Buffer>;
  };
  SessionRecord: SessionRecordStatic;
}
const libsignal = require('libsignal') as LibSignal;

const withType = (pub: Buffer): Buffer => (pub.length === 33 ? pub : Buffer.concat([Buffer.from([5]), pub]));

/** Curve25519 helpers with WhatsApp's 32-byte public keys. */
export const curve = {
  generateKeyPair(): KeyPair {
    const { pubKey, privKey } = libsignal.curve.generateKeyPair();
    return { public: Buffer.from(pubKey.subarray(1)), private: Buffer.from(privKey) };
  },
  sharedKey(privateKey: Buffer, publicKey: Buffer): Buffer {
    return Buffer.from(libsignal.curve.calculateAgreement(withType(publicKey), privateKey));
  },
  sign(privateKey: Buffer, msg: Uint8Array): Buffer {
    return Buffer.from(libsignal.curve.calculateSignature(privateKey, Buffer.from(msg)));
  },
  /** True only for a valid signature (libsignal returns false for a bad one and throws for malformed input). */
  verify(publicKey: Uint8Array, msg: Uint8Array, sig: Uint8Array): boolean {
    try {
      return (
        libsignal.curve.verifySignature(withType(Buffer.from(publicKey)), Buffer.from(msg), Buffer.from(sig)) === true
      );
    } catch {
      return false;
    }
  },
};

/** Pads a serialised message the way WhatsApp clients do (1–16 bytes, each holding the pad length). */
export function padMessage(bytes: Uint8Array): Buffer {
  const n = 1 + Math.floor(Math.random() * 16);
  return Buffer.concat([Buffer.from(bytes), Buffer.alloc(n, n)]);
}

/** Removes that padding. */
export function unpadMessage(bytes: Buffer): Buffer {
  const n = bytes[bytes.length - 1];
  if (!n || n > 16 || n > bytes.length) throw new Error('bad message padding');
  return bytes.subarray(0, bytes.length - n);
}

/** A simulated Signal device (a phone, a contact's phone): keys, pre-keys and sessions in memory. */
export class SignalDevice {
  readonly identity: SignalKeyPair;
  readonly registrationId = libsignal.keyhelper.generateRegistrationId();
  readonly signedPreKey: { keyId: number; keyPair: SignalKeyPair; signature: Buffer };
  private readonly preKeys = new Map<number, SignalKeyPair>();
  private nextPreKeyId = 1;
  private readonly sessions = new Map<string, unknown>();
  private readonly identities = new Map<string, Buffer>();

  constructor() {
    const kp = libsignal.curve.generateKeyPair();
    this.identity = { pubKey: kp.pubKey, privKey: kp.privKey };
    this.signedPreKey = libsignal.keyhelper.generateSignedPreKey(this.identity, 1);
  }

  /** The identity key without its type byte (as WhatsApp's wire carries it). */
  get identityPublic(): Buffer {
    return Buffer.from(this.identity.pubKey.subarray(1));
  }

  /** Hands out one fresh one-time pre-key (the server gives each fetcher its own). */
  takePreKey(): { keyId: number; publicKey: Buffer } {
    const keyId = this.nextPreKeyId++;
    const { keyPair } = libsignal.keyhelper.generatePreKey(keyId);
    this.preKeys.set(keyId, keyPair);
    return { keyId, publicKey: keyPair.pubKey };
  }

  /** libsignal's storage interface over this device's memory. */
  private get store() {
    return {
      getOurIdentity: () => this.identity,
      getOurRegistrationId: () => this.registrationId,
      isTrustedIdentity: (id: string, key: Buffer) => {
        const known = this.identities.get(id);
        if (!known) this.identities.set(id, Buffer.from(key));
        return !known || known.equals(key);
      },
      loadSession: (id: string) => {
        const s = this.sessions.get(id);
        return s ? libsignal.SessionRecord.deserialize(s) : undefined;
      },
      storeSession: (id: string, record: SessionRecordLike) => {
        this.sessions.set(id, record.serialize());
      },
      loadPreKey: (id: number) => this.preKeys.get(Number(id)),
      removePreKey: (id: number) => {
        this.preKeys.delete(Number(id));
      },
      loadSignedPreKey: () => this.signedPreKey.keyPair,
    };
  }

  private address(user: string, device: number) {
    return new libsignal.ProtocolAddress(user, device);
  }

  /** True when this device has a session with that address. */
  hasSession(user: string, device: number): boolean {
    return this.sessions.has(this.address(user, device).toString());
  }

  /** Forgets the session with a device (the next message starts a new one from its pre-key bundle). */
  forgetSession(user: string, device: number): void {
    this.sessions.delete(this.address(user, device).toString());
  }

  /** Starts a session with a device from its pre-key bundle (what the server handed out). */
  async startSession(user: string, device: number, bundle: PreKeyBundle): Promise<void> {
    await new libsignal.SessionBuilder(this.store, this.address(user, device)).initOutgoing(bundle);
  }

  /** Encrypts to that device: `pkmsg` until the other side answers, then `msg`. */
  async encrypt(
    user: string,
    device: number,
    plaintext: Buffer,
  ): Promise<{ type: 'pkmsg' | 'msg'; ciphertext: Buffer }> {
    const out = await new libsignal.SessionCipher(this.store, this.address(user, device)).encrypt(plaintext);
    return { type: out.type === 3 ? 'pkmsg' : 'msg', ciphertext: Buffer.from(out.body, 'binary') };
  }

  /** Decrypts what that device sent. */
  async decrypt(user: string, device: number, type: string, ciphertext: Buffer): Promise<Buffer> {
    const cipher = new libsignal.SessionCipher(this.store, this.address(user, device));
    return type === 'pkmsg' ? cipher.decryptPreKeyWhisperMessage(ciphertext) : cipher.decryptWhisperMessage(ciphertext);
  }
}
