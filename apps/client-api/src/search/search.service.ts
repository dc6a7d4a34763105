import { Inject, Injectable } from '@nestjs/common';
import { Errors, type Requester } from '@atrium/http';
import { eventMatchesFilter, type JsonObject, type RoomEventFilter } from '@atrium/matrix';
import { matchText, searchableText, SEARCH_TYPES, type SearchKey } from '@atrium/relations';
import { eventOf, ROOM_STORE, toClientEvent, type EventRecord, type RoomStore } from '@atrium/rooms';
import { RelationsService } from '../relations/relations.service';
import { HISTORY_FLOOR, paginationToken } from '../sync/sync-token';

/** search.yaml gives no default page size; 10 as other servers (filter.limit overrides, up to MAX_PAGE). */
const DEFAULT_PAGE = 10;
const MAX_PAGE = 100;
/**
 * Bounds of one search (see libs/relations search-text.ts for why matching
 * is done in code): events read per room and in all, and matches kept. The
 * newest events are read first, so older history beyond the bound is not
 * searched; `count` is then the count within what was read ("an
 * approximation of the total number of results" is allowed).
 */
const SCAN_PER_ROOM = 5_000;
const SCAN_TOTAL = 50_000;
const MAX_MATCHES = 1_000;
const BATCH = 500;

type Json = Record<string, unknown>;

export interface RoomEventsCriteria {
  terms: string[];
  keys: Set<SearchKey>;
  filter?: RoomEventFilter;
  orderBy: 'rank' | 'recent';
  context?: { before: number; after: number; includeProfile: boolean };
  includeState: boolean;
  groupBy: ('room_id' | 'sender')[];
}

interface Match {
  record: EventRecord;
  rank: number;
  matched: string[];
}

/**
 * `next_batch` of /search: `n<snapshot>_<offset>`. The snapshot is the events
 * stream position the first page searched up to, so later pages page through
 * the same result set while new events arrive.
 */
const NEXT_BATCH = /^n(\d{1,15})_(\d{1,9})$/;

@Injectable()
export class SearchService {
  constructor(
    @Inject(ROOM_STORE) private readonly rooms: RoomStore,
    private readonly relations: RelationsService,
  ) {}

  async roomEvents(requester: Requester, criteria: RoomEventsCriteria, nextBatch: string | undefined): Promise<Json> {
    let snapshot: number;
    let offset = 0;
    if (nextBatch !== undefined) {
      const m = NEXT_BATCH.exec(nextBatch);
      if (!m) throw Errors.invalidParam('next_batch is not a valid search token');
      snapshot = Number(m[1]);
      offset = Number(m[2]);
    } else {
      snapshot = await this.rooms.safeStreamPosition();
    }
    const pageSize = Math.min(Math.max(criteria.filter?.limit ?? DEFAULT_PAGE, 1), MAX_PAGE);

    const matches = await this.collect(requester.userId, criteria, snapshot);
    matches.sort((a, b) => (criteria.orderBy === 'rank' && b.rank !== a.rank ? b.rank - a.rank : b.record.stream - a.record.stream));
    const page = matches.slice(offset, offset + pageSize);

    const events = await this.relations.format(
      page.map((m) => m.record),
      requester,
    );
    const results: Json[] = [];
    for (let i = 0; i < page.length; i++) {
      const result: Json = { rank: page[i].rank, result: events[i] };
      if (criteria.context) result['context'] = await this.context(requester, page[i].record, criteria.context, snapshot);
      results.push(result);
    }
    const highlights = new Set<string>(criteria.terms);
    for (const m of matches) for (const token of m.matched) highlights.add(token);

    const out: Json = { count: matches.length, highlights: [...highlights], results };
    if (offset + pageSize < matches.length) out['next_batch'] = `n${snapshot}_${offset + pageSize}`;
    if (criteria.groupBy.length > 0) {
      // "a group entry for each distinct value": event IDs of this page per value; `order` is first appearance.
      const groups: Json = {};
      for (const key of criteria.groupBy) {
        const byValue: Record<string, { results: string[]; order: number }> = {};
        for (const m of page) {
          const value = key === 'room_id' ? m.record.room_id : m.record.sender;
          byValue[value] ??= { results: [], order: Object.keys(byValue).length + 1 };
          byValue[value].results.push(m.record._id);
        }
        groups[key] = byValue;
      }
      out['groups'] = groups;
    }
    if (criteria.includeState) {
      const state: Json = {};
      for (const roomId of new Set(page.map((m) => m.record.room_id))) {
        state[roomId] = (await this.rooms.currentState(roomId)).map((r) => toClientEvent(r, { requester }));
      }
      out['state'] = state;
    }
    return out;
  }

  /**
   * Matches in the rooms the user is or was in ("all rooms that the user has
   * been in, including those that they have left"), except end-to-end
   * encrypted ones ("The search will not include rooms that are end to end
   * encrypted"), that the filter lets through and the user may see ("Only
   * events that the user is allowed to see will be searched").
   */
  private async collect(userId: string, criteria: RoomEventsCriteria, snapshot: number): Promise<Match[]> {
    const types = new Set([...criteria.keys].map((k) => SEARCH_TYPES[k]));
    const memberships = await this.rooms.roomsOfUser(userId, ['join', 'leave', 'ban', 'invite']);
    const matches: Match[] = [];
    const canSee = this.relations.visibilityChecker(userId);
    // "Ignoring Users": ignored senders' messages are not given to the user, search results included (state events are).
    const ignored = await this.relations.ignoredUsers(userId);
    let budget = SCAN_TOTAL;
    for (const membership of memberships) {
      const roomId = membership.room_id;
      if (criteria.filter && !eventMatchesFilter({ rooms: criteria.filter.rooms, not_rooms: criteria.filter.not_rooms }, { type: '', room_id: roomId })) continue;
      if (await this.rooms.currentStateEvent(roomId, 'm.room.encryption', '')) continue;
      // Nothing after a leave or ban is visible unless the room is world_readable; canSeeEvent decides per event.
      let high = snapshot;
      let read = 0;
      // Down into backfilled history too (positions below 0, docs/federation-design.md "Backfill (as built)").
      while (high > HISTORY_FLOOR && read < SCAN_PER_ROOM && budget > 0 && matches.length < MAX_MATCHES) {
        const batch = await this.rooms.roomEvents(roomId, { from: HISTORY_FLOOR, to: high, limit: Math.min(BATCH, budget), direction: 'backward' });
        if (batch.length === 0) break;
        read += batch.length;
        budget -= batch.length;
        high = batch[batch.length - 1].stream - 1;
        for (const record of batch) {
          if (!types.has(record.type) || record.redacted) continue;
          if (record.state_key === null && ignored.has(record.sender) && record.sender !== userId) continue;
          const content = eventOf(record).content ?? {};
          if (criteria.filter && !eventMatchesFilter(criteria.filter, { type: record.type, sender: record.sender, room_id: record.room_id, content })) continue;
          const found = matchText(searchableText(record.type, content as JsonObject, criteria.keys), criteria.terms);
          if (!found) continue;
          if (!(await canSee(record))) continue;
          matches.push({ record, rank: found.rank, matched: found.matched });
          if (matches.length >= MAX_MATCHES) break;
        }
        if (batch.length < BATCH) break;
      }
    }
    return matches;
  }

  /**
   * event_context of one result: up to `before`/`after` visible events around
   * it, tokens for /messages from either end, and with include_profile "the
   * historic profile information of the users that sent the events returned"
   * (their member event in the state at the result).
   */
  private async context(requester: Requester, record: EventRecord, options: { before: number; after: number; includeProfile: boolean }, snapshot: number): Promise<Json> {
    const canSee = this.relations.visibilityChecker(requester.userId);
    const ignored = await this.relations.ignoredUsers(requester.userId);
    const shown = (e: EventRecord): boolean => e.state_key !== null || !ignored.has(e.sender) || e.sender === requester.userId;
    const before: EventRecord[] = [];
    const after: EventRecord[] = [];
    if (options.before > 0) {
      for (const e of await this.rooms.roomEvents(record.room_id, { from: HISTORY_FLOOR, to: record.stream - 1, limit: options.before, direction: 'backward' })) {
        if (shown(e) && (await canSee(e))) before.push(e);
      }
    }
    if (options.after > 0) {
      for (const e of await this.rooms.roomEvents(record.room_id, { from: record.stream, to: snapshot, limit: options.after, direction: 'forward' })) {
        if (shown(e) && (await canSee(e))) after.push(e);
      }
    }
    const out: Json = {
      start: paginationToken(before.length > 0 ? before[before.length - 1].stream - 1 : record.stream - 1),
      end: paginationToken(after.length > 0 ? after[after.length - 1].stream : record.stream),
      events_before: await this.relations.format(before, requester),
      events_after: await this.relations.format(after, requester),
    };
    if (options.includeProfile) {
      const state = await this.rooms.stateAtPosition(record.room_id, record.stream);
      const profiles: Record<string, Json> = {};
      for (const sender of new Set([record, ...before, ...after].map((e) => e.sender))) {
        const member = state.find((e) => e.type === 'm.room.member' && e.state_key === sender);
        if (!member) continue;
        const content = eventOf(member).content ?? {};
        const profile: Json = {};
        if (typeof content['displayname'] === 'string') profile['displayname'] = content['displayname'];
        if (typeof content['avatar_url'] === 'string') profile['avatar_url'] = content['avatar_url'];
        profiles[sender] = profile;
      }
      out['profile_info'] = profiles;
    }
    return out;
  }
}
