/**
 * The store's part in sending files (issue #20): Meta media ids of files already uploaded for a phone
 * number (migration 10), and the type of an outbound log entry that carries a file.
 */
import { jsonParam, type Db } from './db.js';

/** How long an upload is reused: Meta keeps uploaded media 30 days; a margin keeps a send clear of the end. */
export const UPLOAD_REUSE_DAYS = 25;

/** Builds the outbound-media part of the store. */
export function createOutboundMediaStore(db: Db) {
  return {
    /** Meta's id of `mediaId` uploaded for `phoneNumberId` within {@link UPLOAD_REUSE_DAYS}, or null. */
    async findUpload(phoneNumberId: string, mediaId: string): Promise<string | null> {
      const [r] = await db.query<{ meta_id: string }>(
        db.dialect === 'sqlite'
          ? `select meta_id from media_uploads
          where phone_number_id = $1 and media_id = $2 and uploaded_at > now_minus_ms($3 * 86400000)`
          : `select meta_id from media_uploads
          where phone_number_id = $1 and media_id = $2 and uploaded_at > now() - $3::int * interval '1 day'`,
        [phoneNumberId, mediaId, UPLOAD_REUSE_DAYS],
      );
      return r?.meta_id ?? null;
    },
    /** Remembers an upload (the newest wins). */
    async saveUpload(phoneNumberId: string, mediaId: string, metaId: string): Promise<void> {
      await db.query(
        `insert into media_uploads (phone_number_id, media_id, meta_id) values ($1, $2, $3)
         on conflict (phone_number_id, media_id) do update set meta_id = excluded.meta_id, uploaded_at = now()`,
        [phoneNumberId, mediaId, metaId],
      );
    },
    /** Forgets an upload Meta no longer knows (its id was refused). */
    async dropUpload(phoneNumberId: string, mediaId: string): Promise<void> {
      await db.query('delete from media_uploads where phone_number_id = $1 and media_id = $2', [
        phoneNumberId,
        mediaId,
      ]);
    },
    /**
     * Forgets uploads older than `days` (by default {@link UPLOAD_REUSE_DAYS}, past which `findUpload` no
     * longer reuses them); returns how many. Run by the hourly media sweep (workers/media-retention.ts).
     */
    async pruneUploads(days = UPLOAD_REUSE_DAYS): Promise<number> {
      return (
        await db.query(
          db.dialect === 'sqlite'
            ? `delete from media_uploads where uploaded_at < now_minus_ms($1 * 86400000) returning 1`
            : `delete from media_uploads where uploaded_at < now() - $1::int * interval '1 day' returning 1`,
          [days],
        )
      ).length;
    },
    /** Sets the type (`image`, `document`, …) and detail of an outbound log entry that carries a file. */
    async describeOutbound(
      channelId: string,
      key: string,
      type: string,
      detail: Record<string, unknown>,
    ): Promise<void> {
      await db.query(
        db.dialect === 'sqlite'
          ? `update messages set type = $3, detail = jsonb_merge(coalesce(detail, '{}'), $4)
          where channel_id = $1 and direction = 'out' and key = $2`
          : `update messages set type = $3, detail = coalesce(detail, '{}'::jsonb) || $4::jsonb
          where channel_id = $1 and direction = 'out' and key = $2`,
        [channelId, key, type, jsonParam(detail)],
      );
    },
  };
}

/** The outbound-media part of the store. */
export type OutboundMediaStore = ReturnType<typeof createOutboundMediaStore>;
