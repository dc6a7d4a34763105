import { Body, Controller, HttpCode, Inject, Param, Post, UseGuards } from '@nestjs/common';
import type { AccountStore } from '@atrium/accounts';
import { AccessTokenGuard, CurrentRequester, Errors, requireJsonObject, type Requester } from '@atrium/http';
import { isValidUserId } from '@atrium/matrix';
import { ACCOUNT_STORE } from '@atrium/platform';
import { REPORT_STORE, type ReportStore } from '@atrium/relations';
import { canSeeEvent, ROOM_STORE, type RoomStore } from '@atrium/rooms';
import { CLIENT_PREFIXES } from '../auth/auth.controller';

/** Longest reason kept (a report is not a place for megabytes of text). */
const MAX_REASON = 10_000;

/**
 * Reporting content (data/api/client-server/report_content.yaml, module
 * report_content.md). Reports are stored (ReportStore, `content_reports`) for
 * the server's administrators: "Servers are free to handle the reported
 * content however they desire". We answer 404 for unknown rooms, events and
 * users rather than hiding their existence (the spec allows either).
 */
@Controller(CLIENT_PREFIXES)
@UseGuards(AccessTokenGuard)
export class ReportingController {
  constructor(
    @Inject(REPORT_STORE) private readonly reports: ReportStore,
    @Inject(ROOM_STORE) private readonly rooms: RoomStore,
    @Inject(ACCOUNT_STORE) private readonly accounts: AccountStore,
  ) {}

  /**
   * POST /rooms/{roomId}/report/{eventId}. `reason` is optional for event
   * reports; `score` was removed in v1.18 and is ignored. "Servers MUST verify
   * that the reporting user is currently joined to the room the event is in"
   * (v1.8); 404 "The event was not found or you are not joined to the room",
   * also when the user may not see the event under history visibility (its
   * existence is not revealed) or it was redacted (allowed by the spec).
   */
  @Post('rooms/:roomId/report/:eventId')
  @HttpCode(200)
  async reportEvent(@CurrentRequester() requester: Requester, @Param('roomId') roomId: string, @Param('eventId') eventId: string, @Body() rawBody: unknown): Promise<Record<string, never>> {
    const body = requireJsonObject(rawBody);
    const reason = this.reason(body, false);
    const notFound = Errors.notFound('The event was not found or you are not joined to the room');
    const membership = await this.rooms.getMembership(roomId, requester.userId);
    if (membership?.membership !== 'join') throw notFound;
    const event = await this.rooms.getEvent(eventId);
    if (!event || event.room_id !== roomId || event.redacted) throw notFound;
    if (!(await canSeeEvent(this.rooms, requester.userId, event))) throw notFound;
    await this.reports.add({ kind: 'event', reporter: requester.userId, room_id: roomId, event_id: eventId, user_id: event.sender, reason });
    return {};
  }

  /**
   * POST /rooms/{roomId}/report (v1.13). `reason` is required ("May be
   * blank"). "Servers MUST NOT restrict room reports based on whether or not
   * the reporting user is joined to the room"; 404 for a room this server
   * does not know.
   */
  @Post('rooms/:roomId/report')
  @HttpCode(200)
  async reportRoom(@CurrentRequester() requester: Requester, @Param('roomId') roomId: string, @Body() rawBody: unknown): Promise<Record<string, never>> {
    const body = requireJsonObject(rawBody);
    const reason = this.reason(body, true);
    if (!roomId.startsWith('!') || !(await this.rooms.getRoom(roomId))) throw Errors.notFound('The room was not found');
    await this.reports.add({ kind: 'room', reporter: requester.userId, room_id: roomId, event_id: null, user_id: null, reason });
    return {};
  }

  /**
   * POST /users/{userId}/report (v1.14). `reason` required ("May be blank");
   * no shared room needed ("MUST NOT restrict user reports based on whether
   * or not the reporting user is joined to any rooms"); 404 for a user that
   * is not a valid user ID or not a user of this server (remote users cannot
   * be checked without federation, so they are accepted).
   */
  @Post('users/:userId/report')
  @HttpCode(200)
  async reportUser(@CurrentRequester() requester: Requester, @Param('userId') userId: string, @Body() rawBody: unknown): Promise<Record<string, never>> {
    const body = requireJsonObject(rawBody);
    const reason = this.reason(body, true);
    const notFound = Errors.notFound('The user was not found');
    if (!isValidUserId(userId, 'historical')) throw notFound;
    if (this.serverOf(userId) === this.serverOf(requester.userId) && !(await this.accounts.getUser(userId))) throw notFound;
    await this.reports.add({ kind: 'user', reporter: requester.userId, room_id: null, event_id: null, user_id: userId, reason });
    return {};
  }

  private serverOf(userId: string): string {
    return userId.slice(userId.indexOf(':') + 1);
  }

  /** `reason`: a string (400 M_BAD_JSON otherwise); required for room and user reports (400 M_MISSING_PARAM). */
  private reason(body: Record<string, unknown>, required: boolean): string {
    const reason = body['reason'];
    if (reason === undefined) {
      if (required) throw Errors.missingParam('reason');
      return '';
    }
    if (typeof reason !== 'string') throw Errors.badJson('"reason" must be a string');
    if (reason.length > MAX_REASON) throw Errors.invalidParam(`"reason" is longer than ${MAX_REASON} characters`);
    return reason;
  }
}
