import type { Collection, Doc, DocumentStore, Filter } from '@atrium/storage';
import type { PushAction } from '@atrium/matrix';

/**
 * What push evaluation leaves behind (client-server-api "Receiving
 * notifications", "Listing Notifications"):
 *
 * - `push_notifications`: one row per (user, event) that a rule made notify,
 *   keyed by both IDs so a replayed event inserts nothing new (ARCHITECTURE.md
 *   rule 3). Counts are not stored as counters: the unread count of a
 *   (user, room, thread) is the number of rows after that user's read receipt
 *   for it, counted when asked (see UnreadCounter). A receipt therefore
 *   "resets" the counts by existing, with no write racing the evaluator
 *   (rule 4: no transactions), and GET /notifications reads the same rows.
 * - `push_sent_marks`: the position of the latest event each local user sent
 *   per room and thread: "When the user updates their read receipt (either by
 *   using the API or by sending an event), notifications prior to and
 *   including that event MUST be marked as read".
 * - `push_cursor`: how far the push gateway has processed the room output
 *   log (positions in the `events` stream).
 */
export interface NotificationRecord extends Doc {
  _id: string; // user_id \n event_id
  user_id: string;
  room_id: string;
  event_id: string;
  /** The thread root's event ID, or `main` ("Threaded read receipts"). */
  thread_id: string;
  /** The event's position in the `events` stream. */
  event_stream: number;
  highlight: boolean;
  /** The matched rule's actions, as JSON text (notifications.yaml `actions`). */
  actions: string;
  ts: number;
  /** Set once every pusher of the user was tried, so a replay does not push twice. */
  pushed: boolean;
}

export interface SentMarkRecord extends Doc {
  _id: string; // user_id \n room_id \n thread_id
  user_id: string;
  room_id: string;
  thread_id: string;
  event_stream: number;
}

/** The position of the user's latest notification row in a room: a room whose mark is at or below the read position has nothing unread, without a query on the rows. */
export interface LatestRecord extends Doc {
  _id: string; // user_id \n room_id
  event_stream: number;
}

export interface CursorRecord extends Doc {
  _id: string;
  position: number;
}

export interface NewNotification {
  userId: string;
  roomId: string;
  eventId: string;
  threadId: string;
  eventStream: number;
  highlight: boolean;
  actions: PushAction[];
}

export interface CountQuery {
  userId: string;
  roomId: string;
  /** Exclusive lower bound (the read receipt's event position). */
  after: number;
  /** Inclusive upper bound (the sync response's events position). */
  upTo: number;
}

const MAX_CAS_ATTEMPTS = 20;
const OUTPUT_CURSOR = 'room_output';

export class NotificationStore {
  private constructor(
    private readonly rows: Collection<NotificationRecord>,
    private readonly marks: Collection<SentMarkRecord>,
    private readonly latest: Collection<LatestRecord>,
    private readonly cursors: Collection<CursorRecord>,
    private readonly now: () => number,
  ) {}

  static async open(store: DocumentStore, now: () => number = Date.now): Promise<NotificationStore> {
    return new NotificationStore(
      await store.collection<NotificationRecord>({
        name: 'push_notifications',
        indexes: [{ fields: ['user_id', 'room_id', 'thread_id', 'event_stream'] }, { fields: ['user_id', 'event_stream'] }, { fields: ['ts'] }],
      }),
      await store.collection<SentMarkRecord>({ name: 'push_sent_marks' }),
      await store.collection<LatestRecord>({ name: 'push_room_latest' }),
      await store.collection<CursorRecord>({ name: 'push_cursor' }),
      now,
    );
  }

  static rowId(userId: string, eventId: string): string {
    return `${userId}\n${eventId}`;
  }

  /**
   * Records a notification; false when it was already recorded (a replay).
   * The room's latest mark moves first, so it is never below a stored row
   * (a crash in between leaves it ahead, which only costs a query).
   */
  async record(n: NewNotification): Promise<boolean> {
    await this.moveLatest(n.userId, n.roomId, n.eventStream);
    return this.insertRow(n);
  }

  /** The first half of `record`, for callers that write many rows: move each (user, room) mark once, then insert the rows. */
  moveLatest(userId: string, roomId: string, eventStream: number): Promise<void> {
    const id = `${userId}\n${roomId}`;
    return this.moveForward(this.latest, id, { _id: id, event_stream: eventStream });
  }

  /**
   * `moveLatest` for many (user, room) marks at once, for a batch of events
   * with ~one row per member: marks moving to the same position are raised
   * by one conditional updateMany; only when some were not raised (missing,
   * or already there) are they inserted in one batch, and raised once more in
   * case another writer inserted a lower one in between. Both writes only
   * ever raise a mark, so a replay or a second gateway changes nothing.
   */
  async moveLatestMany(marks: ReadonlyArray<{ userId: string; roomId: string; eventStream: number }>): Promise<void> {
    const byStream = new Map<number, string[]>();
    for (const m of marks) {
      const ids = byStream.get(m.eventStream) ?? [];
      ids.push(`${m.userId}\n${m.roomId}`);
      byStream.set(m.eventStream, ids);
    }
    await Promise.all(
      [...byStream].map(async ([stream, ids]) => {
        const raise = () => this.latest.updateMany({ _id: { $in: ids }, event_stream: { $lt: stream } }, { event_stream: stream });
        const raised = await raise();
        if (raised === ids.length) return;
        const inserted = await this.latest.insertMany(ids.map((id) => ({ _id: id, event_stream: stream })));
        if (raised + inserted.length < ids.length) await raise();
      }),
    );
  }

  /** The row alone (after `moveLatest` for its user and room); false when it exists. */
  async insertRow(n: NewNotification): Promise<boolean> {
    return (await this.insertRows([n])).size === 1;
  }

  /**
   * Many rows in one write (one per member an event notifies), each after
   * `moveLatest` for its user and room. Answers the row IDs that were new;
   * the others were already recorded (a replay) and are left as they were.
   */
  async insertRows(ns: readonly NewNotification[]): Promise<Set<string>> {
    return new Set(await this.rows.insertMany(ns.map((n) => this.rowOf(n))));
  }

  private rowOf(n: NewNotification): NotificationRecord {
    return {
      _id: NotificationStore.rowId(n.userId, n.eventId),
      user_id: n.userId,
      room_id: n.roomId,
      event_id: n.eventId,
      thread_id: n.threadId,
      event_stream: n.eventStream,
      highlight: n.highlight,
      actions: JSON.stringify(n.actions),
      ts: this.now(),
      pushed: false,
    };
  }

  /** The stored rows among these (user, event) pairs (one read by IDs). */
  getMany(keys: ReadonlyArray<{ userId: string; eventId: string }>): Promise<NotificationRecord[]> {
    return this.rows.getMany(keys.map((k) => NotificationStore.rowId(k.userId, k.eventId)));
  }

  get(userId: string, eventId: string): Promise<NotificationRecord | null> {
    return this.rows.get(NotificationStore.rowId(userId, eventId));
  }

  /** The user's rows of these events that exist, by event ID (one read by IDs). */
  async recordedEvents(userId: string, eventIds: readonly string[]): Promise<Map<string, NotificationRecord>> {
    if (eventIds.length === 0) return new Map();
    const rows = await this.rows.getMany(eventIds.map((id) => NotificationStore.rowId(userId, id)));
    return new Map(rows.map((r) => [r.event_id, r]));
  }

  async markPushed(userId: string, eventId: string): Promise<void> {
    await this.rows.update(NotificationStore.rowId(userId, eventId), { pushed: true });
  }

  /** The latest-row marks of the user in these rooms (one read by IDs). */
  async latestInRooms(userId: string, roomIds: readonly string[]): Promise<Map<string, number>> {
    if (roomIds.length === 0) return new Map();
    const marks = await this.latest.getMany(roomIds.map((roomId) => `${userId}\n${roomId}`));
    return new Map(marks.map((m) => [m._id.slice(userId.length + 1), m.event_stream]));
  }

  /** The user's rows of a room in (after, upTo], oldest first, at most `limit` (one query; threads are told apart by the caller). */
  rowsAfter(query: CountQuery, limit: number): Promise<NotificationRecord[]> {
    return this.rows.find(
      { user_id: query.userId, room_id: query.roomId, event_stream: { $gt: query.after, $lte: query.upTo } },
      { sort: { event_stream: 1 }, limit },
    );
  }

  /** The user's rows of several rooms after `after` up to `upTo`, at most `limit` (one query for a /sync response). */
  rowsOfRooms(userId: string, roomIds: readonly string[], after: number, upTo: number, limit: number): Promise<NotificationRecord[]> {
    if (roomIds.length === 0) return Promise.resolve([]);
    return this.rows.find({ user_id: userId, room_id: { $in: [...roomIds] }, event_stream: { $gt: after, $lte: upTo } }, { sort: { event_stream: 1 }, limit });
  }

  /** The sent marks of the user's main timelines of these rooms (one read by IDs). */
  async sentMarksMain(userId: string, roomIds: readonly string[]): Promise<Map<string, number>> {
    if (roomIds.length === 0) return new Map();
    const marks = await this.marks.getMany(roomIds.map((roomId) => `${userId}\n${roomId}\nmain`));
    return new Map(marks.map((m) => [m.room_id, m.event_stream]));
  }

  /** Notification and highlight counts of a room in (after, upTo], all threads (used past the rowsAfter limit). */
  async countRoom(query: CountQuery): Promise<{ notification_count: number; highlight_count: number }> {
    const filter = { user_id: query.userId, room_id: query.roomId, event_stream: { $gt: query.after, $lte: query.upTo } };
    const notification_count = await this.rows.count(filter);
    const highlight_count = notification_count === 0 ? 0 : await this.rows.count({ ...filter, highlight: true });
    return { notification_count, highlight_count };
  }

  /** GET /notifications: the user's rows before `before` (exclusive), newest first. */
  list(userId: string, before: number, limit: number, onlyHighlight: boolean): Promise<NotificationRecord[]> {
    const filter = onlyHighlight ? { user_id: userId, event_stream: { $lt: before }, highlight: true } : { user_id: userId, event_stream: { $lt: before } };
    return this.rows.find(filter, { sort: { event_stream: -1 }, limit });
  }

  /**
   * Deletes the rows recorded before `ts` (ms since the epoch), as Synapse
   * keeps push actions for 30 days: /notifications then lists the last 30
   * days, and an older unread notification stops counting.
   */
  pruneBefore(ts: number): Promise<number> {
    return this.rows.deleteMany({ ts: { $lt: ts } });
  }

  // ---- what the user sent (an implicit receipt) ----

  /** Moves the user's sent mark of (room, thread) forward to `eventStream` (never back). */
  async markSent(userId: string, roomId: string, threadId: string, eventStream: number): Promise<void> {
    const id = `${userId}\n${roomId}\n${threadId}`;
    await this.moveForward(this.marks, id, { _id: id, user_id: userId, room_id: roomId, thread_id: threadId, event_stream: eventStream });
  }

  /** Inserts `doc` or raises its `event_stream`, never lowering it (conditional writes only: rule 4). */
  private async moveForward<T extends Doc & { event_stream: number }>(collection: Collection<T>, id: string, doc: T): Promise<void> {
    // The document usually exists and is behind (positions only grow): the update first, one round trip.
    for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
      if (await collection.update(id, { event_stream: doc.event_stream } as Partial<T>, { event_stream: { $lt: doc.event_stream } } as Filter<T>)) return;
      if (await collection.insert(doc)) return;
      const current = await collection.get(id);
      if (current && current.event_stream >= doc.event_stream) return;
    }
  }

  async sentMark(userId: string, roomId: string, threadId: string): Promise<number> {
    return (await this.marks.get(`${userId}\n${roomId}\n${threadId}`))?.event_stream ?? 0;
  }

  // ---- the consumer's cursor in the room output log ----

  async cursor(): Promise<number> {
    return (await this.cursors.get(OUTPUT_CURSOR))?.position ?? 0;
  }

  /** Moves the cursor from `from` to `to` (compare-and-set); false if another consumer moved it first. */
  async advanceCursor(from: number, to: number): Promise<boolean> {
    if (from === 0 && (await this.cursors.insert({ _id: OUTPUT_CURSOR, position: to }))) return true;
    return this.cursors.update(OUTPUT_CURSOR, { position: to }, { position: from });
  }
}
