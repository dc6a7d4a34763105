import { Body, Controller, Get, Inject, Param, Post, Query } from '@nestjs/common';
import type { AtriumConfig } from '@atrium/config';
import { Errors, requireJsonObject } from '@atrium/http';
import { prevEventIds, redactEvent, type Pdu, type RoomVersion } from '@atrium/matrix';
import { CONFIG } from '@atrium/platform';
import { eventOf, ROOM_STORE, type EventRecord, type RoomStore } from '@atrium/rooms';
import { FederationOrigin } from '../origin';
import { RoomAccess, wirePdu } from './room-access';

/** backfill.yaml: no maximum is given; Synapse caps at 100, and so do we. */
const MAX_BACKFILL = 100;
/** backfill.yaml get_missing_events: `limit` defaults to 10. */
const DEFAULT_MISSING_LIMIT = 10;
const MAX_MISSING_LIMIT = 100;

function intParam(value: unknown, name: string, fallback: number | undefined): number {
  if (value === undefined || value === '') {
    if (fallback === undefined) throw Errors.missingParam(name);
    return fallback;
  }
  const n = typeof value === 'number' ? value : Number(value);
  if (typeof value === 'string' && !/^-?\d+$/.test(value)) throw Errors.invalidParam(`${name} must be an integer`);
  if (!Number.isSafeInteger(n)) throw Errors.invalidParam(`${name} must be an integer`);
  return n;
}

function stringList(value: unknown, name: string): string[] {
  if (value === undefined) return [];
  const list = Array.isArray(value) ? value : [value];
  if (!list.every((v): v is string => typeof v === 'string')) throw Errors.badJson(`${name} must be a list of event IDs`);
  return list;
}

/**
 * The room read endpoints of the federation API: server-server-api
 * "Retrieving events" (events.yaml), "Backfilling and retrieving missing
 * events" (backfill.yaml), "Retrieving event authorisation information"
 * (event_auth.yaml). Every route sits behind the X-Matrix guard; reads come
 * from the room store (any replica may read; writes go to the room server).
 * Rejected events are never served; outliers and soft-failed events are
 * ("A soft failed event should be returned in response to federation requests
 * where appropriate (e.g. in /event/<event_id>)").
 */
@Controller('_matrix/federation/v1')
export class FederationRoomEventsController {
  private readonly access: RoomAccess;

  constructor(
    @Inject(ROOM_STORE) private readonly rooms: RoomStore,
    @Inject(CONFIG) private readonly config: AtriumConfig,
  ) {
    this.access = new RoomAccess(rooms);
  }

  private transaction(pdus: Pdu[]): { origin: string; origin_server_ts: number; pdus: Pdu[] } {
    return { origin: this.config.server_name, origin_server_ts: Date.now(), pdus };
  }

  /** A stored, not rejected event of the room, else 404. */
  private async eventIn(roomId: string, eventId: unknown): Promise<EventRecord> {
    if (typeof eventId !== 'string' || eventId === '') throw Errors.missingParam('event_id');
    const record = await this.rooms.getEvent(eventId);
    if (!record || record.room_id !== roomId || record.rejected) throw Errors.notFound(`Could not find event ${eventId}`);
    return record;
  }

  /** The state before `eventId` and its auth chain, by ID (events.yaml: "prior to considering any state changes induced by the requested event"). */
  private async stateAt(roomId: string, origin: string, eventId: unknown): Promise<{ state: string[]; chain: string[] }> {
    await this.access.room(roomId);
    await this.access.checkCanRead(roomId, origin);
    const record = await this.eventIn(roomId, eventId);
    const before = await this.rooms.stateIdsBefore(record._id);
    if (!before) throw Errors.notFound(`The state at ${record._id} is not known`);
    // Rejected events are never served as state (server-server-api "Rejection").
    const records = (await this.rooms.getEvents([...before.values()])).filter((r) => !r.rejected);
    const state = records.map((r) => r._id);
    const chain = (await this.rooms.authChain(state)).filter((r) => !r.rejected).map((r) => r._id);
    return { state, chain };
  }

  @Get('state_ids/:roomId')
  async stateIds(@FederationOrigin() origin: string, @Param('roomId') roomId: string, @Query('event_id') eventId: unknown): Promise<{ pdu_ids: string[]; auth_chain_ids: string[] }> {
    const { state, chain } = await this.stateAt(roomId, origin, eventId);
    return { pdu_ids: state, auth_chain_ids: chain };
  }

  @Get('state/:roomId')
  async state(@FederationOrigin() origin: string, @Param('roomId') roomId: string, @Query('event_id') eventId: unknown): Promise<{ pdus: Pdu[]; auth_chain: Pdu[] }> {
    const { version } = await this.access.room(roomId);
    const { state, chain } = await this.stateAt(roomId, origin, eventId);
    return {
      pdus: (await this.rooms.getEvents(state)).map((r) => wirePdu(r, version)),
      auth_chain: (await this.rooms.getEvents(chain)).map((r) => wirePdu(r, version)),
    };
  }

  /** events.yaml GET /event/{eventId}: a transaction holding the one PDU. */
  @Get('event/:eventId')
  async event(@FederationOrigin() origin: string, @Param('eventId') eventId: string): Promise<{ origin: string; origin_server_ts: number; pdus: Pdu[] }> {
    const record = await this.rooms.getEvent(eventId);
    if (!record || record.rejected) throw Errors.notFound(`Could not find event ${eventId}`);
    const { version } = await this.access.room(record.room_id);
    await this.access.checkAcl(record.room_id, origin);
    const inRoom = await this.access.hasJoinedMember(record.room_id, origin);
    if (!(await this.access.canSeeEvent(record, origin, inRoom))) throw Errors.forbidden(`${origin} may not see ${eventId}`);
    return this.transaction([wirePdu(record, version)]);
  }

  /** event_auth.yaml: the auth chain of one event. */
  @Get('event_auth/:roomId/:eventId')
  async eventAuth(@FederationOrigin() origin: string, @Param('roomId') roomId: string, @Param('eventId') eventId: string): Promise<{ auth_chain: Pdu[] }> {
    const { version } = await this.access.room(roomId);
    await this.access.checkCanRead(roomId, origin);
    const record = await this.eventIn(roomId, eventId);
    const chain = await this.rooms.authChain([record._id]);
    return { auth_chain: chain.filter((r) => !r.rejected).map((r) => wirePdu(r, version)) };
  }

  /**
   * backfill.yaml GET /backfill/{roomId}: "the PDUs given in v and the PDUs
   * that preceded them … up to the total number given by the limit", deepest
   * first. An event the origin may not see (history visibility) is served in
   * its redacted form, as Synapse does, so the requester's DAG stays whole.
   */
  @Get('backfill/:roomId')
  async backfill(@FederationOrigin() origin: string, @Param('roomId') roomId: string, @Query('v') v: unknown, @Query('limit') limitParam: unknown): Promise<{ origin: string; origin_server_ts: number; pdus: Pdu[] }> {
    const { version } = await this.access.room(roomId);
    await this.access.checkCanRead(roomId, origin);
    const starts = stringList(v, 'v');
    if (starts.length === 0) throw Errors.missingParam('v');
    const limit = Math.min(MAX_BACKFILL, intParam(limitParam, 'limit', undefined));
    if (limit <= 0) return this.transaction([]);
    const inRoom = await this.access.hasJoinedMember(roomId, origin);
    // Deepest first over the prev_events graph, from the given events (included).
    const seen = new Set<string>(starts);
    const frontier = (await this.rooms.getEvents(starts)).filter((r) => r.room_id === roomId);
    const out: Pdu[] = [];
    while (frontier.length > 0 && out.length < limit) {
      frontier.sort((a, b) => b.depth - a.depth);
      const next = frontier.shift() as EventRecord;
      if (!next.rejected) out.push(await this.served(next, version, origin, inRoom));
      const prevs = prevEventIds(eventOf(next)).filter((id) => !seen.has(id));
      for (const id of prevs) seen.add(id);
      frontier.push(...(await this.rooms.getEvents(prevs)).filter((r) => r.room_id === roomId));
    }
    return this.transaction(out);
  }

  /** The event as this origin may see it: whole, or redacted when history visibility hides it. */
  private async served(record: EventRecord, version: RoomVersion, origin: string, inRoom: boolean): Promise<Pdu> {
    const pdu = wirePdu(record, version);
    return (await this.access.canSeeEvent(record, origin, inRoom)) ? pdu : (redactEvent(pdu, version) as Pdu);
  }

  /**
   * backfill.yaml POST /get_missing_events/{roomId}: "a breadth-first walk of
   * the prev_events for the latest_events, ignoring any events in
   * earliest_events and stopping at the limit"; events below `min_depth` are
   * not followed; hidden events are redacted as in /backfill.
   */
  @Post('get_missing_events/:roomId')
  async getMissingEvents(@FederationOrigin() origin: string, @Param('roomId') roomId: string, @Body() body: unknown): Promise<{ events: Pdu[] }> {
    const { version } = await this.access.room(roomId);
    await this.access.checkCanRead(roomId, origin);
    const request = requireJsonObject(body);
    const earliest = new Set(stringList(request['earliest_events'], 'earliest_events'));
    const latest = stringList(request['latest_events'], 'latest_events');
    const limit = Math.min(MAX_MISSING_LIMIT, Math.max(0, intParam(request['limit'], 'limit', DEFAULT_MISSING_LIMIT)));
    const minDepth = intParam(request['min_depth'], 'min_depth', 0);
    const inRoom = await this.access.hasJoinedMember(roomId, origin);
    const seen = new Set<string>([...earliest, ...latest]);
    let queue = (await this.rooms.getEvents(latest)).filter((r) => r.room_id === roomId).flatMap((r) => prevEventIds(eventOf(r)));
    const out: Array<{ depth: number; pdu: Pdu }> = [];
    while (queue.length > 0 && out.length < limit) {
      const ids = queue.filter((id) => !seen.has(id));
      for (const id of ids) seen.add(id);
      const next: string[] = [];
      for (const record of await this.rooms.getEvents(ids)) {
        if (out.length >= limit) break;
        if (record.room_id !== roomId || record.rejected || record.depth < minDepth) continue;
        out.push({ depth: record.depth, pdu: await this.served(record, version, origin, inRoom) });
        next.push(...prevEventIds(eventOf(record)));
      }
      queue = next;
    }
    // Oldest first, so the requester can apply them in order.
    out.sort((a, b) => a.depth - b.depth);
    return { events: out.map((e) => e.pdu) };
  }

  /** events.yaml GET /timestamp_to_event/{roomId}: the closest event in the direction asked. */
  @Get('timestamp_to_event/:roomId')
  async timestampToEvent(@FederationOrigin() origin: string, @Param('roomId') roomId: string, @Query('ts') tsParam: unknown, @Query('dir') dir: unknown): Promise<{ event_id: string; origin_server_ts: number }> {
    await this.access.room(roomId);
    await this.access.checkCanRead(roomId, origin);
    const ts = intParam(tsParam, 'ts', undefined);
    if (dir !== 'f' && dir !== 'b') throw Errors.invalidParam('dir must be f or b');
    const record = await this.rooms.eventAtTimestamp(roomId, ts, dir);
    if (!record) throw Errors.notFound(`Unable to find event from ${ts} in ${dir === 'f' ? 'forward' : 'backward'} direction`);
    return { event_id: record._id, origin_server_ts: record.origin_server_ts };
  }
}
