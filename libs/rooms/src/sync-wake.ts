/** The subject writers notify after a commit (docs/client-server-design.md "Waking sync"). */
export const SYNC_WAKE_SUBJECT = 'sync.wake';

/**
 * What a writer sends on `sync.wake` after a write commits (design doc
 * "Waking sync"): the stream and position written; `room_id` wakes the
 * room's members, `user_ids` (per-user streams) the users named.
 */
export interface SyncWake {
  stream: string;
  position: number;
  room_id?: string;
  user_ids?: string[];
}
