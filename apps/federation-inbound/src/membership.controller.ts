import { Body, Controller, Get, Inject, Param, Put, Query } from '@nestjs/common';
import type { Bus } from '@atrium/bus';
import { Errors, MatrixError, requireJsonObject } from '@atrium/http';
import { domainOfId, isValidUserId, type JsonObject } from '@atrium/matrix';
import { BUS } from '@atrium/platform';
import {
  ROOM_SERVER_FEDERATION_SUBJECTS,
  toMatrixError,
  type FederatedMembership,
  type MakeMembershipRequest,
  type MakeMembershipResponse,
  type ReceiveInviteRequest,
  type ReceiveInviteResponse,
  type SendMembershipRequest,
  type SendMembershipResponse,
} from '@atrium/app-room-server';
import { FederationOrigin } from './origin';

/** A handshake waits behind the earlier inputs of its room, and send_join reads the room's state. */
const HANDSHAKE_TIMEOUT_MS = 60_000;

/** `ver=1&ver=2` (or one `ver`) as a list. */
function versions(ver: unknown): string[] | undefined {
  if (ver === undefined) return undefined;
  const list = Array.isArray(ver) ? ver : [ver];
  return list.filter((v): v is string => typeof v === 'string');
}

/**
 * The membership handshakes a remote server makes with this one as a
 * resident server (server-server-api "Joining Rooms", "Knocking upon a
 * room", "Leaving Rooms (Rejecting Invites)", "Inviting to a room"; the
 * joins-v1/v2, leaving-v1/v2, knocks and invites-v2 API files). Every route
 * sits behind the X-Matrix guard; the work is the room server's
 * (ROOM_SERVER_FEDERATION_SUBJECTS), so this controller checks what only the
 * request shows: the origin against the user, the body's shape.
 */
@Controller('_matrix/federation')
export class FederationMembershipController {
  constructor(@Inject(BUS) private readonly bus: Bus) {}

  private async ask<Req, Res>(subject: string, data: Req): Promise<Res> {
    try {
      return await this.bus.request<Req, Res>(subject, data, { timeoutMs: HANDSHAKE_TIMEOUT_MS });
    } catch (err) {
      throw toMatrixError(err);
    }
  }

  /** make_*: "The user ID for the [membership] event" must be a user of the requesting server. */
  private make(origin: string, roomId: string, userId: string, membership: FederatedMembership, ver?: unknown): Promise<MakeMembershipResponse> {
    if (!isValidUserId(userId, 'historical')) throw Errors.invalidParam(`Invalid user ID ${JSON.stringify(userId)}`);
    if (domainOfId(userId) !== origin) throw Errors.forbidden(`${userId} is not a user of ${origin}`);
    const request: MakeMembershipRequest = { room_id: roomId, user_id: userId, membership };
    if (membership !== 'leave') request.supported_versions = versions(ver);
    return this.ask(ROOM_SERVER_FEDERATION_SUBJECTS.makeMembership, request);
  }

  private send(origin: string, roomId: string, eventId: string, membership: FederatedMembership, body: unknown, omitMembers?: boolean): Promise<SendMembershipResponse> {
    const pdu = requireJsonObject(body) as JsonObject;
    const request: SendMembershipRequest = { origin, room_id: roomId, event_id: eventId, membership, pdu };
    if (omitMembers !== undefined) request.omit_members = omitMembers;
    return this.ask(ROOM_SERVER_FEDERATION_SUBJECTS.sendMembership, request);
  }

  // ---- joins (joins-v1.yaml, joins-v2.yaml) ----

  @Get('v1/make_join/:roomId/:userId')
  makeJoin(@FederationOrigin() origin: string, @Param('roomId') roomId: string, @Param('userId') userId: string, @Query('ver') ver: unknown): Promise<MakeMembershipResponse> {
    return this.make(origin, roomId, userId, 'join', ver);
  }

  /** joins-v2.yaml: the answer as an object (`members_omitted` false: this server always sends the full state). */
  @Put('v2/send_join/:roomId/:eventId')
  sendJoinV2(@FederationOrigin() origin: string, @Param('roomId') roomId: string, @Param('eventId') eventId: string, @Body() body: unknown, @Query('omit_members') omit: unknown): Promise<SendMembershipResponse> {
    return this.send(origin, roomId, eventId, 'join', body, omit === 'true');
  }

  /** joins-v1.yaml (deprecated): the same answer wrapped as `[200, {...}]`, without the v2 fields. */
  @Put('v1/send_join/:roomId/:eventId')
  async sendJoinV1(@FederationOrigin() origin: string, @Param('roomId') roomId: string, @Param('eventId') eventId: string, @Body() body: unknown): Promise<[number, JsonObject]> {
    const answer = await this.send(origin, roomId, eventId, 'join', body);
    return [200, { origin: answer.origin ?? '', state: answer.state ?? [], auth_chain: answer.auth_chain ?? [] }];
  }

  // ---- leaves (leaving-v1.yaml, leaving-v2.yaml) ----

  @Get('v1/make_leave/:roomId/:userId')
  makeLeave(@FederationOrigin() origin: string, @Param('roomId') roomId: string, @Param('userId') userId: string): Promise<MakeMembershipResponse> {
    return this.make(origin, roomId, userId, 'leave');
  }

  @Put('v2/send_leave/:roomId/:eventId')
  async sendLeaveV2(@FederationOrigin() origin: string, @Param('roomId') roomId: string, @Param('eventId') eventId: string, @Body() body: unknown): Promise<Record<string, never>> {
    await this.send(origin, roomId, eventId, 'leave', body);
    return {};
  }

  @Put('v1/send_leave/:roomId/:eventId')
  async sendLeaveV1(@FederationOrigin() origin: string, @Param('roomId') roomId: string, @Param('eventId') eventId: string, @Body() body: unknown): Promise<[number, Record<string, never>]> {
    await this.send(origin, roomId, eventId, 'leave', body);
    return [200, {}];
  }

  // ---- knocks (knocks.yaml) ----

  @Get('v1/make_knock/:roomId/:userId')
  makeKnock(@FederationOrigin() origin: string, @Param('roomId') roomId: string, @Param('userId') userId: string, @Query('ver') ver: unknown): Promise<MakeMembershipResponse> {
    return this.make(origin, roomId, userId, 'knock', ver);
  }

  @Put('v1/send_knock/:roomId/:eventId')
  async sendKnock(@FederationOrigin() origin: string, @Param('roomId') roomId: string, @Param('eventId') eventId: string, @Body() body: unknown): Promise<{ knock_room_state: JsonObject[] }> {
    const answer = await this.send(origin, roomId, eventId, 'knock', body);
    return { knock_room_state: answer.knock_room_state ?? [] };
  }

  // ---- invites (invites-v1.yaml, invites-v2.yaml) ----

  /**
   * invites-v1.yaml (deprecated): the event itself is the body, the stripped
   * state in its `unsigned.invite_room_state`; "Servers which receive a v1
   * invite request must assume that the room version is either "1" or "2""
   * (the two share one event format; the stripped create event says which).
   */
  @Put('v1/invite/:roomId/:eventId')
  async inviteV1(@FederationOrigin() origin: string, @Param('roomId') roomId: string, @Param('eventId') eventId: string, @Body() rawBody: unknown): Promise<[number, ReceiveInviteResponse]> {
    const event = requireJsonObject(rawBody) as JsonObject;
    const unsigned = event['unsigned'];
    const state = typeof unsigned === 'object' && unsigned !== null && !Array.isArray(unsigned) ? unsigned['invite_room_state'] : undefined;
    const stateList = Array.isArray(state) ? (state as JsonObject[]) : [];
    const create = stateList.find((e) => typeof e === 'object' && e !== null && e['type'] === 'm.room.create');
    const createContent = create?.['content'];
    const declared = typeof createContent === 'object' && createContent !== null && !Array.isArray(createContent) ? createContent['room_version'] : undefined;
    const request: ReceiveInviteRequest = { origin, room_id: roomId, event_id: eventId, room_version: declared === '2' ? '2' : '1', event, invite_room_state: stateList };
    return [200, await this.ask<ReceiveInviteRequest, ReceiveInviteResponse>(ROOM_SERVER_FEDERATION_SUBJECTS.receiveInvite, request)];
  }

  @Put('v2/invite/:roomId/:eventId')
  async invite(@FederationOrigin() origin: string, @Param('roomId') roomId: string, @Param('eventId') eventId: string, @Body() rawBody: unknown): Promise<ReceiveInviteResponse> {
    const body = requireJsonObject(rawBody);
    const roomVersion = body['room_version'];
    const event = body['event'];
    if (typeof roomVersion !== 'string') throw new MatrixError(400, 'M_MISSING_PARAM', 'room_version is required');
    if (typeof event !== 'object' || event === null || Array.isArray(event)) throw new MatrixError(400, 'M_MISSING_PARAM', 'event is required');
    const state = body['invite_room_state'];
    if (state !== undefined && !Array.isArray(state)) throw Errors.invalidParam('invite_room_state must be a list');
    const request: ReceiveInviteRequest = { origin, room_id: roomId, event_id: eventId, room_version: roomVersion, event: event as JsonObject };
    if (Array.isArray(state)) request.invite_room_state = state as JsonObject[];
    return this.ask<ReceiveInviteRequest, ReceiveInviteResponse>(ROOM_SERVER_FEDERATION_SUBJECTS.receiveInvite, request);
  }
}
