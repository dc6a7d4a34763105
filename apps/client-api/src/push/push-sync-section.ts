import { Inject, Injectable } from '@nestjs/common';
import type { Bus } from '@atrium/bus';
import { BUS, DOCUMENT_STORE } from '@atrium/platform';
import { PushStores } from '@atrium/push';
import type { DocumentStore } from '@atrium/storage';
import { EphemeralStores } from '../ephemeral/ephemeral.stores';
import type { SyncSection, SyncSectionRequest, SyncSectionResult } from '../sync/sync-sections';

/**
 * Each joined room's `unread_notifications` and, when the filter sets
 * `room.timeline.unread_thread_notifications`, `unread_thread_notifications`
 * (sync.yaml JoinedRoom; client-server-api "Receiving notifications":
 * "Servers MUST include the number of unread notifications in a client's
 * /sync stream, and MUST update it as it changes").
 *
 * The counts change when an event arrives (the `events` stream) or when the
 * user's own receipt moves (the `receipts` stream); both are in the token
 * already, so this section needs no stream of its own: it takes the
 * `receipts` stream's place (the same safe position ReceiptsStreamSection
 * reads) and sends the counts of every room on an initial or full-state sync,
 * else of the rooms with new events or a new receipt of the user. Counts are
 * as of the response's events position, including events the push gateway
 * has not processed yet ("The updated notification count from a new event
 * MUST appear in the same /sync response as the event itself"; see
 * libs/push UnreadCounter).
 *
 * With `unread_thread_notifications`, `unread_notifications` counts the main
 * timeline only and each thread with unread notifications is listed apart
 * ("Threaded read receipts": the main timeline is its own thread).
 */
@Injectable()
export class UnreadNotificationsSyncSection implements SyncSection {
  readonly stream = 'receipts' as const;

  constructor(
    @Inject(DOCUMENT_STORE) private readonly store: DocumentStore,
    @Inject(BUS) private readonly bus: Bus,
  ) {}

  async currentPosition(): Promise<number> {
    return (await PushStores.shared(this.store, this.bus)).receipts.safePosition();
  }

  async build(request: SyncSectionRequest): Promise<SyncSectionResult> {
    const roomIds = request.joinedRoomIds;
    if (roomIds.length === 0) return { hasUpdates: false };
    const stores = await PushStores.shared(this.store, this.bus);
    const full = request.initial || request.fullState;
    const targets = new Set<string>();
    let receiptMoved = false;
    if (full) {
      for (const roomId of roomIds) targets.add(roomId);
    } else {
      // Rooms with new events (one query on the stream index, room by room past its limit), receipts, typing and
      // room account data (the rooms other sections put in the response: the sync service gives a room a section
      // adds zero counts by default, so they get their real counts here). The reads are independent: in parallel.
      const ephemeral = await EphemeralStores.shared(this.store, this.bus);
      const [withEvents, receipts, typing, accountData] = await Promise.all([
        stores.rooms.roomsWithEventsBetween(request.from.events, request.to.events),
        stores.receipts.changes(roomIds, request.userId, request.from.receipts, request.to.receipts),
        ephemeral.typing.changedRooms(roomIds, request.from.typing, request.to.typing),
        ephemeral.accountData.changes(request.userId, request.from.account_data, request.to.account_data),
      ]);
      const joined = new Set(roomIds);
      if (withEvents) {
        for (const roomId of withEvents) if (joined.has(roomId)) targets.add(roomId);
      } else {
        for (const roomId of roomIds) {
          if (await stores.rooms.roomHasEventsBetween(roomId, request.from.events, request.to.events)) targets.add(roomId);
        }
      }
      for (const [roomId, records] of receipts) {
        // Any receipt puts the room in the response (the ephemeral section); the user's own one changes the counts.
        targets.add(roomId);
        if (records.some((r) => r.user_id === request.userId)) receiptMoved = true;
      }
      for (const roomId of typing) targets.add(roomId);
      for (const roomId of Object.keys(accountData.rooms)) if (joined.has(roomId)) targets.add(roomId);
    }
    if (targets.size === 0) return { hasUpdates: false };
    const perThread = request.filter.room?.timeline?.unread_thread_notifications === true;
    const rooms: Record<string, Record<string, unknown>> = {};
    for (const [roomId, counts] of await stores.counter.countsForRooms(request.userId, [...targets], request.to.events, perThread)) {
      rooms[roomId] = perThread ? { unread_notifications: counts.total, unread_thread_notifications: counts.threads } : { unread_notifications: counts.total };
    }
    return { rooms, hasUpdates: receiptMoved };
  }
}
