/** Activities of the channel workflow: the store's read model, releasing a channel, provider checks. */
import { ApplicationFailure } from '@temporalio/activity';
import { FAILURE } from '../lib/errors.js';
import type { GraphClient } from '../lib/graph/graph-client.js';
import { GraphError } from '../lib/graph/graph-client.js';
import { messageLogIds } from '../lib/log-ids.js';
import type { Logger } from '../lib/logger.js';
import type { Store } from '../lib/store/store.js';
import type { ChannelState, ConfigValue, Provider } from '../lib/types.js';
import { resolveSecret } from './secrets.js';

/** What the channel activities need. */
export interface ChannelActivityDeps {
  store: Store;
  graph: GraphClient;
  log: Logger;
}

/** Result of checking a provider config. */
export type ConfigCheck = { ok: true; selfAddress?: string } | { ok: false; reason: string };

/** Builds the channel workflow's activities. */
export function createChannelActivities({ store, graph, log }: ChannelActivityDeps) {
  // The guide's most common failure ("outbound works, inbound doesn't") is a WABA no app is subscribed to.
  // Reading that needs whatsapp_business_management; without it the answer is recorded as unknown. Never
  // fails the config check: it only feeds the channel's diagnostics.
  const checkSubscribedApps = async (
    channelId: string,
    businessAccountId: string,
    accessToken: string,
  ): Promise<void> => {
    try {
      const apps = await graph.subscribedApps({ businessAccountId, accessToken });
      await store.diagnostics.subscribedApps(channelId, apps.length);
      if (!apps.length)
        log.warn(
          { channelId },
          'no app is subscribed to the WhatsApp Business Account webhooks: inbound messages will not arrive',
        );
    } catch (err) {
      log.info(
        { channelId, err: err instanceof Error ? err.message : String(err) },
        'could not read the WABA subscribed apps',
      );
      await store.diagnostics.subscribedApps(channelId, null);
    }
  };
  return {
    /** Mirrors a channel's state into the store's read model (ignored if a newer version is there). */
    async projectChannel(state: ChannelState): Promise<void> {
      await store.channels.project(state);
    },

    /** Frees everything a deleted channel held: its space, auth state and read model. */
    async releaseChannel({ state }: { state: ChannelState }): Promise<void> {
      await store.db.transaction(async (tx) => {
        await store.spaces.unbind(state.id, tx);
        await store.authState.clear(state.id, tx);
        await store.channels.project(state, true, tx);
      });
      log.info({ channelId: state.id }, 'channel deleted: space freed, auth state removed');
    },

    /** Forgets a personal-account session: its auth state and any pending QR or pairing code. */
    async clearSession({ channelId }: { channelId: string }): Promise<void> {
      await store.authState.clear(channelId);
    },

    /** Records what happened to a handed-off message (`handed_off`, `dropped`) on the message log. */
    async recordHandoff({
      channelId,
      chatId,
      messageId,
      status,
      detail,
    }: {
      channelId: string;
      chatId?: string;
      messageId: string;
      status: 'handed_off' | 'dropped';
      detail?: Record<string, unknown>;
    }): Promise<void> {
      await store.messages.setInboundStatus(channelId, messageId, status, detail);
      // (`chatId` is absent only in histories recorded before it was passed.)
      const ids = chatId ? messageLogIds(channelId, chatId) : { channelId };
      if (status === 'dropped')
        log.warn({ ...ids, messageId }, 'handed-off message dropped: no task waited on the space within 5 minutes');
      else log.info({ ...ids, messageId, to: detail?.to }, 'message handed off to a waiting task');
    },

    /**
     * Checks a provider config against the provider. Cloud API: every secret ref resolves, the token is
     * valid, the phone number id exists and is readable, and the token has whatsapp_business_messaging.
     */
    async checkProviderConfig({
      channelId,
      provider,
      config,
    }: {
      channelId: string;
      provider: Provider;
      config: Record<string, ConfigValue>;
    }): Promise<ConfigCheck> {
      if (provider !== 'whatsapp_cloud') return { ok: true };
      let accessToken: string;
      try {
        accessToken = await resolveSecret(store, 'access_token', config.access_token);
        await resolveSecret(store, 'verify_token', config.verify_token);
        await resolveSecret(store, 'app_secret', config.app_secret);
      } catch (err) {
        // A vault that cannot answer now is retried by the activity's policy; a dangling ref is final.
        if (err instanceof ApplicationFailure && err.nonRetryable) return { ok: false, reason: err.message };
        throw err;
      }
      try {
        const result = await graph.checkCredentials({
          phoneNumberId: String(config.phone_number_id),
          businessAccountId: String(config.business_account_id),
          accessToken,
        });
        if (!result.ok) {
          log.warn({ channelId, problem: result.problem }, 'Cloud API credentials refused');
          return { ok: false, reason: result.reason };
        }
        const digits = result.displayPhoneNumber.replace(/\D/g, '');
        log.info({ channelId, verifiedName: result.verifiedName }, 'Cloud API credentials checked');
        await checkSubscribedApps(channelId, String(config.business_account_id), accessToken);
        return { ok: true, selfAddress: digits ? `+${digits}` : undefined };
      } catch (err) {
        // Transient (network, 5xx, rate limit): let the retry policy try again; the message is safe to show.
        if (err instanceof GraphError)
          throw ApplicationFailure.create({
            type: err.failureType ?? FAILURE.graphUnavailable,
            message: err.message,
            nonRetryable: !err.retryable,
          });
        throw err;
      }
    },
  };
}

/** The channel activities' type, for `proxyActivities`. */
export type ChannelActivities = ReturnType<typeof createChannelActivities>;
