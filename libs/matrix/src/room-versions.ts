/**
 * Room version descriptors, one per stable version 1..12.
 *
 * Spec: content/rooms/_index.md ("Complete list of room versions") and each
 * content/rooms/vN.md. Every algorithm that differs between versions (event
 * format, redaction, authorization, state resolution, canonical JSON) reads its
 * switches from here, so a version's behaviour is described in one place.
 */

export type RoomVersionId = '1' | '2' | '3' | '4' | '5' | '6' | '7' | '8' | '9' | '10' | '11' | '12';

export interface RoomVersion {
  readonly id: RoomVersionId;
  readonly stability: 'stable' | 'unstable';
  /**
   * How event IDs are formed.
   * - `explicit`: v1–v2, the ID is carried in the event (`$local:server`), and
   *   `prev_events`/`auth_events` are `[id, {sha256}]` pairs.
   * - `hash-base64`: v3, `$` + reference hash in standard unpadded base64.
   * - `hash-urlsafe`: v4+, `$` + reference hash in URL-safe unpadded base64.
   */
  readonly eventIdFormat: 'explicit' | 'hash-base64' | 'hash-urlsafe';
  /** Which state resolution algorithm applies: v1 (room v1), v2 (v2–v11), v2.1 (v12). */
  readonly stateResolution: 'v1' | 'v2' | 'v2.1';
  /** Which redaction algorithm applies (content/rooms/fragments/*-redactions.md). */
  readonly redaction: 'v1' | 'v6' | 'v8' | 'v9' | 'v11';
  /** v3+: the redaction auth rule that compared sender domains moved to display time. */
  readonly redactionCheckedAtDisplay: boolean;
  /** v5+: a signing key must be valid (valid_until_ts) at the event's origin_server_ts. */
  readonly enforceKeyValidity: boolean;
  /** v1–v5: m.room.aliases has its own auth rule and keeps `aliases` on redaction. */
  readonly specialCaseAliasesAuth: boolean;
  /** v6+: canonical JSON is strict (integers only, in [-(2^53)+1, 2^53-1]). */
  readonly strictCanonicalJson: boolean;
  /** v6+: `notifications` in m.room.power_levels is checked by the auth rules. */
  readonly limitNotificationsPowerLevels: boolean;
  /** v7+: the `knock` membership and join rule. */
  readonly knock: boolean;
  /** v8+: the `restricted` join rule and `join_authorised_via_users_server`. */
  readonly restrictedJoin: boolean;
  /** v10+: the `knock_restricted` join rule. */
  readonly knockRestricted: boolean;
  /** v10+: power level values must be integers (not strings). */
  readonly integerPowerLevels: boolean;
  /** v11+: m.room.create has no `creator`; the creator is the sender. */
  readonly implicitRoomCreator: boolean;
  /** v11+: m.room.redaction carries `redacts` in `content`. */
  readonly redactsInContent: boolean;
  /** v12: the room ID is `!` + the create event's reference hash; the create event has no room_id. */
  readonly roomIdFromCreateEvent: boolean;
  /** v12: creators (sender + additional_creators) have infinite power and are not in `users`. */
  readonly privilegedCreators: boolean;
}

const v1: RoomVersion = {
  id: '1',
  stability: 'stable',
  eventIdFormat: 'explicit',
  stateResolution: 'v1',
  redaction: 'v1',
  redactionCheckedAtDisplay: false,
  enforceKeyValidity: false,
  specialCaseAliasesAuth: true,
  strictCanonicalJson: false,
  limitNotificationsPowerLevels: false,
  knock: false,
  restrictedJoin: false,
  knockRestricted: false,
  integerPowerLevels: false,
  implicitRoomCreator: false,
  redactsInContent: false,
  roomIdFromCreateEvent: false,
  privilegedCreators: false,
};
const v2: RoomVersion = { ...v1, id: '2', stateResolution: 'v2' };
const v3: RoomVersion = { ...v2, id: '3', eventIdFormat: 'hash-base64', redactionCheckedAtDisplay: true };
const v4: RoomVersion = { ...v3, id: '4', eventIdFormat: 'hash-urlsafe' };
const v5: RoomVersion = { ...v4, id: '5', enforceKeyValidity: true };
const v6: RoomVersion = {
  ...v5,
  id: '6',
  redaction: 'v6',
  specialCaseAliasesAuth: false,
  strictCanonicalJson: true,
  limitNotificationsPowerLevels: true,
};
const v7: RoomVersion = { ...v6, id: '7', knock: true };
const v8: RoomVersion = { ...v7, id: '8', redaction: 'v8', restrictedJoin: true };
const v9: RoomVersion = { ...v8, id: '9', redaction: 'v9' };
const v10: RoomVersion = { ...v9, id: '10', knockRestricted: true, integerPowerLevels: true };
const v11: RoomVersion = { ...v10, id: '11', redaction: 'v11', implicitRoomCreator: true, redactsInContent: true };
const v12: RoomVersion = { ...v11, id: '12', stateResolution: 'v2.1', roomIdFromCreateEvent: true, privilegedCreators: true };

export const ROOM_VERSIONS: Readonly<Record<RoomVersionId, RoomVersion>> = Object.freeze({
  '1': v1, '2': v2, '3': v3, '4': v4, '5': v5, '6': v6, '7': v7, '8': v8, '9': v9, '10': v10, '11': v11, '12': v12,
});

/** content/rooms/_index.md: "Servers SHOULD use room version 12 as the default". Configurable by the server. */
export const DEFAULT_ROOM_VERSION: RoomVersionId = '12';

/** Returns the descriptor for a known room version, or undefined (callers answer M_UNSUPPORTED_ROOM_VERSION). */
export function getRoomVersion(id: string): RoomVersion | undefined {
  return Object.prototype.hasOwnProperty.call(ROOM_VERSIONS, id) ? ROOM_VERSIONS[id as RoomVersionId] : undefined;
}

/** Room version grammar (content/rooms/_index.md): 1–32 chars of a-z, 0-9, `.` and `-`. */
export function isValidRoomVersionId(id: string): boolean {
  return /^[a-z0-9.-]{1,32}$/.test(id);
}
