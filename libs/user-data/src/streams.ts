import type { StreamAllocator, SyncWake } from '@atrium/rooms';

/**
 * Stream names of the per-user streams this library writes
 * (docs/client-server-design.md "Streams"). Positions come from the shared
 * StreamAllocator (`stream.<name>` counters plus `stream_allocations` claims),
 * so /sync can read each stream's safe position.
 */
export const USER_DATA_STREAMS = {
  accountData: 'account_data',
  toDevice: 'to_device',
  presence: 'presence',
} as const;

/**
 * What a writer sends on `sync.wake` after a write commits (libs/rooms
 * sync-wake.ts, as every writer sends it): per-user streams name the users
 * whose long-polls wake.
 */
export { SYNC_WAKE_SUBJECT, type SyncWake } from '@atrium/rooms';

/** Sends a SyncWake; the stores call it after each committed write. */
export type WakeSync = (wake: SyncWake) => Promise<void>;

/** The part of StreamAllocator the stores use (positions before writes, safe positions for readers). */
export type StreamPositionSource = Pick<StreamAllocator, 'withPosition' | 'safePosition'>;
