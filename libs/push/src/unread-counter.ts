import { MAIN_THREAD, type ReceiptStore } from '@atrium/ephemeral';
import { eventOf, type RoomStore } from '@atrium/rooms';
import type { NotificationStore } from './notification-store';
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

/** Thread rows read per room; beyond this a thread's count stops growing. */
const MAX_THREAD_ROWS = 2000;
/** Events evaluated inline per room when the gateway lags. */
const MAX_INLINE_EVENTS = 200;

export const zeroCounts = (): Counts => ({ notification_count: 0, highlight_count: 0 });
function add(into: Counts, n: Counts): void {
  into.notification_count += n.notification_count;
  into.highlight_count += n.highlight_count;
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
   * Counts in the room up to events position `upTo`. `perThread` (the filter's
   * `unread_thread_notifications`) puts the threads apart from the main timeline.
   */
  async roomCounts(userId: string, roomId: string, upTo: number, perThread: boolean, gatewayCursor?: number): Promise<RoomCounts> {
    const unthreaded = await this.receiptFloor(roomId, userId, null);
    const floors = new Map<string, number>();
    const floorOf = async (threadId: string): Promise<number> => {
      let floor = floors.get(threadId);
      if (floor === undefined) {
        floor = await this.threadFloor(roomId, userId, threadId, unthreaded);
        floors.set(threadId, floor);
      }
      return floor;
    };
    const cursor = Math.min(upTo, gatewayCursor ?? (await this.notifications.cursor()));
    const query = { userId, roomId, upTo: cursor };

    // Events past the gateway's cursor, evaluated now (their own sends move the floors first).
    const inline: Array<{ threadId: string; stream: number; counts: Counts }> = [];
    if (upTo > cursor) {
      const records = await this.rooms.roomEvents(roomId, { from: Math.max(cursor, unthreaded), to: upTo, direction: 'forward', limit: MAX_INLINE_EVENTS });
      const recorded = await this.notifications.recordedEvents(userId, records.map((r) => r._id));
      let context: RoomPushContext | undefined;
      for (const record of records) {
        const event = eventOf(record);
        if (event.sender === userId) {
          const threadId = await this.evaluator.threadOf(event);
          floors.set(threadId, Math.max(await floorOf(threadId), record.stream));
          continue;
        }
        let counts: Counts | null = null;
        if (recorded.has(record._id)) {
          const row = await this.notifications.get(userId, record._id);
          if (row) counts = { notification_count: 1, highlight_count: row.highlight ? 1 : 0 };
        } else {
          context ??= await this.evaluator.roomContext(roomId);
          const result = await this.evaluator.evaluate(userId, event, context);
          if (result.notify) counts = { notification_count: 1, highlight_count: result.highlight ? 1 : 0 };
        }
        if (counts) inline.push({ threadId: await this.evaluator.threadOf(event), stream: record.stream, counts });
      }
    }

    const main = await this.notifications.countThread({ ...query, after: await floorOf(MAIN_THREAD) }, MAIN_THREAD);
    const threads: Record<string, Counts> = {};
    for (const row of await this.notifications.threadRows({ ...query, after: unthreaded }, MAX_THREAD_ROWS)) {
      if (row.event_stream <= (await floorOf(row.thread_id))) continue;
      add((threads[row.thread_id] ??= zeroCounts()), { notification_count: 1, highlight_count: row.highlight ? 1 : 0 });
    }
    for (const item of inline) {
      if (item.stream <= (await floorOf(item.threadId))) continue;
      if (item.threadId === MAIN_THREAD) add(main, item.counts);
      else add((threads[item.threadId] ??= zeroCounts()), item.counts);
    }

    if (perThread) return { total: main, threads };
    const total = { ...main };
    for (const counts of Object.values(threads)) add(total, counts);
    return { total, threads: {} };
  }

  /** push_notifier.yaml `counts.unread`: "The number of unread messages a user has across all of the rooms they are a member of." */
  async unreadAcrossRooms(userId: string, upTo: number): Promise<number> {
    const joined = new Set((await this.rooms.roomsOfUser(userId, ['join'])).map((m) => m.room_id));
    let unread = 0;
    for (const roomId of await this.notifications.recentRooms(userId)) {
      if (!joined.has(roomId)) continue;
      unread += (await this.roomCounts(userId, roomId, upTo, false, upTo)).total.notification_count;
    }
    return unread;
  }
}

