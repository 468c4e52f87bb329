/**
 * The personal adapter's activities with Baileys loaded on first use. Loading Baileys (and libsignal, and
 * its curve25519 set-up) costs about 0.4 s and 30 MB; a node whose channels are all Cloud API channels
 * never pays it, and one with personal channels pays it when its first session starts, not at start-up
 * (issue #22). Until then this node holds no session, so nothing is lost by waiting.
 */
import type { PersonalMediaSend } from '../outbound-media.js';
import type { RunSessionInput, SendTextInput, SessionActivityDeps } from './session-registry.js';

/** The session activities and the personal media sender, each loading the adapter on its first call. */
export function lazyPersonalActivities(deps: SessionActivityDeps) {
  const load = async () => {
    const [{ createSessionActivities }, { createPersonalMediaSender }] = await Promise.all([
      import('./index.js'),
      import('../personal-media.js'),
    ]);
    const sessions = createSessionActivities(deps);
    const media = createPersonalMediaSender({
      sessions: sessions.sessionRegistry,
      store: deps.store,
      sessionQueue: deps.sessionQueue,
    });
    return { runSession: sessions.runSession, sendText: sessions.sendText, sendMedia: media.sendMedia };
  };
  let loaded: ReturnType<typeof load> | undefined;
  const adapter = (): ReturnType<typeof load> => (loaded ??= load());
  return {
    /** Runs the channel's socket until the session ends (see ./index.ts). */
    runSession: async (input: RunSessionInput) => (await adapter()).runSession(input),
    /** Sends a text over this process's socket for the channel (see ./send-text.ts). */
    sendText: async (input: SendTextInput) => (await adapter()).sendText(input),
    /** Sends a file over this process's socket for the channel (see ../personal-media.ts). */
    sendMedia: async (input: PersonalMediaSend) => (await adapter()).sendMedia(input),
  };
}
