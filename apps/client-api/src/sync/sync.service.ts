import { Inject, Injectable, Optional } from '@nestjs/common';
import { Errors, type Requester } from '@atrium/http';
import {
  effectiveLimit,
  eventMatchesFilter,
  includeRedundantMembers,
  lazyLoadMembers,
  roomMatchesFilter,
  type Filter,
  type RoomEventFilter,
} from '@atrium/matrix';
import { bundleAggregations } from '@atrium/relations';
import { EVENTS_STREAM, StreamAllocator, eventOf, unsignedOf, type EventRecord, type MembershipRecord, type RoomStore } from '@atrium/rooms';
import type { DocumentStore } from '@atrium/storage';
import { CACHE, DOCUMENT_STORE } from '@atrium/platform';
import type { Cache } from '@atrium/cache';
import { IgnoredUsers } from '../ignored-users/ignored-users';
import { InvitePermission } from '../invite-permission/invite-permission';
import { LazyMemberCache } from './lazy-members';
import { EventFormatter, membershipAt, recordMatches, walkRoom } from './room-history';
import { SyncNotifier } from './sync-notifier';
import { SYNC_ROOM_STORE } from './sync-rooms';
import { SYNC_SECTIONS, type StreamPositions, type SyncSection, type SyncSectionResult } from './sync-sections';
import { eventsToken, formatSyncToken, zeroPositions } from './sync-token';

/** Timeline events per room when the filter gives no limit (what other servers use). */
export const DEFAULT_TIMELINE_LIMIT = 10;
/** The most a client can ask for per room; a larger filter limit is clamped. */
export const MAX_TIMELINE_LIMIT = 500;
/** The longest a long-poll waits, whatever `timeout` says. */
export const MAX_SYNC_TIMEOUT_MS = 5 * 60_000;
/** A waiting request re-reads storage at least this often (a lost notification, an abandoned stream gap). */
const RECHECK_MS = 10_000;
/** …and this often while the events stream has a gap in flight (its writer's notification may name another room). */
const GAP_RECHECK_MS = 250;

/**
 * "Stripped state" (client-server-api "Stripped state"): the state events an
 * invitee or knocker is given about a room they are not in, the ones the spec
 * recommends, reduced to type, state_key, sender and content.
 */
const STRIPPED_STATE_TYPES = new Set([
  'm.room.create',
  'm.room.name',
  'm.room.avatar',
  'm.room.topic',
  'm.room.join_rules',
  'm.room.canonical_alias',
  'm.room.encryption',
]);

export interface SyncParams {
  since?: StreamPositions;
  fullState: boolean;
  timeoutMs: number;
  filter: Filter;
  setPresence?: 'online' | 'offline' | 'unavailable';
  /**
   * sync.yaml `use_state_after` (v1.16; matrix-js-sdk sends MSC4222's
   * `org.matrix.msc4222.use_state_after`): the key that replaces `state` in
   * joined and left rooms, named after the parameter the client used. Absent: `state`.
   */
  stateAfterKey?: StateAfterKey;
}

export type StateAfterKey = 'state_after' | 'org.matrix.msc4222.state_after';

type Json = Record<string, unknown>;

interface JoinedRoomOut {
  summary?: Json;
  /** Or, with use_state_after, the same list under SyncParams.stateAfterKey. */
  state?: { events: Json[] };
  timeline: { events: Json[]; limited: boolean; prev_batch: string };
  ephemeral: { events: Json[] };
  account_data: { events: Json[] };
  unread_notifications: { highlight_count: number; notification_count: number };
  [key: string]: unknown;
}

interface SyncResponse {
  next_batch: string;
  rooms: { join: Record<string, JoinedRoomOut>; invite: Record<string, Json>; leave: Record<string, Json>; knock: Record<string, Json> };
  [key: string]: unknown;
}

/** A room's part of a response (SyncService.roomEntry); `value` absent: listed as joined, nothing to send. */
interface RoomEntry {
  section: 'join' | 'invite' | 'knock' | 'leave';
  roomId: string;
  value?: Json;
}

/** Rooms of one response read at once. */
const ROOM_CONCURRENCY = 8;

interface Built {
  response: SyncResponse;
  hasUpdates: boolean;
  /** Every room the user has a membership in (what wakes this request). */
  roomIds: Set<string>;
}

/**
 * GET /sync (data/api/client-server/sync.yaml; client-server-api "Syncing").
 *
 * One request reads every stream between the `since` token and a snapshot of
 * the streams' safe positions taken at its start (docs/client-server-design.md
 * "Streams"), and answers with that snapshot as `next_batch`. The next request
 * starts exactly there, so a client that keeps syncing sees every event once:
 * an event is in a response iff its position is in that response's
 * `(since, next_batch]` (or in a gap a limited timeline's `prev_batch` leads to).
 */
@Injectable()
export class SyncService {
  private readonly lazyMembers: LazyMemberCache;
  private readonly streams: Promise<StreamAllocator>;

  constructor(
    @Inject(SYNC_ROOM_STORE) private readonly rooms: RoomStore,
    @Inject(DOCUMENT_STORE) private readonly store: DocumentStore,
    @Inject(SYNC_SECTIONS) private readonly sections: SyncSection[],
    private readonly notifier: SyncNotifier,
    @Inject(CACHE) cache: Cache,
    @Optional() private readonly ignoredUsers?: IgnoredUsers,
    @Optional() private readonly invitePermission?: InvitePermission,
  ) {
    this.streams = StreamAllocator.open(store);
    this.lazyMembers = new LazyMemberCache(cache);
  }

  /** The events stream's safe position (what a response reads up to) and the last allocated one. */
  async eventsPositions(): Promise<{ safe: number; max: number }> {
    const streams = await this.streams;
    const max = await this.store.currentSequence(StreamAllocator.counter(EVENTS_STREAM));
    const safe = await streams.safePosition(EVENTS_STREAM);
    return { safe: Math.min(safe, max), max };
  }

  async sync(requester: Requester, params: SyncParams, signal?: AbortSignal): Promise<SyncResponse> {
    const from = params.since ?? zeroPositions();
    const initial = params.since === undefined;
    const { max } = await this.eventsPositions();
    // A token past every allocated position was not issued by this server's storage.
    if (from.events > max) throw Errors.invalidParam('since is not a valid sync token');

    // full_state: "the timeout parameter will be ignored and the query will return immediately".
    const timeout = initial || params.fullState ? 0 : Math.min(Math.max(0, params.timeoutMs), MAX_SYNC_TIMEOUT_MS);
    const deadline = Date.now() + timeout;
    // Armed before the first read: a notification arriving while we read is not lost.
    const armed = this.notifier.arm(requester.userId, null);
    try {
      for (let round = 0; round < 100_000; round++) {
        const positions = await this.eventsPositions();
        const built = await this.build(requester, params, from, positions.safe, initial);
        armed.setRooms(built.roomIds);
        const remaining = deadline - Date.now();
        if (built.hasUpdates || remaining <= 0 || signal?.aborted) return built.response;
        const interval = positions.safe < positions.max ? GAP_RECHECK_MS : RECHECK_MS;
        await armed.wait(Math.min(remaining, interval), signal);
        if (signal?.aborted) return built.response;
      }
      throw Errors.unknown('sync loop bound reached');
    } finally {
      armed.cancel();
    }
  }

  private async build(requester: Requester, params: SyncParams, from: StreamPositions, safeEvents: number, initial: boolean): Promise<Built> {
    const userId = requester.userId;
    const filter = params.filter;
    // The snapshot: never behind the token (the safe position can dip while a write is in flight).
    const to: StreamPositions = { ...from, events: Math.max(safeEvents, from.events) };
    for (const section of this.sections) to[section.stream] = Math.max(from[section.stream], await section.currentPosition());
    const T = to.events;
    const F = initial ? 0 : from.events;
    const formatter = new EventFormatter(requester, filter, true);

    const response: SyncResponse = {
      next_batch: formatSyncToken(to),
      rooms: { join: {}, invite: {}, leave: {}, knock: {} },
      account_data: { events: [] },
      presence: { events: [] },
      to_device: { events: [] },
      device_lists: { changed: [], left: [] },
    };
    const roomIds = new Set<string>();
    const joinedRoomIds: string[] = [];
    // Rooms with events in (F, T] in one query (null: too many to list, ask room by room).
    const active = initial ? null : await this.rooms.roomsWithEventsBetween(F, T);
    let hasUpdates = initial;
    // "Ignoring Users": read per request, so a change to the list applies from the next response on.
    const ignored = (await this.ignoredUsers?.of(userId)) ?? new Set<string>();
    // "Invite permission": read only when the user holds an invite (most syncs hold none).
    let blocksInvites: Promise<boolean> | undefined;
    const invitesHidden = (): Promise<boolean> => (blocksInvites ??= this.invitePermission?.blocksInvites(userId) ?? Promise.resolve(false));

    // Rooms are independent of each other: read ROOM_CONCURRENCY at a time (each costs several
    // storage round trips, which a cluster's database answers in milliseconds), placed in order.
    const memberships = await this.rooms.roomsOfUser(userId);
    const entries = new Array<RoomEntry | null>(memberships.length);
    let next = 0;
    await Promise.all(
      Array.from({ length: Math.min(ROOM_CONCURRENCY, memberships.length) }, async () => {
        while (next < memberships.length) {
          const i = next++;
          entries[i] = await this.roomEntry(requester, params, memberships[i], F, T, initial, active, formatter, to, ignored, invitesHidden);
        }
      }),
    );
    for (const [i, stored] of memberships.entries()) {
      roomIds.add(stored.room_id);
      const entry = entries[i];
      if (!entry) continue;
      if (entry.section === 'join') joinedRoomIds.push(entry.roomId);
      if (entry.value === undefined) continue;
      response.rooms[entry.section][entry.roomId] = entry.value as JoinedRoomOut & Json;
      hasUpdates = true;
    }

    // Sections: account data, to-device, presence, receipts, typing… (SYNC_SECTIONS).
    for (const section of this.sections) {
      const result: SyncSectionResult = await section.build({
        userId,
        deviceId: requester.deviceId,
        from: initial ? zeroPositions() : from,
        to,
        fullState: initial || params.fullState,
        initial,
        filter,
        joinedRoomIds,
        setPresence: params.setPresence,
      });
      if (result.hasUpdates) hasUpdates = true;
      if (result.top) Object.assign(response, result.top);
      for (const [roomId, parts] of Object.entries(result.rooms ?? {})) {
        if (!joinedRoomIds.includes(roomId)) continue;
        const room = (response.rooms.join[roomId] ??= this.emptyJoinedRoom(to, params.stateAfterKey));
        for (const [key, value] of Object.entries(parts)) room[key] = value;
      }
    }
    return { response, hasUpdates, roomIds };
  }

  /**
   * One room of the user for a response: which section it belongs to
   * (`join` rooms are listed for the sections even when unchanged) and
   * what to send, if anything; null when the room is left out entirely.
   */
  private async roomEntry(
    requester: Requester,
    params: SyncParams,
    stored: MembershipRecord,
    F: number,
    T: number,
    initial: boolean,
    active: Set<string> | null,
    formatter: EventFormatter,
    to: StreamPositions,
    ignored: ReadonlySet<string>,
    invitesHidden: () => Promise<boolean>,
  ): Promise<RoomEntry | null> {
    const roomFilter = params.filter.room;
    const m = await membershipAt(this.rooms, stored, T);
    if (!m) return null;
    // RoomFilter rooms/not_rooms: "applied before the filters in ephemeral, state, timeline or account_data".
    if (!roomMatchesFilter(roomFilter, m.room_id)) return null;
    const changed = initial || m.stream > F;
    switch (m.membership) {
      case 'join': {
        const entry: RoomEntry = { section: 'join', roomId: m.room_id };
        const full = initial || params.fullState || changed;
        if (!full && !(active ? active.has(m.room_id) : await this.rooms.roomHasEventsBetween(m.room_id, F, T))) return entry;
        const room = await this.joinedRoom(requester, m, F, T, full, params.filter, formatter, to, ignored, params.stateAfterKey);
        // Only ignored users' events in the range: nothing to send, and no reason to end a long-poll.
        if (!full && ignored.size > 0 && room.timeline.events.length === 0 && !room.timeline.limited && stateEventsOf(room, params.stateAfterKey).length === 0) return entry;
        return { ...entry, value: room };
      }
      case 'invite':
        if (!changed && !params.fullState) return null;
        // "Servers must not send room invites from ignored users to clients."
        if (ignored.has(m.sender)) return null;
        // Invites to a user who blocks them "MUST NOT be served over client synchronisation endpoints".
        if (await invitesHidden()) return null;
        return { section: 'invite', roomId: m.room_id, value: { invite_state: { events: await this.strippedState(m) } } };
      case 'knock':
        if (!changed && !params.fullState) return null;
        return { section: 'knock', roomId: m.room_id, value: { knock_state: { events: await this.strippedState(m) } } };
      case 'leave':
      case 'ban': {
        // A forgotten room is not shown again; an initial or full-state sync shows left rooms only with include_leave.
        if (m.forgotten) return null;
        if (initial || params.fullState ? roomFilter?.include_leave !== true : !changed) return null;
        return { section: 'leave', roomId: m.room_id, value: await this.leftRoom(requester, m, F, params.filter, formatter, to, initial || params.fullState, ignored, params.stateAfterKey) };
      }
      default:
        return null;
    }
  }

  private emptyJoinedRoom(to: StreamPositions, stateAfterKey?: StateAfterKey): JoinedRoomOut {
    // use_state_after: `state` "MUST be omitted", `state_after` is "Required ..., even if it is empty".
    return {
      ...(stateAfterKey ? { [stateAfterKey]: { events: [] } } : { state: { events: [] } }),
      timeline: { events: [], limited: false, prev_batch: formatSyncToken(to) },
      ephemeral: { events: [] },
      account_data: { events: [] },
      unread_notifications: { highlight_count: 0, notification_count: 0 },
    };
  }

  /**
   * One joined room. timeline: the newest visible events in `(F, T]` (from
   * the start for an initial sync), `limited` when older ones were left out,
   * `prev_batch` just before the first. state: "Updates to the state, between
   * the time indicated by the since parameter, and the start of the timeline
   * (or all state up to the start of the timeline, if since is not given, or
   * full_state is true)"; a room joined since the last sync gets its full
   * state too, as the client knows nothing of it. With use_state_after the
   * same, up to the end of the timeline instead of its start (stateAfterFor).
   */
  private async joinedRoom(
    requester: Requester,
    m: MembershipRecord,
    F: number,
    T: number,
    full: boolean,
    filter: Filter,
    formatter: EventFormatter,
    to: StreamPositions,
    ignored: ReadonlySet<string> = new Set(),
    stateAfterKey?: StateAfterKey,
  ): Promise<JoinedRoomOut> {
    const out = this.emptyJoinedRoom(to, stateAfterKey);
    const timeline = await this.timeline(requester.userId, m, F, T, filter.room?.timeline, ignored);
    // Bundled aggregations (client-server-api "Aggregations of child events"), as known at this sync's position.
    const events = await bundleAggregations(this.rooms, formatter.formatAll(timeline.events), timeline.events, { userId: requester.userId, upTo: T, ignoredUsers: ignored });
    out.timeline = { events, limited: timeline.limited, prev_batch: eventsToken(timeline.start - 1, to) };
    const state = formatter.formatAll(
      stateAfterKey ? await this.stateAfterFor(requester, m, F, T, timeline, full, filter.room?.state) : await this.stateFor(requester, m, F, timeline, full, filter.room?.state),
    );
    out[stateAfterKey ?? 'state'] = { events: state };
    const memberChange = full || timeline.events.some((e) => e.type === 'm.room.member') || state.some((e) => e['type'] === 'm.room.member');
    if (memberChange) out.summary = await this.summary(m.room_id, requester.userId);
    return out;
  }

  /** A left (or banned) room: the events up to the leave, and the state as for a joined room. */
  private async leftRoom(
    requester: Requester,
    m: MembershipRecord,
    F: number,
    filter: Filter,
    formatter: EventFormatter,
    to: StreamPositions,
    full: boolean,
    ignored: ReadonlySet<string> = new Set(),
    stateAfterKey?: StateAfterKey,
  ): Promise<Json> {
    const timeline = await this.timeline(requester.userId, m, F, m.stream, filter.room?.timeline, ignored);
    // state_after of a left room: "The state updates for the room up to the end of the timeline" (the leave).
    const state = stateAfterKey ? await this.stateAfterFor(requester, m, F, m.stream, timeline, full, filter.room?.state) : await this.stateFor(requester, m, F, timeline, full, filter.room?.state);
    return {
      [stateAfterKey ?? 'state']: { events: formatter.formatAll(state) },
      timeline: {
        events: await bundleAggregations(this.rooms, formatter.formatAll(timeline.events), timeline.events, { userId: requester.userId, upTo: m.stream, ignoredUsers: ignored }),
        limited: timeline.limited,
        prev_batch: eventsToken(timeline.start - 1, to),
      },
      account_data: { events: [] },
    };
  }

  private async timeline(userId: string, m: MembershipRecord, F: number, upTo: number, timelineFilter: RoomEventFilter | undefined, ignored?: ReadonlySet<string>) {
    const limit = effectiveLimit(timelineFilter, DEFAULT_TIMELINE_LIMIT, MAX_TIMELINE_LIMIT);
    const page = await walkRoom(this.rooms, userId, m.room_id, { from: F, to: upTo, direction: 'backward', limit, filter: timelineFilter, membership: m, ignored });
    const events = page.events.reverse();
    // The first timeline event's position; with no events, the timeline "starts" after upTo.
    const start = events.length > 0 ? events[0].stream : upTo + 1;
    return { events, limited: page.more, start };
  }

  /**
   * The `state` of a joined or left room, with the state filter and
   * lazy-loading (client-server-api "Lazy-loading room members"; sync.yaml:
   * lazy-loading applies to the `state` filter of /sync, the user's own
   * membership is included when full state is sent, and when the timeline is
   * limited the members of the gap are sent regardless of redundancy).
   */
  private async stateFor(
    requester: Requester,
    m: MembershipRecord,
    F: number,
    timeline: { events: EventRecord[]; limited: boolean; start: number },
    full: boolean,
    stateFilter: RoomEventFilter | undefined,
  ): Promise<EventRecord[]> {
    const roomId = m.room_id;
    const lazy = lazyLoadMembers(stateFilter);
    const redundant = includeRedundantMembers(stateFilter);
    const wanted = new Set(timeline.events.map((e) => e.sender));
    if (full) wanted.add(requester.userId);
    if (!full && !timeline.limited && !lazy) return [];
    const alreadySent = lazy && !full && !redundant ? await this.lazyMembers.sent(requester.userId, requester.deviceId, roomId) : new Set<string>();
    if (!full && !timeline.limited) {
      // Lazy-loading with nothing in the gap: only the timeline senders this device was not sent yet.
      if (![...wanted].some((u) => !alreadySent.has(u))) return [];
    }
    const atStart = await this.rooms.stateAtPosition(roomId, timeline.start - 1);
    // full: all state at the start of the timeline; else the entries that changed in the gap (F, start).
    let state = full ? atStart : timeline.limited ? atStart.filter((e) => e.stream > F) : [];
    state = state.filter((e) => recordMatches(stateFilter, e));
    if (!lazy) return state;

    const memberOf = new Map(atStart.filter((e) => e.type === 'm.room.member' && e.state_key !== null).map((e) => [e.state_key as string, e]));
    const chosen = state.filter((e) => e.type !== 'm.room.member');
    const sent: string[] = [];
    for (const e of state) {
      // Members that changed in the gap of a limited incremental timeline are always sent (sync.yaml);
      // with full state, only the members the timeline needs (and the user).
      if (e.type === 'm.room.member' && e.state_key !== null && (wanted.has(e.state_key) || (!full && timeline.limited))) {
        chosen.push(e);
        sent.push(e.state_key);
      }
    }
    const already = new Set(sent);
    for (const member of wanted) {
      if (already.has(member)) continue;
      const event = memberOf.get(member);
      if (!event || !eventMatchesFilter({ not_types: stateFilter?.not_types, types: stateFilter?.types }, { type: event.type })) continue;
      if (alreadySent.has(member)) continue;
      chosen.push(event);
      sent.push(member);
    }
    const timelineMembers = timeline.events.filter((e) => e.type === 'm.room.member' && e.state_key !== null).map((e) => e.state_key as string);
    await this.lazyMembers.record(requester.userId, requester.deviceId, roomId, [...sent, ...timelineMembers], full, redundant ? undefined : alreadySent);
    return chosen;
  }

  /**
   * `state_after` (sync.yaml, v1.16): the state changes between `since` and
   * the end of the timeline at `end` (all state there when `full`), which
   * the client applies instead of the state events of the timeline; so they
   * are here even when the timeline carries them too. Lazy-loading as for
   * `state`: every member event that changed is sent (the client takes none
   * from the timeline), plus the members of the timeline's senders this
   * device has not been sent yet.
   */
  private async stateAfterFor(
    requester: Requester,
    m: MembershipRecord,
    F: number,
    end: number,
    timeline: { events: EventRecord[] },
    full: boolean,
    stateFilter: RoomEventFilter | undefined,
  ): Promise<EventRecord[]> {
    const roomId = m.room_id;
    const lazy = lazyLoadMembers(stateFilter);
    const redundant = includeRedundantMembers(stateFilter);
    // Incrementally only the state log between the positions is read (most syncs: nothing there).
    const changed = await this.rooms.stateChangesBetween(roomId, full ? Number.MIN_SAFE_INTEGER : F, end);
    const state = changed.filter((e) => recordMatches(stateFilter, e));
    if (!lazy) return state;

    const wanted = new Set(timeline.events.map((e) => e.sender));
    if (full) wanted.add(requester.userId);
    const alreadySent = !full && !redundant ? await this.lazyMembers.sent(requester.userId, requester.deviceId, roomId) : new Set<string>();
    const chosen: EventRecord[] = [];
    const sent = new Set<string>();
    for (const e of state) {
      const isMember = e.type === 'm.room.member' && e.state_key !== null;
      // With full state only the members the timeline needs (and the user); incrementally, every change.
      if (isMember && full && !wanted.has(e.state_key as string)) continue;
      chosen.push(e);
      if (isMember) sent.add(e.state_key as string);
    }
    const missing = [...wanted].filter((u) => !sent.has(u) && !alreadySent.has(u));
    if (missing.length > 0 && eventMatchesFilter({ not_types: stateFilter?.not_types, types: stateFilter?.types }, { type: 'm.room.member' })) {
      for (const e of await this.rooms.memberEventsAt(roomId, missing, end)) {
        chosen.push(e);
        sent.add(e.state_key as string);
      }
    }
    await this.lazyMembers.record(requester.userId, requester.deviceId, roomId, [...sent], full, redundant ? undefined : alreadySent);
    return chosen;
  }

  /**
   * sync.yaml RoomSummary: `m.heroes` ("the first 5 members of the room,
   * ordered by stream ordering, which are joined or invited", not the user;
   * left members when there are none), `m.joined_member_count`,
   * `m.invited_member_count`.
   */
  private async summary(roomId: string, userId: string): Promise<Json> {
    const members = await this.rooms.membersOfRoom(roomId);
    const active = members.filter((r) => r.membership === 'join' || r.membership === 'invite');
    const byStream = (a: MembershipRecord, b: MembershipRecord): number => a.stream - b.stream;
    let heroes = active.filter((r) => r.user_id !== userId).sort(byStream);
    if (heroes.length === 0) heroes = members.filter((r) => r.user_id !== userId && (r.membership === 'leave' || r.membership === 'ban')).sort(byStream);
    return {
      'm.heroes': heroes.slice(0, 5).map((r) => r.user_id),
      'm.joined_member_count': members.filter((r) => r.membership === 'join').length,
      'm.invited_member_count': members.filter((r) => r.membership === 'invite').length,
    };
  }

  /**
   * invite_state / knock_state: the stripped state the room server attached
   * to the membership event (`unsigned.invite_room_state` /
   * `knock_room_state`) when there is one, else the recommended state events
   * at the membership, plus the membership event itself (clients read the
   * inviter from it).
   */
  private async strippedState(m: MembershipRecord): Promise<Json[]> {
    const strip = (e: { type: string; state_key?: string; sender: string; content: unknown }): Json => ({ type: e.type, state_key: e.state_key ?? '', sender: e.sender, content: e.content });
    const member = await this.rooms.getEvent(m.event_id);
    const out: Json[] = [];
    const fromEvent = member ? unsignedOf(member)[m.membership === 'knock' ? 'knock_room_state' : 'invite_room_state'] : undefined;
    if (Array.isArray(fromEvent)) {
      for (const e of fromEvent) if (e && typeof e === 'object' && !Array.isArray(e)) out.push(e as Json);
    } else {
      for (const e of await this.rooms.stateAtPosition(m.room_id, m.stream)) {
        if (STRIPPED_STATE_TYPES.has(e.type)) out.push(strip(eventOf(e)));
      }
    }
    if (member && !out.some((e) => e['type'] === 'm.room.member' && e['state_key'] === m.user_id)) out.push(strip(eventOf(member)));
    return out;
  }
}


/** A built joined room's state list, under `state` or the use_state_after key. */
function stateEventsOf(room: JoinedRoomOut, stateAfterKey: StateAfterKey | undefined): Json[] {
  const list = (stateAfterKey ? room[stateAfterKey] : room.state) as { events: Json[] } | undefined;
  return list?.events ?? [];
}
