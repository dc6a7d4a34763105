import { domainOfId } from '@atrium/matrix';
import type { EventRecord, RoomStore } from '@atrium/rooms';

/** Rooms whose membership is remembered between events (least recently used dropped first). */
const MAX_ROOMS = 2000;

/**
 * The joined members of each room as the room output log is walked in order
 * (docs/federation-design.md "Outbound": "destinations = the servers of the
 * room's joined members at that event"). The first event of a room read
 * loads the state before it (`stateAtPosition`); every later member event of
 * the room in the log updates it, so a busy room costs one state read, not
 * one per event. Valid only while the log is read without a gap: `reset()`
 * when the walk does not continue from where it stopped (another replica
 * moved the cursor).
 */
export class RoomMembersAt {
  private readonly rooms = new Map<string, Map<string, string>>();

  constructor(private readonly store: RoomStore) {}

  reset(): void {
    this.rooms.clear();
  }

  /** Joined users of the room just before `record` (loaded on first use). */
  async before(record: EventRecord): Promise<Map<string, string>> {
    let members = this.rooms.get(record.room_id);
    if (members) {
      this.rooms.delete(record.room_id);
      this.rooms.set(record.room_id, members);
      return members;
    }
    members = new Map();
    for (const state of await this.store.stateAtPosition(record.room_id, record.stream - 1)) {
      if (state.type === 'm.room.member' && state.state_key !== null && state.membership) members.set(state.state_key, state.membership);
    }
    this.rooms.set(record.room_id, members);
    if (this.rooms.size > MAX_ROOMS) {
      const oldest = this.rooms.keys().next().value;
      if (oldest !== undefined) this.rooms.delete(oldest);
    }
    return members;
  }

  /** Applies an event of the log (any sender) to the remembered membership of its room. */
  apply(record: EventRecord): void {
    if (record.type !== 'm.room.member' || record.state_key === null || !record.membership) return;
    this.rooms.get(record.room_id)?.set(record.state_key, record.membership);
  }
}

/**
 * The servers a local event goes to: those with a member joined before it,
 * the target's server of a membership event (an invite, kick or ban of a
 * remote user reaches their server; a join is "joined at that event"), minus
 * our own.
 */
export function destinationsOf(record: EventRecord, joinedBefore: ReadonlyMap<string, string>, ourServer: string): string[] {
  const servers = new Set<string>();
  for (const [userId, membership] of joinedBefore) {
    if (membership !== 'join') continue;
    const server = domainOfId(userId);
    if (server) servers.add(server);
  }
  if (record.type === 'm.room.member' && record.state_key) {
    const target = domainOfId(record.state_key);
    if (target) servers.add(target);
  }
  servers.delete(ourServer);
  return [...servers].sort();
}
