/**
 * Group messages' cryptography for the simulated phones: Signal sender keys, with the very group cipher and
 * session builder Baileys itself uses (its `lib/Signal/Group`), so what a simulated member encrypts is what a
 * real client decrypts, and what Baileys sends a group is decrypted here as any member would.
 *
 * A member creates its own sender key per group, hands the key to the others in a
 * SenderKeyDistributionMessage (inside a pairwise Signal message), then encrypts each group message once
 * (`skmsg`) for everyone who holds the key.
 */
import {
  GroupCipher,
  GroupSessionBuilder,
  SenderKeyDistributionMessage,
  SenderKeyName,
  SenderKeyRecord,
} from '@whiskeysockets/baileys/lib/Signal/Group/index.js';

/** A sender in a group: the account (phone-number digits) and its device. */
export interface GroupSender {
  user: string;
  device: number;
}

const keyName = (group: string, sender: GroupSender): SenderKeyName =>
  new SenderKeyName(group, {
    id: sender.user,
    deviceId: sender.device,
    toString: () => `${sender.user}.${sender.device}`,
  });

/** One simulated device's sender keys: its own per group, and those other members distributed to it. */
export class SenderKeys {
  private readonly records = new Map<string, SenderKeyRecord>();

  private readonly store = {
    loadSenderKey: async (name: SenderKeyName): Promise<SenderKeyRecord> =>
      this.records.get(name.toString()) ?? new SenderKeyRecord(),
    storeSenderKey: async (name: SenderKeyName, record: SenderKeyRecord): Promise<void> => {
      this.records.set(name.toString(), record);
    },
  };

  /** True when this device holds `sender`'s key for `group` (its own, or one distributed to it). */
  has(group: string, sender: GroupSender): boolean {
    const r = this.records.get(keyName(group, sender).toString());
    return !!r && !r.isEmpty();
  }

  /**
   * This device's own key for `group` (created on first use) as a serialised SenderKeyDistributionMessage —
   * what goes into `Message.senderKeyDistributionMessage.axolotlSenderKeyDistributionMessage`.
   */
  async distribution(group: string, self: GroupSender): Promise<Buffer> {
    const skdm = await new GroupSessionBuilder(this.store).create(keyName(group, self));
    return Buffer.from(skdm.serialize());
  }

  /** Encrypts a (padded) group message under this device's own key: the `skmsg` every member decrypts. */
  async encrypt(group: string, self: GroupSender, padded: Buffer): Promise<Buffer> {
    if (!this.has(group, self)) await this.distribution(group, self);
    return Buffer.from(await new GroupCipher(this.store, keyName(group, self)).encrypt(padded));
  }

  /** Takes in the key `sender` distributed for `group` (what a member does with a received SKDM). */
  async process(group: string, sender: GroupSender, serialized: Uint8Array): Promise<void> {
    const message = new SenderKeyDistributionMessage(null, null, null, null, serialized);
    await new GroupSessionBuilder(this.store).process(keyName(group, sender), message);
  }

  /** Decrypts `sender`'s `skmsg` (its signature is checked against the distributed signing key). */
  async decrypt(group: string, sender: GroupSender, ciphertext: Uint8Array): Promise<Buffer> {
    if (!this.has(group, sender)) throw new Error(`no sender key of ${sender.user}.${sender.device} for ${group}`);
    return Buffer.from(await new GroupCipher(this.store, keyName(group, sender)).decrypt(ciphertext));
  }
}
