/**
 * The authorization rules of every room version, step by step in the order
 * the spec lists them.
 *
 * Spec: content/rooms/fragments/v1-auth-rules.md (v1–v2),
 * content/rooms/fragments/v3-auth-rules.md (v3–v5), the rules written out in
 * content/rooms/v6.md and v7.md, content/rooms/fragments/v8-auth-rules.md
 * (v8–v9), and the rules written out in content/rooms/v10.md, v11.md, v12.md.
 *
 * Rule numbers in rejections are those of the version's own page (they shift:
 * the m.room.aliases rule 4 goes in v6, v12 inserts a rule 2), so a rejection
 * can be read against the page of its room version. `check` is a stable name
 * for the same rule across versions.
 */
import { prevEventIds, type JsonObject, type JsonValue, type RoomEvent } from '../events/pdu';
import { getRoomVersion, type RoomVersion } from '../room-versions';
import { authEventKeys } from './auth-events';
import { domainOfId, isValidUserId } from '../identifiers';
import {
  POWER_LEVEL_PROPERTIES,
  levelOfUser,
  parsePowerLevelValue,
  readLevelMap,
  readPowerLevels,
  requiredPowerLevel,
  roomCreators,
  type AuthStateLookup,
  type PowerLevels,
} from './power-levels';
import { signedMatchesAnyKey, thirdPartyInvitePublicKeys } from './third-party-invite';

export type AuthResult =
  | { allowed: true }
  | {
      allowed: false;
      /** The rule's number on the room version's page, e.g. `4.3.3`. */
      rule: string;
      /** A stable name for the rule across versions, e.g. `m.room.member/join/banned`. */
      check: string;
      /** Why, for people. */
      reason: string;
    };

export interface AuthorizeOptions {
  /**
   * Room version 8+ rule "If the event is not validly signed by the homeserver
   * of the user ID denoted by the key [`join_authorised_via_users_server`],
   * reject." Checking a signature needs that server's keys, which pure code
   * does not have: callers that have verified the event's signatures pass a
   * verdict here. Without it, a signature from that server must at least be
   * present (the receipt checks verify every signature an event carries).
   */
  verifySignature?: (event: RoomEvent, serverName: string) => boolean;
}

const ALLOW: AuthResult = { allowed: true };

function isObject(value: JsonValue | undefined): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Where each top-level rule sits on the version's page. */
interface RuleNumbers {
  create: string;
  roomId: string;
  authEvents: string;
  federate: string;
  aliases: string;
  member: string;
  joined: string;
  thirdPartyInvite: string;
  requiredPower: string;
  stateKeyUser: string;
  powerLevels: string;
  redaction: string;
  /** Sub-rule offset inside m.room.member: v8+ inserts the `join_authorised_via_users_server` rule 2. */
  memberOffset: number;
  /** Sub-rule offset inside m.room.power_levels: v10 adds rules 1–2, v12 rule 4. */
  powerLevelsOffset: number;
}

function ruleNumbers(version: RoomVersion): RuleNumbers {
  // v1–v5 have the m.room.aliases rule 4; v12 adds rule 2 (the room ID).
  const member = version.specialCaseAliasesAuth ? 5 : version.roomIdFromCreateEvent ? 5 : 4;
  return {
    create: '1',
    roomId: '2',
    authEvents: version.roomIdFromCreateEvent ? '3' : '2',
    federate: version.roomIdFromCreateEvent ? '4' : '3',
    aliases: '4',
    member: String(member),
    joined: String(member + 1),
    thirdPartyInvite: String(member + 2),
    requiredPower: String(member + 3),
    stateKeyUser: String(member + 4),
    powerLevels: String(member + 5),
    redaction: String(member + 6),
    memberOffset: version.restrictedJoin ? 1 : 0,
    powerLevelsOffset: version.integerPowerLevels ? 2 : 0,
  };
}

function deny(rule: string, check: string, reason: string): AuthResult {
  return { allowed: false, rule, check, reason };
}

/**
 * Authorizes `event` against `authState`: its auth events (on receipt) or the
 * state before it (the later checks on receipt, iterative auth checks of state
 * resolution). Rules about the `auth_events` list itself (duplicates, entries
 * the selection would not pick, rejected entries) need the list and live in
 * `checkAuthEvents`; this function checks what the state can show: the create
 * event is there, and the auth state belongs to this room.
 *
 * Room version 12: the create event is not among an event's auth events, so
 * `authState('m.room.create', '')` must return the create event the room ID
 * names. A v12 `RoomEvent` for the create event carries the room ID derived
 * from its event ID; a create PDU that came with a `room_id` of its own must
 * keep that `room_id` so that rule 1.2 can see it.
 */
export function authorizeEvent(
  event: RoomEvent,
  authState: AuthStateLookup,
  version: RoomVersion,
  options: AuthorizeOptions = {},
): AuthResult {
  const n = ruleNumbers(version);

  // 1. "If type is `m.room.create`:"
  if (event.type === 'm.room.create') return authorizeCreate(event, version);

  const create = authState('m.room.create', '');

  // 2. (v12) "If the event's `room_id` is not an event ID for an accepted (not
  //    rejected) `m.room.create` event, with the sigil `!` instead of `$`, reject."
  if (version.roomIdFromCreateEvent) {
    if (!create || create.type !== 'm.room.create' || event.room_id !== `!${create.event_id.slice(1)}`) {
      return deny(n.roomId, 'room_id/not-create-event', `room ID ${event.room_id} does not name the room's m.room.create event`);
    }
  }

  // 2. / 3. "Considering the event's `auth_events`:"
  //    4. "If there is no `m.room.create` event among the entries, reject." (v1–v11)
  if (!version.roomIdFromCreateEvent && !create) {
    return deny(`${n.authEvents}.4`, 'auth_events/no-create', 'no m.room.create event among the auth events');
  }
  //    5. "If any event in `auth_events` has a `room_id` which does not match
  //       that of the event being authorised, reject."
  for (const [type, key] of authEventKeys(event, version)) {
    const authEvent = authState(type, key);
    if (authEvent && authEvent.room_id !== event.room_id) {
      return deny(
        `${n.authEvents}.${version.roomIdFromCreateEvent ? 4 : 5}`,
        'auth_events/wrong-room',
        `auth event ${authEvent.event_id} (${type}, ${key}) belongs to room ${authEvent.room_id}`,
      );
    }
  }
  const createEvent = create as RoomEvent;

  // 3. "If the `content` of the `m.room.create` event in the room state has the
  //    property `m.federate` set to `false`, and the `sender` domain of the
  //    event does not match the `sender` domain of the create event, reject."
  if (createEvent.content['m.federate'] === false && domainOfId(event.sender) !== domainOfId(createEvent.sender)) {
    return deny(n.federate, 'm.federate', `the room does not federate and ${event.sender} is not on ${domainOfId(createEvent.sender)}`);
  }

  const ctx = new AuthContext(event, authState, version, createEvent);

  // 4. (v1–v5) "If type is `m.room.aliases`:"
  if (version.specialCaseAliasesAuth && event.type === 'm.room.aliases') {
    // 1. "If event has no `state_key`, reject."
    if (event.state_key === undefined) return deny('4.1', 'm.room.aliases/no-state-key', 'm.room.aliases has no state_key');
    // 2. "If sender's domain doesn't match `state_key`, reject."
    if (domainOfId(event.sender) !== event.state_key) {
      return deny('4.2', 'm.room.aliases/domain', `${event.sender} may not set aliases for ${event.state_key}`);
    }
    // 3. "Otherwise, allow."
    return ALLOW;
  }

  // "If type is `m.room.member`:"
  if (event.type === 'm.room.member') return authorizeMember(ctx, n, options);

  // "If the `sender`'s current membership state is not `join`, reject."
  if (ctx.membership(event.sender) !== 'join') {
    return deny(n.joined, 'sender/not-joined', `${event.sender} is not joined to the room`);
  }

  const senderLevel = ctx.level(event.sender);

  // "If type is `m.room.third_party_invite`: Allow if and only if `sender`'s
  //  current power level is greater than or equal to the *invite level*."
  if (event.type === 'm.room.third_party_invite') {
    if (senderLevel >= ctx.powerLevels.levels.invite) return ALLOW;
    return deny(`${n.thirdPartyInvite}.1`, 'm.room.third_party_invite/power', `${event.sender} (${senderLevel}) is below the invite level (${ctx.powerLevels.levels.invite})`);
  }

  // "If the event type's *required power level* is greater than the
  //  `sender`'s power level, reject."
  const required = requiredPowerLevel(event.type, event.state_key !== undefined, ctx.powerLevels);
  if (required > senderLevel) {
    return deny(n.requiredPower, 'sender/power', `${event.type} needs power level ${required}; ${event.sender} has ${senderLevel}`);
  }

  // "If the event has a `state_key` that starts with an `@` and does not
  //  match the `sender`, reject."
  if (event.state_key !== undefined && event.state_key.startsWith('@') && event.state_key !== event.sender) {
    return deny(n.stateKeyUser, 'state_key/other-user', `state_key ${event.state_key} names a user other than the sender`);
  }

  // "If type is `m.room.power_levels`:"
  if (event.type === 'm.room.power_levels') return authorizePowerLevels(ctx, n, senderLevel);

  // (v1–v2) 11. "If type is `m.room.redaction`:"
  if (!version.redactionCheckedAtDisplay && event.type === 'm.room.redaction') {
    // 1. "If the `sender`'s power level is greater than or equal to the *redact level*, allow."
    if (senderLevel >= ctx.powerLevels.levels.redact) return ALLOW;
    // 2. "If the domain of the `event_id` of the event being redacted is the
    //    same as the domain of the `event_id` of the `m.room.redaction`, allow."
    const redacts = event.redacts;
    if (typeof redacts === 'string' && domainOfId(redacts) !== undefined && domainOfId(redacts) === domainOfId(event.event_id)) {
      return ALLOW;
    }
    // 3. "Otherwise, reject."
    return deny(`${n.redaction}.3`, 'm.room.redaction/power', `${event.sender} may not redact ${String(redacts)}: below the redact level and another server's event`);
  }

  // "Otherwise, allow."
  return ALLOW;
}

/** Rule 1, "If type is `m.room.create`". */
function authorizeCreate(event: RoomEvent, version: RoomVersion): AuthResult {
  // 1. "If it has any `prev_events`, reject."
  if (prevEventIds(event).length > 0) return deny('1.1', 'm.room.create/prev_events', 'the create event has prev_events');
  if (version.roomIdFromCreateEvent) {
    // 2. (v12) "If the event has a `room_id`, reject." The room ID is "the
    //    event ID of the event with sigil `!` instead of `$`"; a RoomEvent
    //    carries that derived ID, so any other room_id came with the PDU.
    if (event.room_id !== undefined && event.room_id !== `!${event.event_id.slice(1)}`) {
      return deny('1.2', 'm.room.create/room_id', 'a room version 12 create event must not carry a room_id');
    }
  } else {
    // 2. "If the domain of the `room_id` does not match the domain of the `sender`, reject."
    if (domainOfId(event.room_id) === undefined || domainOfId(event.room_id) !== domainOfId(event.sender)) {
      return deny('1.2', 'm.room.create/room_id', `room ID ${event.room_id} is not on the sender's server`);
    }
  }
  // 3. "If `content.room_version` is present and is not a recognised version, reject."
  const roomVersion = event.content['room_version'];
  if (roomVersion !== undefined && (typeof roomVersion !== 'string' || getRoomVersion(roomVersion) === undefined)) {
    return deny('1.3', 'm.room.create/room_version', `unknown room version ${JSON.stringify(roomVersion)}`);
  }
  // 4. (v1–v10) "If `content` has no `creator` property, reject." (v11 drops
  //    this rule: "the creator is the sender").
  if (!version.implicitRoomCreator && !('creator' in event.content)) {
    return deny('1.4', 'm.room.create/creator', 'the create event has no content.creator');
  }
  // 4. (v12) "If `additional_creators` is present in `content` and is not an
  //    array of strings where each string passes the same user ID validation
  //    applied to `sender`, reject."
  if (version.privilegedCreators && 'additional_creators' in event.content) {
    const additional = event.content['additional_creators'];
    if (!Array.isArray(additional) || !additional.every((user) => typeof user === 'string' && isValidUserId(user, 'historical'))) {
      return deny('1.4', 'm.room.create/additional_creators', 'additional_creators is not an array of user IDs');
    }
  }
  // "Otherwise, allow."
  return ALLOW;
}

/** What the member and power levels rules read from the state, computed once. */
class AuthContext {
  readonly powerLevels: PowerLevels;
  readonly creators: Set<string>;

  constructor(
    readonly event: RoomEvent,
    readonly authState: AuthStateLookup,
    readonly version: RoomVersion,
    readonly create: RoomEvent,
  ) {
    this.powerLevels = readPowerLevels(authState('m.room.power_levels', ''), version);
    this.creators = roomCreators(create, version);
  }

  /** The user's current membership; undefined when they have no m.room.member event. */
  membership(userId: string): string | undefined {
    const membership = this.authState('m.room.member', userId)?.content['membership'];
    return typeof membership === 'string' ? membership : undefined;
  }

  /** "Power levels are inferred from defaults when not explicitly supplied." v12 creators are infinite. */
  level(userId: string): number {
    if (this.version.privilegedCreators && this.creators.has(userId)) return Infinity;
    return levelOfUser(userId, this.powerLevels, this.creators);
  }

  /**
   * The current join rule. With no m.room.join_rules event in the state, the
   * room is treated as `invite`: the rules name no default, and every widely
   * deployed implementation reads it so, which matters because servers must
   * reach the same verdicts (room creation always sends join rules, so only
   * odd or hand-made rooms ever lack one).
   */
  joinRule(): string | undefined {
    const event = this.authState('m.room.join_rules', '');
    if (!event) return 'invite';
    const rule = event.content['join_rule'];
    return typeof rule === 'string' ? rule : undefined;
  }
}

/** "If type is `m.room.member`". */
function authorizeMember(ctx: AuthContext, n: RuleNumbers, options: AuthorizeOptions): AuthResult {
  const { event, version } = ctx;
  const m = n.member;
  const o = n.memberOffset;
  const membership = event.content['membership'];

  // 1. "If there is no `state_key` property, or no `membership` property in `content`, reject."
  if (event.state_key === undefined || membership === undefined) {
    return deny(`${m}.1`, 'm.room.member/malformed', 'm.room.member needs a state_key and content.membership');
  }
  const target = event.state_key;

  // 2. (v8+) "If `content` has a `join_authorised_via_users_server` key:
  //    1. If the event is not validly signed by the homeserver of the user ID
  //       denoted by the key, reject."
  const authoriser = event.content['join_authorised_via_users_server'];
  if (version.restrictedJoin && authoriser !== undefined) {
    const server = typeof authoriser === 'string' ? domainOfId(authoriser) : undefined;
    const signed =
      server !== undefined &&
      (options.verifySignature ? options.verifySignature(event, server) : Object.keys(event.signatures?.[server] ?? {}).length > 0);
    if (!signed) {
      return deny(`${m}.2.1`, 'm.room.member/join_authorised_via_users_server/signature', `the event is not signed by the server of ${String(authoriser)}`);
    }
  }

  switch (membership) {
    case 'join':
      return authorizeJoin(ctx, `${m}.${2 + o}`, target);
    case 'invite':
      return authorizeInvite(ctx, `${m}.${3 + o}`, target);
    case 'leave':
      return authorizeLeave(ctx, `${m}.${4 + o}`, target);
    case 'ban':
      return authorizeBan(ctx, `${m}.${5 + o}`, target);
    case 'knock':
      if (version.knock) return authorizeKnock(ctx, `${m}.${6 + o}`, target);
      break;
  }
  // "Otherwise, the membership is unknown. Reject."
  return deny(`${m}.${(version.knock ? 7 : 6) + o}`, 'm.room.member/unknown', `unknown membership ${JSON.stringify(membership)} in room version ${version.id}`);
}

/** "If `membership` is `join`". */
function authorizeJoin(ctx: AuthContext, r: string, target: string): AuthResult {
  const { event, version, create } = ctx;
  // 1. "If the only previous event is an `m.room.create` and the `state_key`
  //    is the creator, allow." (v11+: "is the sender of the `m.room.create`")
  const prev = prevEventIds(event);
  const creator = version.implicitRoomCreator ? create.sender : create.content['creator'];
  if (prev.length === 1 && prev[0] === create.event_id && target === creator) return ALLOW;

  // 2. "If the `sender` does not match `state_key`, reject."
  if (event.sender !== target) return deny(`${r}.2`, 'm.room.member/join/other-user', `${event.sender} cannot join on behalf of ${target}`);

  // 3. "If the `sender` is banned, reject."
  const current = ctx.membership(event.sender);
  if (current === 'ban') return deny(`${r}.3`, 'm.room.member/join/banned', `${event.sender} is banned`);

  const joinRule = ctx.joinRule();
  // 4. "If the `join_rule` is `invite` [v7+: or `knock`] then allow if
  //    membership state is `invite` or `join`."
  if (joinRule === 'invite' || (version.knock && joinRule === 'knock')) {
    if (current === 'invite' || current === 'join') return ALLOW;
    return deny(`${r}.4`, 'm.room.member/join/not-invited', `the room is ${joinRule}-only and ${event.sender} is not invited`);
  }

  let next = 5;
  // 5. (v8+) "If the `join_rule` is `restricted` [v10+: or `knock_restricted`]:"
  if (version.restrictedJoin) {
    if (joinRule === 'restricted' || (version.knockRestricted && joinRule === 'knock_restricted')) {
      // 1. "If membership state is `join` or `invite`, allow."
      if (current === 'join' || current === 'invite') return ALLOW;
      // 2. "If the `join_authorised_via_users_server` key in `content` is not a
      //    user with sufficient permission to invite other users or is not a
      //    joined member of the room, reject."
      const authoriser = event.content['join_authorised_via_users_server'];
      if (typeof authoriser !== 'string') {
        return deny(`${r}.5.2`, 'm.room.member/join/restricted/no-authoriser', `the room is ${joinRule} and no join_authorised_via_users_server was given`);
      }
      if (ctx.membership(authoriser) !== 'join') {
        return deny(`${r}.5.2`, 'm.room.member/join/restricted/authoriser-not-joined', `${authoriser} is not joined to the room`);
      }
      const level = ctx.level(authoriser);
      if (level < ctx.powerLevels.levels.invite) {
        return deny(`${r}.5.2`, 'm.room.member/join/restricted/authoriser-power', `${authoriser} (${level}) cannot invite (invite level ${ctx.powerLevels.levels.invite})`);
      }
      // 3. "Otherwise, allow."
      return ALLOW;
    }
    next = 6;
  }
  // "If the `join_rule` is `public`, allow."
  if (joinRule === 'public') return ALLOW;
  // "Otherwise, reject."
  return deny(`${r}.${next + 1}`, 'm.room.member/join/join-rule', `join rule ${JSON.stringify(joinRule)} does not let ${event.sender} join in room version ${version.id}`);
}

/** "If `membership` is `invite`". */
function authorizeInvite(ctx: AuthContext, r: string, target: string): AuthResult {
  const { event } = ctx;
  const targetMembership = ctx.membership(target);

  // 1. "If `content` has a `third_party_invite` property:"
  if ('third_party_invite' in event.content) {
    // 1. "If *target user* is banned, reject."
    if (targetMembership === 'ban') return deny(`${r}.1.1`, 'm.room.member/invite/third_party/banned', `${target} is banned`);
    // 2. "If `content.third_party_invite` does not have a `signed` property, reject."
    const invite = event.content['third_party_invite'];
    const signed = isObject(invite) ? invite['signed'] : undefined;
    if (!isObject(signed)) return deny(`${r}.1.2`, 'm.room.member/invite/third_party/no-signed', 'third_party_invite has no signed object');
    // 3. "If `signed` does not have `mxid` and `token` properties, reject."
    const mxid = signed['mxid'];
    const token = signed['token'];
    if (typeof mxid !== 'string' || typeof token !== 'string') {
      return deny(`${r}.1.3`, 'm.room.member/invite/third_party/no-mxid-token', 'signed lacks mxid or token');
    }
    // 4. "If `mxid` does not match `state_key`, reject."
    if (mxid !== target) return deny(`${r}.1.4`, 'm.room.member/invite/third_party/mxid', `signed.mxid ${mxid} is not ${target}`);
    // 5. "If there is no `m.room.third_party_invite` event in the current room
    //    state with `state_key` matching `token`, reject."
    const thirdPartyInvite = ctx.authState('m.room.third_party_invite', token);
    if (!thirdPartyInvite) return deny(`${r}.1.5`, 'm.room.member/invite/third_party/no-invite-event', `no m.room.third_party_invite for token ${token}`);
    // 6. "If `sender` does not match `sender` of the `m.room.third_party_invite`, reject."
    if (thirdPartyInvite.sender !== event.sender) {
      return deny(`${r}.1.6`, 'm.room.member/invite/third_party/sender', `the third-party invite was made by ${thirdPartyInvite.sender}, not ${event.sender}`);
    }
    // 7. "If any signature in `signed` matches any public key in the
    //    `m.room.third_party_invite` event, allow."
    if (signedMatchesAnyKey(signed, thirdPartyInvitePublicKeys(thirdPartyInvite.content))) return ALLOW;
    // 8. "Otherwise, reject."
    return deny(`${r}.1.8`, 'm.room.member/invite/third_party/signature', 'no signature in signed matches a public key of the third-party invite');
  }

  // 2. "If the `sender`'s current membership state is not `join`, reject."
  if (ctx.membership(event.sender) !== 'join') return deny(`${r}.2`, 'm.room.member/invite/sender-not-joined', `${event.sender} is not joined to the room`);
  // 3. "If *target user*'s current membership state is `join` or `ban`, reject."
  if (targetMembership === 'join' || targetMembership === 'ban') {
    return deny(`${r}.3`, 'm.room.member/invite/target-membership', `${target} is already ${targetMembership === 'join' ? 'joined' : 'banned'}`);
  }
  // 4. "If the `sender`'s power level is greater than or equal to the *invite level*, allow."
  const level = ctx.level(event.sender);
  if (level >= ctx.powerLevels.levels.invite) return ALLOW;
  // 5. "Otherwise, reject."
  return deny(`${r}.5`, 'm.room.member/invite/power', `${event.sender} (${level}) is below the invite level (${ctx.powerLevels.levels.invite})`);
}

/** "If `membership` is `leave`". */
function authorizeLeave(ctx: AuthContext, r: string, target: string): AuthResult {
  const { event, version } = ctx;
  const targetMembership = ctx.membership(target);
  // 1. "If the `sender` matches `state_key`, allow if and only if that user's
  //    current membership state is `invite` or `join` [v7+: or `knock`]."
  if (event.sender === target) {
    if (targetMembership === 'invite' || targetMembership === 'join' || (version.knock && targetMembership === 'knock')) return ALLOW;
    return deny(`${r}.1`, 'm.room.member/leave/not-in-room', `${target} cannot leave from membership ${String(targetMembership ?? 'none')}`);
  }
  // 2. "If the `sender`'s current membership state is not `join`, reject."
  if (ctx.membership(event.sender) !== 'join') return deny(`${r}.2`, 'm.room.member/leave/sender-not-joined', `${event.sender} is not joined to the room`);
  const senderLevel = ctx.level(event.sender);
  // 3. "If the *target user*'s current membership state is `ban`, and the
  //    `sender`'s power level is less than the *ban level*, reject."
  if (targetMembership === 'ban' && senderLevel < ctx.powerLevels.levels.ban) {
    return deny(`${r}.3`, 'm.room.member/leave/unban-power', `${event.sender} (${senderLevel}) is below the ban level (${ctx.powerLevels.levels.ban}) and cannot unban`);
  }
  // 4. "If the `sender`'s power level is greater than or equal to the *kick
  //    level*, and the *target user*'s power level is less than the `sender`'s
  //    power level, allow."
  const targetLevel = ctx.level(target);
  if (senderLevel >= ctx.powerLevels.levels.kick && targetLevel < senderLevel) return ALLOW;
  // 5. "Otherwise, reject."
  return deny(`${r}.5`, 'm.room.member/leave/kick-power', `${event.sender} (${senderLevel}) cannot kick ${target} (${targetLevel}); kick level ${ctx.powerLevels.levels.kick}`);
}

/** "If `membership` is `ban`". */
function authorizeBan(ctx: AuthContext, r: string, target: string): AuthResult {
  const { event } = ctx;
  // 1. "If the `sender`'s current membership state is not `join`, reject."
  if (ctx.membership(event.sender) !== 'join') return deny(`${r}.1`, 'm.room.member/ban/sender-not-joined', `${event.sender} is not joined to the room`);
  // 2. "If the `sender`'s power level is greater than or equal to the *ban
  //    level*, and the *target user*'s power level is less than the `sender`'s
  //    power level, allow."
  const senderLevel = ctx.level(event.sender);
  const targetLevel = ctx.level(target);
  if (senderLevel >= ctx.powerLevels.levels.ban && targetLevel < senderLevel) return ALLOW;
  // 3. "Otherwise, reject."
  return deny(`${r}.3`, 'm.room.member/ban/power', `${event.sender} (${senderLevel}) cannot ban ${target} (${targetLevel}); ban level ${ctx.powerLevels.levels.ban}`);
}

/** (v7+) "If `membership` is `knock`". */
function authorizeKnock(ctx: AuthContext, r: string, target: string): AuthResult {
  const { event, version } = ctx;
  const joinRule = ctx.joinRule();
  // 1. "If the `join_rule` is anything other than `knock` [v10+: or `knock_restricted`], reject."
  if (!(joinRule === 'knock' || (version.knockRestricted && joinRule === 'knock_restricted'))) {
    return deny(`${r}.1`, 'm.room.member/knock/join-rule', `join rule ${JSON.stringify(joinRule)} does not allow knocking in room version ${version.id}`);
  }
  // 2. "If `sender` does not match `state_key`, reject."
  if (event.sender !== target) return deny(`${r}.2`, 'm.room.member/knock/other-user', `${event.sender} cannot knock on behalf of ${target}`);
  // 3. "If the `sender`'s current membership is not `ban`, `invite`, or `join`, allow."
  const current = ctx.membership(event.sender);
  if (current !== 'ban' && current !== 'invite' && current !== 'join') return ALLOW;
  // 4. "Otherwise, reject."
  return deny(`${r}.4`, 'm.room.member/knock/membership', `${event.sender} cannot knock while ${current}`);
}

/** Is `value` an object whose values are all JSON integers? (v10+ rule for `events`/`notifications`.) */
function isIntegerMap(value: JsonValue): boolean {
  return isObject(value) && Object.values(value).every((v) => typeof v === 'number' && Number.isInteger(v));
}

/** "If type is `m.room.power_levels`". */
function authorizePowerLevels(ctx: AuthContext, n: RuleNumbers, senderLevel: number): AuthResult {
  const { event, version } = ctx;
  const r = n.powerLevels;
  const content = event.content;
  const o = n.powerLevelsOffset;

  if (version.integerPowerLevels) {
    // 1. (v10+) "If any of the properties `users_default`, `events_default`,
    //    `state_default`, `ban`, `redact`, `kick`, or `invite` in `content` are
    //    present and not an integer, reject."
    for (const property of POWER_LEVEL_PROPERTIES) {
      const value = content[property];
      if (value !== undefined && !(typeof value === 'number' && Number.isInteger(value))) {
        return deny(`${r}.1`, 'm.room.power_levels/not-integer', `${property} is ${JSON.stringify(value)}, not an integer`);
      }
    }
    // 2. (v10+) "If either of the properties `events` or `notifications` in
    //    `content` are present and not an object with values that are integers, reject."
    for (const property of ['events', 'notifications'] as const) {
      const value = content[property];
      if (value !== undefined && !isIntegerMap(value)) {
        return deny(`${r}.2`, 'm.room.power_levels/not-integer', `${property} is not an object of integers`);
      }
    }
  }

  // "If the `users` property in `content` is not an object with keys that are
  //  valid user IDs with values that are integers [v1–v9: (or a string that is
  //  an integer)], reject."
  const users = content['users'];
  if (users !== undefined) {
    if (!isObject(users)) return deny(`${r}.${1 + o}`, 'm.room.power_levels/users', 'users is not an object');
    for (const [user, value] of Object.entries(users)) {
      if (!isValidUserId(user, 'historical')) return deny(`${r}.${1 + o}`, 'm.room.power_levels/users', `${JSON.stringify(user)} in users is not a user ID`);
      if (parsePowerLevelValue(value, version) === undefined) {
        return deny(`${r}.${1 + o}`, 'm.room.power_levels/users', `users[${user}] is ${JSON.stringify(value)}, not a power level in room version ${version.id}`);
      }
    }
  }

  let p = o;
  // 4. (v12) "If the `users` property in `content` contains the `sender` of
  //    the `m.room.create` event or any of the `additional_creators` array (if
  //    present) from the `content` of the `m.room.create` event, reject."
  if (version.privilegedCreators) {
    p += 1;
    if (isObject(users)) {
      for (const creator of ctx.creators) {
        if (Object.prototype.hasOwnProperty.call(users, creator)) {
          return deny(`${r}.4`, 'm.room.power_levels/creator-in-users', `${creator} is a room creator and may not appear in users`);
        }
      }
    }
  }

  // "If there is no previous `m.room.power_levels` event in the room, allow."
  const previous = ctx.authState('m.room.power_levels', '');
  if (!previous) return ALLOW;
  const old = previous.content;

  // "For the properties `users_default`, `events_default`, `state_default`,
  //  `ban`, `redact`, `kick`, `invite` check if they were added, changed or
  //  removed. For each found alteration:"
  for (const property of POWER_LEVEL_PROPERTIES) {
    const before = parsePowerLevelValue(old[property], version);
    const after = parsePowerLevelValue(content[property], version);
    if (before === after) continue;
    // 1. "If the current value is higher than the `sender`'s current power level, reject."
    if (before !== undefined && before > senderLevel) {
      return deny(`${r}.${3 + p}.1`, 'm.room.power_levels/change-above-own', `${property} is ${before}, above ${event.sender}'s level ${senderLevel}`);
    }
    // 2. "If the new value is higher than the `sender`'s current power level, reject."
    if (after !== undefined && after > senderLevel) {
      return deny(`${r}.${3 + p}.2`, 'm.room.power_levels/raise-above-own', `${property} ${after} is above ${event.sender}'s level ${senderLevel}`);
    }
  }

  // "For each entry being changed in, or removed from, the `events` [v6+: or
  //  `notifications`] properties: 1. If the current value is greater than the
  //  `sender`'s current power level, reject."
  // "For each entry being added to, or changed in the `events` [v6+: or
  //  `notifications`] properties: 1. If the new value is greater than the
  //  `sender`'s current power level, reject."
  const maps: Array<'events' | 'notifications'> = version.limitNotificationsPowerLevels ? ['events', 'notifications'] : ['events'];
  const diffs = maps.map((property) => ({ property, entries: diffMap(old[property], content[property], version) }));
  for (const { property, entries } of diffs) {
    for (const { key, before } of entries) {
      if (before !== undefined && before > senderLevel) {
        return deny(`${r}.${4 + p}.1`, `m.room.power_levels/${property}-change-above-own`, `${property}[${key}] is ${before}, above ${event.sender}'s level ${senderLevel}`);
      }
    }
  }
  for (const { property, entries } of diffs) {
    for (const { key, after } of entries) {
      if (after !== undefined && after > senderLevel) {
        return deny(`${r}.${5 + p}.1`, `m.room.power_levels/${property}-raise-above-own`, `${property}[${key}] ${after} is above ${event.sender}'s level ${senderLevel}`);
      }
    }
  }

  // "For each entry being changed in, or removed from, the `users` property,
  //  other than the `sender`'s own entry: 1. If the current value is greater
  //  than or equal to the `sender`'s current power level, reject."
  const userDiff = diffMap(old['users'], users, version);
  for (const { key, before } of userDiff) {
    if (key === event.sender || before === undefined) continue;
    if (before >= senderLevel) {
      return deny(`${r}.${6 + p}.1`, 'm.room.power_levels/users-change-peer', `${key} has ${before}, not below ${event.sender}'s level ${senderLevel}`);
    }
  }
  // "For each entry being added to, or changed in, the `users` property:
  //  1. If the new value is greater than the `sender`'s current power level, reject."
  for (const { key, after } of userDiff) {
    if (after !== undefined && after > senderLevel) {
      return deny(`${r}.${7 + p}.1`, 'm.room.power_levels/users-raise-above-own', `users[${key}] ${after} is above ${event.sender}'s level ${senderLevel}`);
    }
  }
  // "Otherwise, allow."
  return ALLOW;
}

/** The entries of a level map that were added, changed or removed, with their parsed values. */
function diffMap(
  before: JsonValue | undefined,
  after: JsonValue | undefined,
  version: RoomVersion,
): Array<{ key: string; before: number | undefined; after: number | undefined }> {
  const a = readLevelMap(before, version);
  const b = readLevelMap(after, version);
  const out: Array<{ key: string; before: number | undefined; after: number | undefined }> = [];
  for (const key of new Set([...a.keys(), ...b.keys()])) {
    if (a.get(key) !== b.get(key)) out.push({ key, before: a.get(key), after: b.get(key) });
  }
  return out;
}
