/**
 * Who may read a room over federation (server-server-api "Retrieving
 * events", "Backfilling and retrieving missing events", "Server Access
 * Control Lists"): the events.yaml 403 is "The requesting host is not in the
 * room, or is excluded from the room via m.room.server_acl".
 */
import { Errors } from '@atrium/http';
import { domainOfId, getRoomVersion, serverAclAllows, stateKey, toWirePdu, type Pdu, type RoomVersion, type StateKey } from '@atrium/matrix';
import { eventOf, type EventRecord, type RoomRecord, type RoomStore } from '@atrium/rooms';

export class RoomAccess {
  constructor(private readonly rooms: RoomStore) {}

  /** The room and its version; 404 M_NOT_FOUND for a room this server does not know. */
  async room(roomId: string): Promise<{ room: RoomRecord; version: RoomVersion }> {
    const room = await this.rooms.getRoom(roomId);
    const version = room ? getRoomVersion(room.version) : undefined;
    if (!room || !version) throw Errors.notFound(`Unknown room ${roomId}`);
    return { room, version };
  }

  /** server-server-api "Server ACLs": a denied origin gets 403 M_FORBIDDEN on the protected endpoints. */
  async checkAcl(roomId: string, origin: string): Promise<void> {
    const acl = (await this.rooms.currentStateEventsFor(roomId, [['m.room.server_acl', '']])).get(stateKey('m.room.server_acl', ''));
    if (!serverAclAllows(acl?.content, origin)) throw Errors.forbidden(`Server ${origin} is denied by the room's server ACL`);
  }

  /** Whether `origin` has a joined member in the room now. */
  async hasJoinedMember(roomId: string, origin: string): Promise<boolean> {
    return (await this.rooms.joinedUsers(roomId)).some((u) => domainOfId(u) === origin);
  }

  /**
   * The room-level check of /state, /state_ids, /event_auth, /backfill,
   * /get_missing_events, /timestamp_to_event: not denied by the ACL, and in
   * the room (a joined member) or the room is world_readable.
   */
  async checkCanRead(roomId: string, origin: string): Promise<void> {
    await this.checkAcl(roomId, origin);
    if (await this.hasJoinedMember(roomId, origin)) return;
    const visibility = await this.rooms.currentStateEvent(roomId, 'm.room.history_visibility', '');
    if (visibility && eventOf(visibility).content['history_visibility'] === 'world_readable') return;
    throw Errors.forbidden(`${origin} is not in room ${roomId}`);
  }

  /**
   * Whether `origin` may see one event (client-server-api "History
   * visibility", applied to a server as its members): world_readable always;
   * `shared` once the server is in the room now; `invited`/`joined` when a
   * member of the server was joined (or, for `invited`, invited) in the
   * state at the event.
   */
  async canSeeEvent(record: EventRecord, origin: string, originInRoomNow: boolean): Promise<boolean> {
    const state = await this.rooms.stateIdsAfter(record._id);
    if (!state) return originInRoomNow;
    const ids = new Map<string, StateKey>();
    // Only the history visibility and the members of the origin are read, not every member.
    const memberPrefix = 'm.room.member\u0000';
    for (const [key, id] of state) {
      const ofOrigin = key.startsWith(memberPrefix) && domainOfId(key.slice(memberPrefix.length)) === origin;
      if (ofOrigin || key === stateKey('m.room.history_visibility', '')) ids.set(id, key);
    }
    const events = await this.rooms.getEvents([...ids.keys()]);
    let visibility = 'shared';
    const memberships: string[] = [];
    for (const e of events) {
      const content = eventOf(e).content;
      if (e.type === 'm.room.history_visibility' && typeof content['history_visibility'] === 'string') visibility = content['history_visibility'];
      if (e.type === 'm.room.member' && e.state_key !== null && domainOfId(e.state_key) === origin && typeof content['membership'] === 'string') memberships.push(content['membership']);
    }
    if (visibility === 'world_readable') return true;
    if (visibility === 'shared' && originInRoomNow) return true;
    if (memberships.includes('join')) return true;
    return visibility === 'invited' && memberships.includes('invite');
  }
}

/** The PDU as it goes over federation (what the room version's format says: no local fields). */
export function wirePdu(record: EventRecord, version: RoomVersion): Pdu {
  return toWirePdu(eventOf(record), version);
}
