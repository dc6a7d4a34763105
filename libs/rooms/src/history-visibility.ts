import { eventOf, type EventRecord, type RoomStore } from './room-store';

/**
 * Whether a user may see an event: client-server-api "History visibility"
 * ("Server behaviour" of m.room.history_visibility):
 *   1. If the history_visibility was set to world_readable, allow.
 *   2. If the user's membership was join, allow.
 *   3. If history_visibility was set to shared, and the user joined the room
 *      at any point after the event was sent, allow.
 *   4. If the user's membership was invite, and the history_visibility was set
 *      to invited, allow.
 *   5. Otherwise, deny.
 * "Was" is read from the room state at the event: the history visibility
 * before it, and the user's membership after it (so a user sees their own
 * join and the event that invited them). A missing m.room.history_visibility
 * means `shared` (its default, per the event's schema).
 *
 * State at the event comes from RoomStore.stateAtPosition (exact for rooms
 * only this server writes; see there).
 */
export async function canSeeEvent(rooms: RoomStore, userId: string, record: EventRecord): Promise<boolean> {
  // server-server-api "Rejection": a rejected event is never "relayed to clients"; "Soft failure":
  // a soft-failed event "should not be relayed to the client" either.
  if (record.rejected || record.soft_failed) return false;
  const before = await rooms.stateAtPosition(record.room_id, record.stream - 1);
  const visibilityEvent = before.find((e) => e.type === 'm.room.history_visibility' && e.state_key === '');
  const rawVisibility = visibilityEvent ? eventOf(visibilityEvent).content['history_visibility'] : undefined;
  const visibility = typeof rawVisibility === 'string' ? rawVisibility : 'shared';
  if (visibility === 'world_readable') return true;

  let membershipEvent = before.find((e) => e.type === 'm.room.member' && e.state_key === userId);
  if (record.type === 'm.room.member' && record.state_key === userId) membershipEvent = record;
  const membership = membershipEvent ? membershipEvent.membership : null;
  if (membership === 'join') return true;
  if (visibility === 'shared') {
    const current = await rooms.getMembership(record.room_id, userId);
    if (current?.membership === 'join') return true;
    if (await rooms.userJoinedAfter(record.room_id, userId, record.stream)) return true;
  }
  if (membership === 'invite' && visibility === 'invited') return true;
  return false;
}
