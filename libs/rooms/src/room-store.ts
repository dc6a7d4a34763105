import type { Collection, Doc, DocumentStore, Filter } from '@atrium/storage';
import { authEventIds, stateKey, type JsonObject, type RoomEvent, type StateKey } from '@atrium/matrix';
import { currentSpanId, currentTraceId } from '@atrium/telemetry';
import { StreamAllocator } from './stream-allocator';
import { StateGroups, type StateGroupRecord, type StateIds } from './state-groups';

/**
 * Room storage over the DocumentStore port (docs/client-server-design.md
 * "Where the code lives": events, current state, memberships by user,
 * forward extremities, aliases, txn IDs, stream positions of room events).
 *
 * Rules it keeps (ARCHITECTURE.md "Storage" and rules 2–4):
 * - the event JSON is stored as a string (`json`), byte-exact, with the fields
 *   that are queried extracted beside it;
 * - no transactions: every write is an idempotent insert or a put keyed by a
 *   natural key, so a replay after a crash converges. The room server is the
 *   only writer of a room, so the sequence "insert event, then update current
 *   state / memberships / extremities" has no concurrent interleaving to fear;
 * - positions in the `events` stream come from StreamAllocator, and readers use
 *   `safeStreamPosition()` as the upper bound of what they read.
 */

/** The `events` stream's name (counter `stream.events`). */
export const EVENTS_STREAM = 'events';

/**
 * The `stream` of an event that has no place in the timeline: an outlier
 * (fetched for its state or auth chain, its prev_events unknown), a rejected
 * event, a soft-failed one. Every timeline reader asks for `stream > from`
 * with `from >= 0`, so these never reach /sync, /messages or the room output
 * log (server-server-api "Rejection": "neither be relayed to clients";
 * "Soft failure": "it should not be relayed to the client").
 */
export const NO_STREAM = 0;

/**
 * Stream positions per page of the room output log. The log is read by
 * stream range alone (`allEventsBetween`, after every event, by the push
 * gateway, federation-outbound, the user-directory indexer and /sync's
 * counts). A store that serves ranges from an index (MongoDB, SQLite) does
 * not care; one that only hands equality filters to its engine (FerretDB
 * 1.24 on PostgreSQL, the cluster's test stand-in for MongoDB) would read
 * and decode the whole collection for every such read. Adding `log_page =
 * floor(stream / LOG_PAGE_SIZE)` as an equality bounds that read to one or
 * two pages of events. Small pages: FerretDB decodes every row of a page
 * (21 ms a read at 128 per page, storage profile of 2026-11-26), and a
 * reader far behind still reads `limit` events in a few queries.
 */
export const LOG_PAGE_SIZE = 32;

/** Stores whose old log events were given `log_page` by this process (RoomStore.open runs it once per store). */
const pagedStores = new WeakSet<DocumentStore>();

/** The log page of an event at `stream` (null outside the log: outliers and backfilled events). */
export function logPageOf(stream: number): number | null {
  return stream > NO_STREAM ? Math.floor(stream / LOG_PAGE_SIZE) : null;
}

/**
 * `from < stream <= to` over the timeline. Events backfilled over federation
 * sit below 0 (docs/federation-design.md "Backfill (as built)"); a range that
 * reaches below 0 leaves out NO_STREAM (outliers, rejected, soft-failed).
 */
function timelineRange(from: number, to: number): { $gt: number; $lte: number; $ne?: number } {
  return from < NO_STREAM ? { $gt: from, $lte: to, $ne: NO_STREAM } : { $gt: from, $lte: to };
}

export interface EventRecord extends Doc {
  _id: string; // the event ID
  /**
   * `<trace ID>-<span ID>` of the span that stored the event (absent
   * outside a span): federation-outbound links its transaction span to it
   * (docs/federation-design.md "Tracing"), so one trace runs from the
   * request that caused an event to every transaction carrying it.
   */
  trace?: string;
  room_id: string;
  type: string;
  /** null for a message (non-state) event. */
  state_key: string | null;
  sender: string;
  /** Position in the `events` stream. */
  stream: number;
  /**
   * `logPageOf(stream)` for an event in the room output log (stream > 0),
   * else null: `allEventsBetween` reads the log page by page with an
   * equality on this field (see LOG_PAGE_SIZE for why).
   */
  log_page?: number | null;
  depth: number;
  origin_server_ts: number;
  /** `content.membership` of m.room.member events, else null. */
  membership: string | null;
  /** True once a redaction has been applied: `json` then holds the redacted form. */
  redacted: boolean;
  /** The event ID of the m.room.redaction that redacted it. */
  redacted_by: string | null;
  /** For m.room.redaction events: the event it redacts. */
  redacts: string | null;
  /**
   * `content["m.relates_to"].rel_type` and `.event_id` (client-server-api
   * "Forming relationships between events"), extracted so relations can be
   * queried by parent; null when the event has no relation with a rel_type
   * (a rich reply alone is not a relation). Missing on events stored before
   * the field existed.
   */
  rel_type?: string | null;
  relates_to?: string | null;
  /** The event (RoomEvent: the PDU plus event_id and room_id) as JSON text. */
  json: string;
  /**
   * Server-side `unsigned` additions as JSON text: `prev_content`,
   * `prev_sender`, `replaces_state` for state events (client-server-api
   * "Room Events": unsigned.prev_content), `redacted_because` once redacted.
   */
  unsigned: string;
  /** The client transaction that sent it (PUT send/redact), for unsigned.transaction_id. */
  txn_id: string | null;
  device_id: string | null;
  /**
   * The state group of the state after the event (state-groups.ts): for a
   * message event the group of the state before it. Missing on events
   * stored before state groups existed (stateIdsAfter then falls back to
   * the line of history, which is exact for those rooms).
   */
  state_group?: string | null;
  /** The group of the state before a state event (for other events: state_group). */
  prev_state_group?: string | null;
  /** Stored for its state or auth chain only; its prev_events may be unknown. Never in the timeline. */
  outlier?: boolean;
  /** Why the checks on receipt rejected it (server-server-api "Rejection"); null or absent if not rejected. */
  rejected?: string | null;
  /** Passed auth at the event but not against the current state ("Soft failure"): stored, not shown, not an extremity. */
  soft_failed?: boolean;
}

export interface CurrentStateRecord extends Doc {
  _id: string; // room_id \n type \n state_key
  room_id: string;
  type: string;
  state_key: string;
  event_id: string;
  /** Stream position of the event that set this entry. */
  stream: number;
  /**
   * The event's JSON (as in room_events, kept in step on redaction), so the
   * writer reads the state it authorises against from this small collection
   * without touching the event table. Absent on entries written before it existed.
   */
  json?: string;
}

/** One entry per state event: the log stateAtPosition reads instead of scanning the whole timeline. */
export interface StateLogRecord extends Doc {
  _id: string; // the event ID
  room_id: string;
  type: string;
  state_key: string;
  stream: number;
}

export interface MembershipRecord extends Doc {
  _id: string; // room_id \n user_id
  room_id: string;
  user_id: string;
  /** join, invite, leave, ban, knock. */
  membership: string;
  event_id: string;
  sender: string;
  /** Stream position of the membership event. */
  stream: number;
  /** POST /forget: the room is hidden from this user (only after leaving). */
  forgotten: boolean;
}

export interface ExtremityRecord extends Doc {
  _id: string; // room_id \n event_id
  room_id: string;
  event_id: string;
  depth: number;
}

export interface RoomRecord extends Doc {
  _id: string; // the room ID
  version: string;
  creator: string;
  /** Room directory visibility (client-server-api "Room directory"). */
  visibility: 'public' | 'private';
  created_ts: number;
  /**
   * The stream position of the last event whose effects (current state,
   * membership, extremities, redaction) the writer has applied. An event with
   * a higher position was stored by a writer that died before finishing; the
   * next writer of the room applies it first (see the room server's repair).
   */
  applied_stream?: number;
  /** The stream position of the event being written (set before its row is stored). */
  pending_stream?: number;
  /** The state group of the current state (absent until the first write after state groups existed). */
  current_state_group?: string;
}

export interface AliasRecord extends Doc {
  _id: string; // the alias
  room_id: string;
  creator: string;
  created_ts: number;
}

export interface TxnRecord extends Doc {
  _id: string; // user_id \n device_id \n scope \n txn_id
  event_id: string;
  room_id: string;
  created_ts: number;
}

/** One event to store, as the room server hands it over after authorising it. */
export interface NewEvent {
  event: RoomEvent;
  stream: number;
  unsigned?: JsonObject;
  txnId?: string | null;
  deviceId?: string | null;
  /** The group of the state after the event (see EventRecord.state_group). */
  stateGroup?: string | null;
  /** The group of the state before it (state events; defaults to stateGroup). */
  prevStateGroup?: string | null;
  outlier?: boolean;
  rejected?: string | null;
  softFailed?: boolean;
}

export interface StreamRange {
  /** Exclusive lower bound (a sync token's position). 0 for "from the start". */
  from: number;
  /** Inclusive upper bound; use `safeStreamPosition()`. */
  to: number;
  /** At most this many events. */
  limit?: number;
  /** `backward` (default): the newest events first; `forward`: oldest first. */
  direction?: 'forward' | 'backward';
}

const SEP = '\n';
const stateId = (roomId: string, type: string, stateKey: string): string => `${roomId}${SEP}${type}${SEP}${stateKey}`;
const memberId = (roomId: string, userId: string): string => `${roomId}${SEP}${userId}`;

/** The `trace` field of a record written now (see EventRecord.trace). */
function traceOfWrite(): { trace?: string } {
  const traceId = currentTraceId();
  const spanId = currentSpanId();
  return traceId && spanId ? { trace: `${traceId}-${spanId}` } : {};
}

/** Parses an event record's JSON back into the RoomEvent. */
export function eventOf(record: EventRecord): RoomEvent {
  return JSON.parse(record.json) as RoomEvent;
}

/** Parses an event record's stored unsigned additions. */
export function unsignedOf(record: EventRecord): JsonObject {
  return JSON.parse(record.unsigned) as JsonObject;
}

/**
 * The relation an event's content declares: `m.relates_to` with a string
 * `rel_type` and `event_id` (definitions/m.relates_to.yaml; both required).
 * Anything else (no m.relates_to, a reply's m.in_reply_to only, wrong types)
 * is no relation: "Relationships which don't match the schema … are simply ignored".
 */
export function relationOf(content: JsonObject | undefined): { relType: string; eventId: string } | null {
  const rel = content?.['m.relates_to'];
  if (!rel || typeof rel !== 'object' || Array.isArray(rel)) return null;
  const relType = rel['rel_type'];
  const eventId = rel['event_id'];
  if (typeof relType !== 'string' || typeof eventId !== 'string' || relType === '' || eventId === '') return null;
  return { relType, eventId };
}

export class RoomStore {
  private constructor(
    readonly streams: StreamAllocator,
    private readonly events: Collection<EventRecord>,
    private readonly state: Collection<CurrentStateRecord>,
    private readonly stateLog: Collection<StateLogRecord>,
    private readonly memberships: Collection<MembershipRecord>,
    private readonly extremities: Collection<ExtremityRecord>,
    private readonly rooms: Collection<RoomRecord>,
    private readonly aliases: Collection<AliasRecord>,
    private readonly txns: Collection<TxnRecord>,
    /** The state groups of the room (state after each event). */
    readonly stateGroups: StateGroups,
    private readonly now: () => number,
  ) {}

  static async open(store: DocumentStore, now: () => number = Date.now): Promise<RoomStore> {
    const rooms = new RoomStore(
      await StreamAllocator.open(store, now),
      await store.collection<EventRecord>({
        name: 'room_events',
        indexes: [
          { fields: ['room_id', 'stream'] },
          // The output log (allEventsBetween reads it by page, not by stream alone).
          { fields: ['log_page', 'stream'] },
          { fields: ['redacts'] },
          // Relations (libs/relations): children of one parent, and the thread events of a room.
          { fields: ['relates_to', 'stream'] },
          { fields: ['room_id', 'rel_type', 'stream'] },
        ],
      }),
      await store.collection<CurrentStateRecord>({ name: 'room_current_state', indexes: [{ fields: ['room_id', 'type'] }] }),
      await store.collection<StateLogRecord>({ name: 'room_state_log', indexes: [{ fields: ['room_id', 'stream'] }] }),
      await store.collection<MembershipRecord>({
        name: 'room_memberships',
        indexes: [{ fields: ['user_id', 'membership'] }, { fields: ['room_id', 'membership'] }, { fields: ['user_id', 'stream'] }],
      }),
      await store.collection<ExtremityRecord>({ name: 'room_extremities', indexes: [{ fields: ['room_id'] }] }),
      await store.collection<RoomRecord>({ name: 'rooms', indexes: [{ fields: ['visibility'] }] }),
      await store.collection<AliasRecord>({ name: 'room_aliases', indexes: [{ fields: ['room_id'] }] }),
      await store.collection<TxnRecord>({ name: 'room_txns' }),
      new StateGroups(await store.collection<StateGroupRecord>({ name: 'room_state_groups', indexes: [{ fields: ['room_id'] }] })),
      now,
    );
    if (!pagedStores.has(store)) {
      await rooms.pageOldLog();
      pagedStores.add(store);
    }
    return rooms;
  }

  // ---- stream positions ----

  /** The highest `events` stream position readers may read up to (StreamAllocator.safePosition). */
  safeStreamPosition(): Promise<number> {
    return this.streams.safePosition(EVENTS_STREAM);
  }

  // ---- rooms ----

  /** Records a new room; false if it exists (idempotent). */
  createRoom(room: { roomId: string; version: string; creator: string; visibility?: 'public' | 'private' }): Promise<boolean> {
    return this.rooms.insert({
      _id: room.roomId,
      version: room.version,
      creator: room.creator,
      visibility: room.visibility ?? 'private',
      created_ts: this.now(),
      applied_stream: 0,
    });
  }

  getRoom(roomId: string): Promise<RoomRecord | null> {
    return this.rooms.get(roomId);
  }

  /** Records that the event at `stream` is about to be stored (see RoomRecord.pending_stream). */
  async markPending(roomId: string, stream: number): Promise<void> {
    await this.rooms.update(roomId, { pending_stream: stream });
  }

  /** Records that every event of the room up to `stream` has had its effects applied. */
  async markApplied(roomId: string, stream: number): Promise<void> {
    await this.rooms.update(roomId, { applied_stream: stream });
  }

  async setVisibility(roomId: string, visibility: 'public' | 'private'): Promise<boolean> {
    return this.rooms.update(roomId, { visibility });
  }

  /** Rooms published in the room directory, by room ID. */
  publicRooms(): Promise<RoomRecord[]> {
    return this.rooms.find({ visibility: 'public' }, { sort: { _id: 1 } });
  }

  // ---- events ----

  /**
   * Stores an event (idempotent on its event ID: a replay stores nothing and
   * returns false). Current state, memberships and extremities are updated by
   * their own methods, in that order, by the room server.
   */
  async insertEvent(input: NewEvent): Promise<boolean> {
    const e = input.event;
    const content = e.content ?? {};
    const membership = e.type === 'm.room.member' && typeof content['membership'] === 'string' ? content['membership'] : null;
    const redacts = e.type === 'm.room.redaction' ? (typeof content['redacts'] === 'string' ? content['redacts'] : (e.redacts ?? null)) : null;
    const relation = relationOf(content);
    if ((input.outlier || input.softFailed || (input.rejected ?? null) !== null) && input.stream !== NO_STREAM) {
      throw new Error(`${e.event_id}: outliers, rejected and soft-failed events have no stream position`);
    }
    // The state log first: a crash after it and before the event leaves a log entry whose
    // event is missing, which stateAtPosition skips (getEvents drops unknown IDs).
    // Events outside the timeline (NO_STREAM) are not part of the line of history stateAtPosition reads.
    if (e.state_key !== undefined && input.stream !== NO_STREAM) {
      await this.stateLog.insert({ _id: e.event_id, room_id: e.room_id, type: e.type, state_key: e.state_key, stream: input.stream });
    }
    return this.events.insert({
      _id: e.event_id,
      room_id: e.room_id,
      type: e.type,
      state_key: e.state_key ?? null,
      sender: e.sender,
      stream: input.stream,
      log_page: logPageOf(input.stream),
      depth: e.depth,
      origin_server_ts: e.origin_server_ts,
      membership,
      redacted: false,
      redacted_by: null,
      redacts,
      rel_type: relation?.relType ?? null,
      relates_to: relation?.eventId ?? null,
      json: JSON.stringify(e),
      unsigned: JSON.stringify(input.unsigned ?? {}),
      txn_id: input.txnId ?? null,
      device_id: input.deviceId ?? null,
      state_group: input.stateGroup ?? null,
      prev_state_group: input.prevStateGroup ?? input.stateGroup ?? null,
      outlier: input.outlier ?? false,
      rejected: input.rejected ?? null,
      soft_failed: input.softFailed ?? false,
      ...traceOfWrite(),
    });
  }

  getEvent(eventId: string): Promise<EventRecord | null> {
    return this.events.get(eventId);
  }

  /** Events by ID, in the order asked (missing IDs are left out). */
  async getEvents(eventIds: readonly string[]): Promise<EventRecord[]> {
    if (eventIds.length === 0) return [];
    const found = await this.events.getMany([...new Set(eventIds)]);
    const byId = new Map(found.map((r) => [r._id, r]));
    return eventIds.map((id) => byId.get(id)).filter((r): r is EventRecord => r !== undefined);
  }

  /**
   * Replaces an event's stored form by its redacted form (client-server-api
   * "Redactions": the server stores the event stripped by the room version's
   * algorithm) and records which redaction did it, with `redacted_because`.
   */
  async applyRedaction(eventId: string, redactedJson: RoomEvent, redactionEventId: string, redactedBecause: JsonObject): Promise<boolean> {
    const record = await this.events.get(eventId);
    if (!record) return false;
    const unsigned = unsignedOf(record);
    // Stored prev_content stays (it describes the previous event, not this one's content);
    // redacted_because is what the spec asks clients to see on a redacted event.
    unsigned['redacted_because'] = redactedBecause;
    const changed = await this.events.update(eventId, {
      json: JSON.stringify(redactedJson),
      redacted: true,
      redacted_by: redactionEventId,
      unsigned: JSON.stringify(unsigned),
    });
    // A redacted state event that is still current: its copy in the current state follows.
    if (record.state_key !== null) {
      await this.state.update(stateId(record.room_id, record.type, record.state_key), { json: JSON.stringify(redactedJson) }, { event_id: eventId });
    }
    return changed;
  }

  /**
   * Unredacted events whose `m.relates_to.event_id` is `parentId` (optionally of
   * one rel_type) with `from < stream <= to`, newest first by default. A redacted
   * child is left out: "when a child event is redacted then the relationship is
   * broken" (client-server-api "Aggregations of child events"). Without `from`,
   * backfilled history (below 0) is included: an edit or reaction made before
   * this server joined still aggregates. Never events outside the timeline (NO_STREAM).
   */
  relationsOf(parentId: string, options: { relType?: string; sender?: string; from?: number; to?: number; direction?: 'forward' | 'backward'; limit?: number } = {}): Promise<EventRecord[]> {
    const filter: Filter<EventRecord> = {
      relates_to: parentId,
      redacted: false,
      stream: { $gt: options.from ?? Number.MIN_SAFE_INTEGER, $lte: options.to ?? Number.MAX_SAFE_INTEGER, $ne: NO_STREAM },
    };
    if (options.relType !== undefined) filter.rel_type = options.relType;
    if (options.sender !== undefined) filter.sender = options.sender;
    return this.events.find(filter, { sort: { stream: options.direction === 'forward' ? 1 : -1 }, limit: options.limit });
  }

  /**
   * Which of `parentIds` (events of `roomId`) have unredacted children of the
   * given rel_types: one query for a whole page of events (most have none),
   * at most `limit` rows. A child is in its parent's room ("Forming
   * relationships between events"), so the room is part of the query: an
   * equality every store can narrow the read with.
   */
  relationsOfMany(roomId: string, parentIds: readonly string[], relTypes: readonly string[], limit = 1000): Promise<EventRecord[]> {
    if (parentIds.length === 0 || relTypes.length === 0) return Promise.resolve([]);
    return this.events.find(
      { room_id: roomId, relates_to: { $in: [...new Set(parentIds)] }, rel_type: { $in: [...relTypes] }, redacted: false, stream: { $ne: NO_STREAM } },
      { sort: { stream: -1 }, limit },
    );
  }

  /** How many unredacted events relate to `parentId` with `relType` (and `stream <= to`), backfilled ones included. */
  countRelations(parentId: string, relType: string, to = Number.MAX_SAFE_INTEGER): Promise<number> {
    return this.events.count({ relates_to: parentId, rel_type: relType, redacted: false, stream: { $ne: NO_STREAM, $lte: to } });
  }

  /**
   * Unredacted events of a room with a given rel_type and `from < stream <= to`,
   * newest first (GET /threads walks the room's m.thread events this way).
   * Without `from`, backfilled history (below 0) is included; never NO_STREAM.
   */
  roomRelations(roomId: string, relType: string, options: { from?: number; to?: number; limit?: number; sender?: string } = {}): Promise<EventRecord[]> {
    const filter: Filter<EventRecord> = {
      room_id: roomId,
      rel_type: relType,
      redacted: false,
      stream: { $gt: options.from ?? Number.MIN_SAFE_INTEGER, $lte: options.to ?? Number.MAX_SAFE_INTEGER, $ne: NO_STREAM },
    };
    if (options.sender !== undefined) filter.sender = options.sender;
    return this.events.find(filter, { sort: { stream: -1 }, limit: options.limit });
  }

  /**
   * Redaction events that name `eventId` (also those that arrived before it),
   * backfilled ones (below 0) included; not rejected, soft-failed or outlier ones (NO_STREAM).
   */
  redactionsOf(eventId: string): Promise<EventRecord[]> {
    return this.events.find({ redacts: eventId, stream: { $ne: NO_STREAM } }, { sort: { stream: 1 } });
  }

  /**
   * The events of one room with `from < stream <= to`, newest first by default
   * (what sync's timeline and /messages backwards need), at most `limit`.
   */
  roomEvents(roomId: string, range: StreamRange): Promise<EventRecord[]> {
    const direction = range.direction ?? 'backward';
    return this.events.find(
      { room_id: roomId, stream: timelineRange(range.from, range.to) },
      { sort: { stream: direction === 'backward' ? -1 : 1 }, limit: range.limit },
    );
  }

  /**
   * Events of every room with `from < stream <= to`, oldest first: the room
   * output log. Consumers that must see every event (push rules, federation
   * out) keep their own cursor, read up to `safeStreamPosition()`, and wake on
   * `sync.wake`; storage is durable and ordered, so nothing published on the
   * bus can be lost or reordered between the write and the consumer.
   */
  allEventsBetween(from: number, to: number, limit = 100): Promise<EventRecord[]> {
    return this.logBetween(from, to, limit);
  }

  /** The log in `(from, to]`, oldest first, at most `limit`: one query per log page (LOG_PAGE_SIZE). */
  private async logBetween(from: number, to: number, limit: number): Promise<EventRecord[]> {
    const out: EventRecord[] = [];
    const low = Math.max(from, NO_STREAM);
    if (to <= low || limit <= 0) return out;
    const last = logPageOf(to) as number;
    for (let page = logPageOf(low + 1) as number; page <= last && out.length < limit; page++) {
      out.push(...(await this.events.find({ log_page: page, stream: { $gt: low, $lte: to } }, { sort: { stream: 1 }, limit: limit - out.length })));
    }
    return out;
  }

  /**
   * Gives `log_page` to log events stored before the field existed, so the
   * log readers see them; at open, in batches, idempotent (several services
   * may run it at once; each writes the same value).
   */
  private async pageOldLog(): Promise<void> {
    for (let round = 0; round < 1_000_000; round++) {
      const batch = await this.events.find({ log_page: { $exists: false }, stream: { $gt: NO_STREAM } }, { limit: 500 });
      if (batch.length === 0) return;
      for (const e of batch) await this.events.update(e._id, { log_page: logPageOf(e.stream) });
    }
  }

  /** roomEvents for several rooms: one entry per room that has events in the range. */
  async eventsOfRooms(roomIds: readonly string[], range: StreamRange): Promise<Map<string, EventRecord[]>> {
    const out = new Map<string, EventRecord[]>();
    for (const roomId of roomIds) {
      const events = await this.roomEvents(roomId, range);
      if (events.length > 0) out.set(roomId, events);
    }
    return out;
  }

  /**
   * The event closest to `ts` in a direction (GET /timestamp_to_event):
   * forward, the first with `origin_server_ts >= ts`; backward, the last with
   * `origin_server_ts <= ts`. Ties go to stream order. Backfilled history
   * counts (a late joiner jumps to a date before the join); events outside
   * the timeline (NO_STREAM) do not.
   */
  async eventAtTimestamp(roomId: string, ts: number, dir: 'f' | 'b'): Promise<EventRecord | null> {
    const [found] =
      dir === 'f'
        ? await this.events.find({ room_id: roomId, origin_server_ts: { $gte: ts }, stream: { $ne: NO_STREAM } }, { sort: { origin_server_ts: 1, stream: 1 }, limit: 1 })
        : await this.events.find({ room_id: roomId, origin_server_ts: { $lte: ts }, stream: { $ne: NO_STREAM } }, { sort: { origin_server_ts: -1, stream: -1 }, limit: 1 });
    return found ?? null;
  }

  /** Whether a room has any event in `(from, to]` (cheap check for sync). */
  async roomHasEventsBetween(roomId: string, from: number, to: number): Promise<boolean> {
    return (await this.events.count({ room_id: roomId, stream: timelineRange(from, to) })) > 0;
  }

  /**
   * The rooms with an event in `(from, to]`, or null when more than `limit`
   * events are in the range (the caller then asks room by room). One query on
   * the `stream` index instead of one per room: how an incremental /sync
   * skips the rooms where nothing happened.
   */
  async roomsWithEventsBetween(from: number, to: number, limit = 500): Promise<Set<string> | null> {
    if (to <= from) return new Set();
    const events = await this.logBetween(from, to, limit + 1);
    if (events.length > limit) return null;
    return new Set(events.map((e) => e.room_id));
  }

  /** The event with the highest position in the room at or before `to` (a room's latest event). */
  async latestEvent(roomId: string, to = Number.MAX_SAFE_INTEGER): Promise<EventRecord | null> {
    const [latest] = await this.events.find({ room_id: roomId, stream: { $gt: NO_STREAM, $lte: to } }, { sort: { stream: -1 }, limit: 1 });
    return latest ?? null;
  }

  // ---- current state ----

  /** Makes `event` the current state entry for its (type, state_key). Only for state events. */
  async setCurrentState(event: RoomEvent, stream: number): Promise<void> {
    if (event.state_key === undefined) throw new Error(`${event.event_id} is not a state event`);
    await this.state.put({
      _id: stateId(event.room_id, event.type, event.state_key),
      room_id: event.room_id,
      type: event.type,
      state_key: event.state_key,
      event_id: event.event_id,
      stream,
      json: JSON.stringify(event),
    });
  }

  /**
   * The current state events for the given (type, state_key) pairs, read from
   * the current-state records alone (one query, no event table): what the room
   * server authorises against. Keyed `type \u0000 state_key` like StateMap.
   */
  async currentStateEventsFor(roomId: string, keys: ReadonlyArray<readonly [string, string]>): Promise<Map<string, RoomEvent>> {
    const out = new Map<string, RoomEvent>();
    if (keys.length === 0) return out;
    const records = await this.state.getMany(keys.map(([type, key]) => stateId(roomId, type, key)));
    for (const record of records) {
      const json = record.json ?? (await this.events.get(record.event_id))?.json;
      if (json !== undefined) out.set(`${record.type}\u0000${record.state_key}`, JSON.parse(json) as RoomEvent);
    }
    return out;
  }

  /** The current state entries of a room (optionally of one type), not the events. */
  currentStateIds(roomId: string, type?: string): Promise<CurrentStateRecord[]> {
    const filter: Filter<CurrentStateRecord> = type === undefined ? { room_id: roomId } : { room_id: roomId, type };
    return this.state.find(filter, { sort: { type: 1, state_key: 1 } });
  }

  /** The current state events of a room (optionally of one type). */
  async currentState(roomId: string, type?: string): Promise<EventRecord[]> {
    const ids = await this.currentStateIds(roomId, type);
    return this.getEvents(ids.map((s) => s.event_id));
  }

  /** The current state event for (type, state_key), or null. */
  async currentStateEvent(roomId: string, type: string, stateKey: string): Promise<EventRecord | null> {
    const entry = await this.state.get(stateId(roomId, type, stateKey));
    return entry ? this.events.get(entry.event_id) : null;
  }

  /**
   * The room state just after stream position `position`: for each
   * (type, state_key), the state event with the highest position <= it.
   *
   * This is "state at an event" for rooms whose history is a single line,
   * which every room is while only this server writes to it (one writer per
   * room, prev_events = all forward extremities). Once federation brings
   * forks this must read state groups resolved by state resolution instead;
   * until then it is exact. Rejected events are never stored, so none count.
   */
  async stateAtPosition(roomId: string, position: number): Promise<EventRecord[]> {
    // Reads the state log (state events only), not the timeline: cost grows with the
    // room's state changes, not with its messages.
    return this.getEvents([...(await this.stateIdsAtPosition(roomId, position)).values()]);
  }

  // ---- state groups (docs/federation-design.md "Room state with federation") ----

  /** The state of a group by IDs (shared: do not modify), or null when unknown. */
  stateGroupState(groupId: string): Promise<ReadonlyMap<StateKey, string> | null> {
    return this.stateGroups.get(groupId);
  }

  /** Stores `state` as group `groupId` (a delta over `prevGroup` when given). Idempotent. */
  storeStateGroup(roomId: string, groupId: string, state: ReadonlyMap<StateKey, string>, prevGroup: string | null): Promise<string> {
    return this.stateGroups.store(roomId, groupId, state, prevGroup);
  }

  /** Stores group `groupId` as `prevGroup` plus `changes`. Idempotent. */
  storeStateDelta(roomId: string, groupId: string, prevGroup: string | null, changes: ReadonlyMap<StateKey, string>): Promise<string> {
    return this.stateGroups.storeDelta(roomId, groupId, prevGroup, changes);
  }

  /**
   * The state after an event, by IDs: its state group; for an event stored
   * before state groups existed, the line of history up to its position
   * (exact for those rooms, which had no forks). Null for an unknown event or
   * one whose state is not known (an outlier stored without a group).
   */
  async stateIdsAfter(eventId: string): Promise<StateIds | null> {
    const record = await this.events.get(eventId);
    if (!record) return null;
    if (record.state_group) {
      const state = await this.stateGroups.get(record.state_group);
      return state ? new Map(state) : null;
    }
    if (record.stream === NO_STREAM) return null;
    return this.stateIdsAtPosition(record.room_id, record.stream);
  }

  /** The state before an event, by IDs (see stateIdsAfter). */
  async stateIdsBefore(eventId: string): Promise<StateIds | null> {
    const record = await this.events.get(eventId);
    if (!record) return null;
    const group = record.prev_state_group ?? record.state_group;
    if (group) {
      const state = await this.stateGroups.get(group);
      return state ? new Map(state) : null;
    }
    if (record.stream === NO_STREAM) return null;
    return this.stateIdsAtPosition(record.room_id, record.stream - 1);
  }

  /**
   * What a client holding the state at position `from` must update to have
   * the state at `to` (sync.yaml `state_after`): for each state key with a
   * state-log entry in `(from, to]`, the latest one. The log holds each event
   * once (it is keyed by event ID), so an entry in the range always names
   * another event than the state at `from` had: the read covers the range,
   * not the room's whole state (what an incremental /sync of a large room needs).
   */
  async stateChangesBetween(roomId: string, from: number, to: number): Promise<EventRecord[]> {
    return this.getEvents([...(await this.latestStateIds({ room_id: roomId, stream: { $gt: from, $lte: to } })).values()]);
  }

  /** The m.room.member events of `userIds` in the state at `position` (of those who have one). */
  async memberEventsAt(roomId: string, userIds: readonly string[], position: number): Promise<EventRecord[]> {
    if (userIds.length === 0) return [];
    const latest = await this.latestStateIds({ room_id: roomId, type: 'm.room.member', state_key: { $in: [...new Set(userIds)] }, stream: { $lte: position } });
    return this.getEvents([...latest.values()]);
  }

  private stateIdsAtPosition(roomId: string, position: number): Promise<StateIds> {
    return this.latestStateIds({ room_id: roomId, stream: { $lte: position } });
  }

  /** The state-log entries matching `filter`, the latest of each state key: the state they add up to. */
  private async latestStateIds(filter: Filter<StateLogRecord>): Promise<StateIds> {
    const out: StateIds = new Map();
    for (const e of await this.stateLog.find(filter, { sort: { stream: 1 } })) out.set(stateKey(e.type, e.state_key), e._id);
    return out;
  }

  /**
   * The group of the room's current state. A room whose events predate state
   * groups gets a full snapshot of its current-state records first (id
   * `<room>/current@<applied position>`), so the next event can be a delta.
   * Null for a room with no state yet (before its create event).
   */
  async currentStateGroup(roomId: string): Promise<string | null> {
    const room = await this.rooms.get(roomId);
    if (!room) return null;
    if (room.current_state_group) return room.current_state_group;
    const records = await this.currentStateIds(roomId);
    if (records.length === 0) return null;
    const state: StateIds = new Map(records.map((r) => [`${r.type}\u0000${r.state_key}` as StateKey, r.event_id]));
    const groupId = await this.stateGroups.store(roomId, `${roomId}/current@${room.applied_stream ?? 0}`, state, null);
    await this.rooms.update(roomId, { current_state_group: groupId });
    return groupId;
  }

  /** Records the group of the room's current state (after current-state records are written). */
  async setCurrentStateGroup(roomId: string, groupId: string): Promise<void> {
    await this.rooms.update(roomId, { current_state_group: groupId });
  }

  /**
   * Makes the room's current-state records equal `state` (the resolution
   * across the forward extremities): entries that changed are put, entries
   * gone are deleted. Returns the events that became current (the caller
   * updates memberships from them). `events` must hold every event `state`
   * names that is not already current.
   */
  async replaceCurrentState(roomId: string, state: ReadonlyMap<StateKey, string>, events: ReadonlyMap<string, EventRecord>): Promise<EventRecord[]> {
    const current = await this.currentStateIds(roomId);
    const changed: EventRecord[] = [];
    for (const record of current) {
      if (!state.has(`${record.type}\u0000${record.state_key}`)) await this.state.delete(record._id);
    }
    const byKey = new Map(current.map((r) => [`${r.type}\u0000${r.state_key}`, r.event_id]));
    for (const [key, eventId] of state) {
      if (byKey.get(key) === eventId) continue;
      const record = events.get(eventId) ?? (await this.events.get(eventId));
      if (!record || record.state_key === null) continue;
      await this.state.put({
        _id: stateId(roomId, record.type, record.state_key),
        room_id: roomId,
        type: record.type,
        state_key: record.state_key,
        event_id: record._id,
        stream: record.stream,
        json: record.json,
      });
      changed.push(record);
    }
    return changed;
  }

  /**
   * Every event reachable from `eventIds` through `auth_events` (not the
   * starting events themselves unless one is reachable from another), read
   * breadth first in batches; unknown IDs are skipped. server-server-api
   * "Auth chain": what /event_auth, /state and send_join answer with.
   */
  async authChain(eventIds: readonly string[]): Promise<EventRecord[]> {
    const seen = new Set<string>();
    const out: EventRecord[] = [];
    const follow = (record: EventRecord, into: string[]): void => {
      for (const id of authEventIds(eventOf(record))) {
        if (seen.has(id)) continue;
        seen.add(id);
        into.push(id);
      }
    };
    let frontier: string[] = [];
    for (const record of await this.getEvents(eventIds)) follow(record, frontier);
    while (frontier.length > 0) {
      const next: string[] = [];
      for (let i = 0; i < frontier.length; i += 500) {
        for (const record of await this.getEvents(frontier.slice(i, i + 500))) {
          out.push(record);
          follow(record, next);
        }
      }
      frontier = next;
    }
    return out;
  }

  /**
   * Records state events stored outside the timeline (outliers: the state a
   * resident server gave with send_join) as the room's state from `stream`
   * on, for the readers of the line of history (stateAtPosition: /sync's
   * state of a newly joined room, /members, history visibility). Idempotent.
   */
  async logState(roomId: string, events: readonly RoomEvent[], stream: number): Promise<void> {
    for (const e of events) {
      if (e.state_key === undefined || e.room_id !== roomId) continue;
      await this.stateLog.insert({ _id: e.event_id, room_id: roomId, type: e.type, state_key: e.state_key, stream });
    }
  }

  /**
   * Gives a stored outlier its place in the timeline once its prev_events are
   * known and it passed every check (or records its soft failure). The
   * state log entry follows for a state event with a position.
   */
  async promoteOutlier(eventId: string, set: { stream: number; stateGroup: string | null; prevStateGroup: string | null; softFailed: boolean }): Promise<boolean> {
    const record = await this.events.get(eventId);
    if (!record || !record.outlier) return false;
    if (record.state_key !== null && set.stream !== NO_STREAM) {
      await this.stateLog.insert({ _id: record._id, room_id: record.room_id, type: record.type, state_key: record.state_key, stream: set.stream });
    }
    return this.events.update(
      eventId,
      { stream: set.stream, log_page: logPageOf(set.stream), state_group: set.stateGroup, prev_state_group: set.prevStateGroup, soft_failed: set.softFailed, outlier: false },
      { outlier: true },
    );
  }

  /**
   * Sets the state groups of an event stored without them (an outlier whose
   * state was fetched, docs/federation-design.md), and records its rejection
   * when the checks rejected it (it then stops being an outlier: it is settled).
   */
  async setOutlierState(eventId: string, stateGroup: string | null, prevStateGroup: string | null, rejected: string | null = null): Promise<boolean> {
    const set: Partial<EventRecord> = { state_group: stateGroup, prev_state_group: prevStateGroup };
    if (rejected !== null) Object.assign(set, { rejected, outlier: false });
    return this.events.update(eventId, set);
  }

  // ---- memberships ----

  /** Records a member event as the user's membership in the room (call for every accepted m.room.member event). */
  async setMembership(event: RoomEvent, stream: number): Promise<void> {
    if (event.type !== 'm.room.member' || event.state_key === undefined) throw new Error(`${event.event_id} is not a member event`);
    const membership = event.content['membership'];
    if (typeof membership !== 'string') throw new Error(`${event.event_id} has no membership`);
    const previous = await this.memberships.get(memberId(event.room_id, event.state_key));
    await this.memberships.put({
      _id: memberId(event.room_id, event.state_key),
      room_id: event.room_id,
      user_id: event.state_key,
      membership,
      event_id: event.event_id,
      sender: event.sender,
      stream,
      // A new membership other than leave un-forgets the room (a rejoin shows it again).
      forgotten: membership === 'leave' || membership === 'ban' ? (previous?.forgotten ?? false) : false,
    });
  }

  getMembership(roomId: string, userId: string): Promise<MembershipRecord | null> {
    return this.memberships.get(memberId(roomId, userId));
  }

  /** Rooms of a user with their membership and its stream position (optionally only some memberships). */
  roomsOfUser(userId: string, memberships?: readonly string[]): Promise<MembershipRecord[]> {
    const filter: Filter<MembershipRecord> = memberships ? { user_id: userId, membership: { $in: [...memberships] } } : { user_id: userId };
    return this.memberships.find(filter, { sort: { room_id: 1 } });
  }

  /** The user's membership records whose event has a position in `(from, to]` (sync: rooms newly joined, invited, left). */
  membershipChanges(userId: string, from: number, to: number): Promise<MembershipRecord[]> {
    return this.memberships.find({ user_id: userId, stream: { $gt: from, $lte: to } }, { sort: { stream: 1 } });
  }

  /** Whether `userId` has a join event in the room after stream position `position` (history visibility "shared"). */
  async userJoinedAfter(roomId: string, userId: string, position: number): Promise<boolean> {
    const joins = await this.events.find({ room_id: roomId, stream: { $gt: position }, state_key: userId, membership: 'join' }, { limit: 1 });
    return joins.length > 0;
  }

  /** Members of a room (optionally only some memberships), by user ID. */
  membersOfRoom(roomId: string, memberships?: readonly string[]): Promise<MembershipRecord[]> {
    const filter: Filter<MembershipRecord> = memberships ? { room_id: roomId, membership: { $in: [...memberships] } } : { room_id: roomId };
    return this.memberships.find(filter, { sort: { user_id: 1 } });
  }

  /** Joined user IDs of a room. */
  async joinedUsers(roomId: string): Promise<string[]> {
    return (await this.membersOfRoom(roomId, ['join'])).map((m) => m.user_id);
  }

  /** POST /forget: only a user who is not joined/invited/knocking may forget. Returns false if no membership to forget. */
  async forget(roomId: string, userId: string): Promise<boolean> {
    return this.memberships.update(memberId(roomId, userId), { forgotten: true }, { membership: { $in: ['leave', 'ban'] } });
  }

  // ---- forward extremities ----

  /**
   * Adds `event` as a forward extremity and removes the events it references
   * (they now have a child). Insert first, then delete: a crash in between
   * leaves an extra extremity, which the next event references and removes.
   */
  async updateExtremities(event: RoomEvent, prevEventIds: readonly string[]): Promise<void> {
    await this.extremities.insert({ _id: memberId(event.room_id, event.event_id), room_id: event.room_id, event_id: event.event_id, depth: event.depth });
    for (const prev of prevEventIds) await this.extremities.delete(memberId(event.room_id, prev));
  }

  /** The room's forward extremities (events with no child yet), deepest first. */
  forwardExtremities(roomId: string): Promise<ExtremityRecord[]> {
    return this.extremities.find({ room_id: roomId }, { sort: { depth: -1 } });
  }

  // ---- aliases ----

  /** Creates an alias; false if it exists (the caller answers M_UNKNOWN… see client-server-api "Room aliases": 409). */
  createAlias(alias: string, roomId: string, creator: string): Promise<boolean> {
    return this.aliases.insert({ _id: alias, room_id: roomId, creator, created_ts: this.now() });
  }

  getAlias(alias: string): Promise<AliasRecord | null> {
    return this.aliases.get(alias);
  }

  deleteAlias(alias: string): Promise<boolean> {
    return this.aliases.delete(alias);
  }

  /** Points an existing alias at another room (room upgrades move local aliases). */
  moveAlias(alias: string, roomId: string): Promise<boolean> {
    return this.aliases.update(alias, { room_id: roomId });
  }

  async aliasesOfRoom(roomId: string): Promise<string[]> {
    return (await this.aliases.find({ room_id: roomId }, { sort: { _id: 1 } })).map((a) => a._id);
  }

  // ---- client transaction IDs ----

  /**
   * Records that (user, device, scope, txn) produced `eventId`; returns the
   * event ID already recorded if there was one (client-server-api "Transaction
   * identifiers": the same txnId from the same device is the same request).
   * `scope` separates endpoints (send vs redact) as the spec's "the same HTTP
   * endpoint" asks.
   */
  async recordTxn(key: { userId: string; deviceId: string; scope: string; txnId: string }, eventId: string, roomId: string): Promise<string> {
    const id = [key.userId, key.deviceId, key.scope, key.txnId].join(SEP);
    if (await this.txns.insert({ _id: id, event_id: eventId, room_id: roomId, created_ts: this.now() })) return eventId;
    const existing = await this.txns.get(id);
    return existing ? existing.event_id : eventId;
  }

  async lookupTxn(key: { userId: string; deviceId: string; scope: string; txnId: string }): Promise<TxnRecord | null> {
    return this.txns.get([key.userId, key.deviceId, key.scope, key.txnId].join(SEP));
  }

  /** Forgets a transaction record (one whose event was never stored). */
  async deleteTxn(key: { userId: string; deviceId: string; scope: string; txnId: string }): Promise<boolean> {
    return this.txns.delete([key.userId, key.deviceId, key.scope, key.txnId].join(SEP));
  }
}
