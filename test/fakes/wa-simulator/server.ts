/**
 * A WhatsApp Web simulator: a local websocket server speaking enough of WhatsApp's multi-device protocol for
 * a linked device's whole life, so the real Baileys client (and Wharf's adapter around it) runs unmodified.
 * Built from Baileys' own client code as the reference for what the server must say:
 *
 * - Noise XX handshake with a certificate chain issued by a test root (noise.ts);
 * - registration: `pair-device` with QR refs; a simulated phone scans the QR (it reads the client's identity
 *   key and ADV secret from it) and the server sends `pair-success` with a signed device identity, checks the
 *   client's device signature, then asks for a restart (`stream:error code=515`);
 * - login with the saved creds (`success`), pre-key count and upload, usync device/LID lists, pre-key bundles;
 * - messages both ways, Signal-encrypted with the libsignal package Baileys uses (or `<plaintext>`), kept
 *   until the device acknowledges them and redelivered (offline) at its next login;
 * - removal from the phone (`stream:error code=401` + `device_removed`, then `failure 401`) and a second
 *   login of the same device (`conflict` replaced).
 *
 * Honest on purpose: it accepts only QR refs it issued to the connection that shows them, verifies every
 * signature it receives (signed pre-key, device signature), and keeps per-device state across the product's
 * reconnects and restarts for as long as the simulator runs.
 */
import { createHmac, randomBytes, randomInt } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import {
  decodeBinaryNode,
  encodeBinaryNode,
  getAllBinaryNodeChildren,
  getBinaryNodeChild,
  getBinaryNodeChildren,
  jidDecode,
  proto,
  type BinaryNode,
} from '@whiskeysockets/baileys';
import { WebSocketServer, type WebSocket } from 'ws';
import { createCertAuthority, frame, FrameReader, ServerNoise, type CertAuthority } from './noise.js';
import { SenderKeys } from './sender-keys.js';
import { curve, padMessage, SignalDevice, unpadMessage, type KeyPair, type PreKeyBundle } from './signal-crypto.js';

const S_WHATSAPP_NET = 's.whatsapp.net';
const ADV_ACCOUNT_SIG_PREFIX = Buffer.from([6, 0]);
const ADV_DEVICE_SIG_PREFIX = Buffer.from([6, 1]);

const be = (n: number, bytes: number): Buffer => {
  const b = Buffer.alloc(bytes);
  for (let i = bytes - 1; i >= 0; i--, n = Math.floor(n / 256)) b[i] = n & 0xff;
  return b;
};
const fromBe = (b: Uint8Array): number => b.reduce((n, x) => n * 256 + x, 0);
const childBuffer = (node: BinaryNode | undefined, tag: string): Buffer | undefined => {
  const c = getBinaryNodeChild(node, tag)?.content;
  return c instanceof Uint8Array ? Buffer.from(c) : undefined;
};

/** A WhatsApp account on the simulated network: its phone (device 0) and the devices linked to it. */
export interface SimUser {
  /** Phone number digits (no `+`). */
  pn: string;
  /** The account's LID user part (digits). */
  lid: string;
  name: string;
  /** The phone: a Signal device, and the account key that signs linked devices' identities. */
  phone: SignalDevice;
  /** The phone's group sender keys: its own per group, and the ones other members distributed to it. */
  senderKeys: SenderKeys;
  accountKey: KeyPair;
  /** Messages this account's phone received and decrypted, oldest first. */
  inbox: SimReceived[];
}

/** A message a simulated phone received. */
export interface SimReceived {
  id: string;
  /** The sending account's phone number digits. */
  from: string;
  fromDevice: number;
  /** The jid the sender addressed (PN or LID, with device). */
  to: string;
  message: proto.IMessage;
  /** The text, wherever the message type keeps it. */
  text: string;
  /** The group jid, for a group message (decrypted with the sender's sender key). */
  group?: string;
}

/** A group on the simulated network: its members are accounts (phones and their linked devices). */
export interface SimGroup {
  /** `<digits>@g.us`. */
  jid: string;
  subject: string;
  creator: SimUser;
  /** Seconds since the epoch. */
  creation: number;
  members: SimUser[];
  /**
   * How the group names its members: by phone number (`pn`, members' LIDs as alt) or by LID (`lid`, the
   * numbers as alt — what WhatsApp does for most groups today).
   */
  addressing: 'pn' | 'lid';
  /**
   * Group messages linked devices sent, oldest first: who sent it and which members' phones got the sender's
   * key with it (pairwise, in `<participants>`) — empty once every member holds the key.
   */
  sent: Array<{ id: string; from: string; fromDevice: number; keysTo: string[] }>;
}

/** A device linked to an account (what Baileys is, once paired). */
export interface LinkedDevice {
  user: SimUser;
  device: number;
  keyIndex: number;
  noiseKey: Buffer;
  identityKey: Buffer;
  registrationId: number;
  signedPreKey: { keyId: number; publicKey: Buffer; signature: Buffer };
  /** One-time pre-keys the device uploaded and nobody has taken yet. */
  preKeys: Map<number, Buffer>;
  removed: boolean;
  /** Messages for this device not yet acknowledged by it (redelivered at its next login). */
  pending: Map<string, PendingMessage>;
  /** Logins this device completed. */
  logins: number;
  /** Sender keys this device acknowledged receiving (`<group>|<sender pn>`): it gets only `skmsg` from them. */
  senderKeysHeld: Set<string>;
  /** The account's groups changed since the device last cleaned its `groups` dirty bit. */
  groupsDirty: boolean;
  conn?: Connection;
}

interface PendingMessage {
  id: string;
  from: SimUser;
  addressing: 'pn' | 'lid' | 'lid-only';
  message: proto.IMessage;
  plaintext: boolean;
  t: number;
  /** A group message: the group, and the one `skmsg` every member's devices get (encrypted once, as a phone does). */
  group?: { group: SimGroup; skmsg: Buffer; skdm: Buffer };
  /** Sent on the current connection (a redelivery happens only on the next login). */
  sentOn?: Connection;
  /** Retry receipts the device sent for it (the sender's phone encrypts it again, in a new session, up to 5 times). */
  retries?: number;
}

interface Registration {
  noiseKey: Buffer;
  identityKey: Buffer;
  registrationId: number;
  signedPreKey: { keyId: number; publicKey: Buffer; signature: Buffer };
  refs: string[];
}

interface Connection {
  id: number;
  ws: WebSocket;
  noise: ServerNoise;
  reader: FrameReader;
  stage: 'hello' | 'finish' | 'open';
  registration?: Registration;
  device?: LinkedDevice;
  /** pair-success sent, device signature awaited under this iq id. */
  pairing?: {
    iqId: string;
    user: SimUser;
    device: number;
    keyIndex: number;
    details: Buffer;
    reg: Registration;
    resolve(d: LinkedDevice): void;
    reject(err: Error): void;
  };
  /** True once queued messages were flushed on this connection. */
  flushed: boolean;
  closed: boolean;
}

/** Options of the simulator. */
export interface WaSimulatorOptions {
  /** The certificate authority whose root the client trusts (one per test file; Baileys' root is process-wide). */
  ca?: CertAuthority;
  /** Sign the intermediate certificate with a key other than the root (a server that is not WhatsApp). */
  forgeChain?: boolean;
  /** Port on 127.0.0.1 (default: any free one). */
  port?: number;
}

/** Creates and starts a simulator on 127.0.0.1 (random port). */
export async function startWaSimulator(opts: WaSimulatorOptions = {}): Promise<WaSimulator> {
  const sim = new WaSimulator(opts);
  await sim.listen();
  return sim;
}

/** The running simulator and what a test does with it (phones scan, contacts write, phones revoke). */
export class WaSimulator {
  readonly ca: CertAuthority;
  private readonly serverStatic = curve.generateKeyPair();
  private readonly certChain: Buffer;
  private wss!: WebSocketServer;
  private nextConnId = 1;
  private readonly conns = new Set<Connection>();
  private readonly users = new Map<string, SimUser>();
  private readonly usersByLid = new Map<string, SimUser>();
  private readonly devices: LinkedDevice[] = [];
  private readonly groups = new Map<string, SimGroup>();
  /** QR refs issued, by ref → the connection that got them. */
  private readonly refs = new Map<string, Connection>();
  /** Counters a test asserts on. */
  readonly stats = {
    connections: 0,
    handshakes: 0,
    refsIssued: 0,
    logins: 0,
    failures: 0,
    acks: 0,
    /** Logins of a device while an earlier connection of it was still open (the earlier one is told `conflict replaced`). */
    replaced: 0,
    /** Group envelopes that carried the sender's key (a SenderKeyDistributionMessage) to a linked device. */
    senderKeysDistributed: 0,
    /** Messages encrypted and sent again after the device's retry receipt. */
    retried: 0,
  };
  url = '';

  constructor(private readonly opts: WaSimulatorOptions) {
    this.ca = opts.ca ?? createCertAuthority();
    this.certChain = this.ca.chainFor(this.serverStatic.public, opts.forgeChain ? curve.generateKeyPair() : undefined);
  }

  /** Base64 of the root public key: what `WHARF_WA_CERT_ROOT` must be to trust this simulator. */
  get certRoot(): string {
    return this.ca.root.public.toString('base64');
  }

  async listen(): Promise<void> {
    this.wss = new WebSocketServer({ host: '127.0.0.1', port: this.opts.port ?? 0, path: '/ws/chat' });
    await new Promise<void>((resolve) => this.wss.once('listening', () => resolve()));
    this.url = `ws://127.0.0.1:${(this.wss.address() as AddressInfo).port}/ws/chat`;
    this.wss.on('connection', (ws) => this.accept(ws));
  }

  async stop(): Promise<void> {
    for (const c of this.conns) c.ws.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }

  // ---- the simulated world --------------------------------------------------------------------------------

  /** Adds an account (a phone number with a phone). */
  addUser(pn: string, name = `User ${pn.slice(-4)}`): SimUser {
    const digits = pn.replace(/\D/g, '');
    const user: SimUser = {
      pn: digits,
      lid: String(randomInt(10 ** 13, 10 ** 14)),
      name,
      phone: new SignalDevice(),
      senderKeys: new SenderKeys(),
      accountKey: curve.generateKeyPair(),
      inbox: [],
    };
    this.users.set(digits, user);
    this.usersByLid.set(user.lid, user);
    return user;
  }

  /** The account with that phone number, if it exists. */
  user(pn: string): SimUser | undefined {
    return this.users.get(pn.replace(/\D/g, ''));
  }

  /** The account's devices linked now (not removed). */
  linkedDevices(user: SimUser): LinkedDevice[] {
    return this.devices.filter((d) => d.user === user && !d.removed);
  }

  /** Open connections (handshake done). */
  get openConnections(): number {
    return [...this.conns].filter((c) => c.stage === 'open' && !c.closed).length;
  }

  private userOfJid(jid: string): { user: SimUser; device: number } | null {
    const d = jidDecode(jid);
    if (!d?.user) return null;
    const user = d.server === 'lid' ? this.usersByLid.get(d.user) : this.users.get(d.user);
    return user ? { user, device: d.device ?? 0 } : null;
  }

  /**
   * The phone of `user` scans a QR: it reads the ref, the client's noise and identity keys and its ADV
   * secret, and links the device — only for a ref this server issued to a connection that is still open and
   * whose noise key is the one in the QR.
   */
  scan(qr: string, user: SimUser): Promise<LinkedDevice> {
    const data = qr.replace(/^https:\/\/wa\.me\/settings\/linked_devices#/, '');
    const [ref, noiseKeyB64, identityKeyB64, advB64] = data.split(',');
    const conn = ref ? this.refs.get(ref) : undefined;
    if (!conn || conn.closed || !conn.registration)
      throw new Error(`QR ref not issued by this server, or expired: ${ref}`);
    const reg = conn.registration;
    if (!Buffer.from(noiseKeyB64 ?? '', 'base64').equals(reg.noiseKey))
      throw new Error('QR noise key does not match the connection');
    if (!Buffer.from(identityKeyB64 ?? '', 'base64').equals(reg.identityKey))
      throw new Error('QR identity key does not match the registration');
    for (const r of reg.refs) this.refs.delete(r);
    const device = Math.max(0, ...this.devices.filter((d) => d.user === user).map((d) => d.device)) + 1;
    const keyIndex = device;
    const details = Buffer.from(
      proto.ADVDeviceIdentity.encode({
        rawId: randomInt(1, 2 ** 31),
        timestamp: Math.floor(Date.now() / 1000),
        keyIndex,
      }).finish(),
    );
    const accountSignature = curve.sign(
      user.accountKey.private,
      Buffer.concat([ADV_ACCOUNT_SIG_PREFIX, details, reg.identityKey]),
    );
    const signedIdentity = Buffer.from(
      proto.ADVSignedDeviceIdentity.encode({
        details,
        accountSignatureKey: user.accountKey.public,
        accountSignature,
      }).finish(),
    );
    const hmac = createHmac('sha256', Buffer.from(advB64 ?? '', 'base64'))
      .update(signedIdentity)
      .digest();
    const iqId = randomBytes(6).toString('hex');
    const linked = new Promise<LinkedDevice>((resolve, reject) => {
      conn.pairing = { iqId, user, device, keyIndex, details, reg, resolve, reject };
    });
    this.send(conn, {
      tag: 'iq',
      attrs: { from: S_WHATSAPP_NET, type: 'set', id: iqId, xmlns: 'md', t: String(Math.floor(Date.now() / 1000)) },
      content: [
        {
          tag: 'pair-success',
          attrs: {},
          content: [
            {
              tag: 'device-identity',
              attrs: {},
              content: proto.ADVSignedDeviceIdentityHMAC.encode({ details: signedIdentity, hmac }).finish(),
            },
            { tag: 'platform', attrs: { name: 'android' } },
            {
              tag: 'device',
              attrs: { jid: `${user.pn}:${device}@${S_WHATSAPP_NET}`, lid: `${user.lid}:${device}@lid` },
            },
          ],
        },
      ],
    });
    return linked;
  }

  /** The phone removes a linked device (Linked devices → Log out): the device is told and never let in again. */
  removeDevice(device: LinkedDevice): void {
    device.removed = true;
    const conn = device.conn;
    if (conn && !conn.closed) {
      this.send(conn, {
        tag: 'stream:error',
        attrs: { code: '401' },
        content: [{ tag: 'conflict', attrs: { type: 'device_removed' } }],
      });
      setTimeout(() => this.close(conn), 50);
    }
  }

  /**
   * Another client logs in with this device's creds elsewhere: the connection holding it now is told
   * `conflict replaced`, exactly what `onLogin` tells it when that second login happens here.
   */
  loginElsewhere(device: LinkedDevice): void {
    const conn = device.conn;
    if (!conn || conn.closed) return;
    device.conn = undefined;
    this.send(conn, { tag: 'stream:error', attrs: {}, content: [{ tag: 'conflict', attrs: { type: 'replaced' } }] });
    setTimeout(() => this.close(conn), 50);
  }

  /** Drops a device's connection without a word (a network failure). */
  dropConnection(device: LinkedDevice): void {
    if (device.conn) this.close(device.conn, true);
  }

  /**
   * `from` writes a text to `to`'s linked devices (all of them, queued for the ones offline).
   * `addressing`: the envelope names the sender by phone number (with its LID as alt), by LID (with the
   * number as alt), or by LID alone.
   */
  sendText(
    from: SimUser,
    to: SimUser,
    text: string,
    opts: { addressing?: PendingMessage['addressing']; plaintext?: boolean; id?: string } = {},
  ): string {
    const id = opts.id ?? '3EB0' + randomBytes(8).toString('hex').toUpperCase();
    const message: proto.IMessage = { conversation: text };
    for (const d of this.linkedDevices(to)) {
      const p: PendingMessage = {
        id,
        from,
        addressing: opts.addressing ?? 'pn',
        message,
        plaintext: !!opts.plaintext,
        t: Math.floor(Date.now() / 1000),
      };
      d.pending.set(id, p);
      if (d.conn && d.conn.flushed && !d.conn.closed) void this.deliver(d, d.conn, p, false);
    }
    return id;
  }

  /**
   * `creator` creates a group with `members` (the creator is a member too). Members' linked devices learn of
   * it as WhatsApp tells them: a `groups` dirty bit (they fetch the groups they are in), the group messages
   * they get, and the metadata they ask for.
   */
  createGroup(
    subject: string,
    creator: SimUser,
    members: SimUser[],
    opts: { addressing?: 'pn' | 'lid' } = {},
  ): SimGroup {
    let jid: string;
    do jid = `120363${randomInt(10 ** 11, 10 ** 12)}@g.us`;
    while (this.groups.has(jid));
    const group: SimGroup = {
      jid,
      subject,
      creator,
      creation: Math.floor(Date.now() / 1000),
      members: [creator, ...members.filter((m) => m !== creator)],
      addressing: opts.addressing ?? 'pn',
      sent: [],
    };
    this.groups.set(jid, group);
    // Members' linked devices are told their groups changed (a `groups` dirty bit): they fetch the list.
    for (const member of group.members) {
      for (const d of this.linkedDevices(member)) {
        d.groupsDirty = true;
        if (d.conn?.flushed) this.sendGroupsDirty(d.conn);
      }
    }
    return group;
  }

  /** The group with that jid, if it exists. */
  group(jid: string): SimGroup | undefined {
    return this.groups.get(jid);
  }

  /**
   * `from` (a member) writes `text` to a group, as a phone does: the text is encrypted once with `from`'s
   * sender key (`skmsg`); each member's linked device that has not yet acknowledged that key also gets it,
   * pairwise-encrypted (`pkmsg`/`msg` carrying a SenderKeyDistributionMessage), in the same envelope.
   * Only linked devices (real clients) get group messages from simulated phones; phone-to-phone traffic is
   * not simulated.
   */
  async sendGroupText(from: SimUser, group: SimGroup, text: string, opts: { id?: string } = {}): Promise<string> {
    if (!group.members.includes(from)) throw new Error(`+${from.pn} is not a member of ${group.jid}`);
    const id = opts.id ?? '3EB0' + randomBytes(8).toString('hex').toUpperCase();
    const message: proto.IMessage = { conversation: text };
    const bytes = Buffer.from(proto.Message.encode(message).finish());
    // The distribution message is taken before encrypting, so its chain key reaches this message's iteration.
    const self = { user: from.pn, device: 0 };
    const skdm = await from.senderKeys.distribution(group.jid, self);
    const skmsg = await from.senderKeys.encrypt(group.jid, self, padMessage(bytes));
    const t = Math.floor(Date.now() / 1000);
    for (const member of group.members) {
      if (member === from) continue;
      for (const d of this.linkedDevices(member)) {
        const p: PendingMessage = {
          id,
          from,
          addressing: group.addressing,
          message,
          plaintext: false,
          t,
          group: { group, skmsg, skdm },
        };
        d.pending.set(id, p);
        if (d.conn && d.conn.flushed && !d.conn.closed) void this.deliver(d, d.conn, p, false);
      }
    }
    return id;
  }

  /** Resolves when `user`'s phone has received a message matching `pred`. */
  async waitForInbox(user: SimUser, pred: (m: SimReceived) => boolean, timeoutMs = 20_000): Promise<SimReceived> {
    const t0 = Date.now();
    for (;;) {
      const m = user.inbox.find(pred);
      if (m) return m;
      if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for a message at ${user.pn}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  // ---- connections ----------------------------------------------------------------------------------------

  private accept(ws: WebSocket): void {
    this.stats.connections += 1;
    const conn: Connection = {
      id: this.nextConnId++,
      ws,
      noise: new ServerNoise(this.serverStatic, this.certChain),
      reader: new FrameReader(),
      stage: 'hello',
      flushed: false,
      closed: false,
    };
    this.conns.add(conn);
    // Frames are handled strictly in order (decoding is async).
    let chain = Promise.resolve();
    ws.on('message', (data: Buffer) => {
      chain = chain.then(() => this.onData(conn, data)).catch(() => this.close(conn, true));
    });
    ws.on('close', () => this.onClosed(conn));
    ws.on('error', () => this.onClosed(conn));
  }

  private onClosed(conn: Connection): void {
    if (conn.closed) return;
    conn.closed = true;
    this.conns.delete(conn);
    if (conn.device?.conn === conn) conn.device.conn = undefined;
    for (const r of conn.registration?.refs ?? []) this.refs.delete(r);
  }

  private close(conn: Connection, abrupt = false): void {
    if (abrupt) conn.ws.terminate();
    else conn.ws.close();
    this.onClosed(conn);
  }

  private send(conn: Connection, node: BinaryNode): void {
    if (conn.closed) return;
    conn.ws.send(frame(conn.noise.seal(encodeBinaryNode(node))));
  }

  private result(conn: Connection, iq: BinaryNode, content?: BinaryNode[]): void {
    this.send(conn, { tag: 'iq', attrs: { from: S_WHATSAPP_NET, type: 'result', id: iq.attrs.id }, content });
  }

  private async onData(conn: Connection, data: Buffer): Promise<void> {
    for (const f of conn.reader.push(data)) {
      if (conn.stage === 'hello') {
        conn.ws.send(frame(conn.noise.serverHello(f)));
        conn.stage = 'finish';
      } else if (conn.stage === 'finish') {
        const { clientStatic, payload } = conn.noise.clientFinish(f);
        conn.stage = 'open';
        this.stats.handshakes += 1;
        this.onLogin(conn, clientStatic, payload);
      } else {
        await this.onNode(conn, await decodeBinaryNode(conn.noise.open(f)));
      }
    }
  }

  private onLogin(conn: Connection, clientStatic: Buffer, payload: proto.ClientPayload): void {
    const pairing = payload.devicePairingData;
    if (pairing) {
      const identityKey = Buffer.from(pairing.eIdent ?? []);
      const skeyVal = Buffer.from(pairing.eSkeyVal ?? []);
      const skeySig = Buffer.from(pairing.eSkeySig ?? []);
      if (!curve.verify(identityKey, Buffer.concat([Buffer.from([5]), skeyVal]), skeySig)) {
        this.failure(conn, '400');
        return;
      }
      const refs = Array.from({ length: 6 }, () => `2@${randomBytes(24).toString('base64')}`);
      conn.registration = {
        noiseKey: clientStatic,
        identityKey,
        registrationId: fromBe(pairing.eRegid ?? new Uint8Array()),
        signedPreKey: { keyId: fromBe(pairing.eSkeyId ?? new Uint8Array()), publicKey: skeyVal, signature: skeySig },
        refs,
      };
      for (const r of refs) this.refs.set(r, conn);
      this.stats.refsIssued += refs.length;
      this.send(conn, {
        tag: 'iq',
        attrs: { from: S_WHATSAPP_NET, type: 'set', id: randomBytes(6).toString('hex'), xmlns: 'md' },
        content: [
          {
            tag: 'pair-device',
            attrs: {},
            content: refs.map((r) => ({ tag: 'ref', attrs: {}, content: Buffer.from(r) })),
          },
        ],
      });
      return;
    }
    const user = this.users.get(String(payload.username ?? ''));
    const device = user && this.devices.find((d) => d.user === user && d.device === (payload.device ?? 0));
    if (!device || device.removed || !device.noiseKey.equals(clientStatic)) {
      this.failure(conn, '401');
      return;
    }
    const previous = device.conn;
    if (previous && !previous.closed) {
      this.stats.replaced += 1;
      this.send(previous, {
        tag: 'stream:error',
        attrs: {},
        content: [{ tag: 'conflict', attrs: { type: 'replaced' } }],
      });
      setTimeout(() => this.close(previous), 50);
    }
    device.conn = conn;
    device.logins += 1;
    conn.device = device;
    this.stats.logins += 1;
    // Anything sent on an earlier connection and never acknowledged is due again on this one.
    for (const p of device.pending.values()) p.sentOn = undefined;
    this.send(conn, {
      tag: 'success',
      attrs: {
        t: String(Math.floor(Date.now() / 1000)),
        lid: `${device.user.lid}:${device.device}@lid`,
        props: '1',
        creation: '1',
      },
    });
  }

  private failure(conn: Connection, reason: string): void {
    this.stats.failures += 1;
    this.send(conn, { tag: 'failure', attrs: { reason } });
    setTimeout(() => this.close(conn), 50);
  }

  private async onNode(conn: Connection, node: BinaryNode): Promise<void> {
    switch (node.tag) {
      case 'iq':
        return this.onIq(conn, node);
      case 'message':
        return this.onMessage(conn, node);
      case 'receipt':
      case 'ack':
        this.onAck(conn, node);
        return;
      default:
        // presence, ib (unified_session), …: nothing to answer.
        return;
    }
  }

  private onAck(conn: Connection, node: BinaryNode): void {
    const device = conn.device;
    const id = node.attrs.id;
    if (!device || !id) return;
    if (node.tag === 'ack' && node.attrs.class !== 'message') return;
    const ids = [id, ...getBinaryNodeChildren(getBinaryNodeChild(node, 'list'), 'item').map((i) => i.attrs.id)];
    // A retry receipt says the device could not decrypt: it does not hold what that message carried.
    const decrypted = !(node.tag === 'receipt' && node.attrs.type === 'retry');
    for (const i of ids) {
      const p = i ? device.pending.get(i) : undefined;
      // As WhatsApp does: the retry receipt reaches the sender's phone, which encrypts the message again in a
      // new session from the device's pre-key bundle and sends it once more (a device that lost the session
      // state it had — a node killed before writing its last ratchet step — can read that one).
      if (p && !decrypted && !p.group && !p.plaintext && (p.retries ?? 0) < 5) {
        p.retries = (p.retries ?? 0) + 1;
        p.from.phone.forgetSession(device.user.pn, device.device);
        p.sentOn = undefined;
        this.stats.retried += 1;
        void this.deliver(device, conn, p, false).catch(() => undefined);
        continue;
      }
      if (p?.group && decrypted) device.senderKeysHeld.add(`${p.group.group.jid}|${p.from.pn}`);
      if (i && device.pending.delete(i)) this.stats.acks += 1;
    }
  }

  private async onIq(conn: Connection, iq: BinaryNode): Promise<void> {
    const first = getAllBinaryNodeChildren(iq)[0];
    if (iq.attrs.type === 'result' || iq.attrs.type === 'error') {
      if (conn.pairing && iq.attrs.id === conn.pairing.iqId) this.onPairDeviceSign(conn, iq);
      return;
    }
    const xmlns = iq.attrs.xmlns;
    if (xmlns === 'encrypt' && first?.tag === 'count') {
      return this.result(conn, iq, [{ tag: 'count', attrs: { value: String(conn.device?.preKeys.size ?? 0) } }]);
    }
    if (xmlns === 'encrypt' && iq.attrs.type === 'set' && getBinaryNodeChild(iq, 'list'))
      return this.onPreKeyUpload(conn, iq);
    if (xmlns === 'encrypt' && first?.tag === 'digest') return this.result(conn, iq, [{ tag: 'digest', attrs: {} }]);
    if (xmlns === 'encrypt' && first?.tag === 'key') return this.onKeyFetch(conn, iq, first);
    if (xmlns === 'usync') return this.onUsync(conn, iq);
    if (xmlns === 'w:g2') return this.onGroupQuery(conn, iq, first);
    if (xmlns === 'urn:xmpp:whatsapp:dirty' && first?.attrs.type === 'groups' && conn.device) {
      conn.device.groupsDirty = false;
    }
    if (xmlns === 'passive' && first?.tag === 'active') {
      this.result(conn, iq);
      await this.flush(conn);
      return;
    }
    // ping, props, blocklist, privacy, …: an empty result is enough for a linked device to carry on.
    return this.result(conn, iq);
  }

  /** `<group>` as WhatsApp answers a metadata query: attributes, then one `<participant>` per member. */
  private groupNode(g: SimGroup): BinaryNode {
    const byLid = g.addressing === 'lid';
    const jidOf = (u: SimUser): string => (byLid ? `${u.lid}@lid` : `${u.pn}@${S_WHATSAPP_NET}`);
    return {
      tag: 'group',
      attrs: {
        id: g.jid.replace(/@g\.us$/, ''),
        subject: g.subject,
        s_t: String(g.creation),
        s_o: jidOf(g.creator),
        creation: String(g.creation),
        creator: jidOf(g.creator),
        ...(byLid ? { creator_pn: `${g.creator.pn}@${S_WHATSAPP_NET}` } : {}),
        size: String(g.members.length),
        addressing_mode: g.addressing,
      },
      content: g.members.map((u) => ({
        tag: 'participant',
        attrs: {
          jid: jidOf(u),
          ...(byLid ? { phone_number: `${u.pn}@${S_WHATSAPP_NET}` } : { lid: `${u.lid}@lid` }),
          ...(u === g.creator ? { type: 'superadmin' } : {}),
        },
      })),
    };
  }

  /**
   * Group queries (`xmlns="w:g2"`): one group's metadata (`<query request="interactive"/>`, to the group's
   * jid) and all groups the account is in (`<participating>`). Only members learn a group's metadata.
   */
  private onGroupQuery(conn: Connection, iq: BinaryNode, first: BinaryNode | undefined): void {
    const user = conn.device?.user;
    const error = (code: string, text: string): void =>
      this.send(conn, {
        tag: 'iq',
        attrs: { from: iq.attrs.to ?? S_WHATSAPP_NET, type: 'error', id: iq.attrs.id },
        content: [{ tag: 'error', attrs: { code, text } }],
      });
    if (!user) return error('401', 'not-authorized');
    if (first?.tag === 'participating') {
      const mine = [...this.groups.values()].filter((g) => g.members.includes(user));
      return this.result(conn, iq, [{ tag: 'groups', attrs: {}, content: mine.map((g) => this.groupNode(g)) }]);
    }
    if (first?.tag === 'query') {
      const g = this.groups.get(iq.attrs.to ?? '');
      if (!g) return error('404', 'item-not-found');
      if (!g.members.includes(user)) return error('403', 'forbidden');
      return this.result(conn, iq, [this.groupNode(g)]);
    }
    return error('501', 'feature-not-implemented');
  }

  private onPairDeviceSign(conn: Connection, iq: BinaryNode): void {
    const p = conn.pairing!;
    conn.pairing = undefined;
    const signNode = getBinaryNodeChild(getBinaryNodeChild(iq, 'pair-device-sign'), 'device-identity');
    const content = signNode?.content;
    if (!(content instanceof Uint8Array)) {
      p.reject(new Error('pair-device-sign without a device identity'));
      return this.failure(conn, '400');
    }
    const account = proto.ADVSignedDeviceIdentity.decode(content);
    const deviceMsg = Buffer.concat([ADV_DEVICE_SIG_PREFIX, p.details, p.reg.identityKey, p.user.accountKey.public]);
    if (!account.deviceSignature || !curve.verify(p.reg.identityKey, deviceMsg, account.deviceSignature)) {
      p.reject(new Error('the device signature does not verify'));
      return this.failure(conn, '400');
    }
    const linked: LinkedDevice = {
      user: p.user,
      device: p.device,
      keyIndex: p.keyIndex,
      noiseKey: p.reg.noiseKey,
      identityKey: p.reg.identityKey,
      registrationId: p.reg.registrationId,
      signedPreKey: p.reg.signedPreKey,
      preKeys: new Map(),
      removed: false,
      pending: new Map(),
      logins: 0,
      senderKeysHeld: new Set(),
      groupsDirty: false,
    };
    this.devices.push(linked);
    p.resolve(linked);
    // Linked: the client must reconnect and log in with its new identity.
    this.send(conn, { tag: 'stream:error', attrs: { code: '515' } });
    setTimeout(() => this.close(conn), 50);
  }

  private onPreKeyUpload(conn: Connection, iq: BinaryNode): void {
    const device = conn.device;
    if (!device) return this.result(conn, iq);
    const skey = getBinaryNodeChild(iq, 'skey');
    const skeyVal = childBuffer(skey, 'value');
    const skeySig = childBuffer(skey, 'signature');
    const skeyId = childBuffer(skey, 'id');
    if (
      !skeyVal ||
      !skeySig ||
      !skeyId ||
      !curve.verify(device.identityKey, Buffer.concat([Buffer.from([5]), skeyVal]), skeySig)
    ) {
      return this.send(conn, {
        tag: 'iq',
        attrs: { from: S_WHATSAPP_NET, type: 'error', id: iq.attrs.id },
        content: [{ tag: 'error', attrs: { code: '400', text: 'bad-request' } }],
      });
    }
    device.signedPreKey = { keyId: fromBe(skeyId), publicKey: skeyVal, signature: skeySig };
    for (const k of getBinaryNodeChildren(getBinaryNodeChild(iq, 'list'), 'key')) {
      const id = childBuffer(k, 'id');
      const value = childBuffer(k, 'value');
      if (id && value) device.preKeys.set(fromBe(id), value);
    }
    this.result(conn, iq);
  }

  private bundleNode(jid: string, b: PreKeyBundle): BinaryNode {
    const strip = (k: Buffer): Buffer => (k.length === 33 ? k.subarray(1) : k);
    return {
      tag: 'user',
      attrs: { jid },
      content: [
        { tag: 'registration', attrs: {}, content: be(b.registrationId, 4) },
        { tag: 'type', attrs: {}, content: Buffer.from([5]) },
        { tag: 'identity', attrs: {}, content: strip(b.identityKey) },
        {
          tag: 'skey',
          attrs: {},
          content: [
            { tag: 'id', attrs: {}, content: be(b.signedPreKey.keyId, 3) },
            { tag: 'value', attrs: {}, content: strip(b.signedPreKey.publicKey) },
            { tag: 'signature', attrs: {}, content: b.signedPreKey.signature },
          ],
        },
        ...(b.preKey
          ? [
              {
                tag: 'key',
                attrs: {},
                content: [
                  { tag: 'id', attrs: {}, content: be(b.preKey.keyId, 3) },
                  { tag: 'value', attrs: {}, content: strip(b.preKey.publicKey) },
                ],
              },
            ]
          : []),
      ],
    };
  }

  private phoneBundle(user: SimUser): PreKeyBundle {
    const p = user.phone;
    return {
      registrationId: p.registrationId,
      identityKey: p.identity.pubKey,
      signedPreKey: {
        keyId: p.signedPreKey.keyId,
        publicKey: p.signedPreKey.keyPair.pubKey,
        signature: p.signedPreKey.signature,
      },
      preKey: p.takePreKey(),
    };
  }

  private deviceBundle(d: LinkedDevice): PreKeyBundle {
    const first = d.preKeys.entries().next();
    let preKey: PreKeyBundle['preKey'];
    if (!first.done) {
      const [keyId, publicKey] = first.value;
      d.preKeys.delete(keyId);
      preKey = { keyId, publicKey: Buffer.concat([Buffer.from([5]), publicKey]) };
    }
    return {
      registrationId: d.registrationId,
      identityKey: Buffer.concat([Buffer.from([5]), d.identityKey]),
      signedPreKey: {
        keyId: d.signedPreKey.keyId,
        publicKey: Buffer.concat([Buffer.from([5]), d.signedPreKey.publicKey]),
        signature: d.signedPreKey.signature,
      },
      preKey,
    };
  }

  private onKeyFetch(conn: Connection, iq: BinaryNode, keyNode: BinaryNode): void {
    const users: BinaryNode[] = [];
    for (const u of getBinaryNodeChildren(keyNode, 'user')) {
      const jid = u.attrs.jid;
      const who = jid ? this.userOfJid(jid) : null;
      if (!who) continue;
      if (who.device === 0) users.push(this.bundleNode(jid, this.phoneBundle(who.user)));
      else {
        const d = this.devices.find((x) => x.user === who.user && x.device === who.device && !x.removed);
        if (d) users.push(this.bundleNode(jid, this.deviceBundle(d)));
      }
    }
    this.result(conn, iq, [{ tag: 'list', attrs: {}, content: users }]);
  }

  private onUsync(conn: Connection, iq: BinaryNode): void {
    const usync = getBinaryNodeChild(iq, 'usync');
    const list = getBinaryNodeChildren(getBinaryNodeChild(usync, 'list'), 'user');
    const out: BinaryNode[] = [];
    for (const u of list) {
      const jid = u.attrs.jid;
      const who = jid ? this.userOfJid(jid) : null;
      if (!jid || !who) continue;
      const byLid = jidDecode(jid)?.server === 'lid';
      const devices: BinaryNode[] = [
        { tag: 'device', attrs: { id: '0' } },
        ...this.linkedDevices(who.user).map((d) => ({
          tag: 'device',
          attrs: { id: String(d.device), 'key-index': String(d.keyIndex) },
        })),
      ];
      out.push({
        tag: 'user',
        attrs: { jid },
        content: [
          { tag: 'devices', attrs: {}, content: [{ tag: 'device-list', attrs: {}, content: devices }] },
          ...(byLid ? [] : [{ tag: 'lid', attrs: { val: `${who.user.lid}@lid` } }]),
        ],
      });
    }
    this.result(conn, iq, [{ tag: 'usync', attrs: {}, content: [{ tag: 'list', attrs: {}, content: out }] }]);
  }

  private sendGroupsDirty(conn: Connection): void {
    const t = String(Math.floor(Date.now() / 1000));
    this.send(conn, { tag: 'ib', attrs: {}, content: [{ tag: 'dirty', attrs: { type: 'groups', timestamp: t } }] });
  }

  /** After login: everything queued for the device (marked offline), then the end-of-offline marker. */
  private async flush(conn: Connection): Promise<void> {
    const device = conn.device;
    if (!device || conn.flushed) return;
    const queued = [...device.pending.values()].filter((p) => !p.sentOn);
    for (const p of queued) await this.deliver(device, conn, p, true);
    conn.flushed = true;
    this.send(conn, { tag: 'ib', attrs: {}, content: [{ tag: 'offline', attrs: { count: String(queued.length) } }] });
    if (device.groupsDirty) this.sendGroupsDirty(conn);
  }

  private async deliver(device: LinkedDevice, conn: Connection, p: PendingMessage, offline: boolean): Promise<void> {
    if (p.sentOn === conn || conn.closed) return;
    p.sentOn = conn;
    const from = p.from;
    const target = { user: device.user.pn, device: device.device };
    /** Pairwise Signal encryption from `from`'s phone to this device (a session from its pre-key bundle first). */
    const pairwise = async (bytes: Buffer): Promise<BinaryNode> => {
      if (!from.phone.hasSession(target.user, target.device)) {
        await from.phone.startSession(target.user, target.device, this.deviceBundle(device));
      }
      const { type, ciphertext } = await from.phone.encrypt(target.user, target.device, padMessage(bytes));
      return { tag: 'enc', attrs: { v: '2', type }, content: ciphertext };
    };
    const content: BinaryNode[] = [];
    const bytes = Buffer.from(proto.Message.encode(p.message).finish());
    if (p.group) {
      const { group, skmsg, skdm } = p.group;
      // The sender key first (the client decrypts the envelope's parts in order), until the device has it.
      if (!device.senderKeysHeld.has(`${group.jid}|${from.pn}`)) {
        const distribution: proto.IMessage = {
          senderKeyDistributionMessage: { groupId: group.jid, axolotlSenderKeyDistributionMessage: skdm },
        };
        content.push(await pairwise(Buffer.from(proto.Message.encode(distribution).finish())));
        this.stats.senderKeysDistributed += 1;
      }
      content.push({ tag: 'enc', attrs: { v: '2', type: 'skmsg' }, content: skmsg });
    } else if (p.plaintext) {
      content.push({ tag: 'plaintext', attrs: {}, content: bytes });
    } else {
      content.push(await pairwise(bytes));
    }
    const pnJid = `${from.pn}@${S_WHATSAPP_NET}`;
    const lidJid = `${from.lid}@lid`;
    const addressing: Record<string, string> = p.group
      ? p.addressing === 'pn'
        ? { from: p.group.group.jid, participant: pnJid, participant_lid: lidJid, addressing_mode: 'pn' }
        : { from: p.group.group.jid, participant: lidJid, participant_pn: pnJid, addressing_mode: 'lid' }
      : p.addressing === 'pn'
        ? { from: pnJid, sender_lid: lidJid }
        : p.addressing === 'lid'
          ? { from: lidJid, sender_pn: pnJid }
          : { from: lidJid };
    this.send(conn, {
      tag: 'message',
      attrs: {
        id: p.id,
        ...addressing,
        t: String(p.t),
        type: 'text',
        notify: from.name,
        ...(offline ? { offline: '1' } : {}),
      },
      content,
    });
  }

  /** A message the device sent: each `<to>` is decrypted by the simulated phone it is for. */
  private async onMessage(conn: Connection, node: BinaryNode): Promise<void> {
    const sender = conn.device;
    if (!sender) return;
    if (node.attrs.to?.endsWith('@g.us')) return this.onGroupMessage(conn, node, sender);
    const id = node.attrs.id ?? '';
    const targets: Array<{ jid: string; enc: BinaryNode }> = [];
    for (const to of getBinaryNodeChildren(getBinaryNodeChild(node, 'participants'), 'to')) {
      const enc = getBinaryNodeChild(to, 'enc');
      if (to.attrs.jid && enc) targets.push({ jid: to.attrs.jid, enc });
    }
    const direct = getBinaryNodeChild(node, 'enc');
    if (direct && node.attrs.to) targets.push({ jid: node.attrs.to, enc: direct });
    for (const { jid, enc } of targets) {
      const who = this.userOfJid(jid);
      if (!who || who.device !== 0 || !(enc.content instanceof Uint8Array)) continue;
      try {
        const plain = await who.user.phone.decrypt(
          sender.user.pn,
          sender.device,
          enc.attrs.type ?? 'msg',
          Buffer.from(enc.content),
        );
        const decoded = proto.Message.decode(unpadMessage(plain));
        const message: proto.IMessage = decoded.deviceSentMessage?.message ?? decoded;
        const text = message.conversation ?? message.extendedTextMessage?.text ?? '';
        who.user.inbox.push({ id, from: sender.user.pn, fromDevice: sender.device, to: jid, message, text });
      } catch (err) {
        who.user.inbox.push({
          id,
          from: sender.user.pn,
          fromDevice: sender.device,
          to: jid,
          message: {},
          text: `<undecryptable: ${(err as Error).message}>`,
        });
      }
    }
    this.send(conn, {
      tag: 'ack',
      attrs: { class: 'message', id, from: node.attrs.to ?? S_WHATSAPP_NET, t: String(Math.floor(Date.now() / 1000)) },
    });
  }

  /**
   * A group message the device sent, read as the members' phones read it: each `<participants><to>` is a
   * pairwise message that must carry the sender's SenderKeyDistributionMessage for this group (the phone takes
   * the key in), then the one `skmsg` is decrypted by every member holding the sender's key — with the key's
   * signature checked. A member left without the key records the message as undecryptable.
   */
  private async onGroupMessage(conn: Connection, node: BinaryNode, sender: LinkedDevice): Promise<void> {
    const id = node.attrs.id ?? '';
    const groupJid = node.attrs.to ?? '';
    const ack = (error?: string): void =>
      this.send(conn, {
        tag: 'ack',
        attrs: {
          class: 'message',
          id,
          from: groupJid,
          t: String(Math.floor(Date.now() / 1000)),
          ...(error ? { error } : {}),
        },
      });
    const group = this.groups.get(groupJid);
    if (!group) return ack('404');
    if (!group.members.includes(sender.user)) return ack('403');
    const from = { user: sender.user.pn, device: sender.device };
    const record = { id, from: sender.user.pn, fromDevice: sender.device, keysTo: [] as string[] };
    group.sent.push(record);
    const received = (member: SimUser, message: proto.IMessage, text: string): void => {
      member.inbox.push({
        id,
        from: sender.user.pn,
        fromDevice: sender.device,
        to: groupJid,
        message,
        text,
        group: groupJid,
      });
    };
    for (const to of getBinaryNodeChildren(getBinaryNodeChild(node, 'participants'), 'to')) {
      const enc = getBinaryNodeChild(to, 'enc');
      const who = to.attrs.jid ? this.userOfJid(to.attrs.jid) : null;
      // Only members' phones are simulated readers (a linked device of a member reads for itself).
      if (!who || who.device !== 0 || !group.members.includes(who.user) || !(enc?.content instanceof Uint8Array))
        continue;
      try {
        const plain = await who.user.phone.decrypt(
          from.user,
          from.device,
          enc.attrs.type ?? 'msg',
          Buffer.from(enc.content),
        );
        const decoded = proto.Message.decode(unpadMessage(plain));
        const skdm = decoded.senderKeyDistributionMessage;
        if (skdm?.groupId !== groupJid || !skdm.axolotlSenderKeyDistributionMessage?.length)
          throw new Error('the pairwise message carries no sender key for this group');
        await who.user.senderKeys.process(groupJid, from, skdm.axolotlSenderKeyDistributionMessage);
        record.keysTo.push(who.user.pn);
      } catch (err) {
        received(who.user, {}, `<undecryptable: ${(err as Error).message}>`);
      }
    }
    const skmsg = getBinaryNodeChildren(node, 'enc').find((e) => e.attrs.type === 'skmsg');
    if (!(skmsg?.content instanceof Uint8Array)) return ack('400');
    for (const member of group.members) {
      try {
        const plain = await member.senderKeys.decrypt(groupJid, from, skmsg.content);
        const message = proto.Message.decode(unpadMessage(plain));
        received(member, message, message.conversation ?? message.extendedTextMessage?.text ?? '');
      } catch (err) {
        received(member, {}, `<undecryptable: ${(err as Error).message}>`);
      }
    }
    ack();
  }
}
