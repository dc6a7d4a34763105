import type { StreamAllocator } from '@atrium/rooms';

/**
 * The two ephemeral streams this library writes (docs/client-server-design.md
 * "Streams"): each change takes a position from the shared StreamAllocator
 * (`stream.<name>` counter plus a `stream_allocations` claim), so /sync reads
 * "what changed in (from, to]" and never past the stream's safe position.
 */
export const EPHEMERAL_STREAMS = {
  receipts: 'receipts',
  typing: 'typing',
} as const;

/**
 * What a writer sends on `sync.wake` after a write commits (design doc
 * "Waking sync"): `room_id` wakes every member's long-poll, `user_ids` only
 * those users (a private receipt concerns its owner alone).
 */
export interface EphemeralWake {
  stream: string;
  position: number;
  room_id?: string;
  user_ids?: string[];
}

/** Sends a wake-up; the stores call it after each committed write. */
export type WakeSync = (wake: EphemeralWake) => Promise<void>;

/** The part of StreamAllocator the stores use (positions before writes, safe positions for readers). */
export type StreamPositionSource = Pick<StreamAllocator, 'withPosition' | 'safePosition'>;

/** Attempts at a compare-and-set before giving up (each loss means another write of the same row landed in between). */
export const MAX_CAS_ATTEMPTS = 20;
