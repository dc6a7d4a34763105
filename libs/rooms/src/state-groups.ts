import type { Collection, Doc } from '@atrium/storage';
import type { StateKey } from '@atrium/matrix';

/**
 * State groups: the state of a room after an event, stored as a chain of
 * deltas (docs/federation-design.md "Room state with federation").
 *
 * Federation brings forks, so "the state at an event" can no longer be a
 * position in one line of history: each event records the group of the state
 * after it (`room_events.state_group`). A group is a delta over the group it
 * was derived from; every 100th link (`depth_from_full` reaching the limit) is
 * a full snapshot again, so reading a group costs at most 100 small reads, and
 * groups are immutable, so the read results are cached.
 *
 * Group IDs are chosen by the writer and deterministic (the event ID of the
 * event whose state-after the group first is, plus a suffix for the state
 * before it or a resolved current state): a writer that replays an input after
 * a crash writes the same rows again, and `insert` makes that a no-op
 * (ARCHITECTURE.md rule 4).
 */

/** (type \u0000 state_key) → event ID: the state of a room, by IDs. */
export type StateIds = Map<StateKey, string>;

export interface StateGroupRecord extends Doc {
  _id: string; // the group ID
  room_id: string;
  /** The group this one is a delta over; null for a full snapshot. */
  prev_group: string | null;
  /**
   * JSON text of `{"type\u0000state_key": event_id | null}`: the entries that
   * differ from `prev_group` (null removes an entry, which state resolution
   * can do); the whole state for a full snapshot.
   */
  delta: string;
  /** Links to the nearest full snapshot (0 for a snapshot). */
  depth_from_full: number;
}

/** A full snapshot is written once a chain of deltas reaches this length. */
export const STATE_GROUP_SNAPSHOT_INTERVAL = 100;
const CACHE_SIZE = 512;

export class StateGroups {
  /** Resolved groups, most recently used last (a Map keeps insertion order). */
  private readonly cache = new Map<string, ReadonlyMap<StateKey, string>>();

  constructor(private readonly groups: Collection<StateGroupRecord>) {}

  /** The state of a group (shared, do not modify), or null when the group is unknown. */
  async get(groupId: string): Promise<ReadonlyMap<StateKey, string> | null> {
    const cached = this.cache.get(groupId);
    if (cached) {
      this.cache.delete(groupId);
      this.cache.set(groupId, cached);
      return cached;
    }
    // Walk back to a snapshot (or a cached group), then apply the deltas forward.
    const chain: StateGroupRecord[] = [];
    let base: ReadonlyMap<StateKey, string> | undefined;
    let id: string | null = groupId;
    while (id !== null) {
      const hit = this.cache.get(id);
      if (hit) {
        base = hit;
        break;
      }
      const record: StateGroupRecord | null = await this.groups.get(id);
      if (!record) return null;
      chain.push(record);
      id = record.prev_group;
    }
    const state: StateIds = new Map(base ?? []);
    for (let i = chain.length - 1; i >= 0; i--) {
      const delta = JSON.parse(chain[i].delta) as Record<string, string | null>;
      for (const [key, eventId] of Object.entries(delta)) {
        if (eventId === null) state.delete(key as StateKey);
        else state.set(key as StateKey, eventId);
      }
    }
    this.remember(groupId, state);
    return state;
  }

  /**
   * Stores `state` as group `groupId`: a delta over `prevGroup` when given
   * (and the chain is not due a snapshot), else a full snapshot. Idempotent.
   */
  async store(roomId: string, groupId: string, state: ReadonlyMap<StateKey, string>, prevGroup: string | null): Promise<string> {
    if (prevGroup !== null) {
      const prev = await this.groups.get(prevGroup);
      const prevState = prev ? await this.get(prevGroup) : null;
      if (prev && prevState && prev.depth_from_full + 1 < STATE_GROUP_SNAPSHOT_INTERVAL) {
        const delta: Record<string, string | null> = {};
        for (const [key, eventId] of state) if (prevState.get(key) !== eventId) delta[key] = eventId;
        for (const key of prevState.keys()) if (!state.has(key)) delta[key] = null;
        const inserted = await this.groups.insert({ _id: groupId, room_id: roomId, prev_group: prevGroup, delta: JSON.stringify(delta), depth_from_full: prev.depth_from_full + 1 });
        this.settled(groupId, inserted, state);
        return groupId;
      }
    }
    const inserted = await this.groups.insert({ _id: groupId, room_id: roomId, prev_group: null, delta: JSON.stringify(Object.fromEntries(state)), depth_from_full: 0 });
    this.settled(groupId, inserted, state);
    return groupId;
  }

  /**
   * Stores group `groupId` as `prevGroup` plus `changes` (the local write
   * path: one state event changes one entry), without reading the whole
   * previous state unless a snapshot is due.
   */
  async storeDelta(roomId: string, groupId: string, prevGroup: string | null, changes: ReadonlyMap<StateKey, string>): Promise<string> {
    if (prevGroup === null) return this.store(roomId, groupId, changes, null);
    const prev = await this.groups.get(prevGroup);
    if (!prev || prev.depth_from_full + 1 >= STATE_GROUP_SNAPSHOT_INTERVAL) {
      const prevState = await this.get(prevGroup);
      const state = new Map(prevState ?? []);
      for (const [key, eventId] of changes) state.set(key, eventId);
      return this.store(roomId, groupId, state, null);
    }
    await this.groups.insert({
      _id: groupId,
      room_id: roomId,
      prev_group: prevGroup,
      delta: JSON.stringify(Object.fromEntries(changes)),
      depth_from_full: prev.depth_from_full + 1,
    });
    return groupId;
  }

  /** The stored record of a group (tests and tools). */
  record(groupId: string): Promise<StateGroupRecord | null> {
    return this.groups.get(groupId);
  }

  /**
   * After an insert: the new group is cached; a group that already existed
   * keeps what is stored (a group never changes once written), so any cached
   * copy of what this call computed is dropped and the next read loads it.
   */
  private settled(groupId: string, inserted: boolean, state: ReadonlyMap<StateKey, string>): void {
    if (inserted) this.remember(groupId, new Map(state));
    else this.cache.delete(groupId);
  }

  private remember(groupId: string, state: ReadonlyMap<StateKey, string>): void {
    this.cache.set(groupId, state);
    if (this.cache.size > CACHE_SIZE) {
      const oldest = this.cache.keys().next().value;
      if (oldest !== undefined) this.cache.delete(oldest);
    }
  }
}
