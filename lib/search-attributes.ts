/**
 * Search attributes Wharf registers and upserts, so operators find channels and chats in the Temporal UI.
 * Plain `{ name, type }` keys (what the SDK's `defineSearchAttributeKey` returns), with the SDK imported for
 * types only: the embedded dev server's command line lists them before the SDK has loaded (issue #22).
 */
import type { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

type KeywordKey = ReturnType<typeof defineSearchAttributeKey<typeof SearchAttributeType.KEYWORD>>;
const keyword = (name: string): KeywordKey => ({ name, type: 'KEYWORD' });

/** The channel's status (`setup`, `connected`, …). */
export const WharfChannelStatus = keyword('WharfChannelStatus');
/** The channel's provider. */
export const WharfProvider = keyword('WharfProvider');
/** The space the channel is bound to. */
export const WharfSpace = keyword('WharfSpace');
/** On chat workflows: the channel they belong to. */
export const WharfChannelId = keyword('WharfChannelId');

/** All of them, for registration. */
export const WHARF_SEARCH_ATTRIBUTES = [WharfChannelStatus, WharfProvider, WharfSpace, WharfChannelId];
