/** Search attributes Wharf registers and upserts, so operators find channels and chats in the Temporal UI. */
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

/** The channel's status (`setup`, `connected`, …). */
export const WharfChannelStatus = defineSearchAttributeKey('WharfChannelStatus', SearchAttributeType.KEYWORD);
/** The channel's provider. */
export const WharfProvider = defineSearchAttributeKey('WharfProvider', SearchAttributeType.KEYWORD);
/** The space the channel is bound to. */
export const WharfSpace = defineSearchAttributeKey('WharfSpace', SearchAttributeType.KEYWORD);
/** On chat workflows: the channel they belong to. */
export const WharfChannelId = defineSearchAttributeKey('WharfChannelId', SearchAttributeType.KEYWORD);

/** All of them, for registration. */
export const WHARF_SEARCH_ATTRIBUTES = [WharfChannelStatus, WharfProvider, WharfSpace, WharfChannelId];
