/**
 * The redaction algorithm: which keys of an event survive redaction, per room
 * version. Spec: content/rooms/fragments/v1-redactions.md (rooms v1–v5),
 * v6-redactions.md (v6–v7), the full algorithm in content/rooms/v8.md
 * "Redactions" (v8), v9-redactions.md (v9–v10), v11-redactions.md (v11, and
 * v12 where content/rooms/v12.md "Redactions" includes it unchanged).
 *
 * The same algorithm is used for hashing and signing (server-server-api.md
 * "Signing Events"), so the lists must be exact: one key too many or too few
 * changes every reference hash and event ID.
 */
import type { JsonObject, JsonValue } from '../events/pdu';
import { getRoomVersion, type RoomVersion, type RoomVersionId } from '../room-versions';

type RedactionRules = RoomVersion['redaction'];

/** Top-level keys kept by v1, v6, v8 and v9 ("strip off any keys not in the following list"). */
const TOP_LEVEL_V1: ReadonlySet<string> = new Set([
  'event_id',
  'type',
  'room_id',
  'sender',
  'state_key',
  'content',
  'hashes',
  'signatures',
  'depth',
  'prev_events',
  'prev_state',
  'auth_events',
  'origin',
  'origin_server_ts',
  'membership',
]);

/** v11-redactions.md: `prev_state`, `origin` and `membership` are no longer kept. */
const TOP_LEVEL_V11: ReadonlySet<string> = new Set([
  'event_id',
  'type',
  'room_id',
  'sender',
  'state_key',
  'content',
  'hashes',
  'signatures',
  'depth',
  'prev_events',
  'auth_events',
  'origin_server_ts',
]);

const POWER_LEVELS_V1 = ['ban', 'events', 'events_default', 'kick', 'redact', 'state_default', 'users', 'users_default'];

/** Content keys kept per event type, for each set of rules. `'*'` keeps the whole content. */
const CONTENT_KEYS: Record<RedactionRules, Record<string, readonly string[] | '*'>> = {
  v1: {
    'm.room.member': ['membership'],
    'm.room.create': ['creator'],
    'm.room.join_rules': ['join_rule'],
    'm.room.power_levels': POWER_LEVELS_V1,
    'm.room.aliases': ['aliases'],
    'm.room.history_visibility': ['history_visibility'],
  },
  // v6: m.room.aliases no longer keeps `aliases`.
  v6: {
    'm.room.member': ['membership'],
    'm.room.create': ['creator'],
    'm.room.join_rules': ['join_rule'],
    'm.room.power_levels': POWER_LEVELS_V1,
    'm.room.history_visibility': ['history_visibility'],
  },
  // v8: "m.room.join_rules events now keep allow".
  v8: {
    'm.room.member': ['membership'],
    'm.room.create': ['creator'],
    'm.room.join_rules': ['join_rule', 'allow'],
    'm.room.power_levels': POWER_LEVELS_V1,
    'm.room.history_visibility': ['history_visibility'],
  },
  // v9: "m.room.member events now keep join_authorised_via_users_server".
  v9: {
    'm.room.member': ['membership', 'join_authorised_via_users_server'],
    'm.room.create': ['creator'],
    'm.room.join_rules': ['join_rule', 'allow'],
    'm.room.power_levels': POWER_LEVELS_V1,
    'm.room.history_visibility': ['history_visibility'],
  },
  // v11: create keeps everything, power levels keep `invite`, redaction keeps
  // `redacts`; member's third_party_invite.signed is handled below.
  v11: {
    'm.room.member': ['membership', 'join_authorised_via_users_server'],
    'm.room.create': '*',
    'm.room.join_rules': ['join_rule', 'allow'],
    'm.room.power_levels': [...POWER_LEVELS_V1, 'invite'],
    'm.room.history_visibility': ['history_visibility'],
    'm.room.redaction': ['redacts'],
  },
};

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function redactContent(type: unknown, content: unknown, rules: RedactionRules): JsonObject {
  const out: JsonObject = {};
  if (!isObject(content) || typeof type !== 'string') return out;
  const allowed = Object.prototype.hasOwnProperty.call(CONTENT_KEYS[rules], type) ? CONTENT_KEYS[rules][type] : undefined;
  if (allowed === undefined) return out;
  if (allowed === '*') return { ...content };
  for (const key of allowed) {
    if (Object.prototype.hasOwnProperty.call(content, key)) out[key] = content[key];
  }
  // v11-redactions.md: m.room.member "additionally ... allows the `signed` key
  // of the `third_party_invite` key". An object `third_party_invite` is kept as
  // an object holding only `signed` (empty when it had none), as Synapse does,
  // so that reference hashes agree.
  if (rules === 'v11' && type === 'm.room.member' && isObject(content['third_party_invite'])) {
    const invite = content['third_party_invite'];
    const kept: JsonObject = {};
    if (Object.prototype.hasOwnProperty.call(invite, 'signed')) kept['signed'] = invite['signed'];
    out['third_party_invite'] = kept;
  }
  return out;
}

function resolveVersion(version: RoomVersion | RoomVersionId): RoomVersion {
  if (typeof version !== 'string') return version;
  const found = getRoomVersion(version);
  if (!found) throw new Error(`unknown room version ${version}`);
  return found;
}

/**
 * The redacted form of `event` under `version`'s redaction rules: only the
 * kept top-level keys, and `content` reduced to the keys its event type keeps.
 * `unsigned` is dropped like every other key not in the list. The input is not
 * modified; kept nested values are shared with it, not copied.
 */
export function redactEvent<T extends object>(event: T, version: RoomVersion | RoomVersionId): T {
  const rules = resolveVersion(version).redaction;
  const keep = rules === 'v11' ? TOP_LEVEL_V11 : TOP_LEVEL_V1;
  const source = event as unknown as Record<string, JsonValue | undefined>;
  const out: Record<string, JsonValue | undefined> = {};
  for (const key of Object.keys(source)) {
    if (key === 'content' || !keep.has(key)) continue;
    out[key] = source[key];
  }
  // `content` is in every version's list; a redacted event always has one.
  out['content'] = redactContent(source['type'], source['content'], rules);
  return out as unknown as T;
}

/** The content keys `version` keeps for events of `type` (`'*'` for all), for display code and tests. */
export function redactionKeepsContentKeys(type: string, version: RoomVersion | RoomVersionId): readonly string[] | '*' {
  const rules = resolveVersion(version).redaction;
  const keys = Object.prototype.hasOwnProperty.call(CONTENT_KEYS[rules], type) ? CONTENT_KEYS[rules][type] : [];
  if (rules === 'v11' && type === 'm.room.member' && keys !== '*') return [...keys, 'third_party_invite.signed'];
  return keys;
}
