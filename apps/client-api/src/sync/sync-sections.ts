/**
 * The extension point of /sync (docs/client-server-design.md "Sync sections").
 *
 * /sync builds `rooms` itself and asks every provider registered under
 * SYNC_SECTIONS for the rest of the response (account_data, to_device,
 * presence, device_lists, device_one_time_keys_count, and the per-room
 * ephemeral/account_data parts). Nest has no multi-providers, so SYNC_SECTIONS
 * is one factory provider that injects every class listed in
 * sync-section-list.ts: to plug a section in, implement SyncSection as an
 * @Injectable() and append its class to SYNC_SECTION_CLASSES there. The sync
 * controller never changes.
 */
import type { Filter } from '@atrium/matrix';

/** Names of the streams a sync token carries, in token order (design doc "Sync tokens"). */
export const SYNC_STREAMS = ['events', 'account_data', 'to_device', 'presence', 'receipts', 'typing', 'device_lists'] as const;
export type SyncStream = (typeof SYNC_STREAMS)[number];

/** A position in every stream: what a sync token encodes. Missing streams read as 0. */
export type StreamPositions = Record<SyncStream, number>;

/** What a section is asked for. */
export interface SyncSectionRequest {
  userId: string;
  deviceId: string;
  /** Positions of the previous sync (all 0 on an initial sync). */
  from: StreamPositions;
  /** Positions this response covers up to (inclusive): the safe positions read at the start of this request. */
  to: StreamPositions;
  /** True for an initial sync (no `since`) or `full_state=true`. */
  fullState: boolean;
  initial: boolean;
  /** The parsed filter (`{}` when none was given). */
  filter: Filter;
  /** Rooms the user is joined to in this response (already filtered by `filter.room`). */
  joinedRoomIds: string[];
  /** The `set_presence` query parameter (absent means "online", sync.yaml). */
  setPresence?: 'online' | 'offline' | 'unavailable';
}

/**
 * What a section returns. Top-level keys are merged into the /sync response
 * (`account_data`, `presence`, `to_device`, `device_lists`,
 * `device_one_time_keys_count`, `device_unused_fallback_key_types`…);
 * `rooms` maps a joined room ID to the keys to put in its `JoinedRoom`
 * object (`ephemeral`, `account_data`, `unread_notifications`…).
 */
export interface SyncSectionResult {
  top?: Record<string, unknown>;
  rooms?: Record<string, Record<string, unknown>>;
  /** True if this result carries anything new, so a long-poll may return now. */
  hasUpdates: boolean;
}

export interface SyncSection {
  /** The stream whose position this section advances; /sync reads its safe position for `to`. */
  readonly stream: SyncStream;
  /** The highest position a reader may read up to now (docs "Streams": the safe position). */
  currentPosition(): Promise<number>;
  /** The section's part of the response between `from[stream]` (exclusive) and `to[stream]` (inclusive). */
  build(request: SyncSectionRequest): Promise<SyncSectionResult>;
}

/** Nest injection token: an array of SyncSection (see provideSyncSections). */
export const SYNC_SECTIONS = Symbol('atrium:sync-sections');

/**
 * Nest has no multi-providers: the client-api module provides SYNC_SECTIONS as
 * a factory that injects every section class given here. To add one, add its
 * class to `SYNC_SECTION_CLASSES` in apps/client-api/src/sync/sync-section-list.ts
 * (and to the module's providers), so the sync controller never changes.
 */
export function provideSyncSections(classes: Array<new (...args: never[]) => SyncSection>): {
  provide: symbol;
  useFactory: (...sections: SyncSection[]) => SyncSection[];
  inject: Array<new (...args: never[]) => SyncSection>;
} {
  return { provide: SYNC_SECTIONS, useFactory: (...sections: SyncSection[]) => sections, inject: classes };
}
