/**
 * Which node holds each personal session's activity attempt (`session_holders`, migration 14): written when
 * an attempt starts, removed when it ends, and taken (by exactly one live node) once the holder stopped
 * noting that it is alive (activities/session-failover.ts).
 */
import type { Db } from './db.js';

/** One recorded session attempt. */
export interface SessionHolder {
  channelId: string;
  nodeId: string;
  workflowId: string;
  runId: string;
  activityId: string;
  attempt: number;
}

interface HolderRow {
  channel_id: string;
  node_id: string;
  workflow_id: string;
  run_id: string;
  activity_id: string;
  attempt: number;
}

/** The session-holder repository. */
export function createSessionHolders(db: Db) {
  return {
    /** Records (or replaces) the attempt holding a channel's session. */
    async record(h: SessionHolder): Promise<void> {
      await db.query(
        `insert into session_holders (channel_id, node_id, workflow_id, run_id, activity_id, attempt)
         values ($1, $2, $3, $4, $5, $6)
         on conflict (channel_id) do update set node_id = excluded.node_id, workflow_id = excluded.workflow_id,
           run_id = excluded.run_id, activity_id = excluded.activity_id, attempt = excluded.attempt, updated_at = now()`,
        [h.channelId, h.nodeId, h.workflowId, h.runId, h.activityId, h.attempt],
      );
    },

    /** Removes an attempt's record once it ended (only that attempt's: a newer one may have replaced it). */
    async release(h: Pick<SessionHolder, 'channelId' | 'nodeId' | 'runId' | 'attempt'>): Promise<void> {
      await db.query(
        'delete from session_holders where channel_id = $1 and node_id = $2 and run_id = $3 and attempt = $4',
        [h.channelId, h.nodeId, h.runId, h.attempt],
      );
    },

    /**
     * Takes the records of attempts held by nodes other than `selfNodeId` that have not noted they are alive
     * for `deadMs`: the delete returns each to exactly one caller.
     */
    async takeDead(selfNodeId: string, deadMs: number): Promise<SessionHolder[]> {
      const rows = await db.query<HolderRow>(
        db.dialect === 'sqlite'
          ? `delete from session_holders as h
          where h.node_id <> $1
            and not exists (select 1 from wharf_nodes n where n.id = h.node_id and n.seen_at > now_minus_ms($2))
          returning channel_id, node_id, workflow_id, run_id, activity_id, attempt`
          : `delete from session_holders h
          where h.node_id <> $1
            and not exists (select 1 from wharf_nodes n where n.id = h.node_id and n.seen_at > now() - $2::int * interval '1 millisecond')
          returning channel_id, node_id, workflow_id, run_id, activity_id, attempt`,
        [selfNodeId, deadMs],
      );
      return rows.map((r) => ({
        channelId: r.channel_id,
        nodeId: r.node_id,
        workflowId: r.workflow_id,
        runId: r.run_id,
        activityId: r.activity_id,
        attempt: Number(r.attempt),
      }));
    },
  };
}
