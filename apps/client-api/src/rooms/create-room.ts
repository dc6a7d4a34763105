/**
 * POST /createRoom: validating the request and planning the initial events.
 * Spec: data/api/client-server/create_room.yaml (the order of events, the
 * presets table, creation_content, power_level_content_override) and
 * content/client-server-api/_index.md "Creation".
 */
import { Errors, MatrixError } from '@atrium/http';
import {
  DEFAULT_ROOM_VERSION,
  getRoomVersion,
  isValidRoomAlias,
  isValidUserId,
  type JsonObject,
  type JsonValue,
  type RoomVersion,
} from '@atrium/matrix';
import type { CreateRoomRequest, StateDraft } from '@atrium/app-room-server';

type Preset = 'private_chat' | 'trusted_private_chat' | 'public_chat';

/** The presets table: join_rules, history_visibility, guest_access. */
const PRESETS: Record<Preset, { join_rule: string; history_visibility: string; guest_access: string }> = {
  private_chat: { join_rule: 'invite', history_visibility: 'shared', guest_access: 'can_join' },
  trusted_private_chat: { join_rule: 'invite', history_visibility: 'shared', guest_access: 'can_join' },
  public_chat: { join_rule: 'public', history_visibility: 'shared', guest_access: 'forbidden' },
};

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function optionalObjectField(body: Record<string, unknown>, key: string): JsonObject | undefined {
  const value = body[key];
  if (value === undefined) return undefined;
  if (!isObject(value)) throw Errors.badJson(`"${key}" must be an object`);
  return value;
}

/**
 * The default m.room.power_levels content (what Synapse and other servers
 * send): the creator at 100 (not listed from v12, where creators have
 * infinite power), state at 50, and from v12 m.room.tombstone at 150
 * ("MUST explicitly be higher than state_default").
 */
export function defaultPowerLevels(creator: string, version: RoomVersion, trustedInvitees: readonly string[]): JsonObject {
  const users: JsonObject = {};
  if (!version.privilegedCreators) {
    users[creator] = 100;
    // trusted_private_chat: "All invitees are given the same power level as the room creator."
    for (const invitee of trustedInvitees) users[invitee] = 100;
  }
  return {
    users,
    users_default: 0,
    events: {
      'm.room.name': 50,
      'm.room.power_levels': 100,
      'm.room.history_visibility': 100,
      'm.room.canonical_alias': 50,
      'm.room.avatar': 50,
      'm.room.tombstone': version.privilegedCreators ? 150 : 100,
      'm.room.server_acl': 100,
      'm.room.encryption': 100,
    },
    events_default: 0,
    state_default: 50,
    ban: 50,
    kick: 50,
    redact: 50,
    invite: 0,
    historical: 100,
  };
}

export interface CreateRoomInput {
  sender: string;
  serverName: string;
  body: Record<string, unknown>;
  /** The server's configured default (config `rooms.default_version`); the spec's recommendation otherwise. */
  defaultVersion?: string;
}

/** Validates a createRoom body and returns the room-server request (events in the spec's order). */
export function planCreateRoom({ sender, serverName, body, defaultVersion }: CreateRoomInput): CreateRoomRequest {
  // visibility: "Defaults to private".
  const visibilityRaw = body['visibility'];
  if (visibilityRaw !== undefined && visibilityRaw !== 'public' && visibilityRaw !== 'private') {
    throw Errors.badJson('"visibility" must be "public" or "private"');
  }
  const visibility: 'public' | 'private' = visibilityRaw ?? 'private';

  // preset: "If unspecified, the server should use the visibility to determine which preset to use."
  const presetRaw = body['preset'];
  if (presetRaw !== undefined && (typeof presetRaw !== 'string' || !Object.prototype.hasOwnProperty.call(PRESETS, presetRaw))) {
    throw Errors.badJson('"preset" must be private_chat, trusted_private_chat or public_chat');
  }
  const preset: Preset = (presetRaw as Preset | undefined) ?? (visibility === 'public' ? 'public_chat' : 'private_chat');

  const versionRaw = body['room_version'];
  if (versionRaw !== undefined && typeof versionRaw !== 'string') throw Errors.badJson('"room_version" must be a string');
  // "If not provided, the homeserver is to use its configured default."
  const versionId = versionRaw ?? defaultVersion ?? DEFAULT_ROOM_VERSION;
  const version = getRoomVersion(versionId);
  if (!version) throw new MatrixError(400, 'M_UNSUPPORTED_ROOM_VERSION', `Room version ${JSON.stringify(versionId)} is not supported`);

  const aliasName = body['room_alias_name'];
  let alias: string | undefined;
  if (aliasName !== undefined) {
    if (typeof aliasName !== 'string') throw Errors.badJson('"room_alias_name" must be a string');
    alias = `#${aliasName}:${serverName}`;
    // The local part must make a valid alias (no ':' or whitespace, 255 bytes at most).
    if (aliasName === '' || /[:\s]/.test(aliasName) || !isValidRoomAlias(alias)) throw new MatrixError(400, 'M_INVALID_PARAM', `Invalid room alias name ${JSON.stringify(aliasName)}`);
  }

  const name = body['name'];
  if (name !== undefined && typeof name !== 'string') throw Errors.badJson('"name" must be a string');
  const topic = body['topic'];
  if (topic !== undefined && typeof topic !== 'string') throw Errors.badJson('"topic" must be a string');
  const isDirect = body['is_direct'];
  if (isDirect !== undefined && typeof isDirect !== 'boolean') throw Errors.badJson('"is_direct" must be a boolean');

  const inviteRaw = body['invite'];
  if (inviteRaw !== undefined && (!Array.isArray(inviteRaw) || !inviteRaw.every((u) => typeof u === 'string'))) {
    throw Errors.badJson('"invite" must be a list of user IDs');
  }
  const invites = [...new Set((inviteRaw as string[] | undefined) ?? [])].filter((u) => u !== sender);
  for (const userId of invites) {
    if (!isValidUserId(userId, 'historical')) throw new MatrixError(400, 'M_INVALID_PARAM', `Invalid user ID ${JSON.stringify(userId)} in "invite"`);
  }
  const invite3pid = body['invite_3pid'];
  if (invite3pid !== undefined && (!Array.isArray(invite3pid) || invite3pid.length > 0)) {
    // Third-party invites need an identity server, which Atrium does not talk to.
    if (!Array.isArray(invite3pid)) throw Errors.badJson('"invite_3pid" must be a list');
    throw new MatrixError(400, 'M_UNRECOGNIZED', 'Third-party invites are not supported by this server');
  }

  const creationContent: JsonObject = { ...(optionalObjectField(body, 'creation_content') ?? {}) };
  const trusted = preset === 'trusted_private_chat';
  if (version.privilegedCreators && trusted && invites.length > 0) {
    // "the server SHOULD combine additional_creators specified here and the invite array ... deduplicating".
    const given = creationContent['additional_creators'];
    const list = Array.isArray(given) ? given.filter((u): u is string => typeof u === 'string') : [];
    creationContent['additional_creators'] = [...new Set([...list, ...invites])];
  }

  const initialStateRaw = body['initial_state'];
  if (initialStateRaw !== undefined && !Array.isArray(initialStateRaw)) throw Errors.badJson('"initial_state" must be a list');
  const initialState: StateDraft[] = ((initialStateRaw as unknown[] | undefined) ?? []).map((entry, i) => {
    if (!isObject(entry)) throw Errors.badJson(`initial_state[${i}] must be an object`);
    if (typeof entry['type'] !== 'string') throw Errors.badJson(`initial_state[${i}].type must be a string`);
    const stateKey = entry['state_key'] ?? '';
    if (typeof stateKey !== 'string') throw Errors.badJson(`initial_state[${i}].state_key must be a string`);
    if (!isObject(entry['content'])) throw Errors.badJson(`initial_state[${i}].content must be an object`);
    return { type: entry['type'], state_key: stateKey, content: entry['content'] };
  });

  const plOverride = optionalObjectField(body, 'power_level_content_override');

  const events: StateDraft[] = [];
  // 2. "An m.room.member event for the creator to join the room."
  events.push({ type: 'm.room.member', state_key: sender, content: { membership: 'join' } });
  // 3. "A default m.room.power_levels event. Overridden by the power_level_content_override parameter."
  const powerLevels: Record<string, JsonValue> = { ...defaultPowerLevels(sender, version, trusted ? invites : []), ...(plOverride ?? {}) };
  events.push({ type: 'm.room.power_levels', state_key: '', content: powerLevels });
  // 4. "An m.room.canonical_alias event if room_alias_name is given."
  if (alias !== undefined) events.push({ type: 'm.room.canonical_alias', state_key: '', content: { alias } });
  // 5. "Events set by the preset" — unless initial_state sets the same (it "takes precedence over events set by preset").
  const presetEvents: StateDraft[] = [
    { type: 'm.room.join_rules', state_key: '', content: { join_rule: PRESETS[preset].join_rule } },
    { type: 'm.room.history_visibility', state_key: '', content: { history_visibility: PRESETS[preset].history_visibility } },
    { type: 'm.room.guest_access', state_key: '', content: { guest_access: PRESETS[preset].guest_access } },
  ];
  const overridden = (d: StateDraft, list: StateDraft[]): boolean => list.some((x) => x.type === d.type && x.state_key === d.state_key);
  for (const draft of presetEvents) if (!overridden(draft, initialState)) events.push(draft);
  // 6. "Events listed in initial_state, in the order that they are listed." name/topic
  //    given in the body override initial_state's, so those entries are left out.
  const fromBody: StateDraft[] = [];
  if (name !== undefined) fromBody.push({ type: 'm.room.name', state_key: '', content: { name } });
  // m.room.topic with a text/plain m.topic representation (client-server-api "m.room.topic").
  if (topic !== undefined) fromBody.push({ type: 'm.room.topic', state_key: '', content: { topic, 'm.topic': [{ mimetype: 'text/plain', body: topic }] } });
  for (const draft of initialState) {
    // The creator's membership and the power levels were already sent; initial_state may not redo the create event.
    if (draft.type === 'm.room.create') throw new MatrixError(400, 'M_INVALID_ROOM_STATE', 'initial_state may not contain m.room.create');
    if (!overridden(draft, fromBody)) events.push(draft);
  }
  // 7. "Events implied by name and topic."
  events.push(...fromBody);
  // 8. "Invite events implied by invite", with is_direct when asked.
  for (const userId of invites) {
    const content: JsonObject = { membership: 'invite' };
    if (isDirect) content['is_direct'] = true;
    events.push({ type: 'm.room.member', state_key: userId, content });
  }

  return { sender, room_version: version.id, creation_content: creationContent, events, alias, visibility };
}
