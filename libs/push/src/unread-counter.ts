import { MAIN_THREAD, RECEIPT_TYPES, type ReceiptStore } from '@atrium/ephemeral';
import type { PushRuleset } from '@atrium/matrix';
import { eventOf, type EventRecord, type RoomStore } from '@atrium/rooms';
import type { NotificationRecord, NotificationStore } from './notification-store';
import type { PushEvaluator, RoomPushContext } from './push-evaluator';

/**
 * Unread notification counts of one user in one room (client-server-api
 * "Receiving notifications" and "Marking notifications as read"; sync.yaml
 * `unread_notifications`, `unread_thread_notifications`).
 *
 * - The user has read up to the most advanced of their `m.read` and
 *   `m.read.private` receipts ("the receipt which is more recent/ahead must
 *   be used") and of the events they sent ("either by using the API or by
 *   sending an event").
 * - Threaded receipts: "the server is to partition the notification count to
 *   each thread (with the main timeline being its own thread)": an
 *   unthreaded receipt reads every thread up to its event; a receipt with a
 *   `thread_id` reads that thread only.
 * - "The updated notification count from a new event MUST appear in the same
 *   /sync response as the event itself": rows exist for the events the push
 *   gateway has processed (its cursor); the events after it, up to the
 *   response's position, are evaluated here with the same rules and code,
 *   skipping any the gateway has recorded meanwhile. Usually none are left.
 */
export interface Counts {
  notification_count: number;
  highlight_count: number;
}

export interface RoomCounts {
  /** The main timeline (with `perThread`) or every thread together. */
  total: Counts;
  /** Per thread root, only threads with unread notifications (filled with `perThread`). */
  threads: Record<string, Counts>;
}

/** Rows read per room; past this the room's total is counted instead (threads then stop growing). */
const MAX_ROWS = 1000;
/**
 * Rows read at once for all the rooms of a response; past this, per room.
 * Reaching it costs the batch read and then one query per room, so it sits
 * well above a large account's usual unread total (200 rooms × 25 unread is
 * 5,000, where the old limit made bench:client's initial sync read twice).
 */
const MAX_BATCH_ROWS = 20_000;
/** Events of the gap past the gateway's cursor read at once for all rooms; past this, per room. */
const MAX_GAP_EVENTS = 500;
/** Events evaluated inline per room when the gateway lags. */
const MAX_INLINE_EVENTS = 200;

export const zeroCounts = (): Counts => ({ notification_count: 0, highlight_count: 0 });
function add(into: Counts, n: Counts): void {
  into.notification_count += n.notification_count;
  into.highlight_count += n.highlight_count;
}

/** A room's read positions known before its rows are read. */
interface RoomFloors {
  unthreaded: number;
  main: number;
}

export class UnreadCounter {
  constructor(
    private readonly rooms: RoomStore,
    private readonly receipts: ReceiptStore,
    private readonly notifications: NotificationStore,
    private readonly evaluator: PushEvaluator,
  ) {}

  /** The position of the latest receipt of the user for a thread (null: unthreaded), across both receipt types. */
  private async receiptFloor(roomId: string, userId: string, threadId: string | null): Promise<number> {
    const [read, priv] = await Promise.all([this.receipts.get(roomId, userId, 'm.read', threadId), this.receipts.get(roomId, userId, 'm.read.private', threadId)]);
    return Math.max(read?.event_stream ?? 0, priv?.event_stream ?? 0);
  }

  /** How far the user has read one thread (thread receipts, their own sends), given the unthreaded floor. */
  private async threadFloor(roomId: string, userId: string, threadId: string, unthreaded: number): Promise<number> {
    const [receipt, sent] = await Promise.all([this.receiptFloor(roomId, userId, threadId), this.notifications.sentMark(userId, roomId, threadId)]);
    return Math.max(unthreaded, receipt, sent);
  }

  /** The position up to which the user has read a thread of the room (GET /notifications `read`). */
  async readUpTo(userId: string, roomId: string, threadId: string): Promise<number> {
    return this.threadFloor(roomId, userId, threadId, await this.receiptFloor(roomId, userId, null));
  }

  /**
   * Counts in one room up to events position `upTo`. `perThread` (the filter's
   * `unread_thread_notifications`) puts the threads apart from the main timeline.
   */
  async roomCounts(userId: string, roomId: string, upTo: number, perThread: boolean, gatewayCursor?: number): Promise<RoomCounts> {
    return (await this.countsForRooms(userId, [roomId], upTo, perThread, gatewayCursor)).get(roomId) ?? { total: zeroCounts(), threads: {} };
  }

  /**
   * Counts in many rooms (a /sync response), with few queries per room
   * (FerretDB answers a query on a field in tens of milliseconds): the
   * gateway's cursor and the gap after it are read once for all rooms, the
   * latest-row marks in one read by IDs; a room then costs its receipts
   * (reads by ID) and, only when its mark is past the read position, one
   * query on its rows.
   */
  async countsForRooms(userId: string, roomIds: readonly string[], upTo: number, perThread: boolean, gatewayCursor?: number): Promise<Map<string, RoomCounts>> {
    const out = new Map<string, RoomCounts>();
    if (roomIds.length === 0) return out;
    const cursor = Math.min(upTo, gatewayCursor ?? (await this.notifications.cursor()));
    // Every room's read positions by IDs: the unthreaded and `main` receipts of both types, and the sent marks.
    const keys = roomIds.flatMap((roomId) =>
      RECEIPT_TYPES.flatMap((type) => [
        { roomId, userId, type, threadId: null },
        { roomId, userId, type, threadId: MAIN_THREAD },
      ]),
    );
    // Independent reads, in parallel.
    const [gapEvents, latest, receipts, sent] = await Promise.all([
      upTo > cursor ? this.rooms.allEventsBetween(cursor, upTo, MAX_GAP_EVENTS) : Promise.resolve([]),
      this.notifications.latestInRooms(userId, roomIds),
      this.receipts.getMany(keys),
      this.notifications.sentMarksMain(userId, roomIds),
    ]);
    let gap: Map<string, EventRecord[]> | null = new Map();
    if (gapEvents.length >= MAX_GAP_EVENTS) gap = null;
    else for (const e of gapEvents) gap.set(e.room_id, [...(gap.get(e.room_id) ?? []), e]);
    const unthreaded = new Map<string, number>();
    const mainFloor = new Map<string, number>();
    for (const r of receipts) {
      const into = r.thread_id === null ? unthreaded : mainFloor;
      into.set(r.room_id, Math.max(into.get(r.room_id) ?? 0, r.event_stream));
    }
    for (const [roomId, stream] of sent) mainFloor.set(roomId, Math.max(mainFloor.get(roomId) ?? 0, stream));

    // The rows of the rooms with something recorded past their read position, in one query when they fit.
    const unread = roomIds.filter((roomId) => (latest.get(roomId) ?? 0) > (unthreaded.get(roomId) ?? 0));
    let rowsByRoom: Map<string, NotificationRecord[]> | null = new Map();
    if (unread.length > 0 && cursor > 0) {
      const after = Math.min(...unread.map((roomId) => unthreaded.get(roomId) ?? 0));
      const rows = await this.notifications.rowsOfRooms(userId, unread, after, cursor, MAX_BATCH_ROWS);
      if (rows.length >= MAX_BATCH_ROWS) rowsByRoom = null;
      else for (const row of rows) rowsByRoom.set(row.room_id, [...(rowsByRoom.get(row.room_id) ?? []), row]);
    }

    for (const roomId of roomIds) {
      const floors: RoomFloors = { unthreaded: unthreaded.get(roomId) ?? 0, main: Math.max(unthreaded.get(roomId) ?? 0, mainFloor.get(roomId) ?? 0) };
      out.set(
        roomId,
        await this.oneRoom(userId, roomId, upTo, perThread, cursor, gap ? (gap.get(roomId) ?? []) : null, latest.get(roomId) ?? 0, floors, rowsByRoom ? (rowsByRoom.get(roomId) ?? []) : null),
      );
    }
    return out;
  }

  private async oneRoom(
    userId: string,
    roomId: string,
    upTo: number,
    perThread: boolean,
    cursor: number,
    gapEvents: EventRecord[] | null,
    latestRow: number,
    known: RoomFloors,
    prefetchedRows: NotificationRecord[] | null,
  ): Promise<RoomCounts> {
    const unthreaded = known.unthreaded;
    const floors = new Map<string, number>([[MAIN_THREAD, known.main]]);
    const floorOf = async (threadId: string): Promise<number> => {
      let floor = floors.get(threadId);
      if (floor === undefined) {
        floor = await this.threadFloor(roomId, userId, threadId, unthreaded);
        floors.set(threadId, floor);
      }
      return floor;
    };
    const records = (
      gapEvents ?? (upTo > cursor ? await this.rooms.roomEvents(roomId, { from: cursor, to: upTo, direction: 'forward', limit: MAX_INLINE_EVENTS }) : [])
    ).filter((r) => r.stream > unthreaded && r.stream > cursor && r.stream <= upTo);
    // Nothing recorded after the read position and nothing new past the cursor: nothing unread.
    if (latestRow <= unthreaded && records.length === 0) return { total: zeroCounts(), threads: {} };

    // Events past the gateway's cursor, evaluated now (their own sends move the floors first).
    const inline: Array<{ threadId: string; stream: number; counts: Counts }> = [];
    if (records.length > 0) {
      const recorded = await this.notifications.recordedEvents(userId, records.map((r) => r._id));
      let context: RoomPushContext | undefined;
      let rules: PushRuleset | undefined;
      for (const record of records) {
        const event = eventOf(record);
        if (event.sender === userId) {
          const threadId = await this.evaluator.threadOf(event);
          floors.set(threadId, Math.max(await floorOf(threadId), record.stream));
          continue;
        }
        let counts: Counts | null = null;
        const row = recorded.get(record._id);
        if (row) {
          counts = { notification_count: 1, highlight_count: row.highlight ? 1 : 0 };
        } else {
          context ??= await this.evaluator.roomContext(roomId);
          // As the gateway does: only members who had joined by the event.
          const membership = context.joined.get(userId);
          if (!membership || membership.stream > record.stream) continue;
          // The user's rules once per room, not once per event.
          rules ??= await this.evaluator.rulesOf(userId);
          const result = await this.evaluator.evaluate(userId, event, context, rules);
          if (result.notify) counts = { notification_count: 1, highlight_count: result.highlight ? 1 : 0 };
        }
        if (counts) inline.push({ threadId: await this.evaluator.threadOf(event), stream: record.stream, counts });
      }
    }

    const main = zeroCounts();
    const threads: Record<string, Counts> = {};
    const place = async (threadId: string, stream: number, counts: Counts): Promise<void> => {
      if (stream <= (await floorOf(threadId))) return;
      add(threadId === MAIN_THREAD ? main : (threads[threadId] ??= zeroCounts()), counts);
    };
    if (latestRow > unthreaded) {
      const query = { userId, roomId, after: unthreaded, upTo: cursor };
      const rows = prefetchedRows?.filter((r) => r.event_stream > unthreaded) ?? (await this.notifications.rowsAfter(query, MAX_ROWS));
      if (rows.length >= MAX_ROWS) {
        // Too many to tell apart: the room's total since the unthreaded read position, all in the main timeline.
        add(main, await this.notifications.countRoom(query));
      } else {
        for (const row of rows) await place(row.thread_id, row.event_stream, { notification_count: 1, highlight_count: row.highlight ? 1 : 0 });
      }
    }
    for (const item of inline) await place(item.threadId, item.stream, item.counts);

    if (perThread) return { total: main, threads };
    const total = { ...main };
    for (const counts of Object.values(threads)) add(total, counts);
    return { total, threads: {} };
  }

  /** push_notifier.yaml `counts.unread`: "The number of unread messages a user has across all of the rooms they are a member of." */
  async unreadAcrossRooms(userId: string, upTo: number): Promise<number> {
    const joined = (await this.rooms.roomsOfUser(userId, ['join'])).map((m) => m.room_id);
    let unread = 0;
    for (const counts of (await this.countsForRooms(userId, joined, upTo, false, upTo)).values()) unread += counts.total.notification_count;
    return unread;
  }
}

