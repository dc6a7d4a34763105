import { Body, Controller, Get, HttpCode, Inject, Optional, Param, Post, Put, Query, UseGuards } from '@nestjs/common';
import type { AccountStore } from '@atrium/accounts';
import { AccessTokenGuard, AllowGuests, CurrentRequester, Errors, MatrixError, optionalString, optionalStringArray, optionalJsonObject, requireJsonObject, requireString, type Requester } from '@atrium/http';
import { domainOfId, getRoomVersion, isValidUserId, type JsonObject } from '@atrium/matrix';
import { ACCOUNT_STORE } from '@atrium/platform';
import { ProfileStore } from '@atrium/user-data';
import { bundleAggregations, checkNewRelation } from '@atrium/relations';
import { canSeeEvent, eventOf, toClientEvent, type ClientEvent, type EventRecord, type RoomRecord } from '@atrium/rooms';
import { CLIENT_PREFIXES } from '../auth/auth.controller';
import { IgnoredUsers } from '../ignored-users/ignored-users';
import { PresenceActivity } from '../user/presence-idle';
import { planCreateRoom } from './create-room';
import { queryList, RemoteMembership } from './remote-membership';
import { RoomServerClient } from './room-server.client';
import { RoomsService } from './rooms.service';

type Membership = 'join' | 'invite' | 'leave' | 'ban' | 'knock';

/** A restricted join this server may not authorise: no local member with the invite level (403 unless another server can). */
class NoLocalAuthoriser extends MatrixError {
  constructor() {
    super(403, 'M_FORBIDDEN', 'No user of this server in the room may authorise your join');
  }
}
const MEMBERSHIPS: readonly string[] = ['join', 'invite', 'leave', 'ban', 'knock'];

/**
 * Room endpoints of the Client-Server API: creation, membership, sending,
 * state, single events, members. Spec files under
 * data/api/client-server/: create_room.yaml, joining.yaml, inviting.yaml,
 * leaving.yaml, kicking.yaml, banning.yaml, knocking.yaml,
 * list_joined_rooms.yaml, rooms.yaml, room_send.yaml, room_state.yaml,
 * redaction.yaml. Writes go to the room server over the bus.
 */
@Controller(CLIENT_PREFIXES)
@UseGuards(AccessTokenGuard)
export class RoomsController {
  constructor(
    private readonly rooms: RoomsService,
    private readonly roomServer: RoomServerClient,
    @Inject(ACCOUNT_STORE) private readonly accounts: AccountStore,
    private readonly profiles: ProfileStore,
    @Optional() private readonly remote?: RemoteMembership,
    @Optional() private readonly ignoredUsers?: IgnoredUsers,
    @Optional() private readonly presenceActivity?: PresenceActivity,
  ) {}

  private client(record: EventRecord, requester: Requester): ClientEvent {
    return toClientEvent(record, { requester });
  }

  // ---- creation ----

  @Post('createRoom')
  @HttpCode(200)
  async createRoom(@CurrentRequester() requester: Requester, @Body() rawBody: unknown): Promise<{ room_id: string }> {
    const plan = planCreateRoom({ sender: requester.userId, serverName: this.rooms.serverName, body: requireJsonObject(rawBody), defaultVersion: this.rooms.defaultRoomVersion });
    for (const draft of plan.events) {
      if (draft.type !== 'm.room.member') continue;
      if (draft.content['membership'] === 'invite') await this.checkInvitee(draft.state_key);
      // The creator's join and the invites carry the users' profiles, as every other membership event does.
      draft.content = { ...(await this.memberProfile(draft.state_key)), ...draft.content };
    }
    return this.roomServer.createRoom(plan);
  }

  /**
   * A local invitee must exist (Synapse and others answer 404 for an unknown
   * user); a remote one is asked by the room server (PUT /v2/invite to its
   * server, server-server-api "Inviting to a room").
   */
  private async checkInvitee(userId: string): Promise<void> {
    if (!isValidUserId(userId, 'historical')) throw Errors.invalidParam(`Invalid user ID ${JSON.stringify(userId)}`);
    if (domainOfId(userId) !== this.rooms.serverName) return;
    const user = await this.accounts.getUser(userId);
    if (!user || user.deactivated) throw Errors.notFound(`Unknown user ${userId}`);
  }

  /** room_upgrades.yaml: POST /rooms/{roomId}/upgrade {new_version, additional_creators?}. */
  @Post('rooms/:roomId/upgrade')
  @HttpCode(200)
  async upgrade(@CurrentRequester() requester: Requester, @Param('roomId') roomId: string, @Body() rawBody: unknown): Promise<{ replacement_room: string }> {
    const body = requireJsonObject(rawBody);
    const newVersion = requireString(body, 'new_version');
    const additional = optionalStringArray(body, 'additional_creators');
    for (const userId of additional ?? []) {
      if (!isValidUserId(userId, 'historical')) throw Errors.invalidParam(`Invalid user ID ${JSON.stringify(userId)} in "additional_creators"`);
    }
    this.rooms.checkRoomId(roomId);
    if (!getRoomVersion(newVersion)) throw new MatrixError(400, 'M_UNSUPPORTED_ROOM_VERSION', `Room version ${JSON.stringify(newVersion)} is not supported`);
    return this.roomServer.upgradeRoom({ room_id: roomId, sender: requester.userId, new_version: newVersion, additional_creators: additional });
  }

  // ---- membership ----

  /** `displayname` and `avatar_url` of a local user's profile, as membership events carry them (empty values left out). */
  private async memberProfile(userId: string): Promise<JsonObject> {
    if (domainOfId(userId) !== this.rooms.serverName) return {};
    const fields = await this.profiles.get(userId);
    const out: JsonObject = {};
    for (const key of ['displayname', 'avatar_url'] as const) {
      const value = fields[key];
      if (typeof value === 'string' && value !== '') out[key] = value;
    }
    return out;
  }

  private async sendMembership(roomId: string, sender: string, target: string, membership: Membership, body: Record<string, unknown>, extra: JsonObject = {}): Promise<string> {
    const reason = optionalString(body, 'reason');
    // "When homeservers emit room membership events for their own users, they should include
    // the display name and avatar URL fields in these events" (profile module).
    const profile = membership === 'join' || membership === 'knock' || membership === 'invite' ? await this.memberProfile(target) : {};
    const content: JsonObject = { ...profile, ...extra, membership };
    if (reason !== undefined) content['reason'] = reason;
    const result = await this.roomServer.sendEvent({ room_id: roomId, sender, type: 'm.room.member', state_key: target, content });
    return result.event_id;
  }

  /** The user ID in a body (`user_id`), required and valid. */
  private targetUser(body: Record<string, unknown>): string {
    const userId = requireString(body, 'user_id');
    if (!isValidUserId(userId, 'historical')) throw Errors.invalidParam(`Invalid user ID ${JSON.stringify(userId)}`);
    return userId;
  }

  /**
   * joining.yaml: POST /join/{roomIdOrAlias}. `via` (and the deprecated
   * `server_name`) name servers to join through when this server is not in
   * the room; a remote alias adds the servers its directory names.
   */
  @Post('join/:roomIdOrAlias')
  @HttpCode(200)
  async joinByIdOrAlias(
    @CurrentRequester() requester: Requester,
    @Param('roomIdOrAlias') target: string,
    @Body() rawBody: unknown,
    @Query('via') via?: unknown,
    @Query('server_name') serverName?: unknown,
  ): Promise<{ room_id: string }> {
    const body = optionalJsonObject(rawBody);
    const given = [...queryList(via), ...queryList(serverName)];
    if (!target.startsWith('#')) return this.join(requester, target, body, given);
    if (!this.remote) return this.join(requester, await this.rooms.resolveAlias(target), body, given);
    const resolved = await this.remote.resolveAlias(target);
    return this.join(requester, resolved.roomId, body, [...given, ...resolved.servers]);
  }

  @Post('rooms/:roomId/join')
  @AllowGuests()
  @HttpCode(200)
  async joinById(@CurrentRequester() requester: Requester, @Param('roomId') roomId: string, @Body() rawBody: unknown): Promise<{ room_id: string }> {
    return this.join(requester, roomId, optionalJsonObject(rawBody));
  }

  private async join(requester: Requester, roomId: string, body: Record<string, unknown>, via: readonly string[] = []): Promise<{ room_id: string }> {
    this.rooms.checkRoomId(roomId);
    const room = await this.rooms.store.getRoom(roomId);
    if (!room || (this.remote && !(await this.remote.isResident(roomId)))) {
      // A room this server does not know, or no longer has a member in: the join goes
      // through a server that is in it (server-server-api "Joining Rooms").
      if (!this.remote) throw Errors.notFound(`Room ${roomId} is not known to this server`);
      // Guests join only rooms whose guest access this server can see (client-server-api "Guest access").
      if (requester.isGuest) throw Errors.guestAccessForbidden();
      return this.remoteMembership(requester, roomId, 'join', body, via);
    }
    const current = await this.rooms.store.getMembership(roomId, requester.userId);
    // Already joined: nothing changes, so no new event (a repeated join is not a profile change here).
    if (current?.membership === 'join') return { room_id: roomId };
    if (requester.isGuest) {
      // "Servers MUST only allow guest users to join rooms if the m.room.guest_access state
      // event is present on the room, and has the guest_access value can_join."
      const guestAccess = await this.rooms.store.currentStateEvent(roomId, 'm.room.guest_access', '');
      if (!guestAccess || eventOf(guestAccess).content['guest_access'] !== 'can_join') throw Errors.guestAccessForbidden();
    }
    let extra: JsonObject;
    try {
      extra = await this.restrictedJoinAuthoriser(room, requester.userId, current?.membership);
    } catch (err) {
      // server-server-api "Restricted rooms": a resident server that cannot authorise the join
      // itself joins through another resident server that may (make_join/send_join there).
      const others = this.remote ? await this.otherResidentServers(roomId) : [];
      if (!(err instanceof NoLocalAuthoriser) || others.length === 0) throw err;
      return this.remoteMembership(requester, roomId, 'join', body, [...via, ...others]);
    }
    await this.sendMembership(roomId, requester.userId, requester.userId, 'join', body, extra);
    return { room_id: roomId };
  }

  /** The servers of the room's joined members other than this one. */
  private async otherResidentServers(roomId: string): Promise<string[]> {
    const servers = new Set<string>();
    for (const member of await this.rooms.store.joinedUsers(roomId)) {
      const server = domainOfId(member);
      if (server && server !== this.rooms.serverName) servers.add(server);
    }
    return [...servers];
  }

  /**
   * Restricted rooms (room versions 8+, client-server-api "Restricted rooms";
   * auth rules "If the join_rule is restricted or knock_restricted"): a user
   * who is not invited may join when they are joined to one of the rooms the
   * `allow` list names. The join must then carry
   * `join_authorised_via_users_server`: a user of this server, joined to the
   * room, who could have invited them. Returns the extra content ({} when the
   * join needs none; the auth rules refuse a join that needed one and lacks it).
   */
  private async restrictedJoinAuthoriser(room: RoomRecord, userId: string, membership: string | undefined): Promise<JsonObject> {
    const version = this.rooms.versionOf(room);
    if (!version.restrictedJoin || membership === 'invite') return {};
    const joinRules = await this.rooms.store.currentStateEvent(room._id, 'm.room.join_rules', '');
    const content = joinRules ? eventOf(joinRules).content : {};
    const rule = content['join_rule'];
    if (rule !== 'restricted' && !(rule === 'knock_restricted' && version.knockRestricted)) return {};
    const allow = Array.isArray(content['allow']) ? content['allow'] : [];
    let allowed = false;
    for (const entry of allow) {
      if (!entry || typeof entry !== 'object' || Array.isArray(entry)) continue;
      const condition = entry as JsonObject;
      if (condition['type'] !== 'm.room_membership' || typeof condition['room_id'] !== 'string') continue;
      if ((await this.rooms.store.getMembership(condition['room_id'], userId))?.membership === 'join') {
        allowed = true;
        break;
      }
    }
    if (!allowed) return {};
    const inviteLevel = await this.rooms.inviteLevel(room);
    for (const member of await this.rooms.store.joinedUsers(room._id)) {
      if (domainOfId(member) !== this.rooms.serverName) continue;
      if ((await this.rooms.powerLevel(room, member)) >= inviteLevel) return { join_authorised_via_users_server: member };
    }
    throw new NoLocalAuthoriser();
  }

  /**
   * A membership change through other servers (make_*, send_*, run by the
   * room server): the servers the client named or the alias gave, then the
   * room ID's server and the inviter's.
   */
  private async remoteMembership(requester: Requester, roomId: string, membership: 'join' | 'leave' | 'knock', body: Record<string, unknown>, via: readonly string[]): Promise<{ room_id: string }> {
    const remote = this.remote as RemoteMembership;
    const servers = await remote.candidateServers(roomId, requester.userId, via);
    const content: JsonObject = membership === 'leave' ? {} : await this.memberProfile(requester.userId);
    const reason = optionalString(body, 'reason');
    if (reason !== undefined) content['reason'] = reason;
    await this.roomServer.remoteMembership({ room_id: roomId, user_id: requester.userId, membership, servers, content });
    return { room_id: roomId };
  }

  /** knocking.yaml (room versions 7+; older versions refuse `knock` in the auth rules). `via`/`server_name` as for joins. */
  @Post('knock/:roomIdOrAlias')
  @HttpCode(200)
  async knock(
    @CurrentRequester() requester: Requester,
    @Param('roomIdOrAlias') target: string,
    @Body() rawBody: unknown,
    @Query('via') via?: unknown,
    @Query('server_name') serverName?: unknown,
  ): Promise<{ room_id: string }> {
    const body = optionalJsonObject(rawBody);
    const given = [...queryList(via), ...queryList(serverName)];
    let roomId: string;
    if (target.startsWith('#') && this.remote) {
      const resolved = await this.remote.resolveAlias(target);
      roomId = resolved.roomId;
      given.push(...resolved.servers);
    } else {
      roomId = target.startsWith('#') ? await this.rooms.resolveAlias(target) : this.rooms.checkRoomId(target);
    }
    const room = await this.rooms.store.getRoom(roomId);
    if (this.remote && (!room || !(await this.remote.isResident(roomId)))) return this.remoteMembership(requester, roomId, 'knock', body, given);
    if (!room) throw Errors.notFound(`Room ${roomId} is not known to this server`);
    if (!this.rooms.versionOf(room).knock) throw Errors.forbidden(`Room version ${room.version} does not support knocking`);
    await this.sendMembership(roomId, requester.userId, requester.userId, 'knock', body);
    return { room_id: roomId };
  }

  @Post('rooms/:roomId/invite')
  @HttpCode(200)
  async invite(@CurrentRequester() requester: Requester, @Param('roomId') roomId: string, @Body() rawBody: unknown): Promise<Record<string, never>> {
    const body = requireJsonObject(rawBody);
    if (body['user_id'] === undefined && body['medium'] !== undefined) {
      throw new MatrixError(400, 'M_UNRECOGNIZED', 'Third-party invites are not supported by this server');
    }
    const target = this.targetUser(body);
    this.rooms.checkRoomId(roomId);
    await this.checkInvitee(target);
    await this.sendMembership(roomId, requester.userId, target, 'invite', body);
    return {};
  }

  /** leaving.yaml: POST /rooms/{roomId}/leave (also rejects an invite or withdraws a knock). */
  @Post('rooms/:roomId/leave')
  @AllowGuests()
  @HttpCode(200)
  async leave(@CurrentRequester() requester: Requester, @Param('roomId') roomId: string, @Body() rawBody: unknown): Promise<Record<string, never>> {
    const body = optionalJsonObject(rawBody);
    this.rooms.checkRoomId(roomId);
    if (this.remote && !(await this.remote.isResident(roomId))) {
      // Rejecting an invite or withdrawing a knock in a room this server is not in goes
      // through the inviting server (server-server-api "Leaving Rooms (Rejecting Invites)").
      const current = await this.rooms.store.getMembership(roomId, requester.userId);
      if (current && (current.membership === 'invite' || current.membership === 'knock')) {
        await this.remoteMembership(requester, roomId, 'leave', body, []);
        return {};
      }
    }
    await this.rooms.requireRoom(roomId, () => Errors.notFound(`Room ${roomId} is not known to this server`));
    await this.sendMembership(roomId, requester.userId, requester.userId, 'leave', body);
    return {};
  }

  /** leaving.yaml: POST /rooms/{roomId}/forget: "400: The user has not left the room" (M_UNKNOWN). */
  @Post('rooms/:roomId/forget')
  @HttpCode(200)
  async forget(@CurrentRequester() requester: Requester, @Param('roomId') roomId: string, @Body() rawBody: unknown): Promise<Record<string, never>> {
    optionalJsonObject(rawBody);
    this.rooms.checkRoomId(roomId);
    const membership = await this.rooms.store.getMembership(roomId, requester.userId);
    if (membership && (membership.membership === 'join' || membership.membership === 'invite' || membership.membership === 'knock')) {
      throw new MatrixError(400, 'M_UNKNOWN', 'The user has not left the room');
    }
    if (membership) await this.rooms.store.forget(roomId, requester.userId);
    return {};
  }

  @Post('rooms/:roomId/kick')
  @HttpCode(200)
  async kick(@CurrentRequester() requester: Requester, @Param('roomId') roomId: string, @Body() rawBody: unknown): Promise<Record<string, never>> {
    const body = requireJsonObject(rawBody);
    const target = this.targetUser(body);
    this.rooms.checkRoomId(roomId);
    // A kick removes a member: "The user must be joined to the room" (or invited/knocking).
    const membership = await this.rooms.store.getMembership(roomId, target);
    if (membership && !['join', 'invite', 'knock'].includes(membership.membership) && (await this.rooms.store.getRoom(roomId))) {
      throw Errors.forbidden(`${target} is not in the room`);
    }
    await this.sendMembership(roomId, requester.userId, target, 'leave', body);
    return {};
  }

  @Post('rooms/:roomId/ban')
  @HttpCode(200)
  async ban(@CurrentRequester() requester: Requester, @Param('roomId') roomId: string, @Body() rawBody: unknown): Promise<Record<string, never>> {
    const body = requireJsonObject(rawBody);
    const target = this.targetUser(body);
    this.rooms.checkRoomId(roomId);
    await this.sendMembership(roomId, requester.userId, target, 'ban', body);
    return {};
  }

  @Post('rooms/:roomId/unban')
  @HttpCode(200)
  async unban(@CurrentRequester() requester: Requester, @Param('roomId') roomId: string, @Body() rawBody: unknown): Promise<Record<string, never>> {
    const body = requireJsonObject(rawBody);
    const target = this.targetUser(body);
    this.rooms.checkRoomId(roomId);
    // banning.yaml unban: "The user must be banned" — otherwise this would be a kick.
    const membership = await this.rooms.store.getMembership(roomId, target);
    if (membership?.membership !== 'ban' && (await this.rooms.store.getRoom(roomId))) throw Errors.forbidden(`${target} is not banned`);
    await this.sendMembership(roomId, requester.userId, target, 'leave', body);
    return {};
  }

  @Get('joined_rooms')
  async joinedRooms(@CurrentRequester() requester: Requester): Promise<{ joined_rooms: string[] }> {
    return { joined_rooms: (await this.rooms.store.roomsOfUser(requester.userId, ['join'])).map((m) => m.room_id) };
  }

  // ---- members ----

  /** rooms.yaml GET /rooms/{roomId}/members: `at`, `membership`, `not_membership`. */
  @Get('rooms/:roomId/members')
  @AllowGuests()
  async members(
    @CurrentRequester() requester: Requester,
    @Param('roomId') roomId: string,
    @Query('at') at?: string,
    @Query('membership') membership?: string,
    @Query('not_membership') notMembership?: string,
  ): Promise<{ chunk: ClientEvent[] }> {
    for (const [name, value] of [['membership', membership], ['not_membership', notMembership]] as const) {
      if (value !== undefined && !MEMBERSHIPS.includes(value)) throw Errors.invalidParam(`Invalid ${name} ${JSON.stringify(value)}`);
    }
    const access = await this.rooms.stateAccess(roomId, requester.userId);
    let position: number | undefined = access.kind === 'at' ? access.position : undefined;
    if (at !== undefined) {
      // Sync tokens are `s<events>_…` (docs/client-server-design.md); a bare stream position is accepted too.
      const match = /^[st]?(\d+)/.exec(at);
      if (!match) throw Errors.invalidParam(`Invalid "at" token ${JSON.stringify(at)}`);
      const asked = Number(match[1]);
      position = position === undefined ? asked : Math.min(position, asked);
    }
    const state = position === undefined ? await this.rooms.store.currentState(roomId, 'm.room.member') : (await this.rooms.store.stateAtPosition(roomId, position)).filter((e) => e.type === 'm.room.member');
    const chunk = state
      .filter((e) => (membership === undefined || e.membership === membership) && (notMembership === undefined || e.membership !== notMembership))
      .map((e) => this.client(e, requester));
    return { chunk };
  }

  /** rooms.yaml GET /rooms/{roomId}/joined_members: only for members of the room. */
  @Get('rooms/:roomId/joined_members')
  async joinedMembers(@CurrentRequester() requester: Requester, @Param('roomId') roomId: string): Promise<{ joined: Record<string, { display_name?: string; avatar_url?: string }> }> {
    const access = await this.rooms.stateAccess(roomId, requester.userId);
    const state = access.kind === 'current' ? await this.rooms.store.currentState(roomId, 'm.room.member') : (await this.rooms.stateEvents(roomId, access)).filter((e) => e.type === 'm.room.member');
    const joined: Record<string, { display_name?: string; avatar_url?: string }> = {};
    for (const record of state) {
      if (record.membership !== 'join' || record.state_key === null) continue;
      const content = eventOf(record).content;
      const member: { display_name?: string; avatar_url?: string } = {};
      if (typeof content['displayname'] === 'string') member.display_name = content['displayname'];
      if (typeof content['avatar_url'] === 'string') member.avatar_url = content['avatar_url'];
      joined[record.state_key] = member;
    }
    return { joined };
  }

  // ---- sending ----

  /** room_send.yaml: PUT /rooms/{roomId}/send/{eventType}/{txnId}; the same txnId from the same device gives the same event. */
  @Put('rooms/:roomId/send/:eventType/:txnId')
  @AllowGuests()
  async send(
    @CurrentRequester() requester: Requester,
    @Param('roomId') roomId: string,
    @Param('eventType') eventType: string,
    @Param('txnId') txnId: string,
    @Body() rawBody: unknown,
  ): Promise<{ event_id: string }> {
    const content = requireJsonObject(rawBody) as JsonObject;
    this.rooms.checkRoomId(roomId);
    let redacts: string | undefined;
    let sentContent = content;
    if (eventType === 'm.room.redaction') {
      // "Homeservers MUST allow clients to send m.room.redaction events with this endpoint for
      // all room versions. In rooms with a version older than 11 they MUST move the redacts
      // property inside the content to the top level of the event."
      const value = content['redacts'];
      if (typeof value !== 'string') throw Errors.badJson('m.room.redaction needs "redacts" in its content');
      redacts = value;
      const room = await this.rooms.store.getRoom(roomId);
      if (room && !this.rooms.versionOf(room).redactsInContent) {
        sentContent = { ...content };
        delete sentContent['redacts'];
      }
    }
    const scope = `send\n${roomId}\n${eventType}`;
    // Thread roots that are relations, duplicate annotations (libs/relations checkNewRelation); a retried txn is not re-checked.
    // Only events with a relation have checks, so only they pay for the transaction lookup.
    if (content['m.relates_to'] !== undefined && !(await this.rooms.store.lookupTxn({ userId: requester.userId, deviceId: requester.deviceId, scope, txnId }))) {
      await checkNewRelation(this.rooms.store, roomId, requester.userId, eventType, content);
    }
    const result = await this.roomServer.sendEvent({
      room_id: roomId,
      sender: requester.userId,
      type: eventType,
      content: sentContent,
      redacts,
      txn: { device_id: requester.deviceId, scope, txn_id: txnId },
    });
    // Presence "Last active ago": "A pro-active event may be sending a message to a room" (not awaited: no latency added).
    void this.presenceActivity?.bump(requester.userId);
    return { event_id: result.event_id };
  }

  /** redaction.yaml: PUT /rooms/{roomId}/redact/{eventId}/{txnId} with an optional reason. */
  @Put('rooms/:roomId/redact/:eventId/:txnId')
  async redact(
    @CurrentRequester() requester: Requester,
    @Param('roomId') roomId: string,
    @Param('eventId') eventId: string,
    @Param('txnId') txnId: string,
    @Body() rawBody: unknown,
  ): Promise<{ event_id: string }> {
    const body = optionalJsonObject(rawBody);
    const reason = optionalString(body, 'reason');
    this.rooms.checkRoomId(roomId);
    if (!eventId.startsWith('$')) throw Errors.invalidParam(`Invalid event ID ${JSON.stringify(eventId)}`);
    const content: JsonObject = {};
    if (reason !== undefined) content['reason'] = reason;
    const result = await this.roomServer.sendEvent({
      room_id: roomId,
      sender: requester.userId,
      type: 'm.room.redaction',
      content,
      redacts: eventId,
      txn: { device_id: requester.deviceId, scope: `redact\n${roomId}\n${eventId}`, txn_id: txnId },
    });
    return { event_id: result.event_id };
  }

  // ---- state ----

  @Put('rooms/:roomId/state/:eventType')
  @AllowGuests()
  async putStateNoKey(@CurrentRequester() requester: Requester, @Param('roomId') roomId: string, @Param('eventType') eventType: string, @Body() rawBody: unknown): Promise<{ event_id: string }> {
    return this.putState(requester, roomId, eventType, '', rawBody);
  }

  @Put('rooms/:roomId/state/:eventType/*')
  @AllowGuests()
  async putStateWithKey(
    @CurrentRequester() requester: Requester,
    @Param('roomId') roomId: string,
    @Param('eventType') eventType: string,
    @Param('*') stateKey: string,
    @Body() rawBody: unknown,
  ): Promise<{ event_id: string }> {
    return this.putState(requester, roomId, eventType, stateKey, rawBody);
  }

  /** room_state.yaml: PUT /rooms/{roomId}/state/{eventType}/{stateKey}. */
  private async putState(requester: Requester, roomId: string, eventType: string, stateKey: string, rawBody: unknown): Promise<{ event_id: string }> {
    const content = requireJsonObject(rawBody) as JsonObject;
    this.rooms.checkRoomId(roomId);
    if (eventType === 'm.room.member' && content['membership'] !== undefined && typeof content['membership'] !== 'string') {
      throw Errors.badJson('"membership" must be a string');
    }
    if (eventType === 'm.room.canonical_alias') await this.checkCanonicalAlias(roomId, content);
    const result = await this.roomServer.sendEvent({ room_id: roomId, sender: requester.userId, type: eventType, state_key: stateKey, content });
    return { event_id: result.event_id };
  }

  /**
   * room_state.yaml 400 M_BAD_ALIAS: "The sender's request is malformed (the
   * room alias or alt_aliases) … or one of the aliases does not point to the room."
   * Local aliases are checked; remote ones cannot be yet and are refused.
   */
  private async checkCanonicalAlias(roomId: string, content: JsonObject): Promise<void> {
    const aliases: unknown[] = [];
    if (content['alias'] !== undefined && content['alias'] !== null) aliases.push(content['alias']);
    const alt = content['alt_aliases'];
    if (alt !== undefined) {
      if (!Array.isArray(alt)) throw Errors.badJson('"alt_aliases" must be a list');
      aliases.push(...alt);
    }
    for (const alias of aliases) {
      if (typeof alias !== 'string') throw new MatrixError(400, 'M_INVALID_PARAM', 'Aliases must be strings');
      let target: string;
      try {
        target = await this.rooms.resolveAlias(alias);
      } catch {
        throw new MatrixError(400, 'M_BAD_ALIAS', `Alias ${alias} does not point to this room`);
      }
      if (target !== roomId) throw new MatrixError(400, 'M_BAD_ALIAS', `Alias ${alias} does not point to this room`);
    }
  }

  @Get('rooms/:roomId/state/:eventType')
  @AllowGuests()
  async getStateNoKey(@CurrentRequester() requester: Requester, @Param('roomId') roomId: string, @Param('eventType') eventType: string, @Query('format') format?: string): Promise<JsonObject | ClientEvent> {
    return this.getStateEvent(requester, roomId, eventType, '', format);
  }

  @Get('rooms/:roomId/state/:eventType/*')
  @AllowGuests()
  async getStateWithKey(
    @CurrentRequester() requester: Requester,
    @Param('roomId') roomId: string,
    @Param('eventType') eventType: string,
    @Param('*') stateKey: string,
    @Query('format') format?: string,
  ): Promise<JsonObject | ClientEvent> {
    return this.getStateEvent(requester, roomId, eventType, stateKey, format);
  }

  /** rooms.yaml GET state/{eventType}/{stateKey}: content by default, the whole event with format=event. */
  private async getStateEvent(requester: Requester, roomId: string, eventType: string, stateKey: string, format: string | undefined): Promise<JsonObject | ClientEvent> {
    if (format !== undefined && format !== 'content' && format !== 'event') throw Errors.invalidParam('"format" must be "content" or "event"');
    const access = await this.rooms.stateAccess(roomId, requester.userId);
    const record =
      access.kind === 'current'
        ? await this.rooms.store.currentStateEvent(roomId, eventType, stateKey)
        : ((await this.rooms.stateEvents(roomId, access)).find((e) => e.type === eventType && e.state_key === stateKey) ?? null);
    if (!record) throw Errors.notFound(`No ${eventType} state with key ${JSON.stringify(stateKey)} in this room`);
    return format === 'event' ? this.client(record, requester) : eventOf(record).content;
  }

  @Get('rooms/:roomId/state')
  @AllowGuests()
  async getState(@CurrentRequester() requester: Requester, @Param('roomId') roomId: string): Promise<ClientEvent[]> {
    const access = await this.rooms.stateAccess(roomId, requester.userId);
    return (await this.rooms.stateEvents(roomId, access)).map((e) => this.client(e, requester));
  }

  // ---- single event ----

  /**
   * rooms.yaml GET /rooms/{roomId}/event/{eventId}: "You must have permission
   * to retrieve this event"; an event the user may not see is reported as
   * not found (404 M_NOT_FOUND), so its existence is not revealed.
   */
  @Get('rooms/:roomId/event/:eventId')
  @AllowGuests()
  async getEvent(@CurrentRequester() requester: Requester, @Param('roomId') roomId: string, @Param('eventId') eventId: string): Promise<ClientEvent> {
    this.rooms.checkRoomId(roomId);
    const notFound = (): MatrixError => Errors.notFound('Event not found');
    const record = await this.rooms.store.getEvent(eventId);
    if (!record || record.room_id !== roomId) throw notFound();
    if (!(await canSeeEvent(this.rooms.store, requester.userId, record))) throw notFound();
    // "Ignoring Users": "the client will no longer receive events sent by that user, with the exception of state events".
    const ignored = await this.ignoredUsers?.of(requester.userId);
    if (record.state_key === null && ignored?.has(record.sender)) throw notFound();
    // client-server-api "Aggregations of child events": /event carries the bundled aggregations.
    const [event] = await bundleAggregations(this.rooms.store, [this.client(record, requester) as unknown as Record<string, unknown>], [record], { userId: requester.userId, ignoredUsers: ignored });
    return event as unknown as ClientEvent;
  }
}
