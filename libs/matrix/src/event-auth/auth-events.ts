/**
 * Auth events: which state an event must reference (server-server-api.md,
 * "Auth events selection") and the checks the authorization rules make on
 * the `auth_events` list itself (rule 2 of v1–v11, rule 3 of v12: "Considering
 * the event's `auth_events`").
 */
import type { JsonObject, JsonValue, Pdu, RoomEvent } from '../events/pdu';
import type { RoomVersion } from '../room-versions';

function isObject(value: JsonValue | undefined): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * server-server-api.md "Auth events selection": "The `auth_events` for the
 * `m.room.create` event in a room is empty; for other events, it should be
 * the following subset of the room state:
 * - Depending on the room version, the `m.room.create` event.
 * - The current `m.room.power_levels` event, if any.
 * - The sender's current `m.room.member` event, if any.
 * - If type is `m.room.member`: the target's current `m.room.member` event;
 *   if `membership` is `join`, `invite` or `knock`, the current
 *   `m.room.join_rules` event; if membership is `invite` and `content`
 *   contains a `third_party_invite` property, the current
 *   `m.room.third_party_invite` event with `state_key` matching
 *   `content.third_party_invite.signed.token`; if `membership` is `join`,
 *   `content.join_authorised_via_users_server` is present, and the room
 *   version supports restricted rooms, the `m.room.member` event with
 *   `state_key` matching `content.join_authorised_via_users_server`."
 *
 * Room version 12: "The `m.room.create` event MUST NOT be selected for
 * `auth_events` on events. The `room_id` [...] implies this instead."
 */
export function authEventKeys(
  event: Pick<Pdu, 'type' | 'state_key' | 'sender' | 'content'>,
  version: RoomVersion,
): Array<[string, string]> {
  if (event.type === 'm.room.create') return [];
  const keys: Array<[string, string]> = [];
  const add = (type: string, key: string): void => {
    if (!keys.some(([t, k]) => t === type && k === key)) keys.push([type, key]);
  };
  if (!version.roomIdFromCreateEvent) add('m.room.create', '');
  add('m.room.power_levels', '');
  add('m.room.member', event.sender);
  if (event.type === 'm.room.member' && typeof event.state_key === 'string') {
    add('m.room.member', event.state_key);
    const membership = event.content['membership'];
    if (membership === 'join' || membership === 'invite' || membership === 'knock') add('m.room.join_rules', '');
    if (membership === 'invite') {
      const invite = event.content['third_party_invite'];
      const signed = isObject(invite) ? invite['signed'] : undefined;
      const token = isObject(signed) ? signed['token'] : undefined;
      if (typeof token === 'string') add('m.room.third_party_invite', token);
    }
    const authoriser = event.content['join_authorised_via_users_server'];
    if (membership === 'join' && version.restrictedJoin && typeof authoriser === 'string') {
      add('m.room.member', authoriser);
    }
  }
  return keys;
}

export type AuthEventsCheck = { ok: true } | { ok: false; rule: string; check: string; reason: string };

/**
 * The checks on the `auth_events` list itself, for callers that hold the
 * list (the receipt of a PDU). "If there are entries which were themselves
 * rejected [...], reject" (sub-rule 3) is the caller's: it alone knows which
 * events were rejected, so pass only accepted ones and expect a missing-entry
 * failure otherwise.
 *
 * `authEvents` are the events the PDU's `auth_events` name, in that order.
 * Room version 12 carries no create event there, so the create event is
 * checked by `authorizeEvent` (rule 2, the room ID) instead.
 */
export function checkAuthEvents(event: RoomEvent, authEvents: readonly RoomEvent[], version: RoomVersion): AuthEventsCheck {
  const section = version.roomIdFromCreateEvent ? '3' : '2';
  const fail = (sub: string, check: string, reason: string): AuthEventsCheck => ({
    ok: false,
    rule: `${section}.${sub}`,
    check: `auth_events/${check}`,
    reason,
  });
  if (event.type === 'm.room.create') {
    return authEvents.length === 0 ? { ok: true } : fail('2', 'not-selected', 'the m.room.create event has no auth events');
  }
  const allowed = authEventKeys(event, version);
  const seen = new Set<string>();
  for (const authEvent of authEvents) {
    if (authEvent.state_key === undefined) {
      return fail('2', 'not-selected', `auth event ${authEvent.event_id} is not a state event`);
    }
    const key = `${authEvent.type}\u0000${authEvent.state_key}`;
    // 1. "If there are duplicate entries for a given `type` and `state_key` pair, reject."
    if (seen.has(key)) {
      return fail('1', 'duplicate', `more than one auth event for (${authEvent.type}, ${authEvent.state_key})`);
    }
    seen.add(key);
    // 2. "If there are entries whose `type` and `state_key` don't match those
    //    specified by the auth events selection algorithm [...], reject."
    if (!allowed.some(([type, stateKey]) => type === authEvent.type && stateKey === authEvent.state_key)) {
      return fail('2', 'not-selected', `auth event (${authEvent.type}, ${authEvent.state_key}) is not one the selection algorithm picks`);
    }
  }
  // 4. (v1–v11) "If there is no `m.room.create` event among the entries, reject."
  if (!version.roomIdFromCreateEvent && !seen.has('m.room.create\u0000')) {
    return fail('4', 'no-create', 'no m.room.create event among the auth events');
  }
  // 5. "If any event in `auth_events` has a `room_id` which does not match
  //    that of the event being authorised, reject." (v12 drops sub-rule 4, so
  //    this one renders as 3.4 on its page.)
  for (const authEvent of authEvents) {
    if (authEvent.room_id !== event.room_id) {
      return fail(version.roomIdFromCreateEvent ? '4' : '5', 'wrong-room', `auth event ${authEvent.event_id} belongs to ${authEvent.room_id}`);
    }
  }
  return { ok: true };
}
