import type { Collection, Doc, DocumentStore } from '@atrium/storage';
import { EPHEMERAL_STREAMS, MAX_CAS_ATTEMPTS, type StreamPositionSource, type WakeSync } from './streams';

/**
 * Read receipts (client-server-api "Receipts").
 *
 * "Each `user_id`, `receipt_type`, and categorisation (unthreaded, or
 * `thread_id`) tuple must be associated with only a single `event_id`": one
 * document per such tuple, rewritten in place. `stream` is the position of
 * its last write on the `receipts` stream, so /sync reads the changes in
 * (from, to] of a set of rooms with one range query ("New receipts that come
 * down the event streams are deltas which update existing mappings").
 *
 * Receipts are "up to" markers: a receipt for an event older (by its
 * position in the room's `events` stream) than the one already stored is
 * ignored rather than moving the marker back, as Synapse does.
 */
export const RECEIPT_TYPES = ['m.read', 'm.read.private'] as const;
export type ReceiptType = (typeof RECEIPT_TYPES)[number];

export function isReceiptType(value: string): value is ReceiptType {
  return (RECEIPT_TYPES as readonly string[]).includes(value);
}

export interface ReceiptRecord extends Doc {
  _id: string; // room_id \n user_id \n receipt_type \n thread_id ('' when unthreaded)
  room_id: string;
  user_id: string;
  receipt_type: ReceiptType;
  /** `main`, a thread root's event ID, or null for an unthreaded receipt. */
  thread_id: string | null;
  event_id: string;
  /** The acknowledged event's position in the `events` stream: what "ahead" means. */
  event_stream: number;
  /** When the receipt was sent (ms since the epoch): the `ts` the server sets. */
  ts: number;
  /** Position on the `receipts` stream of the last write. */
  stream: number;
}

export interface NewReceipt {
  roomId: string;
  userId: string;
  type: ReceiptType;
  threadId?: string | null;
  eventId: string;
  /** The event's position in the `events` stream. */
  eventStream: number;
  /** When the user read it (ms); default now. A receipt from another server keeps its `data.ts` (server-server-api "Receipts"). */
  ts?: number;
}

/** The content of an `m.receipt` event: event ID → receipt type → user ID → `{ ts, thread_id? }` (m.receipt event schema). */
export type ReceiptContent = Record<string, Record<string, Record<string, { ts: number; thread_id?: string }>>>;

function recordId(roomId: string, userId: string, type: string, threadId: string | null): string {
  return `${roomId}\n${userId}\n${type}\n${threadId ?? ''}`;
}

/**
 * Batches receipts into the content of one `m.receipt` event ("receipts
 * SHOULD be batched into one event per room and thread before delivering
 * them to clients"); `thread_id` is present only on threaded receipts.
 */
export function receiptContent(records: readonly ReceiptRecord[]): ReceiptContent {
  const content: ReceiptContent = {};
  for (const record of records) {
    const byType = (content[record.event_id] ??= {});
    const byUser = (byType[record.receipt_type] ??= {});
    byUser[record.user_id] = record.thread_id === null ? { ts: record.ts } : { ts: record.ts, thread_id: record.thread_id };
  }
  return content;
}

export class ReceiptStore {
  private constructor(
    private readonly records: Collection<ReceiptRecord>,
    private readonly positions: StreamPositionSource,
    private readonly wake: WakeSync,
    private readonly now: () => number,
  ) {}

  static async open(store: DocumentStore, positions: StreamPositionSource, wake: WakeSync, now: () => number = Date.now): Promise<ReceiptStore> {
    const records = await store.collection<ReceiptRecord>({ name: 'receipts', indexes: [{ fields: ['room_id', 'stream'] }] });
    return new ReceiptStore(records, positions, wake, now);
  }

  /**
   * Stores a receipt. Returns its position on the `receipts` stream, or null
   * when it was ignored because the stored one is for the same or a later event.
   */
  async put(receipt: NewReceipt): Promise<number | null> {
    const threadId = receipt.threadId ?? null;
    const id = recordId(receipt.roomId, receipt.userId, receipt.type, threadId);
    for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
      const current = await this.records.get(id);
      if (current && current.event_stream >= receipt.eventStream) return null;
      const fields = { event_id: receipt.eventId, event_stream: receipt.eventStream, ts: receipt.ts ?? this.now() };
      const position = await this.positions.withPosition(EPHEMERAL_STREAMS.receipts, async (position) => {
        // Compare-and-set on the previous position: two devices acknowledging at once keep the later event.
        const ok = current
          ? await this.records.update(id, { ...fields, stream: position }, { stream: current.stream })
          : await this.records.insert({
              _id: id,
              room_id: receipt.roomId,
              user_id: receipt.userId,
              receipt_type: receipt.type,
              thread_id: threadId,
              ...fields,
              stream: position,
            });
        return ok ? position : null;
      });
      if (position === null) continue;
      // "Servers MUST NOT send the m.read.private receipt to any other user than the one which originally sent it":
      // only its owner's sync needs waking.
      await this.wake(
        receipt.type === 'm.read.private'
          ? { stream: EPHEMERAL_STREAMS.receipts, position, user_ids: [receipt.userId] }
          : { stream: EPHEMERAL_STREAMS.receipts, position, room_id: receipt.roomId },
      );
      return position;
    }
    throw new Error(`receipt of ${receipt.userId} in ${receipt.roomId}: too many concurrent writes`);
  }

  /** The stored receipt of one (user, type, thread) tuple, or null. */
  get(roomId: string, userId: string, type: ReceiptType, threadId: string | null = null): Promise<ReceiptRecord | null> {
    return this.records.get(recordId(roomId, userId, type, threadId));
  }

  /** Several stored receipts in one read by IDs (push counts read every room's receipts of one user); missing ones are left out. */
  getMany(keys: ReadonlyArray<{ roomId: string; userId: string; type: ReceiptType; threadId?: string | null }>): Promise<ReceiptRecord[]> {
    if (keys.length === 0) return Promise.resolve([]);
    return this.records.getMany(keys.map((k) => recordId(k.roomId, k.userId, k.type, k.threadId ?? null)));
  }

  /**
   * The receipts of the rooms written in (from, to] that `viewer` may see
   * (private receipts only their owner's), grouped by room in stream order.
   * An initial sync passes from = 0: the latest receipt of every tuple.
   */
  async changes(roomIds: readonly string[], viewer: string, from: number, to: number): Promise<Map<string, ReceiptRecord[]>> {
    const out = new Map<string, ReceiptRecord[]>();
    if (roomIds.length === 0 || to <= from) return out;
    const records = await this.records.find({ room_id: { $in: [...roomIds] }, stream: { $gt: from, $lte: to } }, { sort: { stream: 1 } });
    for (const record of records) {
      if (record.receipt_type === 'm.read.private' && record.user_id !== viewer) continue;
      const list = out.get(record.room_id) ?? [];
      list.push(record);
      out.set(record.room_id, list);
    }
    return out;
  }

  safePosition(): Promise<number> {
    return this.positions.safePosition(EPHEMERAL_STREAMS.receipts);
  }
}
