import { Controller, Get, Param, Query, UseGuards } from '@nestjs/common';
import { AccessTokenGuard, AllowGuests, CurrentRequester, Errors, type Requester } from '@atrium/http';
import { canSeeEvent, type EventRecord } from '@atrium/rooms';
import { RelationsService } from './relations.service';
import { booleanParam, checkEventId, dirParam, eventsPositionParam, limitParam } from './params';
import { HISTORY_FLOOR, paginationToken } from '../sync/sync-token';

/** relations.yaml: "The server should apply a default value"; Synapse's is 5, we give 5 and cap at 100. */
const DEFAULT_LIMIT = 5;
const MAX_LIMIT = 100;
/** relations.yaml `recurse`: "Homeservers SHOULD traverse at least 3 levels of relationships". */
const RECURSION_DEPTH = 3;
/** Events gathered per request when recursing (each level is read whole, up to this many). */
const MAX_RECURSE_EVENTS = 1000;
/** Batches of children read per page when an event type filter or history visibility drops some. */
const MAX_BATCHES = 10;

type Json = Record<string, unknown>;

/**
 * GET /_matrix/client/v1/rooms/{roomId}/relations/{eventId}[/{relType}[/{eventType}]]
 * (data/api/client-server/relations.yaml; client-server-api "Forming
 * relationships between events"). Children are found through the
 * `relates_to`/`rel_type` fields libs/rooms extracts from `m.relates_to` when
 * it stores an event. The chunk is "ordered topologically most-recent first"
 * (`dir=b`), or oldest first with `dir=f`; positions in the events stream are
 * that order for rooms this server writes.
 */
@Controller('_matrix/client/v1')
@UseGuards(AccessTokenGuard)
export class RelationsController {
  constructor(private readonly service: RelationsService) {}

  @Get('rooms/:roomId/relations/:eventId')
  @AllowGuests()
  all(@CurrentRequester() r: Requester, @Param('roomId') roomId: string, @Param('eventId') eventId: string, @Query() query: Record<string, string | undefined>): Promise<Json> {
    return this.relations(r, roomId, eventId, undefined, undefined, query);
  }

  @Get('rooms/:roomId/relations/:eventId/:relType')
  @AllowGuests()
  byRelType(
    @CurrentRequester() r: Requester,
    @Param('roomId') roomId: string,
    @Param('eventId') eventId: string,
    @Param('relType') relType: string,
    @Query() query: Record<string, string | undefined>,
  ): Promise<Json> {
    return this.relations(r, roomId, eventId, relType, undefined, query);
  }

  @Get('rooms/:roomId/relations/:eventId/:relType/:eventType')
  @AllowGuests()
  byEventType(
    @CurrentRequester() r: Requester,
    @Param('roomId') roomId: string,
    @Param('eventId') eventId: string,
    @Param('relType') relType: string,
    @Param('eventType') eventType: string,
    @Query() query: Record<string, string | undefined>,
  ): Promise<Json> {
    return this.relations(r, roomId, eventId, relType, eventType, query);
  }

  private async relations(requester: Requester, roomId: string, eventId: string, relType: string | undefined, eventType: string | undefined, query: Record<string, string | undefined>): Promise<Json> {
    if (!roomId.startsWith('!')) throw Errors.invalidParam(`Invalid room ID ${JSON.stringify(roomId)}`);
    checkEventId(eventId);
    const dir = dirParam(query['dir']);
    const limit = limitParam(query['limit'], DEFAULT_LIMIT, MAX_LIMIT);
    const from = eventsPositionParam('from', query['from']);
    const to = eventsPositionParam('to', query['to']);
    const recurse = booleanParam('recurse', query['recurse']);

    // 404 "The parent event was not found or the user does not have permission to read this event".
    const rooms = this.service.rooms;
    const parent = await rooms.getEvent(eventId);
    if (!parent || parent.room_id !== roomId || !(await canSeeEvent(rooms, requester.userId, parent))) throw Errors.notFound('Event not found');

    const safe = await rooms.safeStreamPosition();
    // Tokens name the gap just after a position: backward from P reads ≤ P, forward from P reads > P.
    const backward = dir === 'b';
    const high = backward ? Math.min(from ?? safe, safe) : Math.min(to ?? safe, safe);
    // Without a bound the walk goes into backfilled history too (children of events from before this server joined).
    const low = backward ? Math.min(to ?? HISTORY_FLOOR, high) : Math.min(from ?? HISTORY_FLOOR, high);
    const matches = (e: EventRecord): boolean => e.room_id === roomId && (relType === undefined || e.rel_type === relType) && (eventType === undefined || e.type === eventType);

    const canSee = this.service.visibilityChecker(requester.userId);
    let chosen: EventRecord[];
    let next: number | undefined;
    if (recurse) {
      ({ chosen, next } = await this.recursive(canSee, parent, { low, high, backward, limit, matches }));
    } else {
      ({ chosen, next } = await this.direct(canSee, parent, { low, high, backward, limit, matches, relType }));
    }
    const out: Json = { chunk: await this.service.format(chosen, requester) };
    if (next !== undefined) out['next_batch'] = paginationToken(next);
    // prev_batch: "The absence of this token means this is the start of the result set".
    if (from !== undefined) out['prev_batch'] = query['from'];
    if (recurse !== undefined) out['recursion_depth'] = recurse ? RECURSION_DEPTH : 0;
    return out;
  }

  /** Direct children, read in pages from the relation index until `limit` pass the filters and visibility. */
  private async direct(
    canSee: (e: EventRecord) => Promise<boolean>,
    parent: EventRecord,
    o: { low: number; high: number; backward: boolean; limit: number; matches: (e: EventRecord) => boolean; relType?: string },
  ): Promise<{ chosen: EventRecord[]; next?: number }> {
    const rooms = this.service.rooms;
    const chosen: EventRecord[] = [];
    let { low, high } = o;
    const batch = o.limit + 1;
    for (let round = 0; round < MAX_BATCHES && low < high; round++) {
      const page = await rooms.relationsOf(parent._id, { relType: o.relType, from: low, to: high, direction: o.backward ? 'backward' : 'forward', limit: batch });
      for (const e of page) {
        if (chosen.length === o.limit) return { chosen, next: o.backward ? chosen[chosen.length - 1].stream - 1 : chosen[chosen.length - 1].stream };
        if (o.backward) high = e.stream - 1;
        else low = e.stream;
        if (o.matches(e) && (await canSee(e))) chosen.push(e);
      }
      if (page.length < batch) return { chosen };
    }
    // The bounded walk stopped with events possibly left: resume where it stopped.
    return { chosen, next: low < high ? (o.backward ? high : low) : undefined };
  }

  /**
   * `recurse=true`: children of children up to RECURSION_DEPTH levels (the
   * filters apply to every event returned, direct or not, as MSC3981 that
   * added the parameter says), gathered, then ordered and paged by position.
   */
  private async recursive(
    canSee: (e: EventRecord) => Promise<boolean>,
    parent: EventRecord,
    o: { low: number; high: number; backward: boolean; limit: number; matches: (e: EventRecord) => boolean },
  ): Promise<{ chosen: EventRecord[]; next?: number }> {
    const rooms = this.service.rooms;
    const all = new Map<string, EventRecord>();
    let level = [parent._id];
    for (let depth = 0; depth < RECURSION_DEPTH && level.length > 0 && all.size < MAX_RECURSE_EVENTS; depth++) {
      const nextLevel: string[] = [];
      for (const id of level) {
        for (const child of await rooms.relationsOf(id, { to: o.high, limit: MAX_RECURSE_EVENTS })) {
          if (all.has(child._id) || child._id === parent._id || child.room_id !== parent.room_id) continue;
          all.set(child._id, child);
          nextLevel.push(child._id);
        }
      }
      level = nextLevel;
    }
    const inRange = [...all.values()].filter((e) => e.stream > o.low && e.stream <= o.high && o.matches(e)).sort((a, b) => (o.backward ? b.stream - a.stream : a.stream - b.stream));
    const chosen: EventRecord[] = [];
    for (const e of inRange) {
      if (chosen.length === o.limit) return { chosen, next: o.backward ? chosen[chosen.length - 1].stream - 1 : chosen[chosen.length - 1].stream };
      if (await canSee(e)) chosen.push(e);
    }
    return { chosen };
  }
}
