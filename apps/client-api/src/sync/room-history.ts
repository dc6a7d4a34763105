import { eventOf, toClientEvent, unsignedOf, type EventRecord, type MembershipRecord, type RoomStore } from '@atrium/rooms';
import { eventMatchesFilter, projectEventFields, type Filter, type RoomEventFilter } from '@atrium/matrix';
import type { Requester } from '@atrium/http';

/**
 * Reading a room's history for one user: which events they may see, pages of
 * events in stream order, and the form events are given in. Shared by /sync,
 * /messages and /context.
 */

const VISIBILITIES = new Set(['invited', 'joined', 'shared', 'world_readable']);

/** m.room.history_visibility content → its value; a missing or unknown value is `shared` (the event schema's default). */
export function historyVisibilityOf(record: EventRecord | undefined): string {
  if (!record) return 'shared';
  const value = eventOf(record).content['history_visibility'];
  return typeof value === 'string' && VISIBILITIES.has(value) ? value : 'shared';
}

/** The event's content, parsed once per record. */
const contents = new WeakMap<EventRecord, unknown>();
export function contentOf(record: EventRecord): unknown {
  let content = contents.get(record);
  if (content === undefined) {
    content = eventOf(record).content ?? {};
    contents.set(record, content);
  }
  return content;
}

/** Does the record pass a RoomEventFilter (types, senders, rooms, contains_url)? */
export function recordMatches(filter: RoomEventFilter | undefined, record: EventRecord): boolean {
  if (!filter) return true;
  return eventMatchesFilter(filter, { type: record.type, sender: record.sender, room_id: record.room_id, content: filter.contains_url === undefined ? undefined : contentOf(record) });
}

/**
 * The membership of a user in a room just after `position`: the stored
 * membership when it is not newer, else read from the state at `position`
 * (the membership changed after the snapshot this request reads up to).
 */
export async function membershipAt(rooms: RoomStore, current: MembershipRecord, position: number): Promise<MembershipRecord | null> {
  if (current.stream <= position) return current;
  const state = await rooms.stateAtPosition(current.room_id, position);
  const member = state.find((e) => e.type === 'm.room.member' && e.state_key === current.user_id);
  if (!member || member.membership === null) return null;
  return { ...current, membership: member.membership, event_id: member._id, sender: member.sender, stream: member.stream, forgotten: false };
}

/**
 * The events of `recordsAscending` (one room, stream order, contiguous: no
 * event of the room between two of them is missing) the user may see.
 *
 * client-server-api "History visibility", server behaviour:
 *   1. history_visibility world_readable → allow;
 *   2. the user's membership was join → allow;
 *   3. shared, and the user joined at any point after the event → allow;
 *   4. membership invite and visibility invited → allow;
 *   5. otherwise deny.
 * "Was" is the state before the event (history visibility), and the
 * membership after it for the user's own member events, which they always
 * see (their invite, join, leave, kick or ban: a client needs its own leave). A user whose current membership is
 * join at position J was joined for every event from J on, so those pass
 * without reading state; for earlier ones the state before the first is read
 * once and walked forward. For rule 3, a user currently joined, or whose
 * leave/ban came straight from join, was joined after every event before it.
 * (Same rules as libs/rooms canSeeEvent, which checks one event.)
 */
export async function visibleEvents(rooms: RoomStore, userId: string, recordsAscending: EventRecord[], current: MembershipRecord | null): Promise<EventRecord[]> {
  // Rejected and soft-failed events (server-server-api "Rejection", "Soft failure") never reach clients.
  recordsAscending = recordsAscending.filter((r) => !r.rejected && !r.soft_failed);
  if (recordsAscending.length === 0) return [];
  const joinedSince = current?.membership === 'join' ? current.stream : Number.POSITIVE_INFINITY;
  const early = recordsAscending.filter((r) => r.stream < joinedSince);
  if (early.length === 0) return recordsAscending;

  let sharedUntil = Number.NEGATIVE_INFINITY;
  if (current?.membership === 'join') sharedUntil = Number.POSITIVE_INFINITY;
  else if (current && (current.membership === 'leave' || current.membership === 'ban')) {
    const leave = await rooms.getEvent(current.event_id);
    const prev = leave ? unsignedOf(leave)['prev_content'] : undefined;
    if (prev && typeof prev === 'object' && !Array.isArray(prev) && prev['membership'] === 'join') sharedUntil = current.stream;
  }

  const roomId = early[0].room_id;
  let before = await rooms.stateAtPosition(roomId, early[0].stream - 1);
  if (early[0].stream < 0) before = await withJoinState(rooms, roomId, before);
  let visibility = historyVisibilityOf(before.find((e) => e.type === 'm.room.history_visibility' && e.state_key === ''));
  let membership: string | null = before.find((e) => e.type === 'm.room.member' && e.state_key === userId)?.membership ?? null;

  const out: EventRecord[] = [];
  for (const record of recordsAscending) {
    if (record.stream >= joinedSince) {
      out.push(record);
      continue;
    }
    const own = record.type === 'm.room.member' && record.state_key === userId;
    const at = own ? record.membership : membership;
    let allowed: boolean;
    if (visibility === 'world_readable') allowed = true;
    // A user always sees their own membership events (their invite, join, leave, kick or ban), as other servers do.
    else if (own || at === 'join') allowed = true;
    else if (visibility === 'shared' && record.stream < sharedUntil) allowed = true;
    else allowed = visibility === 'invited' && at === 'invite';
    if (allowed) out.push(record);
    if (own) membership = record.membership;
    if (record.type === 'm.room.history_visibility' && record.state_key === '') visibility = historyVisibilityOf(record);
  }
  return out;
}

/**
 * History backfilled over federation sits below 0 (docs/federation-design.md
 * "Backfill (as built)"), and the state log there holds only the backfilled
 * state events; the state send_join gave is logged just before the room's
 * first timeline event above 0. Keys the backfilled state lacks take that
 * state (the earliest this server knows), so history visibility and the
 * user's membership are judged from it rather than from nothing.
 */
async function withJoinState(rooms: RoomStore, roomId: string, before: EventRecord[]): Promise<EventRecord[]> {
  const [first] = await rooms.roomEvents(roomId, { from: 0, to: Number.MAX_SAFE_INTEGER, direction: 'forward', limit: 1 });
  if (!first) return before;
  const key = (e: EventRecord): string => `${e.type}\u0000${e.state_key ?? ''}`;
  const have = new Set(before.map(key));
  const joinState = (await rooms.stateAtPosition(roomId, first.stream - 1)).filter((e) => !have.has(key(e)));
  return [...before, ...joinState];
}

/** Formats events for a client: ClientEvent (or the raw PDU for event_format federation), projected to event_fields. */
export class EventFormatter {
  private readonly now = Date.now();

  constructor(
    private readonly requester: Requester,
    private readonly filter: Pick<Filter, 'event_fields' | 'event_format'> = {},
    /** /sync leaves room_id out (ClientEventWithoutRoomID); /messages and /context keep it. */
    private readonly omitRoomId = false,
  ) {}

  format(record: EventRecord): Record<string, unknown> {
    let event: Record<string, unknown>;
    if (this.filter.event_format === 'federation') {
      // sync_filter.yaml event_format: "federation will return the raw event as received over federation".
      event = { ...(eventOf(record) as unknown as Record<string, unknown>) };
    } else {
      event = toClientEvent(record, { now: this.now, requester: this.requester, omitRoomId: this.omitRoomId }) as unknown as Record<string, unknown>;
    }
    return projectEventFields(event, this.filter.event_fields);
  }

  formatAll(records: EventRecord[]): Record<string, unknown>[] {
    return records.map((r) => this.format(r));
  }
}

export interface Page {
  /** The events chosen, in the order walked (newest first for backward, oldest first for forward). */
  events: EventRecord[];
  /** True when events of the range were left out because of the limit (more remain). */
  more: boolean;
  /**
   * The boundary after walking: for backward the position just below the
   * last event examined (events ≤ it are still to read), for forward the
   * last position examined (events > it are still to read).
   */
  next: number;
}

/**
 * Walks a room's events in `(from, to]` (backward from `to`, or forward from
 * `from`), keeping those the user may see and the filter passes, until
 * `limit` are found. Reads in batches; at most `maxBatches` of them so one
 * request stays bounded even when a filter matches nothing (`more` then says
 * the walk stopped early and `next` where to resume).
 */
export async function walkRoom(
  rooms: RoomStore,
  userId: string,
  roomId: string,
  options: {
    from: number;
    to: number;
    direction: 'backward' | 'forward';
    limit: number;
    filter?: RoomEventFilter;
    membership: MembershipRecord | null;
    maxBatches?: number;
    /** Senders whose non-state events are left out ("Ignoring Users": state events are still sent). */
    ignored?: ReadonlySet<string>;
  },
): Promise<Page> {
  const { limit, direction } = options;
  const batchSize = Math.min(Math.max(limit + 1, 20), 500);
  const maxBatches = options.maxBatches ?? 10;
  const chosen: EventRecord[] = [];
  let low = options.from;
  let high = options.to;
  let more = false;
  for (let round = 0; round < maxBatches && low < high; round++) {
    const batch = await rooms.roomEvents(roomId, { from: low, to: high, limit: batchSize, direction });
    if (batch.length === 0) {
      if (direction === 'backward') high = low;
      else low = high;
      break;
    }
    const ascending = direction === 'backward' ? [...batch].reverse() : batch;
    const visible = new Set(await visibleEvents(rooms, userId, ascending, options.membership));
    const exhausted = batch.length < batchSize;
    let stoppedAt = -1;
    for (let i = 0; i < batch.length; i++) {
      const record = batch[i];
      if (!visible.has(record) || !recordMatches(options.filter, record)) continue;
      if (record.state_key === null && options.ignored?.has(record.sender)) continue;
      if (chosen.length === limit) {
        stoppedAt = i;
        break;
      }
      chosen.push(record);
    }
    if (stoppedAt >= 0) {
      // The limit was reached with an event of the range still to give: resume at it.
      if (direction === 'backward') high = batch[stoppedAt].stream;
      else low = batch[stoppedAt].stream - 1;
      more = true;
      break;
    }
    const lastRecord = batch[batch.length - 1];
    if (direction === 'backward') high = lastRecord.stream - 1;
    else low = lastRecord.stream;
    if (exhausted) {
      if (direction === 'backward') high = low;
      else low = high;
      break;
    }
    if (round === maxBatches - 1) more = true;
  }
  if (!more && chosen.length === limit && low < high) {
    // Exactly `limit` found and the batch ended there: more only if events remain in the range.
    more = await rooms.roomHasEventsBetween(roomId, low, high);
  }
  return { events: chosen, more, next: direction === 'backward' ? high : low };
}
