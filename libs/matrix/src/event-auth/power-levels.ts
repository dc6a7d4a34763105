/**
 * Reading `m.room.power_levels` and room creators the way the authorization
 * rules do, per room version.
 *
 * Spec: data/event-schemas/schema/m.room.power_levels.yaml (defaults),
 * content/rooms/fragments/v1-stringy-power-levels.md (v1–v9: values may be
 * strings), content/rooms/fragments/v1-floaty-power-levels.md (v1–v5: values
 * may be floats, truncated), content/rooms/v10.md ("Values in
 * `m.room.power_levels` events must be integers"), content/rooms/v11.md
 * ("Remove the `creator` property") and content/rooms/v12.md (room creators
 * have infinite power).
 */
import type { JsonObject, JsonValue, RoomEvent } from '../events/pdu';
import type { RoomVersion } from '../room-versions';

/** Looks up the state an event is checked against, by (type, state_key). */
export type AuthStateLookup = (type: string, stateKey: string) => RoomEvent | undefined;

/** The top-level integer properties the power levels change rules walk over, in the spec's order. */
export const POWER_LEVEL_PROPERTIES = [
  'users_default',
  'events_default',
  'state_default',
  'ban',
  'redact',
  'kick',
  'invite',
] as const;
export type PowerLevelProperty = (typeof POWER_LEVEL_PROPERTIES)[number];

/**
 * Defaults from m.room.power_levels.yaml: "If there is no `state_default` in
 * the `m.room.power_levels` event, or there is no `m.room.power_levels`
 * event, the `state_default` is 50", `events_default` 0, `kick`/`ban`/`redact`
 * 50, "`invite` defaults to 0 in either case", `users_default` 0.
 */
export const POWER_LEVEL_DEFAULTS: Readonly<Record<PowerLevelProperty, number>> = Object.freeze({
  users_default: 0,
  events_default: 0,
  state_default: 50,
  ban: 50,
  redact: 50,
  kick: 50,
  invite: 0,
});

/** m.room.power_levels.yaml: `notifications.room` "Defaults to 50 if unspecified." */
export const NOTIFICATIONS_ROOM_DEFAULT = 50;

/**
 * v1-stringy-power-levels.md: "a single base 10 integer, no float values or
 * decimal points, optionally with any number of leading zeroes; optionally
 * prefixed with a single `-` or `+`; optionally with any number of leading or
 * trailing whitespace characters".
 */
const STRINGY_INTEGER = /^\s*[+-]?[0-9]+\s*$/;

/**
 * One power level value as the room version reads it, or undefined when it is
 * not a power level at all in that version.
 * - v10+: only JSON integers ("power levels MUST NOT be represented as strings").
 * - v6–v9: integers, or strings that are integers (stringy fragment). Floats
 *   cannot occur: canonical JSON of these versions forbids them.
 * - v1–v5: also floats, "the value is truncated at the decimal point";
 *   "`Infinity`, `-Infinity` and `NaN`" are not levels.
 */
export function parsePowerLevelValue(value: unknown, version: RoomVersion): number | undefined {
  if (typeof value === 'number') {
    if (Number.isInteger(value)) return value;
    if (version.strictCanonicalJson || !Number.isFinite(value)) return undefined;
    return Math.trunc(value);
  }
  if (typeof value === 'string' && !version.integerPowerLevels && STRINGY_INTEGER.test(value)) {
    const parsed = Number(value.trim());
    // A string of digits can exceed the range JSON numbers may carry; such a
    // value is not an integer this version can compare.
    return Number.isSafeInteger(parsed) ? parsed : undefined;
  }
  return undefined;
}

function isObject(value: JsonValue | undefined): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Power levels content read with the version's value rules and the spec's defaults filled in. */
export interface PowerLevels {
  /** Whether the room has an m.room.power_levels event at all. */
  readonly exists: boolean;
  readonly levels: Readonly<Record<PowerLevelProperty, number>>;
  readonly events: ReadonlyMap<string, number>;
  readonly notifications: ReadonlyMap<string, number>;
  readonly users: ReadonlyMap<string, number>;
}

/** A level map (`events`, `users`, `notifications`) with the entries that parse as levels in this room version. */
export function readLevelMap(value: JsonValue | undefined, version: RoomVersion): Map<string, number> {
  const out = new Map<string, number>();
  if (!isObject(value)) return out;
  for (const [key, raw] of Object.entries(value)) {
    const level = parsePowerLevelValue(raw, version);
    if (level !== undefined) out.set(key, level);
  }
  return out;
}

/**
 * Reads power levels content. Values the version does not accept are treated
 * as absent (their default applies): an event carrying them in v10+ is rejected
 * by the rules before it can become state, and in v1–v9 the rules only reject
 * malformed `users` entries.
 */
export function readPowerLevels(event: RoomEvent | undefined, version: RoomVersion): PowerLevels {
  const content = event?.content ?? {};
  const levels = { ...POWER_LEVEL_DEFAULTS };
  for (const property of POWER_LEVEL_PROPERTIES) {
    const level = parsePowerLevelValue(content[property], version);
    if (level !== undefined) levels[property] = level;
  }
  return {
    exists: event !== undefined,
    levels,
    events: readLevelMap(content['events'], version),
    notifications: readLevelMap(content['notifications'], version),
    users: readLevelMap(content['users'], version),
  };
}

/**
 * The room creators.
 * - v1–v10: `content.creator` of m.room.create.
 * - v11: "the `creator` property [...] was always equivalent to the `sender`"
 *   and is gone; the creator is the create event's sender.
 * - v12: "The user ID denoted by the `sender` of the `m.room.create` event"
 *   plus "Any user IDs contained in the `additional_creators` array".
 */
export function roomCreators(create: RoomEvent | undefined, version: RoomVersion): Set<string> {
  const creators = new Set<string>();
  if (!create) return creators;
  if (!version.implicitRoomCreator) {
    const creator = create.content['creator'];
    if (typeof creator === 'string') creators.add(creator);
    return creators;
  }
  creators.add(create.sender);
  if (version.privilegedCreators) {
    const additional = create.content['additional_creators'];
    if (Array.isArray(additional)) {
      for (const user of additional) if (typeof user === 'string') creators.add(user);
    }
  }
  return creators;
}

/**
 * A user's power level against the given state.
 * - v12: "The power level of room creators is infinitely high."
 * - With a power levels event: `users[user]`, else `users_default`.
 * - Without one (v1–v11): "the room's creator has a power level of 100, and
 *   all other users have a power level of 0."
 */
export function userPowerLevel(userId: string, authState: AuthStateLookup, version: RoomVersion): number {
  const create = authState('m.room.create', '');
  const creators = roomCreators(create, version);
  if (version.privilegedCreators && creators.has(userId)) return Infinity;
  const powerLevelsEvent = authState('m.room.power_levels', '');
  return levelOfUser(userId, readPowerLevels(powerLevelsEvent, version), creators);
}

/** `userPowerLevel` over already-read power levels and creators. */
export function levelOfUser(userId: string, powerLevels: PowerLevels, creators: ReadonlySet<string>): number {
  if (!powerLevels.exists) return creators.has(userId) ? 100 : 0;
  return powerLevels.users.get(userId) ?? powerLevels.levels.users_default;
}

/**
 * The event type's *required power level* (m.room.power_levels.yaml): "If an
 * event type is specified in `events`, then the user must have at least the
 * level specified [...]. If the event type is not supplied, it defaults to
 * `events_default` for message events and `state_default` for state events."
 */
export function requiredPowerLevel(type: string, isState: boolean, powerLevels: PowerLevels): number {
  return powerLevels.events.get(type) ?? (isState ? powerLevels.levels.state_default : powerLevels.levels.events_default);
}
