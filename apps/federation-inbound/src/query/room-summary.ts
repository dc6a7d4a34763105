/**
 * Room summaries from current state, for the federation directory and the
 * space hierarchy (client-server definitions/room_summary.yaml and
 * public_rooms_response.yaml). Built here rather than through client-api's
 * RoomsService so the federation-inbound process does not load the client API.
 */
import { eventOf, type RoomRecord, type RoomStore } from '@atrium/rooms';

export interface RoomSummaryFields {
  room_id: string;
  num_joined_members: number;
  world_readable: boolean;
  guest_can_join: boolean;
  name?: string;
  topic?: string;
  canonical_alias?: string;
  avatar_url?: string;
  join_rule?: string;
  room_type?: string;
  encryption?: string;
  room_version?: string;
  allowed_room_ids?: string[];
}

/** The summary of `room`; `extended` adds room_version, encryption and allowed_room_ids (hierarchy, not /publicRooms). */
export async function roomSummary(rooms: RoomStore, room: RoomRecord, extended: boolean): Promise<RoomSummaryFields> {
  const state = new Map<string, Record<string, unknown>>();
  for (const record of await rooms.currentState(room._id)) {
    if (record.state_key === '') state.set(record.type, eventOf(record).content);
  }
  const str = (type: string, key: string): string | undefined => {
    const v = state.get(type)?.[key];
    return typeof v === 'string' ? v : undefined;
  };
  const summary: RoomSummaryFields = {
    room_id: room._id,
    num_joined_members: (await rooms.joinedUsers(room._id)).length,
    world_readable: str('m.room.history_visibility', 'history_visibility') === 'world_readable',
    guest_can_join: str('m.room.guest_access', 'guest_access') === 'can_join',
  };
  const optional: Array<[keyof RoomSummaryFields, string, string]> = [
    ['name', 'm.room.name', 'name'],
    ['topic', 'm.room.topic', 'topic'],
    ['canonical_alias', 'm.room.canonical_alias', 'alias'],
    ['avatar_url', 'm.room.avatar', 'url'],
    ['join_rule', 'm.room.join_rules', 'join_rule'],
    ['room_type', 'm.room.create', 'type'],
  ];
  if (extended) optional.push(['encryption', 'm.room.encryption', 'algorithm']);
  for (const [field, type, key] of optional) {
    const value = str(type, key);
    if (value !== undefined) (summary as unknown as Record<string, unknown>)[field] = value;
  }
  if (extended) {
    summary.room_version = room.version;
    if (summary.join_rule === 'restricted' || summary.join_rule === 'knock_restricted') {
      const allow = state.get('m.room.join_rules')?.['allow'];
      summary.allowed_room_ids = (Array.isArray(allow) ? allow : [])
        .map((entry: unknown) => (entry && typeof entry === 'object' ? (entry as Record<string, unknown>)['room_id'] : undefined))
        .filter((id): id is string => typeof id === 'string');
    }
  }
  return summary;
}
