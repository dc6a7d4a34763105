/**
 * The two ephemeral streams this library writes (docs/client-server-design.md
 * "Streams"): each change takes a position from the shared StreamAllocator
 * (`stream.<name>` counter plus a `stream_allocations` claim), so /sync reads
 * "what changed in (from, to]" and never past the stream's safe position.
 *
 * Wake-ups and position sources have the shapes the user-data stores use
 * (`sync.wake` with `room_id` for a room's members, `user_ids` for some users).
 */
export type { StreamPositionSource, SyncWake, WakeSync } from '@atrium/user-data';

export const EPHEMERAL_STREAMS = {
  receipts: 'receipts',
  typing: 'typing',
} as const;

/** Attempts at a compare-and-set before giving up (each loss means another write of the same row landed in between). */
export const MAX_CAS_ATTEMPTS = 20;
