/** Resolving credential refs at the moment of use. Values never leave the activity that asked for them. */
import { ApplicationFailure } from '@temporalio/activity';
import { FAILURE } from '../lib/errors.js';
import type { Store } from '../lib/store/store.js';
import type { ConfigValue, CredentialRef } from '../lib/types.js';

/** Describes a ref for messages and logs (never the value). */
export const describeRef = (ref: CredentialRef): string => `${ref.vault}/${ref.item}/${ref.field}`;

/** Reads the secret a ref points at; a dangling ref is a non-retryable failure naming the config field. */
export async function resolveSecret(store: Store, field: string, value: ConfigValue | undefined): Promise<string> {
  if (!value || typeof value !== 'object') {
    throw ApplicationFailure.create({ type: FAILURE.missingSecret, message: `${field} is not set to a credential ref.`, nonRetryable: true });
  }
  const secret = await store.vault.resolve(value);
  if (secret === null) {
    throw ApplicationFailure.create({
      type: FAILURE.missingSecret,
      message: `${field} points at ${describeRef(value)}, which does not exist. Create the vault item (or fix the ref) and save the config again.`,
      nonRetryable: true,
    });
  }
  return secret;
}
