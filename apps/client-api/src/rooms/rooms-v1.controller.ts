import { Controller, Get, Inject, Param, Query, Req, UseGuards } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { ACCESS_TOKEN_AUTHENTICATOR, AccessTokenGuard, CurrentRequester, Errors, extractAccessToken, type AccessTokenAuthenticator, type Requester } from '@atrium/http';
import { canSeeEvent } from '@atrium/rooms';
import { RoomsService, type RoomSummary } from './rooms.service';

/**
 * Room endpoints under /_matrix/client/v1: GET /rooms/{roomId}/timestamp_to_event
 * (room_event_by_timestamp.yaml, v1.6) and GET /room_summary/{roomIdOrAlias}
 * (room_summary.yaml, v1.15).
 */
@Controller('_matrix/client/v1')
export class RoomsV1Controller {
  constructor(
    private readonly rooms: RoomsService,
    @Inject(ACCESS_TOKEN_AUTHENTICATOR) private readonly authenticator: AccessTokenAuthenticator,
  ) {}

  /**
   * "Get the ID of the event closest to the given timestamp, in the direction
   * specified by the dir parameter." Only rooms the user may read; an event
   * the user may not see is not returned (404, as when none is found).
   */
  @Get('rooms/:roomId/timestamp_to_event')
  @UseGuards(AccessTokenGuard)
  async timestampToEvent(
    @CurrentRequester() requester: Requester,
    @Param('roomId') roomId: string,
    @Query('ts') tsRaw?: string,
    @Query('dir') dir?: string,
  ): Promise<{ event_id: string; origin_server_ts: number }> {
    if (tsRaw === undefined) throw Errors.missingParam('ts');
    if (dir === undefined) throw Errors.missingParam('dir');
    if (!/^\d+$/.test(tsRaw)) throw Errors.invalidParam('"ts" must be a timestamp in milliseconds');
    if (dir !== 'f' && dir !== 'b') throw Errors.invalidParam('"dir" must be "f" or "b"');
    await this.rooms.stateAccess(roomId, requester.userId);
    const ts = Number(tsRaw);
    const record = await this.rooms.store.eventAtTimestamp(roomId, ts, dir);
    if (!record || !(await canSeeEvent(this.rooms.store, requester.userId, record))) {
      throw Errors.notFound(`Unable to find event from ${ts} in ${dir === 'f' ? 'forward' : 'backward'} direction`);
    }
    return { event_id: record._id, origin_server_ts: record.origin_server_ts };
  }

  /**
   * "Servers MAY allow unauthenticated access to this API if ... the room has a
   * join rule of public, knock or knock_restricted [or] a world_readable history
   * visibility." Members (any membership), and users who could join a
   * restricted room, see it too; every other room is "not found".
   */
  @Get('room_summary/:roomIdOrAlias')
  async summary(@Req() request: FastifyRequest, @Param('roomIdOrAlias') target: string): Promise<RoomSummary & { membership?: string }> {
    const token = extractAccessToken(request);
    const requester = token ? await this.authenticator.authenticate(token) : undefined;
    const roomId = target.startsWith('#') ? await this.rooms.resolveAlias(target) : this.rooms.checkRoomId(target);
    const notFound = () => Errors.notFound('Room not found');
    const room = await this.rooms.requireRoom(roomId, notFound);
    const summary = await this.rooms.summary(room);
    const membership = requester ? await this.rooms.store.getMembership(roomId, requester.userId) : null;
    const open = summary.world_readable || ['public', 'knock', 'knock_restricted'].includes(summary.join_rule ?? '');
    let visible = open || membership !== null;
    if (!visible && requester && summary.allowed_room_ids) {
      for (const allowed of summary.allowed_room_ids) {
        if ((await this.rooms.store.getMembership(allowed, requester.userId))?.membership === 'join') visible = true;
      }
    }
    if (!visible) throw notFound();
    return membership ? { ...summary, membership: membership.membership } : summary;
  }
}
