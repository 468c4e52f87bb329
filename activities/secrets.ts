/** Resolving credential refs at the moment of use. Values never leave the activity that asked for them. */
import { ApplicationFailure } from '@temporalio/activity';
import type { Client } from '@temporalio/client';
import { FAILURE } from '../lib/errors.js';
import type { Store } from '../lib/store/store.js';
import type { ChannelState, ConfigValue, CredentialRef } from '../lib/types.js';
import { channelWorkflowId } from '../lib/workflow-ids.js';
import { VaultError, vaultRegistry } from '../lib/vaults/index.js';
import { reportProblem } from '../workflows/channel-messages.js';

/** Describes a ref for messages and logs (never the value). */
export const describeRef = (ref: CredentialRef): string => `${ref.vault}/${ref.item}/${ref.field}`;

/**
 * Reads the secret a ref points at, through the vault registry (lib/vaults). A dangling local ref is a
 * non-retryable failure naming the config field; a vault that cannot answer now is a retryable
 * `WharfVaultUnavailable` naming the field and the vault ("access_token: vault 'ops' unreachable (…)").
 */
export async function resolveSecret(store: Store, field: string, value: ConfigValue | undefined): Promise<string> {
  if (!value || typeof value !== 'object') {
    throw ApplicationFailure.create({
      type: FAILURE.missingSecret,
      message: `${field} is not set to a credential ref.`,
      nonRetryable: true,
    });
  }
  try {
    return await vaultRegistry(store).resolve(value);
  } catch (err) {
    if (!(err instanceof VaultError)) throw err;
    if (err.vault === 'local' && err.problem === 'not_found') {
      throw ApplicationFailure.create({
        type: FAILURE.missingSecret,
        message: `${field} points at ${describeRef(value)}, which does not exist. Create the vault item (or fix the ref) and save the config again.`,
        nonRetryable: true,
      });
    }
    throw ApplicationFailure.create({
      type: FAILURE.vaultUnavailable,
      message: `${field}: ${err.message}`,
      nonRetryable: !err.retryable,
    });
  }
}

/** Ends every status reason that reports a vault outage, so its recovery replaces exactly those. */
export const VAULT_RETRY_NOTE = 'Wharf retries until the vault answers.';

/**
 * {@link resolveSecret} for a channel's work (sends, agents): a vault that cannot answer puts its reason on
 * the channel (status unchanged: traffic keeps being admitted and retried), and the next good read after
 * such a reason puts a recovery note in its place.
 */
export async function resolveChannelSecret(
  deps: { store: Store; client: Client },
  ch: ChannelState,
  field: string,
  value: ConfigValue | undefined,
): Promise<string> {
  const tell = async (reason: string): Promise<void> => {
    await deps.client.workflow
      .getHandle(channelWorkflowId(ch.id))
      .signal(reportProblem, { reason })
      .catch(() => undefined); // a deleted channel: nothing to tell
  };
  try {
    const secret = await resolveSecret(deps.store, field, value);
    if (ch.statusReason.endsWith(VAULT_RETRY_NOTE))
      await tell(`${field}: vault '${(value as CredentialRef).vault}' answers again.`);
    return secret;
  } catch (err) {
    if (
      err instanceof ApplicationFailure &&
      err.type === FAILURE.vaultUnavailable &&
      !ch.statusReason.startsWith(err.message)
    ) {
      await tell(`${err.message}. ${VAULT_RETRY_NOTE}`);
    }
    throw err;
  }
}
