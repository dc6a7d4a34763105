/**
 * Pure pieces of the federation membership handshakes (server-server-api
 * "Joining Rooms", "Knocking upon a room", "Inviting to a room", "Leaving
 * Rooms (Rejecting Invites)"): checking a membership event another server
 * sent or templated, and the stripped state given to invitees and knockers.
 */
import { domainOfId } from '../identifiers';
import type { JsonObject, JsonValue } from '../events/pdu';

export type HandshakeMembership = 'join' | 'leave' | 'knock' | 'invite';

/**
 * client-server-api "Stripped state": the state events the spec recommends
 * giving to a user who is invited to or knocking on a room.
 */
export const STRIPPED_STATE_TYPES: ReadonlySet<string> = new Set([
  'm.room.create',
  'm.room.name',
  'm.room.avatar',
  'm.room.topic',
  'm.room.join_rules',
  'm.room.canonical_alias',
  'm.room.encryption',
]);

/** A stripped state event: type, state_key, sender, content (client-server-api "Stripped state"). */
export function stripEvent(event: { type: string; state_key?: string; sender: string; content: JsonObject }): JsonObject {
  return { type: event.type, state_key: event.state_key ?? '', sender: event.sender, content: event.content };
}

/**
 * The stripped form of each entry of an `invite_room_state` or
 * `knock_room_state` list received over federation (full PDUs since v1.16,
 * stripped events before): entries that are not objects with a string
 * `type`, `sender` and object `content` are left out.
 */
export function stripReceivedState(entries: readonly JsonValue[] | undefined): JsonObject[] {
  const out: JsonObject[] = [];
  for (const entry of entries ?? []) {
    if (!isObject(entry)) continue;
    const { type, sender, content } = entry;
    const stateKey = entry['state_key'];
    if (typeof type !== 'string' || typeof sender !== 'string' || !isObject(content)) continue;
    out.push(stripEvent({ type, sender, content, state_key: typeof stateKey === 'string' ? stateKey : '' }));
  }
  return out;
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export type HandshakeCheck = { ok: true } | { ok: false; errcode: 'M_BAD_JSON' | 'M_FORBIDDEN' | 'M_INVALID_PARAM'; reason: string };

/**
 * The checks a resident server makes on a membership event a remote server
 * sends with send_join / send_leave / send_knock (joins-v2.yaml: "the
 * event [...] must be a join for a user of the origin"; leaving-v2.yaml,
 * knocks.yaml alike): an m.room.member event of the room whose state_key
 * is its sender, with the expected membership, sent by a user of `origin`.
 * Signatures, hashes and authorization are checked afterwards.
 */
export function checkSentMembership(
  pdu: JsonObject,
  expected: { roomId: string; membership: HandshakeMembership; origin: string },
): HandshakeCheck {
  if (pdu['type'] !== 'm.room.member') return { ok: false, errcode: 'M_BAD_JSON', reason: 'The event is not an m.room.member event' };
  const sender = pdu['sender'];
  if (typeof sender !== 'string' || pdu['state_key'] !== sender) {
    return { ok: false, errcode: 'M_BAD_JSON', reason: 'The state_key of the membership event must be its sender' };
  }
  if (pdu['room_id'] !== expected.roomId) return { ok: false, errcode: 'M_BAD_JSON', reason: `The event is not in room ${expected.roomId}` };
  const content = pdu['content'];
  if (!isObject(content) || content['membership'] !== expected.membership) {
    return { ok: false, errcode: 'M_BAD_JSON', reason: `The event's membership is not ${expected.membership}` };
  }
  if (domainOfId(sender) !== expected.origin) return { ok: false, errcode: 'M_FORBIDDEN', reason: `${sender} is not a user of ${expected.origin}` };
  return { ok: true };
}

/**
 * The checks a joining (leaving, knocking) server makes on the template a
 * resident server answers make_join / make_leave / make_knock with: the
 * event must be the user's own membership event in the asked room
 * (joins-v1.yaml make_join: "an unsigned template event"; the caller fills
 * in the rest).
 */
export function checkMembershipTemplate(
  template: unknown,
  expected: { roomId: string; userId: string; membership: HandshakeMembership },
): HandshakeCheck {
  if (!isObject(template)) return { ok: false, errcode: 'M_BAD_JSON', reason: 'The template is not an object' };
  if (template['type'] !== 'm.room.member') return { ok: false, errcode: 'M_BAD_JSON', reason: 'The template is not an m.room.member event' };
  if (template['state_key'] !== expected.userId || template['sender'] !== expected.userId) {
    return { ok: false, errcode: 'M_BAD_JSON', reason: `The template is not a membership event of ${expected.userId}` };
  }
  // v12 create events have no room_id, but a membership event always has one.
  if (template['room_id'] !== expected.roomId) return { ok: false, errcode: 'M_BAD_JSON', reason: `The template is not for room ${expected.roomId}` };
  const content = template['content'];
  if (!isObject(content) || content['membership'] !== expected.membership) {
    return { ok: false, errcode: 'M_BAD_JSON', reason: `The template's membership is not ${expected.membership}` };
  }
  if (!Array.isArray(template['prev_events']) || !Array.isArray(template['auth_events'])) {
    return { ok: false, errcode: 'M_BAD_JSON', reason: 'The template has no prev_events or auth_events' };
  }
  if (typeof template['depth'] !== 'number' || !Number.isInteger(template['depth']) || template['depth'] < 0) {
    return { ok: false, errcode: 'M_BAD_JSON', reason: 'The template has no valid depth' };
  }
  return { ok: true };
}

/** Servers of the joined members: send_join's `servers_in_room`, ours included. */
export function serversOfMembers(userIds: Iterable<string>): string[] {
  const servers = new Set<string>();
  for (const userId of userIds) {
    const server = domainOfId(userId);
    if (server !== undefined) servers.add(server);
  }
  return [...servers].sort();
}
