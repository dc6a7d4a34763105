import { Controller, Get, Inject, Optional, Param, Query, Res, UseGuards } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { AccessTokenGuard, AllowGuests, CurrentRequester, Errors, type Requester } from '@atrium/http';
import { bundleAggregations } from '@atrium/relations';
import { ROOM_STORE, type EventRecord, type MembershipRecord, type RoomStore } from '@atrium/rooms';
import { invitesBlockedBy, type AccountDataChanges, type AccountDataEvent, type AccountDataStore } from '@atrium/user-data';
import { CLIENT_PREFIXES } from '../auth/auth.controller';
import { IgnoredUsers } from '../ignored-users/ignored-users';
import { EventFormatter, historyVisibilityOf, visibleEvents, walkRoom } from '../sync/room-history';
import { booleanParam, integerParam } from '../sync/sync.controller';
import { SyncNotifier } from '../sync/sync-notifier';
import { eventsToken, requireSyncToken } from '../sync/sync-token';
import { SyncService, MAX_SYNC_TIMEOUT_MS } from '../sync/sync.service';

export const LEGACY_ACCOUNT_DATA = Symbol('atrium:legacy-account-data');

type Json = Record<string, unknown>;

/** Messages per room when `limit` is not given (what other servers use for these endpoints). */
const DEFAULT_LIMIT = 10;
const MAX_LIMIT = 500;
/** Events per GET /events response at most; the rest come with the next call (from its `end`). */
const EVENTS_CHUNK = 100;
/** A waiting GET /events re-reads storage at least this often (a lost notification, a stream gap). */
const RECHECK_MS = 2_000;

interface RoomInfo {
  room_id: string;
  membership: string;
  invite?: Json;
  messages?: { start?: string; end: string; chunk: Json[] };
  state?: Json[];
  visibility?: 'public' | 'private';
  account_data?: AccountDataEvent[];
}

/**
 * The deprecated pre-/sync endpoints still in the spec (old_sync.yaml,
 * room_initial_sync.yaml, peeking_events.yaml), built on what /sync and
 * /messages use: the same tokens (the sync token format; only the events
 * position counts), the same history visibility rules (room-history.ts),
 * ignored users left out, bundled aggregations.
 */
@Controller(CLIENT_PREFIXES)
@UseGuards(AccessTokenGuard)
export class LegacySyncController {
  constructor(
    @Inject(ROOM_STORE) private readonly rooms: RoomStore,
    @Inject(LEGACY_ACCOUNT_DATA) private readonly accountData: AccountDataStore,
    private readonly sync: SyncService,
    private readonly notifier: SyncNotifier,
    @Optional() private readonly ignoredUsers?: IgnoredUsers,
  ) {}

  /**
   * GET /events/{eventId} (old_sync.yaml getOneEvent): the event, in any
   * room, if the requester may see it (a membership and the history
   * visibility rules, or world_readable history); else 404 "The event was
   * not found or you do not have permission to read this event", also for a
   * message of an ignored user (as GET /rooms/{roomId}/event/{eventId}).
   */
  @Get('events/:eventId')
  async oneEvent(@CurrentRequester() requester: Requester, @Param('eventId') eventId: string): Promise<Json> {
    const notFound = Errors.notFound('The event was not found or you do not have permission to read this event');
    const event = await this.rooms.getEvent(eventId);
    if (!event) throw notFound;
    const membership = await this.readerMembership(event.room_id, requester.userId);
    if (membership === false) throw notFound;
    if ((await visibleEvents(this.rooms, requester.userId, [event], membership)).length === 0) throw notFound;
    const ignored = await this.ignoredUsers?.of(requester.userId);
    if (event.state_key === null && ignored?.has(event.sender)) throw notFound;
    const [out] = await bundleAggregations(this.rooms, new EventFormatter(requester).formatAll([event]), [event], { userId: requester.userId, ignoredUsers: ignored });
    return out;
  }

  /**
   * GET /rooms/{roomId}/initialSync (room_initial_sync.yaml): the room's
   * state and latest messages as the requester may see them. 403 "You aren't
   * a member of the room and weren't previously a member of the room",
   * except for world_readable history (peeking, room_previews.md: this is
   * one of the endpoints a non-member may use on such rooms).
   */
  @Get('rooms/:roomId/initialSync')
  @AllowGuests()
  async roomInitialSync(@CurrentRequester() requester: Requester, @Param('roomId') roomId: string, @Query('limit') limitParam: string | undefined): Promise<RoomInfo> {
    const membership = await this.readerMembership(roomId, requester.userId);
    if (membership === false) throw Errors.forbidden("You aren't a member of the room and weren't previously a member of the room");
    const { safe } = await this.sync.eventsPositions();
    const limit = Math.min(integerParam('limit', limitParam, DEFAULT_LIMIT), MAX_LIMIT);
    return this.roomInfo(requester, roomId, membership, limit, safe, await this.accountData.changes(requester.userId, 0, Number.MAX_SAFE_INTEGER));
  }

  /**
   * GET /initialSync (old_sync.yaml initialSync): every room the user is
   * joined to or invited to (and, with `archived=true`, has left or was banned
   * from), each with `limit` messages and its state, the global account data
   * and presence (empty: presence reaches clients through /sync and
   * GET /presence), and `end`, the token GET /events continues from.
   */
  @Get('initialSync')
  async initialSync(@CurrentRequester() requester: Requester, @Query('limit') limitParam: string | undefined, @Query('archived') archivedParam: string | undefined): Promise<{ end: string; rooms: RoomInfo[]; presence: Json[]; account_data: AccountDataEvent[] }> {
    const limit = Math.min(integerParam('limit', limitParam, DEFAULT_LIMIT), MAX_LIMIT);
    const archived = booleanParam('archived', archivedParam, false);
    const { safe } = await this.sync.eventsPositions();
    const accountData = await this.accountData.changes(requester.userId, 0, Number.MAX_SAFE_INTEGER);
    const wanted = archived ? ['join', 'invite', 'leave', 'ban'] : ['join', 'invite'];
    const rooms: RoomInfo[] = [];
    // "Invite permission": held invites are not served to a user who blocks invites, as in /sync.
    const hideInvites = await invitesBlockedBy(this.accountData, requester.userId);
    for (const membership of await this.rooms.roomsOfUser(requester.userId, wanted)) {
      // POST /forget: "the room will not be returned by any APIs" (for archived rooms).
      if (membership.forgotten) continue;
      if (hideInvites && membership.membership === 'invite') continue;
      rooms.push(await this.roomInfo(requester, membership.room_id, membership, limit, safe, accountData));
    }
    return { end: eventsToken(safe), rooms, presence: [], account_data: accountData.global };
  }

  /**
   * GET /events (old_sync.yaml getEvents; with `room_id`, peeking_events.yaml
   * peekEvents): events after `from` (default: now) in the rooms the user is
   * joined to, or in `room_id` (a room the user belongs to or whose history
   * is world_readable; else 403 M_FORBIDDEN), waiting up to `timeout` ms
   * (default 30 s, as other servers) for one. `end` is the token to call with
   * next. A bad `from` is 400 ("Bad pagination `from` parameter").
   */
  @Get('events')
  @AllowGuests()
  async events(@CurrentRequester() requester: Requester, @Query('from') fromParam: string | undefined, @Query('timeout') timeoutParam: string | undefined, @Query('room_id') roomId: string | undefined, @Res({ passthrough: true }) reply: FastifyReply): Promise<{ start: string; end: string; chunk: Json[] }> {
    const positions = await this.sync.eventsPositions();
    let from = positions.safe;
    if (fromParam !== undefined && fromParam !== '') {
      from = requireSyncToken('from', fromParam).events;
      if (from > positions.max) throw Errors.invalidParam('from is not a valid token');
    }
    const timeout = Math.min(integerParam('timeout', timeoutParam, 30_000), MAX_SYNC_TIMEOUT_MS);
    // Guests may only peek (guest_access.md: "GET /events as used for room previews").
    if (requester.isGuest && (roomId === undefined || roomId === '')) throw Errors.guestAccessForbidden();
    let peekMembership: MembershipRecord | null = null;
    if (roomId !== undefined && roomId !== '') {
      const membership = await this.readerMembership(roomId, requester.userId);
      if (membership === false) throw Errors.forbidden('You may not peek into this room');
      peekMembership = membership;
    }
    const start = fromParam !== undefined && fromParam !== '' ? fromParam : eventsToken(from);
    const deadline = Date.now() + timeout;
    // A long-poll stops waiting when the client goes away (as /sync).
    const abort = new AbortController();
    const onClose = (): void => {
      if (!reply.raw.writableEnded) abort.abort();
    };
    reply.raw.once('close', onClose);
    const armed = this.notifier.arm(requester.userId, roomId ? new Set([roomId]) : null);
    try {
      for (;;) {
        const { safe } = await this.sync.eventsPositions();
        const to = Math.max(safe, from);
        const memberships = roomId ? [{ room_id: roomId, membership: peekMembership }] : (await this.rooms.roomsOfUser(requester.userId, ['join'])).map((m) => ({ room_id: m.room_id, membership: m as MembershipRecord | null }));
        if (!roomId) armed.setRooms(new Set(memberships.map((m) => m.room_id)));
        const { events, end } = await this.eventsAfter(requester, memberships, from, to);
        const remaining = deadline - Date.now();
        if (events.length > 0 || remaining <= 0 || abort.signal.aborted) {
          const ignored = await this.ignoredUsers?.of(requester.userId);
          const chunk = await bundleAggregations(this.rooms, new EventFormatter(requester).formatAll(events), events, { userId: requester.userId, ignoredUsers: ignored });
          return { start, end: eventsToken(end), chunk };
        }
        await armed.wait(Math.min(remaining, RECHECK_MS), abort.signal);
      }
    } finally {
      armed.cancel();
      reply.raw.off('close', onClose);
    }
  }

  /** Visible events of the rooms in `(from, to]`, oldest first, at most EVENTS_CHUNK; `end` the position they reach. */
  private async eventsAfter(requester: Requester, rooms: Array<{ room_id: string; membership: MembershipRecord | null }>, from: number, to: number): Promise<{ events: EventRecord[]; end: number }> {
    const ignored = await this.ignoredUsers?.of(requester.userId);
    const all: EventRecord[] = [];
    for (const room of rooms) {
      const page = await walkRoom(this.rooms, requester.userId, room.room_id, { from, to, direction: 'forward', limit: EVENTS_CHUNK, membership: room.membership, ignored });
      all.push(...page.events);
    }
    all.sort((a, b) => a.stream - b.stream);
    if (all.length <= EVENTS_CHUNK) return { events: all, end: to };
    // More than one response holds: stop at the last one given, the next call resumes after it.
    const events = all.slice(0, EVENTS_CHUNK);
    return { events, end: events[events.length - 1].stream };
  }

  /**
   * The requester's membership when they may read the room's history (any
   * membership but knock), null for a non-member of a world_readable room,
   * false otherwise.
   */
  private async readerMembership(roomId: string, userId: string): Promise<MembershipRecord | null | false> {
    const membership = await this.rooms.getMembership(roomId, userId);
    if (membership && membership.membership !== 'knock') return membership;
    const visibility = historyVisibilityOf((await this.rooms.currentStateEvent(roomId, 'm.room.history_visibility', '')) ?? undefined);
    return visibility === 'world_readable' ? null : false;
  }

  /**
   * One room of an initial sync. Joined (or peeking): the current state and
   * the latest `limit` messages. Left or banned: the state and messages up
   * to their leave ("the state of the room when they left it", "the
   * messages that preceded them leaving"). Invited: the invite event only
   * (a room one is invited to is not readable yet). A non-member peeking
   * into a world_readable room is reported as `leave` (the enum has no
   * "none"; Synapse does the same).
   */
  private async roomInfo(requester: Requester, roomId: string, membership: MembershipRecord | null, limit: number, safe: number, accountData: AccountDataChanges): Promise<RoomInfo> {
    const formatter = new EventFormatter(requester);
    const room = await this.rooms.getRoom(roomId);
    const info: RoomInfo = { room_id: roomId, membership: membership?.membership ?? 'leave' };
    if (room) info.visibility = room.visibility === 'public' ? 'public' : 'private';
    info.account_data = accountData.rooms[roomId] ?? [];
    if (membership?.membership === 'invite') {
      const invite = await this.rooms.getEvent(membership.event_id);
      if (invite) info.invite = formatter.format(invite);
      return info;
    }
    const left = membership !== null && (membership.membership === 'leave' || membership.membership === 'ban');
    const ceiling = left ? Math.min(safe, membership.stream) : safe;
    const ignored = await this.ignoredUsers?.of(requester.userId);
    const page = await walkRoom(this.rooms, requester.userId, roomId, { from: 0, to: ceiling, direction: 'backward', limit, membership, ignored });
    const chronological = [...page.events].reverse();
    const chunk = await bundleAggregations(this.rooms, formatter.formatAll(chronological), chronological, { userId: requester.userId, ignoredUsers: ignored });
    info.messages = { end: eventsToken(ceiling), chunk };
    // "If no earlier events are available, this property may be omitted."
    if (page.more) info.messages.start = eventsToken(page.next);
    else if (chronological.length > 0) info.messages.start = eventsToken(chronological[0].stream - 1);
    const state = left ? await this.rooms.stateAtPosition(roomId, ceiling) : await this.rooms.currentState(roomId);
    info.state = formatter.formatAll(state);
    return info;
  }
}
