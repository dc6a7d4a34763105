import { Controller, Get, Inject, Optional, Param, Query, UseGuards } from '@nestjs/common';
import { AccessTokenGuard, AllowGuests, CurrentRequester, Errors, type Requester } from '@atrium/http';
import { effectiveLimit, lazyLoadMembers, type RoomEventFilter } from '@atrium/matrix';
import { bundleAggregations } from '@atrium/relations';
import type { EventRecord, MembershipRecord, RoomStore } from '@atrium/rooms';
import { CLIENT_PREFIXES } from '../auth/auth.controller';
import { IgnoredUsers } from '../ignored-users/ignored-users';
import { parseRoomEventFilterParam } from './filter-errors';
import { EventFormatter, historyVisibilityOf, visibleEvents, walkRoom } from './room-history';
import { integerParam } from './sync.controller';
import { SYNC_ROOM_STORE } from './sync-rooms';
import { HISTORY_FLOOR, paginationToken, requirePaginationPosition } from './sync-token';
import { SyncService } from './sync.service';
import { RoomServerClient } from '../rooms/room-server.client';

/** message_pagination.yaml: "Default: 10"; we clamp larger requests to this. */
const DEFAULT_LIMIT = 10;
const MAX_LIMIT = 1000;
/** Backfill rounds one /messages request may wait for, and the fewest events asked of the remote server. */
const BACKFILL_ROUNDS = 3;
const BACKFILL_MIN_LIMIT = 20;

type Json = Record<string, unknown>;

/**
 * Spec: data/api/client-server/message_pagination.yaml (GET /rooms/{roomId}/messages)
 * and event_context.yaml (GET /rooms/{roomId}/context/{eventId}).
 *
 * Tokens are the sync token format; only its events position counts here and
 * names the gap just after that position: backward from `P` reads events at
 * or before P, forward from `P` reads events after P. So a sync's `next_batch`
 * or a timeline's `prev_batch` works as `from` as the spec says.
 */
@Controller(CLIENT_PREFIXES)
@UseGuards(AccessTokenGuard)
export class MessagesController {
  constructor(
    @Inject(SYNC_ROOM_STORE) private readonly rooms: RoomStore,
    private readonly sync: SyncService,
    @Optional() private readonly ignoredUsers?: IgnoredUsers,
    @Optional() private readonly roomServer?: RoomServerClient,
  ) {}

  /**
   * Who may read the room's history: a user with any membership (the
   * per-event history visibility rules then decide), or anyone while the
   * room's history is world_readable. Others get 403 M_FORBIDDEN, as do
   * requests for rooms that do not exist (nothing is revealed).
   */
  private async readerMembership(roomId: string, userId: string): Promise<MembershipRecord | null> {
    const membership = await this.rooms.getMembership(roomId, userId);
    if (membership && membership.membership !== 'knock') return membership;
    const visibility = historyVisibilityOf((await this.rooms.currentStateEvent(roomId, 'm.room.history_visibility', '')) ?? undefined);
    if (visibility === 'world_readable') return membership;
    throw Errors.forbidden('You are not a member of this room');
  }

  /** "Lazy-loading room members" for /messages and /context: the member events of the senders, from the current state. */
  private async lazyMembers(roomId: string, events: EventRecord[], filter: RoomEventFilter | undefined, formatter: EventFormatter): Promise<Json[] | undefined> {
    if (!lazyLoadMembers(filter)) return undefined;
    const out: Json[] = [];
    for (const sender of new Set(events.map((e) => e.sender))) {
      const member = await this.rooms.currentStateEvent(roomId, 'm.room.member', sender);
      if (member) out.push(formatter.format(member));
    }
    return out;
  }

  @Get('rooms/:roomId/messages')
  @AllowGuests()
  async messages(
    @CurrentRequester() requester: Requester,
    @Param('roomId') roomId: string,
    @Query('from') fromParam: string | undefined,
    @Query('to') toParam: string | undefined,
    @Query('dir') dir: string | undefined,
    @Query('limit') limitParam: string | undefined,
    @Query('filter') filterParam: string | undefined,
  ): Promise<Json> {
    if (dir === undefined || dir === '') throw Errors.missingParam('dir');
    if (dir !== 'b' && dir !== 'f') throw Errors.invalidParam('dir must be b or f');
    const from = fromParam === undefined || fromParam === '' ? undefined : requirePaginationPosition('from', fromParam);
    const to = toParam === undefined || toParam === '' ? undefined : requirePaginationPosition('to', toParam);
    const requested = integerParam('limit', limitParam, DEFAULT_LIMIT);
    const filter = parseRoomEventFilterParam(filterParam);
    const membership = await this.readerMembership(roomId, requester.userId);
    const { safe } = await this.sync.eventsPositions();
    const formatter = new EventFormatter(requester);
    const limit = effectiveLimit({ limit: Math.max(1, requested) }, DEFAULT_LIMIT, MAX_LIMIT);

    // v1.3: without `from`, backward starts at the newest event and forward at the oldest.
    const backward = dir === 'b';
    const start = from ?? (backward ? safe : HISTORY_FLOOR);
    // A user who left reads up to their leave and no further, as other servers do: nothing after it is theirs to see
    // (bar world_readable history, which a left user can still read by other means).
    const ceiling = membership && (membership.membership === 'leave' || membership.membership === 'ban') ? Math.min(safe, membership.stream) : safe;
    const high = backward ? Math.min(start, ceiling) : Math.min(to ?? ceiling, ceiling);
    const low = backward ? Math.min(to ?? HISTORY_FLOOR, high) : Math.min(start, high);
    // `start`: "The token the pagination starts from", the given one as given.
    const startToken = fromParam === undefined || fromParam === '' ? paginationToken(start) : fromParam;
    if (requested === 0) return { start: startToken, chunk: [] };

    // "Ignoring Users": ignored senders' non-state events are left out.
    const ignored = await this.ignoredUsers?.of(requester.userId);
    const walk = { filter: { ...filter, limit: undefined }, membership, ignored };
    const page = await walkRoom(this.rooms, requester.userId, roomId, { from: low, to: high, direction: backward ? 'backward' : 'forward', limit, ...walk });
    // Backwards past the start of local history in a room joined over federation: backfill
    // from a server in the room (issue 5; server-server-api "Backfilling and retrieving
    // missing events"), then read on below what was there.
    for (let round = 0; backward && to === undefined && !page.more && round < BACKFILL_ROUNDS; round++) {
      const [first] = await this.rooms.roomEvents(roomId, { from: HISTORY_FLOOR, to: Number.MAX_SAFE_INTEGER, direction: 'forward', limit: 1 });
      // History that starts with the room's creation is whole: nothing to backfill.
      if (!first || first.type === 'm.room.create' || !this.roomServer) break;
      let added = 0;
      try {
        added = (await this.roomServer.backfill({ room_id: roomId, limit: Math.max(limit - page.events.length, BACKFILL_MIN_LIMIT) })).added;
      } catch {
        // The remote servers are unreachable or slow: answer with the local history.
        break;
      }
      if (added === 0) break;
      if (page.events.length === limit) {
        page.more = true;
        page.next = first.stream - 1;
        break;
      }
      const rest = await walkRoom(this.rooms, requester.userId, roomId, { from: HISTORY_FLOOR, to: first.stream - 1, direction: 'backward', limit: limit - page.events.length, ...walk });
      page.events.push(...rest.events);
      page.more = rest.more;
      page.next = rest.next;
    }
    // Bundled aggregations (client-server-api "Aggregations of child events").
    const chunk = await bundleAggregations(this.rooms, formatter.formatAll(page.events), page.events, { userId: requester.userId, ignoredUsers: ignored });
    const out: Json = { start: startToken, chunk };
    // "If no further events are available … this property is omitted."
    if (page.more) out['end'] = paginationToken(page.next);
    const state = await this.lazyMembers(roomId, page.events, filter, formatter);
    if (state) out['state'] = state;
    return out;
  }

  @Get('rooms/:roomId/context/:eventId')
  @AllowGuests()
  async context(
    @CurrentRequester() requester: Requester,
    @Param('roomId') roomId: string,
    @Param('eventId') eventId: string,
    @Query('limit') limitParam: string | undefined,
    @Query('filter') filterParam: string | undefined,
  ): Promise<Json> {
    const requested = integerParam('limit', limitParam, DEFAULT_LIMIT);
    const filter = parseRoomEventFilterParam(filterParam);
    const membership = await this.readerMembership(roomId, requester.userId);
    const event = await this.rooms.getEvent(eventId);
    // event_context.yaml 404: "The event was not found or you do not have permission to read this event."
    if (!event || event.room_id !== roomId) throw Errors.notFound('Event not found');
    if ((await visibleEvents(this.rooms, requester.userId, [event], membership)).length === 0) throw Errors.notFound('Event not found');
    // "Ignoring Users": a message of an ignored user is not given, as if unreadable; its surroundings lose theirs too.
    const ignored = await this.ignoredUsers?.of(requester.userId);
    if (event.state_key === null && ignored?.has(event.sender)) throw Errors.notFound('Event not found');
    const { safe } = await this.sync.eventsPositions();
    const limit = Math.min(requested, MAX_LIMIT);
    // As other servers do: half the limit before the event (rounded down), the rest after.
    const beforeLimit = Math.floor(limit / 2);
    const afterLimit = limit - beforeLimit;
    const walkFilter = { ...filter, limit: undefined };
    const before =
      beforeLimit > 0
        ? await walkRoom(this.rooms, requester.userId, roomId, { from: HISTORY_FLOOR, to: event.stream - 1, direction: 'backward', limit: beforeLimit, filter: walkFilter, membership, ignored })
        : { events: [], more: true, next: event.stream - 1 };
    const after =
      afterLimit > 0
        ? await walkRoom(this.rooms, requester.userId, roomId, { from: event.stream, to: Math.max(safe, event.stream), direction: 'forward', limit: afterLimit, filter: walkFilter, membership, ignored })
        : { events: [], more: true, next: event.stream };
    const formatter = new EventFormatter(requester);
    const last = after.events.length > 0 ? after.events[after.events.length - 1] : event;
    const lazy = await this.lazyMembers(roomId, [...before.events, event, ...after.events], filter, formatter);
    // "The state of the room at the last event returned."
    const state = lazy ?? formatter.formatAll(await this.rooms.stateAtPosition(roomId, last.stream));
    return {
      start: paginationToken(before.next),
      end: paginationToken(after.next),
      events_before: await bundleAggregations(this.rooms, formatter.formatAll(before.events), before.events, { userId: requester.userId, ignoredUsers: ignored }),
      event: (await bundleAggregations(this.rooms, [formatter.format(event)], [event], { userId: requester.userId, ignoredUsers: ignored }))[0],
      events_after: await bundleAggregations(this.rooms, formatter.formatAll(after.events), after.events, { userId: requester.userId, ignoredUsers: ignored }),
      state,
    };
  }
}
